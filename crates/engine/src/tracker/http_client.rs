//! The HTTP(S) tracker client, on the shared client of `https.rs`.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{HeaderValue, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode, Uri};

use super::http::{announce_url, parse_announce_response, parse_scrape_response, scrape_url};
use super::{AnnounceRequest, AnnounceResponse, ScrapeStats, TrackerError};
use crate::conf::TrackerConf;
use crate::https::{self, AGENT, HttpsClient, RedirectError, error_chain, redirect_target};
use cratetorrent_metainfo::InfoHash;

/// An HTTP and HTTPS tracker client. Cheap to clone (connections are pooled and shared).
#[derive(Clone)]
pub struct HttpTracker {
    client: HttpsClient,
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
        let client = https::client(conf.connect_timeout, 2).map_err(TrackerError::Tls)?;
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
                uri = redirect_target(&uri, response.headers().get(LOCATION)).map_err(|error| {
                    match error {
                        RedirectError::NoLocation => TrackerError::BadRedirect,
                        RedirectError::Insecure(to) => TrackerError::InsecureRedirect(to),
                    }
                })?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
