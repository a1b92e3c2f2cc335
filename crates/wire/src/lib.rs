//! The BitTorrent peer wire protocol as a sans-IO codec.
//!
//! **Not implemented yet** (issue 3). This crate will hold the 68-byte handshake with typed
//! extension bits, every BEP 3 message, the BEP 6 fast extension, the BEP 10 extended envelope,
//! an incremental decoder with strict length limits and zero-copy block payloads, and an encoder
//! that lets a block be sent as a header plus a disk buffer in one vectored write.
