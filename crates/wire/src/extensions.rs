//! The eight reserved handshake bytes, as a typed set of extensions.

use std::fmt;

/// A protocol extension announced through a reserved handshake bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extension {
    /// BEP 5 DHT: the peer accepts `port` messages.
    Dht,
    /// BEP 6 fast extension: have-all/none, suggest, reject, allowed-fast.
    Fast,
    /// BEP 10 extension protocol: extended messages and the extended handshake.
    ExtensionProtocol,
    /// BEP 52: the peer speaks v2 (hash messages) and may answer a v1 handshake of a hybrid
    /// torrent with the v2 info-hash. libtorrent drops a peer that sets it for a v1-only
    /// torrent, so set it only for v2 and hybrid torrents.
    V2,
}

impl Extension {
    /// The reserved byte and bit mask of this extension.
    const fn position(self) -> (usize, u8) {
        match self {
            Extension::Dht => (7, 0x01),
            Extension::Fast => (7, 0x04),
            Extension::ExtensionProtocol => (5, 0x10),
            Extension::V2 => (7, 0x10),
        }
    }

    const ALL: [Extension; 4] = [
        Extension::Dht,
        Extension::Fast,
        Extension::ExtensionProtocol,
        Extension::V2,
    ];
}

/// The reserved bytes of a handshake. Bits this crate does not know are kept as they came.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Extensions([u8; 8]);

impl Extensions {
    /// No extensions.
    pub const NONE: Self = Self([0; 8]);

    /// Wraps the raw reserved bytes.
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    /// The raw reserved bytes.
    pub const fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// This set with `extension` added.
    #[must_use]
    pub const fn with(mut self, extension: Extension) -> Self {
        let (byte, mask) = extension.position();
        self.0[byte] |= mask;
        self
    }

    /// Whether `extension` is announced.
    pub const fn contains(&self, extension: Extension) -> bool {
        let (byte, mask) = extension.position();
        self.0[byte] & mask != 0
    }

    /// Removes `extension`.
    pub fn remove(&mut self, extension: Extension) {
        let (byte, mask) = extension.position();
        self.0[byte] &= !mask;
    }

    /// The extensions both sides announce: what a connection may use.
    #[must_use]
    pub fn common(&self, other: &Self) -> Self {
        let mut both = Self::NONE;
        for extension in Extension::ALL {
            if self.contains(extension) && other.contains(extension) {
                both = both.with(extension);
            }
        }
        both
    }

    /// The reserved bits that are not a known extension.
    pub fn unknown_bits(&self) -> [u8; 8] {
        let mut bits = self.0;
        for extension in Extension::ALL {
            let (byte, mask) = extension.position();
            bits[byte] &= !mask;
        }
        bits
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known = Extension::ALL.into_iter().filter(|e| self.contains(*e));
        let mut set = f.debug_set();
        set.entries(known);
        let unknown = self.unknown_bits();
        if unknown != [0; 8] {
            set.entry(&format_args!("unknown {:02x?}", unknown));
        }
        set.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bits_and_unknown_bits_are_kept_apart() {
        // libtorrent announces LTEP, fast, DHT and its own bit 0x18 in byte 5 (0x08 is unknown here).
        let theirs = Extensions::from_bytes([0, 0, 0, 0, 0, 0x18, 0, 0x05]);
        assert!(theirs.contains(Extension::ExtensionProtocol));
        assert!(theirs.contains(Extension::Fast));
        assert!(theirs.contains(Extension::Dht));
        assert_eq!(theirs.unknown_bits(), [0, 0, 0, 0, 0, 0x08, 0, 0]);
        let ours = Extensions::NONE
            .with(Extension::Fast)
            .with(Extension::ExtensionProtocol);
        assert_eq!(ours.as_bytes(), &[0, 0, 0, 0, 0, 0x10, 0, 0x04]);
        assert_eq!(ours.common(&theirs), ours);
        let mut less = ours;
        less.remove(Extension::Fast);
        assert!(!less.contains(Extension::Fast));
    }
}
