//! cratetorrent: a BitTorrent engine.
//!
//! **Not implemented yet** (issues 5 and 6). This crate will compose the wire, metainfo and storage
//! crates into an engine run on its own tokio-uring runtime: `engine::spawn(conf)` returning a
//! handle and a stream of alerts, peers, piece picking, choking and trackers.
