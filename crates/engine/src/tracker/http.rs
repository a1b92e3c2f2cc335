//! The HTTP tracker protocol without the I/O: announce URLs and response parsing (BEP 3 with
//! compact peers from BEP 23 and `peers6` from BEP 7).

use cratetorrent_metainfo::bencode::{self, Dict, Kind, Value};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{
    AnnounceRequest, AnnounceResponse, DEFAULT_INTERVAL, MAX_PEERS_PER_RESPONSE, ScrapeStats,
    TrackerError, clamp_interval,
};
use crate::peer_addr::can_dial;

/// Bytes left as they are in query values: RFC 3986 unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Deepest nesting accepted in a tracker response (real ones use 3 levels).
const MAX_DEPTH: usize = 16;

/// The announce URL for `request` at the tracker `base` (which may carry a query already,
/// such as a private tracker's passkey).
pub fn announce_url(base: &str, request: &AnnounceRequest) -> String {
    let mut url = String::with_capacity(base.len() + 256);
    url.push_str(base);
    url.push(if base.contains('?') { '&' } else { '?' });
    url.push_str("info_hash=");
    url.extend(percent_encode(request.info_hash.as_bytes(), QUERY_VALUE));
    url.push_str("&peer_id=");
    url.extend(percent_encode(request.peer_id.as_bytes(), QUERY_VALUE));
    url.push_str(&format!(
        "&port={}&uploaded={}&downloaded={}&left={}&compact=1&no_peer_id=1&numwant={}&key={:08x}",
        request.port,
        request.uploaded,
        request.downloaded,
        request.left,
        request.numwant,
        request.key
    ));
    if let Some(event) = request.event.as_str() {
        url.push_str("&event=");
        url.push_str(event);
    }
    if let Some(id) = &request.tracker_id {
        url.push_str("&trackerid=");
        url.extend(percent_encode(id, QUERY_VALUE));
    }
    url
}

/// The scrape URL of an announce URL, by the convention of BEP 48: the last path segment
/// `announce` becomes `scrape`. `None` when the tracker cannot scrape.
pub fn scrape_url(announce: &str, info_hash: &cratetorrent_metainfo::InfoHash) -> Option<String> {
    let (path, query) = match announce.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (announce, None),
    };
    let slash = path.rfind('/')?;
    let last = &path[slash + 1..];
    let rest = last.strip_prefix("announce")?;
    let mut url = format!("{}/scrape{rest}", &path[..slash]);
    url.push('?');
    if let Some(query) = query {
        url.push_str(query);
        url.push('&');
    }
    url.push_str("info_hash=");
    url.extend(percent_encode(info_hash.as_bytes(), QUERY_VALUE));
    Some(url)
}

/// Parses an announce response body.
///
/// A `failure reason` becomes [`TrackerError::Failure`]. Peers may be compact (6 bytes each),
/// a list of dictionaries, or compact IPv6 in `peers6` (18 bytes each); entries that are not
/// valid addresses are skipped, and at most [`MAX_PEERS_PER_RESPONSE`] are kept.
pub fn parse_announce_response(body: &[u8]) -> Result<AnnounceResponse, TrackerError> {
    let dict = decode_dict(body)?;
    if let Some(reason) = dict.get(b"failure reason") {
        let reason = reason
            .as_bytes()
            .ok_or(TrackerError::Malformed("failure reason is not a string"))?;
        return Err(TrackerError::Failure(lossy(reason)));
    }
    let interval = match optional_seconds(&dict, b"interval")? {
        Some(seconds) => clamp_interval(seconds),
        None => DEFAULT_INTERVAL,
    };
    let min_interval = optional_seconds(&dict, b"min interval")?.map(clamp_interval);
    let mut reply = AnnounceResponse::empty(interval);
    reply.min_interval = min_interval;
    reply.complete = optional_count(&dict, b"complete")?;
    reply.incomplete = optional_count(&dict, b"incomplete")?;
    reply.warning = dict
        .get(b"warning message")
        .and_then(|v| v.as_bytes())
        .map(lossy);
    reply.tracker_id = dict
        .get(b"tracker id")
        .and_then(|v| v.as_bytes())
        .filter(|id| id.len() <= 256)
        .map(<[u8]>::to_vec);
    if let Some(peers) = dict.get(b"peers") {
        match peers.kind() {
            Kind::Bytes(compact) => compact_peers(compact, 6, &mut reply.peers),
            Kind::List(list) => {
                for entry in list.iter() {
                    if reply.peers.len() >= MAX_PEERS_PER_RESPONSE {
                        break;
                    }
                    if let Some(addr) = dict_peer(entry) {
                        reply.peers.push(addr);
                    }
                }
            }
            _ => {
                return Err(TrackerError::Malformed(
                    "peers is neither a string nor a list",
                ));
            }
        }
    }
    if let Some(peers6) = dict.get(b"peers6") {
        let compact = peers6
            .as_bytes()
            .ok_or(TrackerError::Malformed("peers6 is not a string"))?;
        compact_peers(compact, 18, &mut reply.peers);
    }
    Ok(reply)
}

/// Parses a scrape response body: the counts of `info_hash` in its `files` dictionary.
pub fn parse_scrape_response(
    body: &[u8],
    info_hash: &cratetorrent_metainfo::InfoHash,
) -> Result<ScrapeStats, TrackerError> {
    let dict = decode_dict(body)?;
    if let Some(reason) = dict.get(b"failure reason").and_then(|r| r.as_bytes()) {
        return Err(TrackerError::Failure(lossy(reason)));
    }
    let files = dict
        .get(b"files")
        .and_then(|f| f.as_dict())
        .ok_or(TrackerError::Malformed("no files dictionary"))?;
    let entry = files
        .get(info_hash.as_bytes())
        .and_then(|e| e.as_dict())
        .ok_or(TrackerError::Malformed("torrent not in the scrape"))?;
    Ok(ScrapeStats {
        complete: optional_count(&entry, b"complete")?.unwrap_or(0),
        downloaded: optional_count(&entry, b"downloaded")?.unwrap_or(0),
        incomplete: optional_count(&entry, b"incomplete")?.unwrap_or(0),
    })
}

fn optional_seconds(dict: &Dict<'_>, key: &[u8]) -> Result<Option<u64>, TrackerError> {
    match dict.get(key) {
        None => Ok(None),
        Some(value) => {
            let seconds = value
                .as_int()
                .ok_or(TrackerError::Malformed("interval is not an integer"))?;
            u64::try_from(seconds)
                .map(Some)
                .map_err(|_| TrackerError::Malformed("negative interval"))
        }
    }
}

fn optional_count(dict: &Dict<'_>, key: &[u8]) -> Result<Option<u32>, TrackerError> {
    match dict.get(key) {
        None => Ok(None),
        Some(value) => {
            let count = value
                .as_int()
                .ok_or(TrackerError::Malformed("peer count is not an integer"))?;
            // A count beyond u32 is nonsense but harmless: saturate rather than fail.
            Ok(Some(u32::try_from(count.max(0)).unwrap_or(u32::MAX)))
        }
    }
}

/// Appends the addresses in a compact string of `stride`-byte entries (4 or 16 address bytes
/// and a big-endian port); a trailing partial entry and entries that [`can_dial`] refuses are
/// ignored.
pub(crate) fn compact_peers(bytes: &[u8], stride: usize, out: &mut Vec<SocketAddr>) {
    for entry in bytes.chunks_exact(stride) {
        if out.len() >= MAX_PEERS_PER_RESPONSE {
            return;
        }
        let (ip, port) = entry.split_at(stride - 2);
        let ip = match <[u8; 4]>::try_from(ip) {
            Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
            Err(_) => match <[u8; 16]>::try_from(ip) {
                Ok(v6) => IpAddr::V6(Ipv6Addr::from(v6)),
                Err(_) => return,
            },
        };
        let addr = SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]]));
        if can_dial(addr) {
            out.push(addr);
        }
    }
}

fn dict_peer(entry: Value<'_>) -> Option<SocketAddr> {
    let dict = entry.as_dict()?;
    let ip: IpAddr = dict.get(b"ip")?.as_str()?.parse().ok()?;
    let port = u16::try_from(dict.get(b"port")?.as_int()?).ok()?;
    let addr = SocketAddr::new(ip, port);
    can_dial(addr).then_some(addr)
}

fn lossy(bytes: &[u8]) -> String {
    // Tracker messages are shown to users and logged: keep them short.
    let bytes = &bytes[..bytes.len().min(512)];
    String::from_utf8_lossy(bytes).into_owned()
}

/// A tracker body's top-level dictionary, decoded with the tracker nesting limit.
fn decode_dict(body: &[u8]) -> Result<bencode::Dict<'_>, TrackerError> {
    let options = bencode::DecodeOptions {
        max_depth: MAX_DEPTH,
    };
    bencode::decode_with(body, &options)?
        .as_dict()
        .ok_or(TrackerError::Malformed("not a dictionary"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tracker::Event;
    use cratetorrent_metainfo::InfoHash;
    use cratetorrent_wire::PeerId;
    use std::time::Duration;

    fn request() -> AnnounceRequest {
        let mut hash = [0u8; 20];
        hash[0] = b' ';
        hash[1] = b'+';
        hash[2] = 0xff;
        hash[3] = b'~';
        AnnounceRequest {
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: Event::Completed,
            key: 0xabc,
            tracker_id: Some(b"t id".to_vec()),
            ..AnnounceRequest::new(InfoHash::new(hash), PeerId::new([b'a'; 20]), 6881)
        }
    }

    #[test]
    fn announce_urls_encode_raw_bytes_and_keep_existing_queries() {
        let url = announce_url("http://t.example/announce?passkey=x", &request());
        assert!(
            url.starts_with("http://t.example/announce?passkey=x&info_hash=%20%2B%FF~%00"),
            "{url}"
        );
        assert!(url.contains(
            "&peer_id=aaaaaaaaaaaaaaaaaaaa&port=6881&uploaded=1&downloaded=2&left=3&compact=1"
        ));
        assert!(url.contains("&key=00000abc&event=completed&trackerid=t%20id"));
        let plain = announce_url(
            "http://t/a",
            &AnnounceRequest {
                event: Event::None,
                tracker_id: None,
                ..request()
            },
        );
        assert!(!plain.contains("event=") && !plain.contains("trackerid"));
    }

    #[test]
    fn scrape_urls_follow_the_announce_convention() {
        let hash = InfoHash::new([0x41; 20]);
        assert_eq!(
            scrape_url("http://t/x/announce.php?pk=1", &hash).unwrap(),
            format!("http://t/x/scrape.php?pk=1&info_hash={}", "A".repeat(20))
        );
        assert!(scrape_url("http://t/x/a", &hash).is_none());
    }

    #[test]
    fn parses_compact_dictionary_and_ipv6_peers() {
        let mut body =
            b"d8:completei5e10:incompletei7e8:intervali60e12:min intervali30e5:peers12:".to_vec();
        body.extend([127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0, 0]);
        body.extend(b"6:peers618:");
        body.extend(std::net::Ipv6Addr::LOCALHOST.octets());
        body.extend([0, 80]);
        body.extend(b"15:warning message6:beware10:tracker id2:ide");
        let reply = parse_announce_response(&body).unwrap();
        assert_eq!(reply.interval, Duration::from_secs(60));
        assert_eq!(reply.min_interval, Some(Duration::from_secs(30)));
        assert_eq!((reply.complete, reply.incomplete), (Some(5), Some(7)));
        // The port-0 entry is skipped.
        assert_eq!(
            reply.peers,
            [
                "127.0.0.1:6881".parse::<SocketAddr>().unwrap(),
                "[::1]:80".parse().unwrap()
            ]
        );
        assert_eq!(reply.warning.as_deref(), Some("beware"));
        assert_eq!(reply.tracker_id.as_deref(), Some(&b"id"[..]));

        let dict_peers = b"d8:intervali10e5:peersld2:ip9:10.0.0.257:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti1eed2:ip3:::14:porti2eed2:ip4:nope4:porti3eed2:ip7:1.2.3.44:porti70000eeee";
        let reply = parse_announce_response(dict_peers).unwrap();
        assert_eq!(
            reply.peers,
            [
                "10.0.0.25:1".parse::<SocketAddr>().unwrap(),
                "[::1]:2".parse().unwrap()
            ]
        );
    }

    #[test]
    fn failures_and_garbage_are_typed_errors() {
        let failure = parse_announce_response(b"d14:failure reason9:not allowe");
        assert!(matches!(failure, Err(TrackerError::Failure(r)) if r == "not allow"));
        assert!(matches!(
            parse_announce_response(b"<html>nope</html>"),
            Err(TrackerError::Bencode(_))
        ));
        assert!(matches!(
            parse_announce_response(b"li1ee"),
            Err(TrackerError::Malformed(_))
        ));
        assert!(matches!(
            parse_announce_response(b"d8:intervali-5ee"),
            Err(TrackerError::Malformed(_))
        ));
        let deep = format!("d5:peers{}{}e", "l".repeat(100), "e".repeat(100));
        assert!(parse_announce_response(deep.as_bytes()).is_err());
    }

    #[test]
    fn intervals_are_clamped_and_peer_lists_bounded() {
        let reply = parse_announce_response(b"d8:intervali999999999999ee").unwrap();
        assert_eq!(reply.interval, crate::tracker::MAX_INTERVAL);
        let mut body = format!("d5:peers{}:", 6 * 5000).into_bytes();
        body.extend(std::iter::repeat_n([1, 2, 3, 4, 0, 1], 5000).flatten());
        body.push(b'e');
        let reply = parse_announce_response(&body).unwrap();
        assert_eq!(reply.peers.len(), MAX_PEERS_PER_RESPONSE);
        assert_eq!(reply.interval, DEFAULT_INTERVAL);
    }

    #[test]
    fn unspecified_multicast_and_broadcast_peers_are_dropped() {
        let mut body = b"d8:intervali60e5:peers30:".to_vec();
        for ip in [
            [0, 0, 0, 0],
            [224, 0, 0, 1],
            [255, 255, 255, 255],
            [239, 1, 2, 3],
        ] {
            body.extend(ip);
            body.extend([0x1a, 0xe1]);
        }
        body.extend([10, 0, 0, 1, 0x1a, 0xe1]);
        body.extend(b"6:peers672:");
        for ip in [
            Ipv6Addr::UNSPECIFIED,
            "ff02::1".parse().unwrap(),
            Ipv4Addr::BROADCAST.to_ipv6_mapped(),
            "2001:db8::1".parse().unwrap(),
        ] {
            body.extend(ip.octets());
            body.extend([0x1a, 0xe1]);
        }
        body.push(b'e');
        let reply = parse_announce_response(&body).unwrap();
        assert_eq!(
            reply.peers,
            [
                "10.0.0.1:6881".parse::<SocketAddr>().unwrap(),
                "[2001:db8::1]:6881".parse().unwrap()
            ]
        );
        let dict_peers = b"d5:peersld2:ip7:0.0.0.04:porti1eed2:ip2:::4:porti1eed2:ip9:224.0.0.14:porti1eed2:ip7:ff02::14:porti1eed2:ip7:1.2.3.44:porti1eeee";
        let reply = parse_announce_response(dict_peers).unwrap();
        assert_eq!(reply.peers, ["1.2.3.4:1".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn parses_scrapes() {
        let hash = InfoHash::new([0x41; 20]);
        let body = format!(
            "d5:filesd20:{}d8:completei3e10:downloadedi9e10:incompletei4eeee",
            "A".repeat(20)
        );
        let stats = parse_scrape_response(body.as_bytes(), &hash).unwrap();
        assert_eq!(
            (stats.complete, stats.downloaded, stats.incomplete),
            (3, 9, 4)
        );
        assert!(parse_scrape_response(b"d5:filesdee", &hash).is_err());
    }
}
