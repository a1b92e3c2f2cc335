//! Decoding arbitrary bytes never panics; whatever decodes re-encodes canonically to something
//! that decodes to the same tree, and every span points at its own value.
#![no_main]

use cratetorrent_metainfo::bencode::{self, Encode, Kind, Value};
use libfuzzer_sys::fuzz_target;

fn check_spans(input: &[u8], value: Value<'_>) {
    assert_eq!(&input[value.span()], value.raw());
    match value.kind() {
        Kind::List(list) => list.iter().for_each(|v| check_spans(input, v)),
        Kind::Dict(dict) => dict.iter().for_each(|(_, v)| check_spans(input, v)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = bencode::decode(data) {
        check_spans(data, value);
        let canonical = value.to_bencode();
        let again = bencode::decode(&canonical).expect("canonical output decodes");
        assert_eq!(again.to_owned_value(), value.to_owned_value());
        assert_eq!(again.to_bencode(), canonical);
    }
    let _ = bencode::decode_prefix(data);
});
