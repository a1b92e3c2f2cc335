//! The HTTP(S) client that trackers and web seeds share: hyper 1 on `tokio::net`, rustls with
//! bundled web PKI roots, and the redirect rule both follow.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Uri;
use hyper::header::HeaderValue;
use hyper::http::uri::Scheme;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Our `User-Agent`.
pub(crate) const AGENT: &str = concat!("cratetorrent/", env!("CARGO_PKG_VERSION"));

/// A pooled HTTP and HTTPS client for bodiless requests. Cheap to clone.
pub(crate) type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// A client that gives up connecting after `connect_timeout` and keeps at most
/// `idle_per_host` idle connections per host. Fails only if the TLS provider cannot be set up.
pub(crate) fn client(
    connect_timeout: Duration,
    idle_per_host: usize,
) -> Result<HttpsClient, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| e.to_string())?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(idle_per_host)
        .build(connector))
}

/// Why a redirect is not followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RedirectError {
    #[error("redirect without a valid location")]
    NoLocation,
    /// HTTPS to plain HTTP: following it would send the request (a private tracker's passkey,
    /// say) in the clear.
    #[error("refused redirect from HTTPS to {0}")]
    Insecure(String),
}

/// Resolves a `Location` header (absolute, or an absolute path on the same host). An HTTPS
/// request may only be redirected to HTTPS.
pub(crate) fn redirect_target(
    base: &Uri,
    location: Option<&HeaderValue>,
) -> Result<Uri, RedirectError> {
    let location = location
        .and_then(|l| l.to_str().ok())
        .ok_or(RedirectError::NoLocation)?;
    let target: Uri = if location.starts_with('/') && !location.starts_with("//") {
        let (scheme, authority) = (
            base.scheme_str().unwrap_or("http"),
            base.authority().map_or("", |a| a.as_str()),
        );
        format!("{scheme}://{authority}{location}")
            .parse()
            .map_err(|_| RedirectError::NoLocation)?
    } else {
        location.parse().map_err(|_| RedirectError::NoLocation)?
    };
    if base.scheme() == Some(&Scheme::HTTPS) && target.scheme() != Some(&Scheme::HTTPS) {
        return Err(RedirectError::Insecure(target.to_string()));
    }
    Ok(target)
}

/// An error and each of its causes, joined by `: `.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
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
        assert_eq!(redirect_target(&base, None), Err(RedirectError::NoLocation));
    }

    #[test]
    fn https_cannot_redirect_to_plain_http() {
        let base: Uri = "https://t.example/announce?passkey=secret".parse().unwrap();
        let to = |l: &'static str| redirect_target(&base, Some(&HeaderValue::from_static(l)));
        for downgrade in [
            "http://t.example/announce",
            "HTTP://t.example/a",
            "t.example:80",
        ] {
            let result = to(downgrade);
            assert!(
                matches!(result, Err(RedirectError::Insecure(_))),
                "{downgrade}: {result:?}"
            );
        }
        assert_eq!(
            to("https://b.example/a").unwrap().to_string(),
            "https://b.example/a"
        );
        assert_eq!(to("/other").unwrap().to_string(), "https://t.example/other");
    }
}
