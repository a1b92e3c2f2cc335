//! The validating pass: one iterative walk over the input that enforces every rule of strict bencode,
//! so that the [`Value`] views handed out afterwards can be read without further checks.

use super::error::{DecodeError, DecodeErrorKind as Kind};
use super::value::{Value, value_end};

/// Limits applied while decoding untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Deepest nesting of lists and dictionaries accepted; deeper input is rejected with
    /// [`DecodeErrorKind::TooDeep`](super::DecodeErrorKind::TooDeep).
    pub max_depth: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self { max_depth: 256 }
    }
}

/// Decodes `input`, which must hold exactly one bencoded value, with the default limits.
///
/// The returned [`Value`] borrows `input`; nothing is copied or allocated.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    decode_with(input, &DecodeOptions::default())
}

/// Decodes `input`, which must hold exactly one bencoded value.
pub fn decode_with<'a>(input: &'a [u8], options: &DecodeOptions) -> Result<Value<'a>, DecodeError> {
    let (value, end) = decode_prefix_with(input, options)?;
    if end != input.len() {
        return Err(DecodeError::new(Kind::TrailingBytes, end));
    }
    Ok(value)
}

/// Decodes the one value at the start of `input` and returns it with the offset just past it.
///
/// For messages that carry raw bytes after a bencoded header, such as BEP 9 metadata pieces.
pub fn decode_prefix(input: &[u8]) -> Result<(Value<'_>, usize), DecodeError> {
    decode_prefix_with(input, &DecodeOptions::default())
}

/// [`decode_prefix`] with explicit limits.
pub fn decode_prefix_with<'a>(
    input: &'a [u8],
    options: &DecodeOptions,
) -> Result<(Value<'a>, usize), DecodeError> {
    let end = Validator::new(input, options.max_depth).run()?;
    Ok((Value::new(input, 0, end), end))
}

/// One open list or dictionary.
struct Frame {
    start: usize,
    dict: Option<DictState>,
}

struct DictState {
    /// The span of the previous key, to check order and duplicates in O(1) while keys are sorted.
    last_key: Option<(usize, usize)>,
    /// Set once a key sorts before its predecessor: duplicates are then checked when the dict closes.
    unsorted: bool,
    expect_key: bool,
}

struct Validator<'a> {
    input: &'a [u8],
    pos: usize,
    max_depth: usize,
    stack: Vec<Frame>,
}

impl<'a> Validator<'a> {
    fn new(input: &'a [u8], max_depth: usize) -> Self {
        Self {
            input,
            pos: 0,
            max_depth,
            stack: Vec::new(),
        }
    }

    fn byte(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::new(Kind::UnexpectedEof, self.pos))
    }

    /// Returns the offset just past the first complete value.
    fn run(mut self) -> Result<usize, DecodeError> {
        loop {
            if let Some(Frame {
                dict: Some(state), ..
            }) = self.stack.last_mut()
                && state.expect_key
            {
                let at = self.pos;
                match self.input.get(at).copied() {
                    None => return Err(DecodeError::new(Kind::UnexpectedEof, at)),
                    Some(b'e') => {
                        self.close()?;
                    }
                    Some(b'0'..=b'9') => {
                        let (start, end) = self.string()?;
                        self.key(start, end, at)?;
                        continue;
                    }
                    Some(_) => return Err(DecodeError::new(Kind::NonStringKey, at)),
                }
                if self.value_done() {
                    return Ok(self.pos);
                }
                continue;
            }
            match self.byte()? {
                b'i' => self.integer()?,
                b'0'..=b'9' => {
                    self.string()?;
                }
                b'l' | b'd' => {
                    self.open()?;
                    continue;
                }
                b'e' if matches!(self.stack.last(), Some(Frame { dict: None, .. })) => {
                    self.close()?
                }
                other => return Err(DecodeError::new(Kind::UnexpectedByte(other), self.pos)),
            }
            if self.value_done() {
                return Ok(self.pos);
            }
        }
    }

    /// Called after each complete value; returns true when it was the top-level one.
    fn value_done(&mut self) -> bool {
        match self.stack.last_mut() {
            None => true,
            Some(Frame {
                dict: Some(state), ..
            }) => {
                state.expect_key = true;
                false
            }
            Some(_) => false,
        }
    }

    fn open(&mut self) -> Result<(), DecodeError> {
        if self.stack.len() >= self.max_depth {
            return Err(DecodeError::new(Kind::TooDeep(self.max_depth), self.pos));
        }
        let dict = (self.input[self.pos] == b'd').then_some(DictState {
            last_key: None,
            unsorted: false,
            expect_key: true,
        });
        self.stack.push(Frame {
            start: self.pos,
            dict,
        });
        self.pos += 1;
        Ok(())
    }

    fn close(&mut self) -> Result<(), DecodeError> {
        if let Some(Frame {
            start,
            dict: Some(DictState { unsorted: true, .. }),
        }) = self.stack.pop()
        {
            check_unsorted_keys(self.input, start)?;
        }
        self.pos += 1;
        Ok(())
    }

    /// Records a dictionary key; `at` is where the key's encoding starts.
    fn key(&mut self, start: usize, end: usize, at: usize) -> Result<(), DecodeError> {
        let input = self.input;
        if let Some(Frame {
            dict: Some(state), ..
        }) = self.stack.last_mut()
        {
            if let Some((last_start, last_end)) = state.last_key {
                match input[last_start..last_end].cmp(&input[start..end]) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        return Err(DecodeError::new(Kind::DuplicateKey, at));
                    }
                    std::cmp::Ordering::Greater => state.unsorted = true,
                }
            }
            state.last_key = Some((start, end));
            state.expect_key = false;
        }
        Ok(())
    }

    fn integer(&mut self) -> Result<(), DecodeError> {
        let begin = self.pos;
        self.pos += 1;
        let negative = self.byte()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits = self.pos;
        let mut value: i64 = 0;
        loop {
            match self.byte()? {
                d @ b'0'..=b'9' => {
                    let digit = i64::from(d - b'0');
                    value = value
                        .checked_mul(10)
                        .and_then(|v| {
                            if negative {
                                v.checked_sub(digit)
                            } else {
                                v.checked_add(digit)
                            }
                        })
                        .ok_or(DecodeError::new(Kind::IntegerOverflow, begin))?;
                    self.pos += 1;
                }
                b'e' => break,
                other => return Err(DecodeError::new(Kind::UnexpectedByte(other), self.pos)),
            }
        }
        let count = self.pos - digits;
        if count == 0 {
            return Err(DecodeError::new(Kind::EmptyInteger, begin));
        }
        if self.input[digits] == b'0' {
            if count > 1 {
                return Err(DecodeError::new(Kind::LeadingZero, digits));
            }
            if negative {
                return Err(DecodeError::new(Kind::NegativeZero, begin));
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// Validates a string at `pos` and returns the span of its contents.
    fn string(&mut self) -> Result<(usize, usize), DecodeError> {
        let begin = self.pos;
        let mut len: u64 = 0;
        loop {
            match self.byte()? {
                d @ b'0'..=b'9' => {
                    len = len
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(d - b'0')))
                        .ok_or(DecodeError::new(Kind::StringPastEnd(u64::MAX), begin))?;
                    self.pos += 1;
                }
                b':' => break,
                other => return Err(DecodeError::new(Kind::UnexpectedByte(other), self.pos)),
            }
        }
        if self.input[begin] == b'0' && self.pos - begin > 1 {
            return Err(DecodeError::new(Kind::LeadingZero, begin));
        }
        let start = self.pos + 1;
        let remaining = self.input.len() - start;
        let end = usize::try_from(len)
            .ok()
            .filter(|&len| len <= remaining)
            .map(|len| start + len)
            .ok_or(DecodeError::new(Kind::StringPastEnd(len), begin))?;
        self.pos = end;
        Ok((start, end))
    }
}

/// Checks an already validated dictionary whose keys are out of order for duplicate keys.
fn check_unsorted_keys(input: &[u8], dict_start: usize) -> Result<(), DecodeError> {
    let mut keys: Vec<(&[u8], usize)> = Vec::new();
    let mut pos = dict_start + 1;
    while input[pos] != b'e' {
        let key_end = value_end(input, pos);
        let key = Value::new(input, pos, key_end);
        keys.push((key.as_bytes().unwrap_or_default(), pos));
        pos = value_end(input, key_end);
    }
    keys.sort_unstable();
    for pair in keys.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(DecodeError::new(
                Kind::DuplicateKey,
                pair[0].1.max(pair[1].1),
            ));
        }
    }
    Ok(())
}
