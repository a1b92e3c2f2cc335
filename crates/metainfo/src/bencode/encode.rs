//! Canonical bencode output: dictionary keys are always written in sorted order.

use std::collections::BTreeMap;

use super::owned::OwnedValue;
use super::value::{Kind, Value};

/// A type that can be written as bencode.
pub trait Encode {
    /// Appends the canonical encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// The canonical encoding of `self` in a new buffer.
    fn to_bencode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Appends the decimal digits of `value` without going through `fmt`.
fn push_decimal(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Writes the string `bytes` as `<len>:<bytes>`.
pub fn encode_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_decimal(out, bytes.len() as u64);
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Writes `value` as `i<value>e`.
pub fn encode_int(out: &mut Vec<u8>, value: i64) {
    out.push(b'i');
    if value < 0 {
        out.push(b'-');
    }
    push_decimal(out, value.unsigned_abs());
    out.push(b'e');
}

/// Writes a dictionary from its entries, sorting them by key bytes first.
fn encode_sorted<V: Encode>(out: &mut Vec<u8>, mut entries: Vec<(&[u8], V)>) {
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push(b'd');
    for (key, value) in entries {
        encode_bytes(out, key);
        value.encode(out);
    }
    out.push(b'e');
}

impl Encode for i64 {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_int(out, *self);
    }
}

impl Encode for u32 {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_int(out, i64::from(*self));
    }
}

impl Encode for [u8] {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_bytes(out, self);
    }
}

impl Encode for str {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_bytes(out, self.as_bytes());
    }
}

impl Encode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_bytes(out, self.as_bytes());
    }
}

impl<T: Encode + ?Sized> Encode for &T {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
}

impl<T: Encode> Encode for [T] {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(b'l');
        for item in self {
            item.encode(out);
        }
        out.push(b'e');
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_slice().encode(out);
    }
}

impl<K: AsRef<[u8]>, V: Encode> Encode for BTreeMap<K, V> {
    fn encode(&self, out: &mut Vec<u8>) {
        // A BTreeMap orders keys by `K: Ord`, which need not be byte order, so sort by bytes.
        encode_sorted(out, self.iter().map(|(k, v)| (k.as_ref(), v)).collect());
    }
}

impl Encode for OwnedValue {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            OwnedValue::Int(value) => encode_int(out, *value),
            OwnedValue::Bytes(bytes) => encode_bytes(out, bytes),
            OwnedValue::List(items) => items.encode(out),
            OwnedValue::Dict(map) => {
                out.push(b'd');
                for (key, value) in map {
                    encode_bytes(out, key);
                    value.encode(out);
                }
                out.push(b'e');
            }
        }
    }
}

/// Re-encodes a decoded value canonically: dictionaries with unsorted keys come out sorted.
/// Use [`Value::raw`] instead to keep the exact original bytes.
impl Encode for Value<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self.kind() {
            Kind::Int(value) => encode_int(out, value),
            Kind::Bytes(bytes) => encode_bytes(out, bytes),
            Kind::List(list) => {
                out.push(b'l');
                for item in list {
                    item.encode(out);
                }
                out.push(b'e');
            }
            Kind::Dict(dict) => encode_sorted(out, dict.iter().collect()),
        }
    }
}

/// Bytes that are already bencoded and are written verbatim, such as the exact `info` dictionary
/// of a torrent whose info-hash must not change.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a>(pub &'a [u8]);

impl Encode for Raw<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0);
    }
}

/// Builds a dictionary entry by entry and writes it with sorted keys.
///
/// ```
/// use cratetorrent_metainfo::bencode::{DictBuilder, Encode};
///
/// let mut dict = DictBuilder::new();
/// dict.insert("name", "a.txt").insert("length", &5i64);
/// assert_eq!(dict.to_bencode(), b"d6:lengthi5e4:name5:a.txte");
/// ```
#[derive(Debug, Clone, Default)]
pub struct DictBuilder {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl DictBuilder {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, replacing an earlier value under the same key.
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl Encode) -> &mut Self {
        let key = key.as_ref();
        let encoded = value.to_bencode();
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = encoded,
            None => self.entries.push((key.to_vec(), encoded)),
        }
        self
    }

    /// Whether no entry was inserted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Encode for DictBuilder {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut order: Vec<&(Vec<u8>, Vec<u8>)> = self.entries.iter().collect();
        order.sort_by(|a, b| a.0.cmp(&b.0));
        out.push(b'd');
        for (key, value) in order {
            encode_bytes(out, key);
            out.extend_from_slice(value);
        }
        out.push(b'e');
    }
}
