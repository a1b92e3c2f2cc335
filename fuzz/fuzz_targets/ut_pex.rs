//! BEP 11 `ut_pex` messages: any payload decodes or fails with a typed error; a decoded message
//! re-encodes to one that decodes to the same peers (IPv4 entries before IPv6 ones).
#![no_main]

use cratetorrent_wire::PexMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = PexMessage::decode(data) {
        let again = PexMessage::decode(&message.encode()).expect("our encoding decodes");
        assert_eq!(again.added.len(), message.added.len());
        assert_eq!(again.dropped.len(), message.dropped.len());
        for entry in &message.added {
            assert!(again.added.contains(entry));
        }
    }
});
