//! An owned bencode tree, for building and comparing values.

use std::collections::BTreeMap;

/// An owned bencoded value. Dictionaries are sorted maps, so encoding one is always canonical.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnedValue {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<OwnedValue>),
    /// A dictionary with byte-string keys.
    Dict(BTreeMap<Vec<u8>, OwnedValue>),
}

impl From<i64> for OwnedValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<&[u8]> for OwnedValue {
    fn from(value: &[u8]) -> Self {
        Self::Bytes(value.to_vec())
    }
}

impl From<&str> for OwnedValue {
    fn from(value: &str) -> Self {
        Self::Bytes(value.as_bytes().to_vec())
    }
}

impl From<String> for OwnedValue {
    fn from(value: String) -> Self {
        Self::Bytes(value.into_bytes())
    }
}

impl From<Vec<OwnedValue>> for OwnedValue {
    fn from(value: Vec<OwnedValue>) -> Self {
        Self::List(value)
    }
}

impl From<BTreeMap<Vec<u8>, OwnedValue>> for OwnedValue {
    fn from(value: BTreeMap<Vec<u8>, OwnedValue>) -> Self {
        Self::Dict(value)
    }
}
