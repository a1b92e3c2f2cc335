//! Message stream encryption on a peer connection: the policy (libtorrent's `out_enc_policy` and
//! `in_enc_policy`) and what a handshake offers. `connection` drives the wire crate's sans-IO
//! MSE handshake over the socket.
//!
//! An encrypted connection's BitTorrent handshake goes inside the MSE one (the initiator's as
//! its initial payload), and with RC4 every byte after it passes through the connection's
//! [`Cipher`]: the reader decrypts each read in place, the writer encrypts a copy of each batch
//! (the frames are shared buffers, blocks of the read cache among them).

use cratetorrent_wire::mse::{CryptoMethods, Keystream};

/// Whether peer connections use message stream encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Encryption {
    /// Plain connections only: none dialled encrypted, encrypted ones refused (libtorrent's
    /// `pe_disabled`).
    Off,
    /// Dial encrypted and, if that handshake fails, dial again in the clear; accept both
    /// (libtorrent's `pe_enabled`, its default).
    #[default]
    Prefer,
    /// Encrypted handshakes only, both ways (libtorrent's `pe_forced`).
    Require,
}

impl Encryption {
    /// Whether outgoing connections start with an MSE handshake.
    pub(crate) fn dials_encrypted(self) -> bool {
        self != Self::Off
    }

    /// Whether an incoming connection that starts plain (`plain`) or encrypted is accepted.
    pub(crate) fn accepts(self, plain: bool) -> bool {
        match self {
            Self::Off => plain,
            Self::Prefer => true,
            Self::Require => !plain,
        }
    }
}

/// What an encrypted handshake may settle on, and the randomness for its key and pads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offer {
    pub(crate) levels: CryptoMethods,
    pub(crate) prefer_rc4: bool,
    pub(crate) entropy: [u8; 32],
}

/// Encrypts `bytes` in place when there is a keystream.
pub(crate) fn apply(keystream: Option<&mut Keystream>, bytes: &mut [u8]) {
    if let Some(keystream) = keystream {
        keystream.apply(bytes);
    }
}
