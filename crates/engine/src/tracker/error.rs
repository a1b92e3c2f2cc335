//! Why an announce or scrape failed.

use cratetorrent_metainfo::bencode::DecodeError;
use thiserror::Error;

/// Why an announce or scrape failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TrackerError {
    /// The tracker URL cannot be used.
    #[error("invalid tracker URL: {0}")]
    InvalidUrl(String),
    /// A scheme other than `http`, `https` or `udp`.
    #[error("unsupported tracker scheme in {0}")]
    UnsupportedScheme(String),
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The tracker answered with a failure reason.
    #[error("tracker failure: {0}")]
    Failure(String),
    /// An HTTP status other than 200 (after redirects).
    #[error("HTTP status {0}")]
    Status(u16),
    /// More redirects than we follow.
    #[error("too many redirects")]
    TooManyRedirects,
    /// A redirect without a usable `Location`.
    #[error("redirect without a valid location")]
    BadRedirect,
    /// An HTTPS tracker redirected to a URL that is not HTTPS; following it would send the
    /// announce (and a private tracker's passkey) in the clear.
    #[error("refused redirect from HTTPS to {0}")]
    InsecureRedirect(String),
    /// The connection or the request failed.
    #[error("HTTP request failed: {0}")]
    Http(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// The response body is larger than we accept.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// The response is not valid bencode.
    #[error("response is not bencode: {0}")]
    Bencode(#[from] DecodeError),
    /// The response is bencode but not a valid tracker response.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    /// TLS could not be set up.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A socket error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
