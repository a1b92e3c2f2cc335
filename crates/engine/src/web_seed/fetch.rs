//! Fetching one stretch of a torrent from a web seed: a range request for each file the
//! stretch touches (zeros for padding), redirects followed, every answer checked to be exactly
//! the range asked for, and bounded waits for the answer and between body bytes. The body is
//! handed on as it arrives, never gathered whole.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_RANGE, HeaderMap, LOCATION, RANGE, USER_AGENT};
use hyper::{Request, StatusCode, Uri};

use super::url::{FileRange, Segment};
use crate::https::{AGENT, HttpsClient, RedirectError, error_chain, redirect_target};

/// Padding is handed on in slices of this.
static ZEROS: [u8; 16 * 1024] = [0; 16 * 1024];

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("invalid URL {0}")]
    InvalidUrl(String),
    #[error("HTTP request failed: {0}")]
    Http(String),
    #[error("no answer in time")]
    Timeout,
    /// 404 or 410 for one of the torrent's files.
    #[error("file {file} is not on the server (HTTP {status})")]
    Missing { file: usize, status: u16 },
    /// 429 or 503: worth asking again later.
    #[error("server busy (HTTP {0})")]
    Busy(u16),
    #[error("HTTP status {0}")]
    Status(u16),
    /// A whole file (200) where a range past its start was asked for.
    #[error("server does not serve byte ranges")]
    NoRanges,
    /// The server's copy of the file is not the torrent's: a range answered with another
    /// range (416, or a 206 for other bytes), typically a file of another length.
    #[error("the server's file {file} is not the torrent's (answered {got:?})")]
    Mismatch { file: usize, got: String },
    #[error("body ended before the range did")]
    Short,
    #[error("body longer than the range")]
    Long,
    #[error("too many redirects")]
    TooManyRedirects,
    #[error(transparent)]
    Redirect(#[from] RedirectError),
}

impl FetchError {
    /// Whether asking the same server again later cannot help.
    pub(crate) fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::InvalidUrl(_) | Self::NoRanges | Self::Redirect(RedirectError::Insecure(_))
        )
    }
}

/// How fetches behave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchConf {
    /// The longest wait for an answer, and between two parts of a body.
    pub(crate) timeout: Duration,
    pub(crate) max_redirects: u32,
}

/// A response body being read: `left` bytes of it still wanted.
struct Body {
    incoming: Incoming,
    left: u64,
    /// A 206 answer, read to its end (so the connection is reused); a whole file's body is
    /// dropped once the range is read.
    partial: bool,
}

/// One stretch being fetched.
pub(crate) struct Fetcher<'c> {
    client: &'c HttpsClient,
    conf: FetchConf,
    segments: VecDeque<Segment>,
    body: Option<Body>,
    zeros: u64,
}

impl<'c> Fetcher<'c> {
    pub(crate) fn new(client: &'c HttpsClient, segments: Vec<Segment>, conf: FetchConf) -> Self {
        Self {
            client,
            conf,
            segments: segments.into(),
            body: None,
            zeros: 0,
        }
    }

    /// The next bytes of the stretch, in order; `None` once it is all here.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, FetchError> {
        loop {
            if self.zeros > 0 {
                let n = self.zeros.min(ZEROS.len() as u64);
                self.zeros -= n;
                return Ok(Some(Bytes::from_static(&ZEROS[..n as usize])));
            }
            if let Some(body) = &mut self.body {
                if let Some(data) = read(body, self.conf.timeout).await? {
                    return Ok(Some(data));
                }
                self.body = None;
                continue;
            }
            match self.segments.pop_front() {
                None => return Ok(None),
                Some(Segment::Zeros(n)) => self.zeros = n,
                Some(Segment::File(range)) => self.body = Some(self.open(&range).await?),
            }
        }
    }

    /// Asks for `range`, following redirects.
    async fn open(&self, range: &FileRange) -> Result<Body, FetchError> {
        let mut uri: Uri = range
            .url
            .parse()
            .map_err(|_| FetchError::InvalidUrl(range.url.clone()))?;
        let last = range.start + range.len - 1;
        for _ in 0..=self.conf.max_redirects {
            if !matches!(uri.scheme_str(), Some("http" | "https")) {
                return Err(FetchError::InvalidUrl(uri.to_string()));
            }
            let request = Request::get(uri.clone())
                .header(USER_AGENT, AGENT)
                .header(RANGE, format!("bytes={}-{last}", range.start))
                .body(Empty::new())
                .map_err(|_| FetchError::InvalidUrl(uri.to_string()))?;
            let response = tokio::time::timeout(self.conf.timeout, self.client.request(request))
                .await
                .map_err(|_| FetchError::Timeout)?
                .map_err(|e| FetchError::Http(error_chain(&e)))?;
            let status = response.status();
            match status {
                StatusCode::PARTIAL_CONTENT => {
                    check_range(response.headers(), range)?;
                    return Ok(Body {
                        incoming: response.into_body(),
                        left: range.len,
                        partial: true,
                    });
                }
                // A server that ignores `Range` sends the whole file: usable from its start.
                StatusCode::OK if range.start == 0 => {
                    return Ok(Body {
                        incoming: response.into_body(),
                        left: range.len,
                        partial: false,
                    });
                }
                StatusCode::OK => return Err(FetchError::NoRanges),
                StatusCode::RANGE_NOT_SATISFIABLE => {
                    return Err(FetchError::Mismatch {
                        file: range.file_index,
                        got: "416".into(),
                    });
                }
                StatusCode::NOT_FOUND | StatusCode::GONE => {
                    return Err(FetchError::Missing {
                        file: range.file_index,
                        status: status.as_u16(),
                    });
                }
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                    return Err(FetchError::Busy(status.as_u16()));
                }
                _ if status.is_redirection() => {
                    uri = redirect_target(&uri, response.headers().get(LOCATION))?;
                }
                _ => return Err(FetchError::Status(status.as_u16())),
            }
        }
        Err(FetchError::TooManyRedirects)
    }
}

/// The next part of `body` within what is wanted; `None` at its end.
async fn read(body: &mut Body, timeout: Duration) -> Result<Option<Bytes>, FetchError> {
    loop {
        if body.left == 0 && !body.partial {
            return Ok(None);
        }
        let frame = tokio::time::timeout(timeout, body.incoming.frame())
            .await
            .map_err(|_| FetchError::Timeout)?;
        let Some(frame) = frame else {
            return if body.left == 0 {
                Ok(None)
            } else {
                Err(FetchError::Short)
            };
        };
        let frame = frame.map_err(|e| FetchError::Http(error_chain(&e)))?;
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let len = data.len() as u64;
        if len > body.left {
            if body.partial {
                return Err(FetchError::Long);
            }
            data.truncate(body.left as usize);
        }
        body.left -= (data.len() as u64).min(body.left);
        return Ok(Some(data));
    }
}

/// A 206 answer must be for exactly the bytes asked for.
fn check_range(headers: &HeaderMap, range: &FileRange) -> Result<(), FetchError> {
    let last = range.start + range.len - 1;
    let content_range = headers
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let wrong = || FetchError::Mismatch {
        file: range.file_index,
        got: content_range.chars().take(64).collect(),
    };
    let span = content_range
        .strip_prefix("bytes ")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(span, _total)| span.split_once('-'))
        .and_then(|(first, end)| Some((first.parse::<u64>().ok()?, end.parse::<u64>().ok()?)));
    if span != Some((range.start, last)) {
        return Err(wrong());
    }
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(str::parse::<u64>);
    match length {
        None => Ok(()),
        Some(Ok(length)) if length == range.len => Ok(()),
        Some(_) => Err(wrong()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hyper::header::HeaderValue;

    fn range(start: u64, len: u64) -> FileRange {
        FileRange {
            url: "http://h/f".into(),
            file_index: 0,
            start,
            len,
        }
    }

    fn headers(content_range: &'static str, length: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_RANGE, HeaderValue::from_static(content_range));
        if let Some(length) = length {
            headers.insert(CONTENT_LENGTH, HeaderValue::from_static(length));
        }
        headers
    }

    #[test]
    fn a_partial_answer_must_be_the_range_asked_for() {
        let asked = range(100, 50);
        assert_eq!(
            check_range(&headers("bytes 100-149/1000", Some("50")), &asked),
            Ok(())
        );
        assert_eq!(
            check_range(&headers("bytes 100-149/*", None), &asked),
            Ok(())
        );
        for wrong in [
            headers("bytes 0-49/1000", None),
            headers("bytes 100-150/1000", None),
            headers("bytes 100-149/1000", Some("51")),
            headers("items 100-149/1000", None),
            headers("bytes 100-1x9/1000", None),
            HeaderMap::new(),
        ] {
            assert!(
                matches!(
                    check_range(&wrong, &asked),
                    Err(FetchError::Mismatch { file: 0, .. })
                ),
                "{wrong:?}"
            );
        }
    }
}
