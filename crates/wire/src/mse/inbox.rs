//! The bytes a handshake has received and not yet consumed, with the bounded searches both
//! roles need to find where a random-length pad ends.

use super::{MAX_BUFFERED, MseError};

#[derive(Default)]
pub(super) struct Inbox {
    bytes: Vec<u8>,
    /// The first start position a pending search has not tried yet, so bytes arriving one at a
    /// time do not make the search quadratic.
    searched: usize,
}

impl Inbox {
    pub(super) fn push(&mut self, input: &[u8]) -> Result<(), MseError> {
        if self.bytes.len() + input.len() > MAX_BUFFERED {
            return Err(MseError::TooMuchData);
        }
        self.bytes.extend_from_slice(input);
        Ok(())
    }

    /// The first `n` bytes, removed, once that many have arrived.
    pub(super) fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        if self.bytes.len() < n {
            return None;
        }
        let rest = self.bytes.split_off(n);
        Some(std::mem::replace(&mut self.bytes, rest))
    }

    /// Everything left, removed.
    pub(super) fn take_all(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    /// Consumes bytes up to and including `pattern`, which must start within the first
    /// `max_skip + 1` positions: `Ok(true)` once found, `Ok(false)` while it may still come,
    /// and [`MseError::NoSync`] once it can no longer.
    pub(super) fn skip_past(&mut self, pattern: &[u8], max_skip: usize) -> Result<bool, MseError> {
        let len = pattern.len();
        while self.searched <= max_skip && self.searched + len <= self.bytes.len() {
            if &self.bytes[self.searched..self.searched + len] == pattern {
                self.bytes.drain(..self.searched + len);
                self.searched = 0;
                return Ok(true);
            }
            self.searched += 1;
        }
        if self.searched > max_skip {
            return Err(MseError::NoSync);
        }
        Ok(false)
    }
}
