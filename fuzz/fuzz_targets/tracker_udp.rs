//! UDP tracker packets (BEP 15): any datagram, for either address family, parses or fails with a
//! typed error and never panics.
#![no_main]

use cratetorrent::tracker::udp::parse_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A matching transaction id is the packet's own (bytes 4..8), so the body parsers are reached.
    let transaction = data
        .get(4..8)
        .map_or(0, |id| u32::from_be_bytes([id[0], id[1], id[2], id[3]]));
    let _ = parse_response(data, transaction, false);
    let _ = parse_response(data, transaction, true);
    let _ = parse_response(data, transaction ^ 1, false);
});
