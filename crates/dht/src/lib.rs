//! A sans-IO BitTorrent DHT node (BEP 5, BEP 32 IPv6, BEP 42 secure ids, BEP 43 read-only):
//! datagrams and time in, datagrams and events out. Work in progress: the KRPC codec.
//!
//! ```
//! use cratetorrent_dht::{Message, NodeId, Query, QueryMessage};
//!
//! let ping = Message::Query(QueryMessage::new(b"aa".to_vec(), NodeId([1; 20]), Query::Ping));
//! assert_eq!(Message::decode(&ping.encode())?, ping);
//! # Ok::<(), cratetorrent_dht::KrpcError>(())
//! ```

mod krpc;

pub use krpc::{
    CompactNode, ErrorMessage, KrpcError, Message, NodeId, Query, QueryMessage, Response, Want,
};
