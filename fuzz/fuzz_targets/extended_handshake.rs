//! BEP 10 extended handshakes: any payload decodes or fails with a typed error; a decoded
//! handshake re-encodes to one that decodes to the same value.
#![no_main]

use cratetorrent_wire::ExtendedHandshake;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(handshake) = ExtendedHandshake::decode(data) {
        let encoded = handshake.encode();
        assert_eq!(ExtendedHandshake::decode(&encoded).ok(), Some(handshake));
    }
});
