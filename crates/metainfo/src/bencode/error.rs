use thiserror::Error;

/// Why a byte string is not valid strict bencode, and where.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind} at byte {offset}")]
pub struct DecodeError {
    /// What is wrong.
    pub kind: DecodeErrorKind,
    /// Offset in the input of the byte where the problem was found.
    pub offset: usize,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }
}

/// The rule of strict bencode that the input breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ended inside a value.
    #[error("unexpected end of input")]
    UnexpectedEof,
    /// A complete value was followed by more bytes.
    #[error("trailing bytes after the value")]
    TrailingBytes,
    /// A byte that cannot start or continue a value here.
    #[error("unexpected byte 0x{0:02x}")]
    UnexpectedByte(u8),
    /// An integer or string length written with a leading zero, such as `i03e` or `01:a`.
    #[error("number with a leading zero")]
    LeadingZero,
    /// The integer `i-0e`, which has no canonical meaning.
    #[error("negative zero")]
    NegativeZero,
    /// An integer without digits, such as `ie` or `i-e`.
    #[error("integer without digits")]
    EmptyInteger,
    /// An integer outside the range of `i64`.
    #[error("integer does not fit in 64 bits")]
    IntegerOverflow,
    /// A string length that does not fit in memory or in the input.
    #[error("string length {0} runs past the end of the input")]
    StringPastEnd(u64),
    /// A dictionary key that is not a byte string.
    #[error("dictionary key is not a string")]
    NonStringKey,
    /// The same key twice in one dictionary.
    #[error("duplicate dictionary key")]
    DuplicateKey,
    /// Lists and dictionaries nested deeper than the configured limit.
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
}
