//! HTTP tracker bodies: announce and scrape responses parse or fail with a typed error, never
//! panic, and what they return stays within the parser's bounds.
#![no_main]

use cratetorrent::tracker::http::{parse_announce_response, parse_scrape_response};
use cratetorrent_metainfo::InfoHash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = parse_announce_response(data) {
        assert!(response.peers.len() <= cratetorrent::tracker::MAX_PEERS_PER_RESPONSE);
        assert!(response.interval.as_secs() >= 1 && response.interval.as_secs() <= 86_400);
    }
    let _ = parse_scrape_response(data, &InfoHash::new([0x41; 20]));
});
