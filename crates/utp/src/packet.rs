//! BEP 29 packets: the 20-byte header, the extension chain (selective ACK read, others
//! skipped) and the payload, parsed without copying and with every length checked.

use thiserror::Error;

/// The fixed header's length.
pub const HEADER_LEN: usize = 20;
/// The protocol version in the first byte's low nibble.
const VERSION: u8 = 1;
/// The selective-ACK extension's type.
const EXT_SACK: u8 = 1;
/// Extensions read from one packet before it is refused (libtorrent and libutp send at most two).
const MAX_EXTENSIONS: usize = 8;
/// The longest selective ACK accepted: 1,024 packets past the cumulative ACK.
pub(crate) const MAX_SACK_LEN: usize = 128;

/// A packet's type (the first byte's high nibble).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// Carries payload.
    Data,
    /// The sender's last packet: its sequence number ends the stream.
    Fin,
    /// An acknowledgement without payload.
    State,
    /// Ends the connection at once.
    Reset,
    /// Opens a connection.
    Syn,
}

impl PacketType {
    fn from_nibble(nibble: u8) -> Option<Self> {
        Some(match nibble {
            0 => Self::Data,
            1 => Self::Fin,
            2 => Self::State,
            3 => Self::Reset,
            4 => Self::Syn,
            _ => return None,
        })
    }

    fn nibble(self) -> u8 {
        match self {
            Self::Data => 0,
            Self::Fin => 1,
            Self::State => 2,
            Self::Reset => 3,
            Self::Syn => 4,
        }
    }
}

/// The fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The packet's type.
    pub kind: PacketType,
    /// The receiving end's connection id (the initiator's SYN carries its own receive id).
    pub connection_id: u16,
    /// The sender's clock when it sent the packet, in microseconds (wrapping).
    pub timestamp_us: u32,
    /// The sender's clock minus the timestamp of the last packet it received: the one-way
    /// delay towards the sender plus the clocks' offset; 0 before any packet.
    pub timestamp_diff_us: u32,
    /// The bytes the sender can still receive.
    pub window: u32,
    /// The packet's sequence number (STATE packets carry the next one without using it).
    pub seq: u16,
    /// The last sequence number the sender received in order.
    pub ack: u16,
}

/// A parsed packet, borrowing from its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The fixed header.
    pub header: Header,
    /// The selective-ACK bitmask, if present: bit `i` (least significant first within each
    /// byte) acknowledges `ack + 2 + i`.
    pub sack: Option<&'a [u8]>,
    /// The payload (empty but for DATA packets, which may carry any length).
    pub payload: &'a [u8],
}

/// Why a datagram is not a uTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Shorter than the fixed header.
    #[error("datagram of {0} bytes is shorter than a uTP header")]
    TooShort(usize),
    /// Not version 1.
    #[error("uTP version {0} (only 1 exists)")]
    Version(u8),
    /// A type nibble above 4.
    #[error("uTP packet type {0} does not exist")]
    Type(u8),
    /// An extension runs past the datagram's end.
    #[error("a uTP extension runs past the end of the datagram")]
    Truncated,
    /// More extensions than any implementation sends.
    #[error("more than {MAX_EXTENSIONS} uTP extensions")]
    TooManyExtensions,
    /// A selective ACK that is empty or longer than accepted.
    #[error("selective ACK of {0} bytes (1 to {MAX_SACK_LEN})")]
    SackLength(usize),
}

/// Whether a datagram on a shared port is uTP: the demultiplexing rule of libtorrent and
/// Transmission (a KRPC message starts with `d`, a UDP tracker's answer with a zero byte).
pub fn is_utp(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN
        && datagram[0] & 0x0f == VERSION
        && PacketType::from_nibble(datagram[0] >> 4).is_some()
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl<'a> Packet<'a> {
    /// Parses one datagram.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, PacketError> {
        if datagram.len() < HEADER_LEN {
            return Err(PacketError::TooShort(datagram.len()));
        }
        let version = datagram[0] & 0x0f;
        if version != VERSION {
            return Err(PacketError::Version(version));
        }
        let kind =
            PacketType::from_nibble(datagram[0] >> 4).ok_or(PacketError::Type(datagram[0] >> 4))?;
        let header = Header {
            kind,
            connection_id: u16_at(datagram, 2),
            timestamp_us: u32_at(datagram, 4),
            timestamp_diff_us: u32_at(datagram, 8),
            window: u32_at(datagram, 12),
            seq: u16_at(datagram, 16),
            ack: u16_at(datagram, 18),
        };
        let mut next = datagram[1];
        let mut at = HEADER_LEN;
        let mut sack = None;
        let mut seen = 0;
        while next != 0 {
            seen += 1;
            if seen > MAX_EXTENSIONS {
                return Err(PacketError::TooManyExtensions);
            }
            let (Some(&following), Some(&len)) = (datagram.get(at), datagram.get(at + 1)) else {
                return Err(PacketError::Truncated);
            };
            let body = datagram
                .get(at + 2..at + 2 + usize::from(len))
                .ok_or(PacketError::Truncated)?;
            if next == EXT_SACK {
                if body.is_empty() || body.len() > MAX_SACK_LEN {
                    return Err(PacketError::SackLength(body.len()));
                }
                sack = Some(body);
            }
            next = following;
            at += 2 + usize::from(len);
        }
        Ok(Self {
            header,
            sack,
            payload: &datagram[at..],
        })
    }
}

impl Header {
    /// Writes the header, and a selective ACK if given, to the start of `out`; returns the
    /// bytes written (20, or 22 and the mask's length). `out` must hold them.
    pub fn write(&self, sack: Option<&[u8]>, out: &mut [u8]) -> usize {
        out[0] = (self.kind.nibble() << 4) | VERSION;
        out[1] = if sack.is_some() { EXT_SACK } else { 0 };
        out[2..4].copy_from_slice(&self.connection_id.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp_us.to_be_bytes());
        out[8..12].copy_from_slice(&self.timestamp_diff_us.to_be_bytes());
        out[12..16].copy_from_slice(&self.window.to_be_bytes());
        out[16..18].copy_from_slice(&self.seq.to_be_bytes());
        out[18..20].copy_from_slice(&self.ack.to_be_bytes());
        match sack {
            Some(mask) => {
                out[20] = 0;
                out[21] = u8::try_from(mask.len()).unwrap_or(u8::MAX);
                out[22..22 + mask.len()].copy_from_slice(mask);
                22 + mask.len()
            }
            None => HEADER_LEN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: PacketType) -> Header {
        Header {
            kind,
            connection_id: 0x1234,
            timestamp_us: 0xdead_beef,
            timestamp_diff_us: 7,
            window: 1 << 20,
            seq: 65535,
            ack: 3,
        }
    }

    #[test]
    fn a_written_packet_parses_back_with_its_sack_and_payload() {
        let mut buf = [0u8; 64];
        let len = header(PacketType::Data).write(Some(&[0b101, 0, 0, 1]), &mut buf);
        buf[len..len + 5].copy_from_slice(b"hello");
        let packet = Packet::parse(&buf[..len + 5]).expect("parses");
        assert_eq!(packet.header, header(PacketType::Data));
        assert_eq!(packet.sack, Some(&[0b101, 0, 0, 1][..]));
        assert_eq!(packet.payload, b"hello");
        assert!(is_utp(&buf[..len]));
    }

    #[test]
    fn unknown_extensions_are_skipped_and_bad_chains_refused() {
        let mut buf = [0u8; 40];
        header(PacketType::State).write(None, &mut buf);
        // An "extension bits" extension (type 2, 8 bytes) then a SACK of 4.
        buf[1] = 2;
        buf[20] = 1;
        buf[21] = 8;
        buf[30] = 0;
        buf[31] = 4;
        buf[32] = 0xff;
        let packet = Packet::parse(&buf[..36]).expect("parses");
        assert_eq!(packet.sack, Some(&[0xff, 0, 0, 0][..]));
        assert!(packet.payload.is_empty());
        assert_eq!(Packet::parse(&buf[..34]), Err(PacketError::Truncated));
        buf[31] = 0;
        assert_eq!(Packet::parse(&buf[..36]), Err(PacketError::SackLength(0)));
        // A chain that loops through its own bytes ends at the bound.
        let mut looped = [0u8; 60];
        header(PacketType::State).write(None, &mut looped);
        looped[1] = 9;
        for at in (20..60).step_by(2) {
            looped[at] = 9;
        }
        assert_eq!(Packet::parse(&looped), Err(PacketError::TooManyExtensions));
    }

    #[test]
    fn krpc_and_tracker_datagrams_are_not_utp() {
        assert!(!is_utp(
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
        ));
        assert!(!is_utp(&[
            0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ]));
        assert_eq!(Packet::parse(&[0x41; 19]), Err(PacketError::TooShort(19)));
        assert_eq!(Packet::parse(&[0x51; 20]), Err(PacketError::Type(5)));
        assert_eq!(Packet::parse(&[0x02; 20]), Err(PacketError::Version(2)));
    }
}
