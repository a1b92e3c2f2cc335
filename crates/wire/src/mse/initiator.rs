//! The side that dials: sends its key, then proves the torrent and offers its methods; the
//! responder's answer selects one.

use super::dh::{KEY_LEN, KeyPair};
use super::inbox::Inbox;
use super::{
    Cipher, CryptoMethods, Established, Keystream, MAX_INITIAL_PAYLOAD, MAX_PAD, MseError,
    Progress, Random, VC, hash, keystream, len16, req2_hash,
};
use crate::InfoHash;

/// The dialling side of an MSE handshake. Its first `output` (key and pad) can go out as soon
/// as the connection is up.
pub struct Initiator {
    info_hash: InfoHash,
    provide: CryptoMethods,
    keys: KeyPair,
    random: Random,
    initial_payload: Vec<u8>,
    inbox: Inbox,
    output: Vec<u8>,
    encrypt: Option<Keystream>,
    state: State,
}

enum State {
    /// Waiting for the responder's public key.
    Key,
    /// Searching PadB for the responder's encrypted verification constant (`pattern`).
    Sync {
        pattern: [u8; 8],
        decrypt: Keystream,
    },
    /// Reading `crypto_select` and the length of PadD.
    Select {
        decrypt: Keystream,
    },
    /// Skipping PadD.
    PadD {
        decrypt: Keystream,
        method: CryptoMethods,
        len: usize,
    },
    Ended,
}

impl Initiator {
    /// A handshake for the torrent `info_hash`, offering `provide` (e.g. [`CryptoMethods::RC4`]
    /// to require encryption, [`CryptoMethods::ALL`] to let the responder choose), with
    /// `initial_payload` (usually our BitTorrent handshake, at most 65,535 bytes) sent
    /// encrypted inside it. `entropy` seeds the private key and the pads
    /// ([`entropy`](super::entropy) gives fresh randomness).
    pub fn new(
        info_hash: InfoHash,
        provide: CryptoMethods,
        initial_payload: &[u8],
        entropy: [u8; 32],
    ) -> Result<Self, MseError> {
        if initial_payload.len() > MAX_INITIAL_PAYLOAD {
            return Err(MseError::TooMuchData);
        }
        let mut random = Random::new(&entropy);
        let mut private = [0u8; 20];
        random.fill(&mut private);
        let keys = KeyPair::new(&private);
        let mut output = keys.public.to_vec();
        output.extend_from_slice(&random.pad());
        Ok(Self {
            info_hash,
            provide,
            keys,
            random,
            initial_payload: initial_payload.to_vec(),
            inbox: Inbox::default(),
            output,
            encrypt: None,
            state: State::Key,
        })
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
        if progress.is_err() {
            self.state = State::Ended;
        }
        progress
    }

    fn advance(&mut self) -> Result<Progress, MseError> {
        loop {
            match std::mem::replace(&mut self.state, State::Ended) {
                State::Key => {
                    let Some(theirs) = self.inbox.take(KEY_LEN) else {
                        self.state = State::Key;
                        return Ok(Progress::Pending);
                    };
                    self.state = self.send_proof(&theirs)?;
                }
                State::Sync { pattern, decrypt } => {
                    if !self.inbox.skip_past(&pattern, MAX_PAD)? {
                        self.state = State::Sync { pattern, decrypt };
                        return Ok(Progress::Pending);
                    }
                    self.state = State::Select { decrypt };
                }
                State::Select { mut decrypt } => {
                    let Some(mut header) = self.inbox.take(6) else {
                        self.state = State::Select { decrypt };
                        return Ok(Progress::Pending);
                    };
                    decrypt.apply(&mut header);
                    let bits = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
                    let method = CryptoMethods::from_bits(bits);
                    let single = method == CryptoMethods::PLAINTEXT || method == CryptoMethods::RC4;
                    if !single || method.bits() != bits || !self.provide.contains(method) {
                        return Err(MseError::NoCommonMethod(bits));
                    }
                    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
                    if len > MAX_PAD {
                        return Err(MseError::PadTooLong(len));
                    }
                    self.state = State::PadD {
                        decrypt,
                        method,
                        len,
                    };
                }
                State::PadD {
                    mut decrypt,
                    method,
                    len,
                } => {
                    let Some(mut pad) = self.inbox.take(len) else {
                        self.state = State::PadD {
                            decrypt,
                            method,
                            len,
                        };
                        return Ok(Progress::Pending);
                    };
                    decrypt.apply(&mut pad);
                    return Ok(Progress::Done(Box::new(self.finish(decrypt, method)?)));
                }
                State::Ended => return Err(MseError::Ended),
            }
        }
    }

    /// With the responder's key: the synchronisation hash, the obfuscated torrent, and the
    /// encrypted offer with the initial payload.
    fn send_proof(&mut self, theirs: &[u8]) -> Result<State, MseError> {
        let secret = self.keys.shared_secret(theirs)?;
        let mut encrypt = keystream(b"keyA", &secret, &self.info_hash);
        let mut decrypt = keystream(b"keyB", &secret, &self.info_hash);
        // The responder's encrypted VC is keystream B's first eight bytes.
        let mut pattern = VC;
        decrypt.apply(&mut pattern);

        self.output.extend_from_slice(&hash(&[b"req1", &secret]));
        let req2 = req2_hash(&self.info_hash);
        let req3 = hash(&[b"req3", &secret]);
        self.output
            .extend(req2.iter().zip(req3.iter()).map(|(a, b)| a ^ b));
        let pad = self.random.pad();
        let start = self.output.len();
        self.output.extend_from_slice(&VC);
        self.output
            .extend_from_slice(&self.provide.bits().to_be_bytes());
        self.output.extend_from_slice(&len16(pad.len()));
        self.output.extend_from_slice(&pad);
        self.output
            .extend_from_slice(&len16(self.initial_payload.len()));
        self.output.extend_from_slice(&self.initial_payload);
        encrypt.apply(&mut self.output[start..]);
        self.encrypt = Some(encrypt);
        Ok(State::Sync { pattern, decrypt })
    }

    fn finish(
        &mut self,
        mut decrypt: Keystream,
        method: CryptoMethods,
    ) -> Result<Established, MseError> {
        let mut payload = self.inbox.take_all();
        let encrypt = self.encrypt.take().ok_or(MseError::Ended)?;
        let cipher = if method == CryptoMethods::RC4 {
            decrypt.apply(&mut payload);
            Some(Cipher { encrypt, decrypt })
        } else {
            None
        };
        Ok(Established {
            info_hash: self.info_hash,
            method,
            cipher,
            payload,
        })
    }
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("info_hash", &self.info_hash)
            .field("provide", &self.provide)
            .finish_non_exhaustive()
    }
}
