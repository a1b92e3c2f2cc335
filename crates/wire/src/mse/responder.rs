//! The side that accepts: answers the initiator's key, finds which torrent it proves, checks
//! its offer and selects a method.

use super::dh::{KEY_LEN, KeyPair};
use super::inbox::Inbox;
use super::{
    Cipher, CryptoMethods, Established, Keystream, MAX_PAD, MseError, Progress, Random, VC, hash,
    keystream, len16,
};
use crate::InfoHash;

/// The accepting side of an MSE handshake, for a connection whose first bytes are not a plain
/// BitTorrent handshake ([`is_plain_handshake`](super::is_plain_handshake)).
pub struct Responder {
    allowed: CryptoMethods,
    prefer_rc4: bool,
    keys: KeyPair,
    random: Random,
    inbox: Inbox,
    output: Vec<u8>,
    state: State,
}

/// The keystreams and torrent, once known.
struct Keys {
    info_hash: InfoHash,
    encrypt: Keystream,
    decrypt: Keystream,
}

enum State {
    /// Waiting for the initiator's public key.
    Key,
    /// Searching PadA for `SHA-1("req1" ‖ S)`.
    Sync {
        secret: [u8; KEY_LEN],
    },
    /// Reading the obfuscated torrent hash.
    Torrent {
        secret: [u8; KEY_LEN],
    },
    /// Waiting for [`Responder::torrent_found`].
    Lookup {
        secret: [u8; KEY_LEN],
    },
    /// Reading VC, `crypto_provide` and the length of PadC.
    Offer(Keys),
    /// Skipping PadC.
    PadC(Keys, CryptoMethods, usize),
    /// Reading the length of the initial payload.
    PayloadLen(Keys, CryptoMethods),
    /// Reading the initial payload.
    Payload(Keys, CryptoMethods, usize),
    Ended,
}

impl Responder {
    /// A handshake that accepts the methods in `allowed`. When the initiator offers both,
    /// plaintext is selected unless `prefer_rc4` (as libtorrent's `prefer_rc4` setting).
    /// `entropy` seeds the private key and the pad ([`entropy`](super::entropy)).
    pub fn new(allowed: CryptoMethods, prefer_rc4: bool, entropy: [u8; 32]) -> Self {
        let mut random = Random::new(&entropy);
        let mut private = [0u8; 20];
        random.fill(&mut private);
        Self {
            allowed,
            prefer_rc4,
            keys: KeyPair::new(&private),
            random,
            inbox: Inbox::default(),
            output: Vec::new(),
            state: State::Key,
        }
    }

    /// Bytes to send now (drained).
    pub fn output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Takes received bytes and advances the handshake. After an error, or once done, the
    /// handshake takes no more bytes.
    pub fn receive(&mut self, input: &[u8]) -> Result<Progress, MseError> {
        if matches!(self.state, State::Ended) {
            return Err(MseError::Ended);
        }
        let progress = self.inbox.push(input).and_then(|()| self.advance());
        self.end_on_error(progress)
    }

    /// Answers [`Progress::NeedTorrent`]: the torrent whose `req2_hash` matched, or `None`
    /// (which fails the handshake).
    pub fn torrent_found(&mut self, info_hash: Option<InfoHash>) -> Result<Progress, MseError> {
        let progress = match (std::mem::replace(&mut self.state, State::Ended), info_hash) {
            (State::Lookup { secret }, Some(info_hash)) => {
                self.state = State::Offer(Keys {
                    info_hash,
                    decrypt: keystream(b"keyA", &secret, &info_hash),
                    encrypt: keystream(b"keyB", &secret, &info_hash),
                });
                self.advance()
            }
            (State::Lookup { .. }, None) => Err(MseError::UnknownTorrent),
            _ => Err(MseError::Ended),
        };
        self.end_on_error(progress)
    }

    fn end_on_error(&mut self, progress: Result<Progress, MseError>) -> Result<Progress, MseError> {
        if progress.is_err() {
            self.state = State::Ended;
        }
        progress
    }

    fn advance(&mut self) -> Result<Progress, MseError> {
        loop {
            let state = std::mem::replace(&mut self.state, State::Ended);
            match self.step(state)? {
                Step::Next(state) => self.state = state,
                Step::Wait(state) => {
                    self.state = state;
                    return Ok(Progress::Pending);
                }
                Step::Ask(hash, state) => {
                    self.state = state;
                    return Ok(Progress::NeedTorrent(hash));
                }
                Step::Done(established) => return Ok(Progress::Done(Box::new(established))),
            }
        }
    }

    fn step(&mut self, state: State) -> Result<Step, MseError> {
        Ok(match state {
            State::Key => match self.inbox.take(KEY_LEN) {
                None => Step::Wait(State::Key),
                Some(theirs) => {
                    let secret = self.keys.shared_secret(&theirs)?;
                    self.output.extend_from_slice(&self.keys.public);
                    self.output.extend_from_slice(&self.random.pad());
                    Step::Next(State::Sync { secret })
                }
            },
            State::Sync { secret } => {
                if self.inbox.skip_past(&hash(&[b"req1", &secret]), MAX_PAD)? {
                    Step::Next(State::Torrent { secret })
                } else {
                    Step::Wait(State::Sync { secret })
                }
            }
            State::Torrent { secret } => match self.inbox.take(20) {
                None => Step::Wait(State::Torrent { secret }),
                Some(obfuscated) => {
                    let req3 = hash(&[b"req3", &secret]);
                    let mut req2 = [0u8; 20];
                    for (out, (a, b)) in req2.iter_mut().zip(obfuscated.iter().zip(req3.iter())) {
                        *out = a ^ b;
                    }
                    Step::Ask(req2, State::Lookup { secret })
                }
            },
            State::Lookup { secret } => Step::Wait(State::Lookup { secret }),
            State::Offer(mut keys) => match self.inbox.take(14) {
                None => Step::Wait(State::Offer(keys)),
                Some(mut offer) => {
                    keys.decrypt.apply(&mut offer);
                    if offer[..8] != VC {
                        return Err(MseError::BadVerification);
                    }
                    let bits = u32::from_be_bytes([offer[8], offer[9], offer[10], offer[11]]);
                    let method = self.select(bits)?;
                    let len = usize::from(u16::from_be_bytes([offer[12], offer[13]]));
                    if len > MAX_PAD {
                        return Err(MseError::PadTooLong(len));
                    }
                    Step::Next(State::PadC(keys, method, len))
                }
            },
            State::PadC(mut keys, method, len) => match self.inbox.take(len) {
                None => Step::Wait(State::PadC(keys, method, len)),
                Some(mut pad) => {
                    keys.decrypt.apply(&mut pad);
                    Step::Next(State::PayloadLen(keys, method))
                }
            },
            State::PayloadLen(mut keys, method) => match self.inbox.take(2) {
                None => Step::Wait(State::PayloadLen(keys, method)),
                Some(mut len) => {
                    keys.decrypt.apply(&mut len);
                    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                    Step::Next(State::Payload(keys, method, len))
                }
            },
            State::Payload(keys, method, len) => match self.inbox.take(len) {
                None => Step::Wait(State::Payload(keys, method, len)),
                Some(payload) => Step::Done(self.finish(keys, method, payload)),
            },
            State::Ended => return Err(MseError::Ended),
        })
    }

    /// The method for the initiator's offer `bits`.
    fn select(&self, bits: u32) -> Result<CryptoMethods, MseError> {
        let common = CryptoMethods::from_bits(bits).intersection(self.allowed);
        if common.is_empty() {
            return Err(MseError::NoCommonMethod(bits));
        }
        let rc4 = common.contains(CryptoMethods::RC4)
            && (self.prefer_rc4 || !common.contains(CryptoMethods::PLAINTEXT));
        Ok(if rc4 {
            CryptoMethods::RC4
        } else {
            CryptoMethods::PLAINTEXT
        })
    }

    /// Sends the answer (VC, the selected method, PadD) and hands over the initial payload
    /// and whatever followed it.
    fn finish(
        &mut self,
        mut keys: Keys,
        method: CryptoMethods,
        mut payload: Vec<u8>,
    ) -> Established {
        keys.decrypt.apply(&mut payload);
        let mut rest = self.inbox.take_all();
        let pad = self.random.pad();
        let start = self.output.len();
        self.output.extend_from_slice(&VC);
        self.output.extend_from_slice(&method.bits().to_be_bytes());
        self.output.extend_from_slice(&len16(pad.len()));
        self.output.extend_from_slice(&pad);
        keys.encrypt.apply(&mut self.output[start..]);
        let cipher = if method == CryptoMethods::RC4 {
            keys.decrypt.apply(&mut rest);
            Some(Cipher {
                encrypt: keys.encrypt,
                decrypt: keys.decrypt,
            })
        } else {
            None
        };
        payload.extend_from_slice(&rest);
        Established {
            info_hash: keys.info_hash,
            method,
            cipher,
            payload,
        }
    }
}

/// What one step of the responder did.
enum Step {
    Next(State),
    Wait(State),
    Ask([u8; 20], State),
    Done(Established),
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("allowed", &self.allowed)
            .field("prefer_rc4", &self.prefer_rc4)
            .finish_non_exhaustive()
    }
}
