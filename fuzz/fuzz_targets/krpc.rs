//! BEP 5 KRPC datagrams: any bytes decode or fail with a typed error, and a decoded message
//! re-encodes to one that decodes to the same message.
#![no_main]

use cratetorrent_dht::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        let again = Message::decode(&message.encode()).expect("our encoding decodes");
        assert_eq!(again, message);
    }
});
