//! The HTTP(S) tracker client: hyper 1 on `tokio::net`, rustls with bundled web PKI roots.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{HeaderValue, LOCATION, USER_AGENT};
use hyper::http::uri::Scheme;
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::http::{announce_url, parse_announce_response, parse_scrape_response, scrape_url};
use super::{AnnounceRequest, AnnounceResponse, ScrapeStats, TrackerError};
use crate::conf::TrackerConf;
use cratetorrent_metainfo::InfoHash;

const AGENT: &str = concat!("cratetorrent/", env!("CARGO_PKG_VERSION"));

/// An HTTP and HTTPS tracker client. Cheap to clone (connections are pooled and shared).
#[derive(Clone)]
pub struct HttpTracker {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    conf: TrackerConf,
}

impl std::fmt::Debug for HttpTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTracker").finish_non_exhaustive()
    }
}

impl HttpTracker {
    /// A client with the timeouts, redirect and size limits of `conf`. Fails only if the TLS
    /// provider cannot be set up.
    pub fn new(conf: &TrackerConf) -> Result<Self, TrackerError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(conf.connect_timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| TrackerError::Tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build(connector);
        Ok(Self {
            client,
            conf: conf.clone(),
        })
    }

    /// Announces to the tracker at `url` (an `http://` or `https://` announce URL).
    pub async fn announce(
        &self,
        url: &str,
        request: &AnnounceRequest,
    ) -> Result<AnnounceResponse, TrackerError> {
        let body = self.get(&announce_url(url, request)).await?;
        parse_announce_response(&body)
    }

    /// Scrapes one torrent from the tracker whose announce URL is `url`.
    pub async fn scrape(
        &self,
        url: &str,
        info_hash: &InfoHash,
    ) -> Result<ScrapeStats, TrackerError> {
        let scrape = scrape_url(url, info_hash)
            .ok_or_else(|| TrackerError::InvalidUrl(format!("{url} has no scrape URL")))?;
        let body = self.get(&scrape).await?;
        parse_scrape_response(&body, info_hash)
    }

    /// GETs `url` (e.g. a `.torrent` file), following redirects, within the request timeout
    /// and response size limit of the client's [`TrackerConf`].
    pub async fn fetch(&self, url: &str) -> Result<Bytes, TrackerError> {
        self.get(url).await
    }

    /// GETs `url`, following redirects, within the request timeout and size limit.
    async fn get(&self, url: &str) -> Result<Bytes, TrackerError> {
        tokio::time::timeout(self.conf.request_timeout, self.get_following(url))
            .await
            .map_err(|_| TrackerError::Timeout)?
    }

    async fn get_following(&self, url: &str) -> Result<Bytes, TrackerError> {
        let mut uri: Uri = url
            .parse()
            .map_err(|_| TrackerError::InvalidUrl(url.to_owned()))?;
        for _ in 0..=self.conf.max_redirects {
            match uri.scheme_str() {
                Some("http" | "https") => {}
                _ => return Err(TrackerError::UnsupportedScheme(uri.to_string())),
            }
            let request = Request::get(uri.clone())
                .header(USER_AGENT, HeaderValue::from_static(AGENT))
                .body(Empty::new())
                .map_err(|e| TrackerError::Http(e.to_string()))?;
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| TrackerError::Http(error_chain(&e)))?;
            let status = response.status();
            if status.is_redirection() {
                uri = redirect_target(&uri, response.headers().get(LOCATION))?;
                continue;
            }
            if status != StatusCode::OK {
                return Err(TrackerError::Status(status.as_u16()));
            }
            let limit = self.conf.max_response_size;
            let body = Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        TrackerError::TooLarge(limit)
                    } else {
                        TrackerError::Http(e.to_string())
                    }
                })?;
            return Ok(body.to_bytes());
        }
        Err(TrackerError::TooManyRedirects)
    }
}

/// Resolves a `Location` header (absolute, or an absolute path on the same host). An HTTPS
/// request may only be redirected to HTTPS.
fn redirect_target(base: &Uri, location: Option<&HeaderValue>) -> Result<Uri, TrackerError> {
    let location = location
        .and_then(|l| l.to_str().ok())
        .ok_or(TrackerError::BadRedirect)?;
    let target: Uri = if location.starts_with('/') && !location.starts_with("//") {
        let (scheme, authority) = (
            base.scheme_str().unwrap_or("http"),
            base.authority().map_or("", |a| a.as_str()),
        );
        format!("{scheme}://{authority}{location}")
            .parse()
            .map_err(|_| TrackerError::BadRedirect)?
    } else {
        location.parse().map_err(|_| TrackerError::BadRedirect)?
    };
    if base.scheme() == Some(&Scheme::HTTPS) && target.scheme() != Some(&Scheme::HTTPS) {
        return Err(TrackerError::InsecureRedirect(target.to_string()));
    }
    Ok(target)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn redirects_resolve_against_the_request() {
        let base: Uri = "http://t.example:8080/announce?x=1".parse().unwrap();
        let to = |l: &'static str| redirect_target(&base, Some(&HeaderValue::from_static(l)));
        assert_eq!(
            to("/other?y").unwrap().to_string(),
            "http://t.example:8080/other?y"
        );
        assert_eq!(
            to("https://b.example/a").unwrap().to_string(),
            "https://b.example/a"
        );
        assert!(redirect_target(&base, None).is_err());
    }

    #[test]
    fn https_trackers_cannot_redirect_to_plain_http() {
        let base: Uri = "https://t.example/announce?passkey=secret".parse().unwrap();
        let to = |l: &'static str| redirect_target(&base, Some(&HeaderValue::from_static(l)));
        for downgrade in [
            "http://t.example/announce",
            "HTTP://t.example/a",
            "t.example:80",
        ] {
            let result = to(downgrade);
            assert!(
                matches!(result, Err(TrackerError::InsecureRedirect(_))),
                "{downgrade}: {result:?}"
            );
        }
        assert_eq!(
            to("https://b.example/a").unwrap().to_string(),
            "https://b.example/a"
        );
        assert_eq!(to("/other").unwrap().to_string(), "https://t.example/other");
    }

    #[tokio::test]
    async fn https_goes_through_tls_and_a_plain_server_fails_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut hello = [0u8; 5];
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut hello)
                .await
                .unwrap();
            let _ = tokio::io::AsyncWriteExt::write_all(
                &mut stream,
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nde",
            )
            .await;
            hello
        });
        let tracker = HttpTracker::new(&TrackerConf::default()).unwrap();
        let request = AnnounceRequest::new(
            InfoHash::new([1; 20]),
            cratetorrent_wire::PeerId::new([2; 20]),
            1,
        );
        let result = tracker
            .announce(&format!("https://{addr}/announce"), &request)
            .await;
        assert!(matches!(result, Err(TrackerError::Http(_))), "{result:?}");
        // The client opened with a TLS handshake record (content type 22, version 3.x).
        let hello = server.await.unwrap();
        assert_eq!(&hello[..2], &[22, 3]);
    }
}
