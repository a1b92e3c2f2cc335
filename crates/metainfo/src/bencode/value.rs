//! Borrowed views into validated bencode.

use std::fmt;
use std::ops::Range;

use super::owned::OwnedValue;

/// A bencoded value borrowed from validated input, with its exact byte span.
///
/// Obtained from [`decode`](super::decode). Reading it never fails and never allocates: the input was
/// fully checked when it was decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    input: &'a [u8],
    start: usize,
    end: usize,
}

/// What a [`Value`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// An integer (`i42e`).
    Int(i64),
    /// A byte string (`4:spam`).
    Bytes(&'a [u8]),
    /// A list (`l...e`).
    List(List<'a>),
    /// A dictionary (`d...e`).
    Dict(Dict<'a>),
}

impl<'a> Value<'a> {
    pub(crate) fn new(input: &'a [u8], start: usize, end: usize) -> Self {
        Self { input, start, end }
    }

    /// What this value holds.
    pub fn kind(&self) -> Kind<'a> {
        match self.input[self.start] {
            b'i' => Kind::Int(parse_int(&self.input[self.start + 1..self.end - 1])),
            b'l' => Kind::List(List {
                input: self.input,
                start: self.start,
                end: self.end,
            }),
            b'd' => Kind::Dict(Dict {
                input: self.input,
                start: self.start,
                end: self.end,
            }),
            _ => Kind::Bytes(string_contents(self.input, self.start, self.end)),
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.kind() {
            Kind::Int(value) => Some(value),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.input[self.start] {
            b'0'..=b'9' => Some(string_contents(self.input, self.start, self.end)),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if this is a string and valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<List<'a>> {
        match self.kind() {
            Kind::List(list) => Some(list),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<Dict<'a>> {
        match self.kind() {
            Kind::Dict(dict) => Some(dict),
            _ => None,
        }
    }

    /// The string's bytes as text, invalid UTF-8 replaced (old torrents use other encodings).
    pub(crate) fn to_string_lossy(self) -> Option<String> {
        self.as_bytes()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
    }

    /// The exact encoded bytes of this value, as they appear in the input.
    pub fn raw(&self) -> &'a [u8] {
        &self.input[self.start..self.end]
    }

    /// Where [`raw`](Self::raw) lies in the decoded input.
    pub fn span(&self) -> Range<usize> {
        self.start..self.end
    }

    /// Copies the value into an owned tree.
    pub fn to_owned_value(&self) -> OwnedValue {
        match self.kind() {
            Kind::Int(value) => OwnedValue::Int(value),
            Kind::Bytes(bytes) => OwnedValue::Bytes(bytes.to_vec()),
            Kind::List(list) => OwnedValue::List(list.iter().map(|v| v.to_owned_value()).collect()),
            Kind::Dict(dict) => OwnedValue::Dict(
                dict.iter()
                    .map(|(k, v)| (k.to_vec(), v.to_owned_value()))
                    .collect(),
            ),
        }
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            Kind::Int(value) => write!(f, "{value}"),
            Kind::Bytes(bytes) => write!(f, "b\"{}\"", bytes.escape_ascii()),
            Kind::List(list) => f.debug_list().entries(list.iter()).finish(),
            Kind::Dict(dict) => f
                .debug_map()
                .entries(dict.iter().map(|(k, v)| (BytesDebug(k), v)))
                .finish(),
        }
    }
}

struct BytesDebug<'a>(&'a [u8]);

impl fmt::Debug for BytesDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// A borrowed bencoded list.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct List<'a> {
    input: &'a [u8],
    start: usize,
    end: usize,
}

impl<'a> List<'a> {
    /// The elements, in order.
    pub fn iter(&self) -> ListIter<'a> {
        ListIter {
            input: self.input,
            pos: self.start + 1,
        }
    }

    /// Whether the list has no elements.
    pub fn is_empty(&self) -> bool {
        self.end - self.start == 2
    }

    /// The number of elements (walks the list).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The list as a value, with its span.
    pub fn as_value(&self) -> Value<'a> {
        Value::new(self.input, self.start, self.end)
    }
}

impl fmt::Debug for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_value().fmt(f)
    }
}

impl<'a> IntoIterator for List<'a> {
    type Item = Value<'a>;
    type IntoIter = ListIter<'a>;
    fn into_iter(self) -> ListIter<'a> {
        self.iter()
    }
}

/// Iterator over the elements of a [`List`].
#[derive(Debug, Clone)]
pub struct ListIter<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for ListIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        if self.input[self.pos] == b'e' {
            return None;
        }
        let end = value_end(self.input, self.pos);
        let value = Value::new(self.input, self.pos, end);
        self.pos = end;
        Some(value)
    }
}

/// A borrowed bencoded dictionary. Keys keep the order they have in the input.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dict<'a> {
    input: &'a [u8],
    start: usize,
    end: usize,
}

impl<'a> Dict<'a> {
    /// The entries, in input order.
    pub fn iter(&self) -> DictIter<'a> {
        DictIter {
            input: self.input,
            pos: self.start + 1,
        }
    }

    /// The value under `key` (a linear scan: dictionaries in torrents are small, except
    /// for lists of files which are never looked up by key).
    pub fn get(&self, key: &[u8]) -> Option<Value<'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Whether the dictionary has no entries.
    pub fn is_empty(&self) -> bool {
        self.end - self.start == 2
    }

    /// The number of entries (walks the dictionary).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The dictionary as a value, with its span.
    pub fn as_value(&self) -> Value<'a> {
        Value::new(self.input, self.start, self.end)
    }
}

impl fmt::Debug for Dict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_value().fmt(f)
    }
}

impl<'a> IntoIterator for Dict<'a> {
    type Item = (&'a [u8], Value<'a>);
    type IntoIter = DictIter<'a>;
    fn into_iter(self) -> DictIter<'a> {
        self.iter()
    }
}

/// Iterator over the entries of a [`Dict`].
#[derive(Debug, Clone)]
pub struct DictIter<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for DictIter<'a> {
    type Item = (&'a [u8], Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.input[self.pos] == b'e' {
            return None;
        }
        let key_end = value_end(self.input, self.pos);
        let key = string_contents(self.input, self.pos, key_end);
        let end = value_end(self.input, key_end);
        let value = Value::new(self.input, key_end, end);
        self.pos = end;
        Some((key, value))
    }
}

/// The offset just past the value starting at `pos` in validated input.
pub(crate) fn value_end(input: &[u8], mut pos: usize) -> usize {
    let mut depth = 0usize;
    loop {
        match input[pos] {
            b'i' => {
                let offset = input[pos..].iter().position(|&b| b == b'e').unwrap_or(0);
                pos += offset + 1;
            }
            b'l' | b'd' => {
                depth += 1;
                pos += 1;
                continue;
            }
            b'e' => {
                depth -= 1;
                pos += 1;
            }
            _ => {
                let (len, colon) = string_header(input, pos);
                pos = colon + 1 + len;
            }
        }
        if depth == 0 {
            return pos;
        }
    }
}

/// Length and colon offset of the validated string starting at `pos`.
fn string_header(input: &[u8], pos: usize) -> (usize, usize) {
    let mut len = 0usize;
    let mut at = pos;
    while input[at] != b':' {
        len = len * 10 + usize::from(input[at] - b'0');
        at += 1;
    }
    (len, at)
}

pub(crate) fn string_contents(input: &[u8], start: usize, end: usize) -> &[u8] {
    let (_, colon) = string_header(input, start);
    &input[colon + 1..end]
}

/// Parses validated integer digits (with optional leading minus).
fn parse_int(digits: &[u8]) -> i64 {
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    digits.iter().fold(0i64, |acc, &d| {
        let digit = i64::from(d - b'0');
        if negative {
            acc * 10 - digit
        } else {
            acc * 10 + digit
        }
    })
}
