//! Strict, zero-copy bencode.
//!
//! [`decode`] validates the whole input in one iterative pass (no recursion, so hostile nesting
//! cannot overflow the stack) and returns a [`Value`] that borrows it. Every value knows its exact
//! byte span, which is what an info-hash is computed over. The decoder rejects, with the offset of
//! the offending byte: truncation, trailing bytes, leading zeros, `-0`, `i-e`, integers outside
//! `i64`, non-string keys, string lengths past the input, duplicate keys and nesting beyond
//! [`DecodeOptions::max_depth`]. Keys out of order are accepted, because real torrents have them.
//!
//! The encoder ([`Encode`], [`DictBuilder`], [`OwnedValue`]) always writes canonical bencode,
//! dictionary keys sorted by their raw bytes.
//!
//! ```
//! use cratetorrent_metainfo::bencode::{self, DecodeErrorKind, Encode};
//!
//! let value = bencode::decode(b"d3:cow3:moo4:spaml1:a1:bee")?;
//! let dict = value.as_dict().unwrap();
//! assert_eq!(dict.get(b"cow").and_then(|v| v.as_str()), Some("moo"));
//! assert_eq!(dict.get(b"spam").unwrap().span(), 17..25);
//! assert_eq!(value.to_bencode(), b"d3:cow3:moo4:spaml1:a1:bee");
//!
//! let error = bencode::decode(b"i03e").unwrap_err();
//! assert_eq!((error.kind, error.offset), (DecodeErrorKind::LeadingZero, 1));
//! # Ok::<(), bencode::DecodeError>(())
//! ```

mod decode;
mod encode;
mod error;
mod owned;
mod value;

pub use decode::{DecodeOptions, decode, decode_prefix, decode_prefix_with, decode_with};
pub use encode::{DictBuilder, Encode, Raw, encode_bytes, encode_int};
pub use error::{DecodeError, DecodeErrorKind};
pub use owned::OwnedValue;
pub use value::{Dict, DictIter, Kind, List, ListIter, Value};
pub(crate) use value::{string_contents, value_end};
