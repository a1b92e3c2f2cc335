//! Parsing arbitrary text as a magnet link never panics, and what parses prints and re-parses to itself.
#![no_main]

use cratetorrent_metainfo::Magnet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(magnet) = Magnet::parse(text) {
            let printed = magnet.to_string();
            assert_eq!(Magnet::parse(&printed).expect("printed magnet parses"), magnet);
        }
    }
});
