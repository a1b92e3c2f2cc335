//! Peer ids (BEP 20): generation in Azureus style and recognition of other clients.

use std::fmt;

/// The 20-byte id a peer announces in its handshake.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId([u8; 20]);

/// Our client code and version in Azureus style: `-CR` + two-digit major, minor + `-`. `CR`
/// is in none of the client tables of libtorrent, Transmission, rakshasa's libtorrent,
/// webtorrent or BEP 20 (`CT`, used until 0.1, is CTorrent's: peers showed us as CTorrent).
const OUR_PREFIX: &[u8; 8] = b"-CR0100-";

/// A client recognised from its peer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client's name, e.g. `libtorrent` or `Transmission`.
    pub name: &'static str,
    /// Its version as written in the id, e.g. `2.0.8.0`; empty when unknown.
    pub version: String,
}

/// Azureus-style two-letter codes (BEP 20 and common practice).
const CLIENTS: &[(&[u8; 2], &str)] = &[
    (b"AZ", "Azureus/Vuze"),
    (b"BI", "BiglyBT"),
    (b"BC", "BitComet"),
    (b"BT", "BitTorrent"),
    (b"CD", "Enhanced CTorrent"),
    (b"CR", "cratetorrent"),
    (b"CT", "CTorrent"),
    (b"DE", "Deluge"),
    (b"FD", "Free Download Manager"),
    (b"KT", "KTorrent"),
    (b"LT", "libtorrent"),
    (b"lt", "libTorrent (rakshasa)"),
    (b"qB", "qBittorrent"),
    (b"rQ", "rqbit"),
    (b"TR", "Transmission"),
    (b"UM", "µTorrent Mac"),
    (b"UT", "µTorrent"),
    (b"WW", "WebTorrent"),
];

impl PeerId {
    /// Wraps raw id bytes.
    pub const fn new(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// A fresh id for this process: `-CR0100-` followed by 12 random bytes.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 20];
        bytes[..8].copy_from_slice(OUR_PREFIX);
        // Without OS randomness, a time-derived tail still makes collisions unlikely.
        if getrandom::fill(&mut bytes[8..]).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            bytes[8..].copy_from_slice(&nanos.to_le_bytes()[..12]);
        }
        Self(bytes)
    }

    /// Takes the id from a 20-byte slice.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The client that generated this id, if it uses the Azureus style (`-XXvvvv-`) with a known code.
    pub fn client(&self) -> Option<Client> {
        let id = &self.0;
        if id[0] != b'-' || id[7] != b'-' {
            return None;
        }
        let code = [id[1], id[2]];
        let name = CLIENTS.iter().find(|(c, _)| **c == code)?.1;
        let digits = &id[3..7];
        let version = match &code {
            // Transmission writes major, then a two-digit minor, then a release flag (`Z` for dev, `X`
            // for beta, `0` for release).
            b"TR" => format!(
                "{}.{}{}",
                char::from(digits[0]),
                char::from(digits[1]),
                char::from(digits[2])
            ),
            _ => digits
                .iter()
                .map(|&d| version_digit(d))
                .collect::<Option<Vec<_>>>()
                .map(|parts| {
                    let parts: Vec<String> = parts.iter().map(u8::to_string).collect();
                    parts.join(".")
                })
                .unwrap_or_default(),
        };
        Some(Client { name, version })
    }
}

/// Azureus-style version characters: `0-9`, then `A-Z` for 10 and up (libtorrent does this).
fn version_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId(\"{}\")", self.0.escape_ascii())
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

impl From<[u8; 20]> for PeerId {
    fn from(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(prefix: &[u8]) -> PeerId {
        let mut bytes = [b'x'; 20];
        bytes[..prefix.len()].copy_from_slice(prefix);
        PeerId::new(bytes)
    }

    #[test]
    fn generated_ids_are_ours_and_differ() {
        let (a, b) = (PeerId::generate(), PeerId::generate());
        assert_ne!(a, b);
        assert_eq!(&a.as_bytes()[..8], b"-CR0100-");
        assert_eq!(
            a.client(),
            Some(Client {
                name: "cratetorrent",
                version: "0.1.0.0".into()
            })
        );
    }

    #[test]
    fn recognises_common_clients() {
        let cases: &[(&[u8], &str, &str)] = &[
            (b"-LT2080-", "libtorrent", "2.0.8.0"),
            (b"-TR3000-", "Transmission", "3.00"),
            (b"-TR410Z-", "Transmission", "4.10"),
            (b"-qB4630-", "qBittorrent", "4.6.3.0"),
            (b"-UT355W-", "µTorrent", "3.5.5.32"),
            (b"-rQ0001-", "rqbit", "0.0.0.1"),
            (b"-CT1234-", "CTorrent", "1.2.3.4"),
        ];
        for (prefix, name, version) in cases {
            let client = id(prefix).client().unwrap();
            assert_eq!((client.name, client.version.as_str()), (*name, *version));
        }
        assert_eq!(id(b"M7-4-0--").client(), None);
        assert_eq!(id(b"-ZZ0000-").client(), None);
    }
}
