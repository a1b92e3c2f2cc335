//! BEP 19 web seeds: HTTP(S) servers that hold a torrent's files.

// The HTTP client that uses the mapping lands in the next step.
#[cfg_attr(not(test), allow(dead_code))]
mod url;
