//! Strict bencode: every rejection rule with its offset, spans, and property tests.

// Test helpers outside #[test] functions may unwrap: a failure is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::type_complexity
)]

use std::collections::BTreeMap;

use cratetorrent_metainfo::bencode::{
    self, DecodeErrorKind as K, DecodeOptions, DictBuilder, Encode, Kind, OwnedValue, Value,
};
use proptest::prelude::*;

#[test]
fn rejections_carry_kind_and_offset() {
    let cases: &[(&[u8], K, usize)] = &[
        (b"", K::UnexpectedEof, 0),
        (b"i12", K::UnexpectedEof, 3),
        (b"l1:a", K::UnexpectedEof, 4),
        (b"d1:a", K::UnexpectedEof, 4),
        (b"5:abc", K::StringPastEnd(5), 0),
        (b"i1ei2e", K::TrailingBytes, 3),
        (b"i03e", K::LeadingZero, 1),
        (b"i-03e", K::LeadingZero, 2),
        (b"03:abc", K::LeadingZero, 0),
        (b"i-0e", K::NegativeZero, 0),
        (b"ie", K::EmptyInteger, 0),
        (b"i-e", K::EmptyInteger, 0),
        (b"i1.5e", K::UnexpectedByte(b'.'), 2),
        (b"i+1e", K::UnexpectedByte(b'+'), 1),
        (b"i9223372036854775808e", K::IntegerOverflow, 0),
        (b"i-9223372036854775809e", K::IntegerOverflow, 0),
        (b"l99999999999999999999999:e", K::StringPastEnd(u64::MAX), 1),
        (b"di1e1:ae", K::NonStringKey, 1),
        (b"dle", K::NonStringKey, 1),
        (b"d1:ai1e1:ai2ee", K::DuplicateKey, 7),
        (b"d1:bi1e1:ai2e1:bi3ee", K::DuplicateKey, 13),
        (b"x", K::UnexpectedByte(b'x'), 0),
        (b"e", K::UnexpectedByte(b'e'), 0),
        (b"l-e", K::UnexpectedByte(b'-'), 1),
        (b"1-:a", K::UnexpectedByte(b'-'), 1),
    ];
    for (input, kind, offset) in cases {
        let error = bencode::decode(input).unwrap_err();
        assert_eq!(
            (error.kind, error.offset),
            (*kind, *offset),
            "{}",
            input.escape_ascii()
        );
    }
}

#[test]
fn accepts_extremes_and_unsorted_keys() {
    let value = bencode::decode(b"li9223372036854775807ei-9223372036854775808ei0e0:e").unwrap();
    let items: Vec<Kind<'_>> = value.as_list().unwrap().iter().map(|v| v.kind()).collect();
    assert_eq!(
        items,
        [
            Kind::Int(i64::MAX),
            Kind::Int(i64::MIN),
            Kind::Int(0),
            Kind::Bytes(b"")
        ]
    );

    // Unsorted keys decode in input order and re-encode sorted.
    let value = bencode::decode(b"d1:bi1e1:ai2ee").unwrap();
    let keys: Vec<&[u8]> = value.as_dict().unwrap().iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [b"b", b"a"]);
    assert_eq!(value.to_bencode(), b"d1:ai2e1:bi1ee");
    assert_eq!(value.raw(), b"d1:bi1e1:ai2ee");
}

#[test]
fn depth_limit_stops_hostile_nesting_without_recursion() {
    let nested = |depth: usize| [vec![b'l'; depth], vec![b'e'; depth]].concat();
    assert!(bencode::decode(&nested(256)).is_ok());
    let error = bencode::decode(&nested(257)).unwrap_err();
    assert_eq!((error.kind, error.offset), (K::TooDeep(256), 256));
    let error = bencode::decode(&nested(1_000_000)).unwrap_err();
    assert_eq!(error.kind, K::TooDeep(256));
    let options = DecodeOptions { max_depth: 2 };
    assert_eq!(
        bencode::decode_with(b"lldeee", &options).unwrap_err().kind,
        K::TooDeep(2)
    );
}

#[test]
fn spans_are_exact() {
    let input = b"d4:infod4:name1:ae5:otherli1eee";
    let root = bencode::decode(input).unwrap();
    let dict = root.as_dict().unwrap();
    let info = dict.get(b"info").unwrap();
    assert_eq!(info.span(), 7..18);
    assert_eq!(info.raw(), b"d4:name1:ae");
    let list = dict.get(b"other").unwrap();
    assert_eq!(list.raw(), b"li1ee");
    assert_eq!(
        list.as_list().unwrap().iter().next().unwrap().span(),
        26..29
    );
    assert_eq!(root.span(), 0..input.len());
}

#[test]
fn prefix_decoding_reports_where_the_value_ends() {
    let (value, end) = bencode::decode_prefix(b"d8:msg_typei1eeRAW PIECE DATA").unwrap();
    assert_eq!(end, 15);
    assert_eq!(
        value
            .as_dict()
            .unwrap()
            .get(b"msg_type")
            .and_then(|v| v.as_int()),
        Some(1)
    );
}

#[test]
fn dict_builder_sorts_and_replaces() {
    let mut dict = DictBuilder::new();
    dict.insert("zeta", 1i64)
        .insert("alpha", "x")
        .insert("zeta", 2i64);
    let mut outer = DictBuilder::new();
    outer.insert("b", vec!["x", "y"]).insert("a", dict);
    assert_eq!(outer.to_bencode(), b"d1:ad5:alpha1:x4:zetai2ee1:bl1:x1:yee");
}

fn owned_value() -> impl Strategy<Value = OwnedValue> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(OwnedValue::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(OwnedValue::Bytes),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(OwnedValue::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..8),
                inner,
                0..8
            )
            .prop_map(OwnedValue::Dict),
        ]
    })
}

/// Every nested value's raw bytes are its own canonical encoding (input is canonical here).
fn assert_spans(input: &[u8], value: Value<'_>) {
    assert_eq!(&input[value.span()], value.raw());
    assert_eq!(value.to_bencode(), value.raw());
    match value.kind() {
        Kind::List(list) => list.iter().for_each(|v| assert_spans(input, v)),
        Kind::Dict(dict) => dict.iter().for_each(|(_, v)| assert_spans(input, v)),
        _ => {}
    }
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips(value in owned_value()) {
        let encoded = value.to_bencode();
        let decoded = bencode::decode(&encoded).unwrap();
        prop_assert_eq!(decoded.to_owned_value(), value);
        assert_spans(&encoded, decoded);
    }

    #[test]
    fn shuffled_keys_decode_and_canonicalise(entries in proptest::collection::btree_map(
        proptest::collection::vec(any::<u8>(), 0..6), any::<i64>(), 1..10), seed in any::<u64>()) {
        let mut pairs: Vec<_> = entries.iter().collect();
        let len = pairs.len();
        pairs.rotate_left((seed as usize) % len);
        let mut raw = b"d".to_vec();
        for (key, value) in &pairs {
            key.as_slice().encode(&mut raw);
            value.encode(&mut raw);
        }
        raw.push(b'e');
        let decoded = bencode::decode(&raw).unwrap();
        prop_assert_eq!(decoded.to_bencode(), entries.to_bencode());
        let expected: BTreeMap<Vec<u8>, OwnedValue> = entries.into_iter().map(|(k, v)| (k, OwnedValue::Int(v))).collect();
        prop_assert_eq!(decoded.to_owned_value(), OwnedValue::Dict(expected));
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        match bencode::decode(&input) {
            Ok(value) => prop_assert_eq!(value.span(), 0..input.len()),
            Err(error) => prop_assert!(error.offset <= input.len()),
        }
    }

    #[test]
    fn truncating_valid_input_is_always_an_error(value in owned_value(), cut in any::<prop::sample::Index>()) {
        let encoded = value.to_bencode();
        let cut = cut.index(encoded.len());
        prop_assert!(bencode::decode(&encoded[..cut]).is_err());
    }
}
