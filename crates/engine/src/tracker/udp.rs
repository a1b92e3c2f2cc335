//! The UDP tracker protocol (BEP 15) without the I/O: request packets and response parsing.

use std::time::Duration;

use super::http::compact_peers;
use super::{AnnounceRequest, AnnounceResponse, Event, ScrapeStats, TrackerError, clamp_interval};
use cratetorrent_metainfo::InfoHash;

/// The magic connection id of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// Most info-hashes in one scrape (what fits in a 1,500-byte packet).
pub const MAX_SCRAPE_HASHES: usize = 74;

/// The largest datagram we read; anything longer is truncated and its extra peers lost.
pub const MAX_PACKET: usize = 2048;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// A parsed UDP tracker response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The connection id to use for the next minute.
    Connect(u64),
    /// An announce response.
    Announce(AnnounceResponse),
    /// Scrape counts, in the order of the requested info-hashes.
    Scrape(Vec<ScrapeStats>),
    /// The tracker refused the request with this message.
    Error(String),
}

/// A connect request.
pub fn connect_request(transaction: u32) -> [u8; 16] {
    let mut packet = [0u8; 16];
    packet[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
    packet[8..12].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
    packet[12..].copy_from_slice(&transaction.to_be_bytes());
    packet
}

/// An announce request (98 bytes).
pub fn announce_request(connection: u64, transaction: u32, request: &AnnounceRequest) -> Vec<u8> {
    let event: u32 = match request.event {
        Event::None => 0,
        Event::Completed => 1,
        Event::Started => 2,
        Event::Stopped => 3,
    };
    let mut packet = Vec::with_capacity(98);
    packet.extend(connection.to_be_bytes());
    packet.extend(ACTION_ANNOUNCE.to_be_bytes());
    packet.extend(transaction.to_be_bytes());
    packet.extend(request.info_hash.as_bytes());
    packet.extend(request.peer_id.as_bytes());
    packet.extend(request.downloaded.to_be_bytes());
    packet.extend(request.left.to_be_bytes());
    packet.extend(request.uploaded.to_be_bytes());
    packet.extend(event.to_be_bytes());
    packet.extend(0u32.to_be_bytes()); // IP: the sender's.
    packet.extend(request.key.to_be_bytes());
    let numwant = i32::try_from(request.numwant).unwrap_or(i32::MAX);
    packet.extend(numwant.to_be_bytes());
    packet.extend(request.port.to_be_bytes());
    packet
}

/// A scrape request for up to [`MAX_SCRAPE_HASHES`] torrents (the rest are left out).
pub fn scrape_request(connection: u64, transaction: u32, hashes: &[InfoHash]) -> Vec<u8> {
    let hashes = &hashes[..hashes.len().min(MAX_SCRAPE_HASHES)];
    let mut packet = Vec::with_capacity(16 + 20 * hashes.len());
    packet.extend(connection.to_be_bytes());
    packet.extend(ACTION_SCRAPE.to_be_bytes());
    packet.extend(transaction.to_be_bytes());
    for hash in hashes {
        packet.extend(hash.as_bytes());
    }
    packet
}

/// Parses a response to the request with `transaction`. Announce peers are 6-byte entries on
/// an IPv4 socket and 18-byte ones on IPv6 (`ipv6`), as BEP 15 specifies.
///
/// A packet for another transaction, or too short, is [`TrackerError::Malformed`]. Anyone
/// can send datagrams from the tracker's address, so callers waiting for a reply should
/// ignore every packet that does not parse and keep waiting.
pub fn parse_response(
    packet: &[u8],
    transaction: u32,
    ipv6: bool,
) -> Result<Response, TrackerError> {
    if packet.len() < 8 {
        return Err(TrackerError::Malformed("packet shorter than its header"));
    }
    let action = be_u32(&packet[0..4]);
    if be_u32(&packet[4..8]) != transaction {
        return Err(TrackerError::Malformed("wrong transaction id"));
    }
    let body = &packet[8..];
    match action {
        ACTION_CONNECT => {
            let id = body
                .get(..8)
                .ok_or(TrackerError::Malformed("short connect response"))?;
            Ok(Response::Connect(u64::from_be_bytes(
                id.try_into()
                    .map_err(|_| TrackerError::Malformed("short connect response"))?,
            )))
        }
        ACTION_ANNOUNCE => {
            if body.len() < 12 {
                return Err(TrackerError::Malformed("short announce response"));
            }
            let mut reply = AnnounceResponse::empty(clamp_interval(u64::from(be_u32(&body[0..4]))));
            reply.incomplete = Some(be_u32(&body[4..8]));
            reply.complete = Some(be_u32(&body[8..12]));
            compact_peers(&body[12..], if ipv6 { 18 } else { 6 }, &mut reply.peers);
            Ok(Response::Announce(reply))
        }
        ACTION_SCRAPE => Ok(Response::Scrape(
            body.chunks_exact(12)
                .map(|entry| ScrapeStats {
                    complete: be_u32(&entry[0..4]),
                    downloaded: be_u32(&entry[4..8]),
                    incomplete: be_u32(&entry[8..12]),
                })
                .collect(),
        )),
        ACTION_ERROR => {
            let message = &body[..body.len().min(512)];
            Ok(Response::Error(
                String::from_utf8_lossy(message).trim_end().to_owned(),
            ))
        }
        _ => Err(TrackerError::Malformed("unknown action")),
    }
}

/// How long to wait for the answer to the `attempt`-th transmission (0-based): 15·2ⁿ seconds
/// in BEP 15, here `base`·2ⁿ.
pub fn retransmit_timeout(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1 << attempt.min(8))
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(word)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cratetorrent_wire::PeerId;

    #[test]
    fn requests_have_the_bep_15_layout() {
        let connect = connect_request(7);
        assert_eq!(&connect[..8], &[0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80]);
        assert_eq!(&connect[12..], &[0, 0, 0, 7]);
        let request = AnnounceRequest {
            event: Event::Stopped,
            left: 5,
            key: 9,
            ..AnnounceRequest::new(InfoHash::new([1; 20]), PeerId::new([2; 20]), 6881)
        };
        let packet = announce_request(0x1122, 8, &request);
        assert_eq!(packet.len(), 98);
        assert_eq!(&packet[16..36], &[1; 20]);
        assert_eq!(&packet[64..72], &5u64.to_be_bytes());
        assert_eq!(&packet[80..84], &3u32.to_be_bytes());
        assert_eq!(&packet[96..], &6881u16.to_be_bytes());
        let scrape = scrape_request(1, 2, &vec![InfoHash::new([3; 20]); 100]);
        assert_eq!(scrape.len(), 16 + 20 * MAX_SCRAPE_HASHES);
    }

    #[test]
    fn parses_each_response() {
        let mut connect = vec![0, 0, 0, 0, 0, 0, 0, 7];
        connect.extend(42u64.to_be_bytes());
        assert_eq!(
            parse_response(&connect, 7, false).unwrap(),
            Response::Connect(42)
        );
        assert!(parse_response(&connect, 8, false).is_err());
        assert!(parse_response(&connect[..10], 7, false).is_err());

        let mut announce = vec![0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 60, 0, 0, 0, 2, 0, 0, 0, 1];
        announce.extend([127, 0, 0, 1, 0x1a, 0xe1, 9]);
        let Response::Announce(reply) = parse_response(&announce, 7, false).unwrap() else {
            panic!()
        };
        assert_eq!(reply.interval, Duration::from_secs(60));
        assert_eq!((reply.complete, reply.incomplete), (Some(1), Some(2)));
        assert_eq!(reply.peers, ["127.0.0.1:6881".parse().unwrap()]);
        let Response::Announce(reply) = parse_response(&announce, 7, true).unwrap() else {
            panic!()
        };
        assert!(reply.peers.is_empty());

        let mut scrape = vec![0, 0, 0, 2, 0, 0, 0, 7];
        scrape.extend([0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        assert_eq!(
            parse_response(&scrape, 7, false).unwrap(),
            Response::Scrape(vec![ScrapeStats {
                complete: 1,
                downloaded: 2,
                incomplete: 3
            }])
        );
        let mut error = vec![0, 0, 0, 3, 0, 0, 0, 7];
        error.extend(b"unregistered torrent\0");
        assert!(
            matches!(parse_response(&error, 7, false).unwrap(), Response::Error(m) if m.starts_with("unregistered torrent"))
        );
        assert!(parse_response(&[0, 0, 0, 9, 0, 0, 0, 7], 7, false).is_err());
    }

    #[test]
    fn announce_replies_drop_peers_that_cannot_be_dialled() {
        let mut announce = vec![0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 60, 0, 0, 0, 2, 0, 0, 0, 1];
        for ip in [
            [0, 0, 0, 0],
            [230, 1, 1, 1],
            [255, 255, 255, 255],
            [8, 8, 8, 8],
        ] {
            announce.extend(ip);
            announce.extend([0x1a, 0xe1]);
        }
        let Response::Announce(reply) = parse_response(&announce, 7, false).unwrap() else {
            panic!()
        };
        assert_eq!(reply.peers, ["8.8.8.8:6881".parse().unwrap()]);
    }

    #[test]
    fn retransmissions_double_and_stop_doubling() {
        let base = Duration::from_secs(15);
        assert_eq!(retransmit_timeout(base, 0), base);
        assert_eq!(retransmit_timeout(base, 2), Duration::from_secs(60));
        assert_eq!(retransmit_timeout(base, 30), Duration::from_secs(15 * 256));
    }
}
