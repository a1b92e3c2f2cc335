//! BEP 14 local service discovery datagrams: any bytes parse or fail with a typed error, an
//! announce re-encodes to the same announce, and the discovery state takes them without panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cratetorrent::fuzzing::lsd_announce(data);
});
