//! Message stream encryption (MSE, also called protocol encryption, PE): the obfuscated
//! handshake that Vuze introduced and every major client speaks, as two sans-IO state machines.
//!
//! The initiator ([`Initiator`]) and the responder ([`Responder`]) exchange Diffie-Hellman keys
//! over a 768-bit prime, prove they know the torrent's info-hash without sending it, agree on
//! plaintext or RC4 for the rest of the connection ([`CryptoMethods`]), and hand over the
//! payload that came with the handshake. Neither touches a socket: feed received bytes to
//! `receive`, send what `output` returns, and once a [`Progress::Done`] arrives, wrap the
//! connection in its [`Cipher`] (RC4) or use it as it is (plaintext).
//!
//! Every length a peer controls is bounded: pads of at most 512 bytes, synchronisation patterns
//! searched for only where the protocol allows them, an initial payload of at most 64 KiB, and
//! at most [`MAX_BUFFERED`] bytes held at any time. MSE hides the protocol from traffic shapers;
//! it is not confidentiality (RC4 and DH-768 are weak), so the arithmetic need not be
//! constant-time.
//!
//! ```
//! use cratetorrent_wire::InfoHash;
//! use cratetorrent_wire::mse::{CryptoMethods, Initiator, Progress, Responder, req2_hash};
//!
//! let info_hash = InfoHash::new([7; 20]);
//! let mut dialer = Initiator::new(info_hash, CryptoMethods::RC4, b"hello", [1; 32])?;
//! let mut listener = Responder::new(CryptoMethods::ALL, false, [2; 32]);
//!
//! // Bytes travel until both sides are done; the responder asks which torrent is meant.
//! let mut listener_done = None;
//! let mut dialer_done = None;
//! while dialer_done.is_none() {
//!     match listener.receive(&dialer.output())? {
//!         Progress::NeedTorrent(hash) => {
//!             assert_eq!(hash, req2_hash(&info_hash));
//!             if let Progress::Done(done) = listener.torrent_found(Some(info_hash))? {
//!                 listener_done = Some(done);
//!             }
//!         }
//!         Progress::Done(done) => listener_done = Some(done),
//!         Progress::Pending => {}
//!     }
//!     if let Progress::Done(done) = dialer.receive(&listener.output())? {
//!         dialer_done = Some(done);
//!     }
//! }
//! let listener_done = listener_done.expect("the listener finished first");
//! assert_eq!(listener_done.payload, b"hello");
//! assert_eq!(listener_done.method, CryptoMethods::RC4);
//!
//! // From here on each side's cipher transforms the stream.
//! let (mut dialer_cipher, mut listener_cipher) = (dialer_done.unwrap().cipher.unwrap(),
//!                                                 listener_done.cipher.unwrap());
//! let mut message = *b"piece";
//! dialer_cipher.encrypt.apply(&mut message);
//! listener_cipher.decrypt.apply(&mut message);
//! assert_eq!(&message, b"piece");
//! # Ok::<(), cratetorrent_wire::mse::MseError>(())
//! ```

mod dh;
mod inbox;
mod initiator;
mod rc4;
mod responder;
#[cfg(test)]
mod tests;

use sha1::{Digest, Sha1};
use thiserror::Error;

use self::rc4::Rc4;
use crate::InfoHash;

pub use initiator::Initiator;
pub use responder::Responder;

/// The longest pad (PadA–PadD) the protocol allows.
pub const MAX_PAD: usize = 512;
/// The longest initial payload (IA) accepted: the field is 16 bits.
pub const MAX_INITIAL_PAYLOAD: usize = u16::MAX as usize;
/// The most bytes a handshake holds before it is done: a whole responder's view (key, pad,
/// hashes, header, pad, initial payload) and a little of what follows.
pub const MAX_BUFFERED: usize =
    dh::KEY_LEN + MAX_PAD + 40 + 14 + MAX_PAD + 2 + MAX_INITIAL_PAYLOAD + 16 * 1024;

/// The verification constant: eight zero bytes, encrypted, that mark where the encrypted
/// part starts.
const VC: [u8; 8] = [0; 8];
/// RC4 keystream bytes discarded at the start of each direction.
const DISCARD: usize = 1024;

/// Why an MSE handshake failed. Each closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MseError {
    /// The peer's public key is not a usable Diffie-Hellman value (0, 1 or P−1 and beyond).
    #[error("invalid Diffie-Hellman public key")]
    InvalidKey,
    /// The synchronisation hash or the encrypted verification constant did not appear within
    /// the pad the protocol allows.
    #[error("no handshake synchronisation within the allowed pad")]
    NoSync,
    /// The decrypted verification constant was not zero: wrong torrent, or garbage.
    #[error("verification constant mismatch")]
    BadVerification,
    /// A pad longer than 512 bytes.
    #[error("pad of {0} bytes exceeds 512")]
    PadTooLong(usize),
    /// No torrent of ours matches the peer's obfuscated info-hash.
    #[error("unknown torrent")]
    UnknownTorrent,
    /// The peer offered, or selected, no method we allow.
    #[error("no common crypto method (peer: {0:#x})")]
    NoCommonMethod(u32),
    /// More bytes arrived than any handshake can hold.
    #[error("more than {MAX_BUFFERED} bytes during the handshake")]
    TooMuchData,
    /// Bytes arrived after the handshake had failed or finished, or out of turn.
    #[error("handshake already ended")]
    Ended,
}

/// A set of crypto methods, as the 32-bit `crypto_provide` / `crypto_select` fields carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CryptoMethods(u32);

impl CryptoMethods {
    /// The payload travels in the clear (only the handshake is obfuscated).
    pub const PLAINTEXT: Self = Self(0x01);
    /// The payload is RC4-encrypted.
    pub const RC4: Self = Self(0x02);
    /// Both.
    pub const ALL: Self = Self(0x03);
    /// Neither.
    pub const NONE: Self = Self(0);

    /// The methods in both sets.
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether every method of `other` is in this set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 & Self::ALL.0 == 0
    }

    /// The field as sent on the wire.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// The field as received: unknown bits are ignored.
    pub fn from_bits(bits: u32) -> Self {
        Self(bits & Self::ALL.0)
    }
}

impl std::ops::BitOr for CryptoMethods {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// One direction's RC4 keystream, already past the discarded first 1024 bytes.
pub struct Keystream(Rc4);

impl Keystream {
    /// RC4 keyed by `key` (MSE's `keyA` or `keyB`, a SHA-1), its first 1024 bytes discarded.
    pub fn new(key: &[u8; 20]) -> Self {
        Self(discarded_rc4(key))
    }

    /// Encrypts or decrypts `data` in place (RC4 is its own inverse), advancing the stream.
    pub fn apply(&mut self, data: &mut [u8]) {
        self.0.apply(data);
    }
}

impl std::fmt::Debug for Keystream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keystream")
    }
}

/// The two keystreams of an RC4 connection: one for what we send, one for what we receive.
#[derive(Debug)]
pub struct Cipher {
    /// Applied to every byte we send.
    pub encrypt: Keystream,
    /// Applied to every byte we receive.
    pub decrypt: Keystream,
}

/// A finished handshake.
#[derive(Debug)]
pub struct Established {
    /// The torrent the connection is for.
    pub info_hash: InfoHash,
    /// [`CryptoMethods::PLAINTEXT`] or [`CryptoMethods::RC4`].
    pub method: CryptoMethods,
    /// The keystreams, for RC4.
    pub cipher: Option<Cipher>,
    /// Payload that came with the handshake, decrypted: for a responder the initiator's
    /// initial payload (usually its BitTorrent handshake) and anything after it; for an
    /// initiator whatever followed the responder's handshake.
    pub payload: Vec<u8>,
}

/// Where a handshake stands after a call.
#[derive(Debug)]
pub enum Progress {
    /// More bytes are needed (send `output` first).
    Pending,
    /// The responder needs the torrent whose [`req2_hash`] is this: call
    /// [`Responder::torrent_found`].
    NeedTorrent([u8; 20]),
    /// Done; send `output` one last time before the payload.
    Done(Box<Established>),
}

/// The torrent's obfuscated identity a responder receives: `SHA-1("req2" ‖ info-hash)`. A
/// listener serving many torrents keeps a map from this to each info-hash.
pub fn req2_hash(info_hash: &InfoHash) -> [u8; 20] {
    hash(&[b"req2", info_hash.as_bytes()])
}

/// Whether a connection's first bytes are a plain BitTorrent handshake rather than an MSE
/// one (which starts with a random-looking key). Needs at least 20 bytes to say yes.
pub fn is_plain_handshake(first: &[u8]) -> bool {
    first.len() >= 20 && first[0] == 19 && &first[1..20] == crate::PROTOCOL
}

/// Fresh randomness for a handshake's key and pads, from the operating system.
pub fn entropy() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    // Without an OS generator the handshake still works; only its obfuscation weakens.
    let _ = getrandom::fill(&mut bytes);
    bytes
}

/// A pad's or payload's length as its 16-bit field (every caller's length is bounded below
/// 65,536).
fn len16(len: usize) -> [u8; 2] {
    u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes()
}

/// RC4 keyed by `key` (20 or 32 bytes: always within RC4's 1–256), past its first 1024 bytes.
fn discarded_rc4(key: &[u8]) -> Rc4 {
    let mut rc4 = Rc4::new(key);
    let mut discard = [0u8; DISCARD];
    rc4.apply(&mut discard);
    rc4
}

fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut sha = Sha1::new();
    for part in parts {
        sha.update(part);
    }
    sha.finalize().into()
}

/// The keystream each role encrypts with: `keyA` for the initiator, `keyB` for the responder.
fn keystream(name: &[u8; 4], secret: &[u8], info_hash: &InfoHash) -> Keystream {
    Keystream::new(&hash(&[name, secret, info_hash.as_bytes()]))
}

/// The pads' randomness: an RC4 keystream keyed by the handshake's entropy, so a seeded run
/// replays exactly.
struct Random(Rc4);

impl Random {
    fn new(entropy: &[u8; 32]) -> Self {
        Self(discarded_rc4(entropy))
    }

    fn fill(&mut self, bytes: &mut [u8]) {
        bytes.fill(0);
        self.0.apply(bytes);
    }

    /// A pad of random length (0–512) and content.
    fn pad(&mut self) -> Vec<u8> {
        let mut len = [0u8; 2];
        self.fill(&mut len);
        let mut pad = vec![0u8; usize::from(u16::from_be_bytes(len)) % (MAX_PAD + 1)];
        self.fill(&mut pad);
        pad
    }
}
