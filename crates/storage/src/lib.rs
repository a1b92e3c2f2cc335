//! The disk layer of cratetorrent.
//!
//! **Not implemented yet** (issue 4). This crate will map torrents onto files, write received blocks
//! with vectored io_uring writes across file boundaries, hash pieces off the network thread without
//! reading them back, serve reads for seeding through a bounded cache, and keep fast-resume data.
