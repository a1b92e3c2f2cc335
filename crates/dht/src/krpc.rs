//! KRPC (BEP 5): bencoded queries, responses and errors in single UDP datagrams, read with the
//! metainfo crate's strict bencode and bounded field by field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use cratetorrent_metainfo::bencode::{self, Dict, DictBuilder, Encode, Value};

use crate::id::NodeId;

/// Largest datagram read (what fits in an Ethernet frame with room to spare).
pub(crate) const MAX_DATAGRAM: usize = 1500;
/// Longest transaction id kept (libtorrent sends 2 bytes).
const MAX_TRANSACTION_ID: usize = 16;
/// Longest token kept (libtorrent's are 4 bytes, Transmission's 8).
const MAX_TOKEN: usize = 64;
/// Longest error text kept.
const MAX_ERROR_TEXT: usize = 256;
/// Peers taken from one `values` list (a 1,500-byte datagram holds about 200).
const MAX_VALUES: usize = 200;
/// Longest unknown method name kept (for the error that answers it).
const MAX_METHOD: usize = 32;

/// `raw` as text (invalid UTF-8 replaced), cut to at most `max` bytes at a character boundary.
fn text_within(raw: &[u8], max: usize) -> String {
    let mut text = String::from_utf8_lossy(&raw[..raw.len().min(max)]).into_owned();
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// A node as `find_node`/`get_peers` answers name it: id and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactNode {
    /// Its node id.
    pub id: NodeId,
    /// Where it answers.
    pub addr: SocketAddr,
}

/// BEP 32 `want`: which address families' nodes the querier asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// IPv4 nodes (`nodes`).
    pub n4: bool,
    /// IPv6 nodes (`nodes6`).
    pub n6: bool,
}

/// What a query asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Is the node there?
    Ping,
    /// The nodes closest to `target`.
    FindNode {
        /// The id searched for.
        target: NodeId,
    },
    /// Peers of a torrent, or the nodes closest to it.
    GetPeers {
        /// The torrent.
        info_hash: NodeId,
    },
    /// The querier downloads the torrent and accepts peers.
    AnnouncePeer {
        /// The torrent.
        info_hash: NodeId,
        /// The port to announce; with `implied_port`, the datagram's source port instead.
        port: u16,
        /// Take the datagram's source port, not `port`.
        implied_port: bool,
        /// The token from the responder's earlier `get_peers` answer.
        token: Vec<u8>,
    },
    /// A method we do not know: answered with error 204.
    Unknown(String),
}

/// A query with its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryMessage {
    /// `t`: the query's, echoed in its answer.
    pub transaction: Vec<u8>,
    /// The querier's node id.
    pub id: NodeId,
    /// The method and its arguments.
    pub query: Query,
    /// BEP 32 `want`.
    pub want: Want,
    /// BEP 43: the querier answers no queries; it must not enter routing tables.
    pub read_only: bool,
}

impl QueryMessage {
    /// A query with no `want` and not read-only.
    pub fn new(transaction: Vec<u8>, id: NodeId, query: Query) -> Self {
        Self {
            transaction,
            id,
            query,
            want: Want::default(),
            read_only: false,
        }
    }
}

/// A response (`y` = `r`); which fields are set depends on the query it answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// `t`: the query's, echoed in its answer.
    pub transaction: Vec<u8>,
    /// The responder's node id.
    pub id: Option<NodeId>,
    /// IPv4 nodes (`nodes`) and IPv6 nodes (`nodes6`).
    pub nodes: Vec<CompactNode>,
    /// IPv6 nodes (`nodes6`).
    pub nodes6: Vec<CompactNode>,
    /// Peers for `get_peers`.
    pub values: Vec<SocketAddr>,
    /// For a later `announce_peer` to the responder.
    pub token: Option<Vec<u8>>,
    /// BEP 42: the address the responder saw us at.
    pub ip: Option<SocketAddr>,
}

/// An error (`y` = `e`): code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMessage {
    /// `t`: the query's, echoed in its answer.
    pub transaction: Vec<u8>,
    /// 201 generic, 202 server, 203 protocol, 204 method unknown.
    pub code: i64,
    /// The text, cut to 256 bytes.
    pub text: String,
}

/// One KRPC datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `y` = `q`.
    Query(QueryMessage),
    /// `y` = `r`.
    Response(Response),
    /// `y` = `e`.
    Error(ErrorMessage),
}

/// Why a datagram is not a KRPC message we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KrpcError {
    /// Longer than any datagram we read.
    #[error("datagram of {0} bytes is too long")]
    TooLong(usize),
    /// Not valid bencode.
    #[error("not bencode: {0}")]
    Bencode(String),
    /// A required field is missing, malformed or out of bounds.
    #[error("missing or malformed field `{0}`")]
    Field(&'static str),
    /// Not a dictionary, or `y` is none of `q`, `r`, `e`.
    #[error("unknown message type")]
    Type,
}

fn field<'a>(dict: &Dict<'a>, key: &'static str) -> Result<Value<'a>, KrpcError> {
    dict.get(key.as_bytes()).ok_or(KrpcError::Field(key))
}

fn bytes<'a>(dict: &Dict<'a>, key: &'static str) -> Result<&'a [u8], KrpcError> {
    field(dict, key)?.as_bytes().ok_or(KrpcError::Field(key))
}

/// A byte string that may be absent, but is malformed when present as anything else.
fn optional_bytes<'a>(dict: &Dict<'a>, key: &'static str) -> Result<Option<&'a [u8]>, KrpcError> {
    dict.get(key.as_bytes())
        .map(|value| value.as_bytes().ok_or(KrpcError::Field(key)))
        .transpose()
}

fn node_id(dict: &Dict<'_>, key: &'static str) -> Result<NodeId, KrpcError> {
    bytes(dict, key)?
        .try_into()
        .map(NodeId)
        .map_err(|_| KrpcError::Field(key))
}

fn bounded(value: &[u8], max: usize, key: &'static str) -> Result<Vec<u8>, KrpcError> {
    if value.len() > max {
        return Err(KrpcError::Field(key));
    }
    Ok(value.to_vec())
}

/// A compact address: 6 bytes (IPv4) or 18 (IPv6).
fn compact_addr(raw: &[u8]) -> Option<SocketAddr> {
    let (ip, port): (IpAddr, &[u8]) = match raw.len() {
        6 => (
            Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).into(),
            &raw[4..],
        ),
        18 => {
            let octets: [u8; 16] = raw[..16].try_into().ok()?;
            (Ipv6Addr::from(octets).into(), &raw[16..])
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]])))
}

fn put_compact_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Compact nodes: 26 bytes each (IPv4) or 38 (IPv6); a length that is not a multiple is
/// malformed.
fn compact_nodes(raw: &[u8], v6: bool, key: &'static str) -> Result<Vec<CompactNode>, KrpcError> {
    let size = if v6 { 38 } else { 26 };
    if !raw.len().is_multiple_of(size) {
        return Err(KrpcError::Field(key));
    }
    raw.chunks_exact(size)
        .map(|chunk| {
            let id: [u8; 20] = chunk[..20].try_into().map_err(|_| KrpcError::Field(key))?;
            let addr = compact_addr(&chunk[20..]).ok_or(KrpcError::Field(key))?;
            Ok(CompactNode {
                id: NodeId(id),
                addr,
            })
        })
        .collect()
}

fn put_compact_nodes(nodes: &[CompactNode]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nodes.len() * 38);
    for node in nodes {
        out.extend_from_slice(&node.id.0);
        put_compact_addr(&mut out, node.addr);
    }
    out
}

impl Message {
    /// Reads one datagram. Unknown keys are ignored; every kept field is bounded.
    pub fn decode(datagram: &[u8]) -> Result<Self, KrpcError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(KrpcError::TooLong(datagram.len()));
        }
        let value = bencode::decode(datagram).map_err(|e| KrpcError::Bencode(e.to_string()))?;
        let dict = value.as_dict().ok_or(KrpcError::Type)?;
        let transaction = bounded(bytes(&dict, "t")?, MAX_TRANSACTION_ID, "t")?;
        match bytes(&dict, "y")? {
            b"q" => decode_query(&dict, transaction).map(Message::Query),
            b"r" => decode_response(&dict, transaction).map(Message::Response),
            b"e" => decode_error(&dict, transaction).map(Message::Error),
            _ => Err(KrpcError::Type),
        }
    }

    /// The datagram.
    pub fn encode(&self) -> Vec<u8> {
        let mut dict = DictBuilder::new();
        match self {
            Message::Query(query) => {
                dict.insert("t", &query.transaction[..]).insert("y", "q");
                let mut args = DictBuilder::new();
                args.insert("id", &query.id.0[..]);
                let method = match &query.query {
                    Query::Ping => "ping",
                    Query::FindNode { target } => {
                        args.insert("target", &target.0[..]);
                        "find_node"
                    }
                    Query::GetPeers { info_hash } => {
                        args.insert("info_hash", &info_hash.0[..]);
                        "get_peers"
                    }
                    Query::AnnouncePeer {
                        info_hash,
                        port,
                        implied_port,
                        token,
                    } => {
                        args.insert("info_hash", &info_hash.0[..])
                            .insert("port", u32::from(*port))
                            .insert("token", &token[..]);
                        if *implied_port {
                            args.insert("implied_port", 1i64);
                        }
                        "announce_peer"
                    }
                    Query::Unknown(method) => method.as_str(),
                };
                let want: Vec<&str> = [(query.want.n4, "n4"), (query.want.n6, "n6")]
                    .into_iter()
                    .filter_map(|(on, name)| on.then_some(name))
                    .collect();
                if !want.is_empty() {
                    args.insert("want", want);
                }
                dict.insert("q", method).insert("a", args);
                if query.read_only {
                    dict.insert("ro", 1i64);
                }
            }
            Message::Response(response) => {
                dict.insert("t", &response.transaction[..]).insert("y", "r");
                let mut r = DictBuilder::new();
                if let Some(id) = &response.id {
                    r.insert("id", &id.0[..]);
                }
                if !response.nodes.is_empty() {
                    r.insert("nodes", &put_compact_nodes(&response.nodes)[..]);
                }
                if !response.nodes6.is_empty() {
                    r.insert("nodes6", &put_compact_nodes(&response.nodes6)[..]);
                }
                if !response.values.is_empty() {
                    let values: Vec<Vec<u8>> = response
                        .values
                        .iter()
                        .map(|&addr| {
                            let mut out = Vec::with_capacity(18);
                            put_compact_addr(&mut out, addr);
                            out
                        })
                        .collect();
                    let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
                    r.insert("values", values);
                }
                if let Some(token) = &response.token {
                    r.insert("token", &token[..]);
                }
                dict.insert("r", r);
                if let Some(ip) = response.ip {
                    let mut out = Vec::with_capacity(18);
                    put_compact_addr(&mut out, ip);
                    dict.insert("ip", &out[..]);
                }
            }
            Message::Error(error) => {
                dict.insert("t", &error.transaction[..])
                    .insert("y", "e")
                    .insert(
                        "e",
                        vec![
                            bencode::OwnedValue::Int(error.code),
                            bencode::OwnedValue::Bytes(error.text.as_bytes().to_vec()),
                        ],
                    );
            }
        }
        dict.to_bencode()
    }
}

fn decode_query(dict: &Dict<'_>, transaction: Vec<u8>) -> Result<QueryMessage, KrpcError> {
    let method = bytes(dict, "q")?;
    let args = field(dict, "a")?.as_dict().ok_or(KrpcError::Field("a"))?;
    let id = node_id(&args, "id")?;
    let query = match method {
        b"ping" => Query::Ping,
        b"find_node" => Query::FindNode {
            target: node_id(&args, "target")?,
        },
        b"get_peers" => Query::GetPeers {
            info_hash: node_id(&args, "info_hash")?,
        },
        b"announce_peer" => {
            let port = field(&args, "port")?
                .as_int()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or(KrpcError::Field("port"))?;
            let implied_port = args
                .get(b"implied_port")
                .and_then(|v| v.as_int())
                .is_some_and(|v| v != 0);
            Query::AnnouncePeer {
                info_hash: node_id(&args, "info_hash")?,
                port,
                implied_port,
                token: bounded(bytes(&args, "token")?, MAX_TOKEN, "token")?,
            }
        }
        other => Query::Unknown(text_within(other, MAX_METHOD)),
    };
    let mut want = Want::default();
    if let Some(list) = args.get(b"want").and_then(|v| v.as_list()) {
        for item in list.iter().take(8) {
            match item.as_bytes() {
                Some(b"n4") => want.n4 = true,
                Some(b"n6") => want.n6 = true,
                _ => {}
            }
        }
    }
    let read_only = dict
        .get(b"ro")
        .and_then(|v| v.as_int())
        .is_some_and(|v| v == 1);
    Ok(QueryMessage {
        transaction,
        id,
        query,
        want,
        read_only,
    })
}

fn decode_response(dict: &Dict<'_>, transaction: Vec<u8>) -> Result<Response, KrpcError> {
    let r = field(dict, "r")?.as_dict().ok_or(KrpcError::Field("r"))?;
    let id = Some(node_id(&r, "id")?);
    let nodes = optional_bytes(&r, "nodes")?
        .map_or(Ok(Vec::new()), |raw| compact_nodes(raw, false, "nodes"))?;
    let nodes6 = optional_bytes(&r, "nodes6")?
        .map_or(Ok(Vec::new()), |raw| compact_nodes(raw, true, "nodes6"))?;
    let mut values = Vec::new();
    if let Some(list) = r.get(b"values") {
        let list = list.as_list().ok_or(KrpcError::Field("values"))?;
        for item in list.iter().take(MAX_VALUES) {
            // A malformed entry is skipped: the rest may be good.
            if let Some(addr) = item.as_bytes().and_then(compact_addr) {
                values.push(addr);
            }
        }
    }
    let token = optional_bytes(&r, "token")?
        .map(|raw| bounded(raw, MAX_TOKEN, "token"))
        .transpose()?;
    let ip = dict
        .get(b"ip")
        .and_then(|v| v.as_bytes())
        .and_then(compact_addr);
    Ok(Response {
        transaction,
        id,
        nodes,
        nodes6,
        values,
        token,
        ip,
    })
}

fn decode_error(dict: &Dict<'_>, transaction: Vec<u8>) -> Result<ErrorMessage, KrpcError> {
    let list = field(dict, "e")?.as_list().ok_or(KrpcError::Field("e"))?;
    let mut items = list.iter();
    let code = items
        .next()
        .and_then(|v| v.as_int())
        .ok_or(KrpcError::Field("e"))?;
    let text = items
        .next()
        .and_then(|v| v.as_bytes())
        .map(|t| text_within(t, MAX_ERROR_TEXT))
        .unwrap_or_default();
    Ok(ErrorMessage {
        transaction,
        code,
        text,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bep5_examples_decode() {
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        let Message::Query(query) = Message::decode(ping).unwrap() else {
            panic!("not a query");
        };
        assert_eq!(query.query, Query::Ping);
        assert_eq!(query.id, NodeId(*b"abcdefghij0123456789"));
        assert_eq!(query.transaction, b"aa");
        let announce = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
        let Message::Query(query) = Message::decode(announce).unwrap() else {
            panic!("not a query");
        };
        assert_eq!(
            query.query,
            Query::AnnouncePeer {
                info_hash: NodeId(*b"mnopqrstuvwxyz123456"),
                port: 6881,
                implied_port: false,
                token: b"aoeusnth".to_vec(),
            }
        );
        let error = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
        assert_eq!(
            Message::decode(error).unwrap(),
            Message::Error(ErrorMessage {
                transaction: b"aa".to_vec(),
                code: 201,
                text: "A Generic Error Ocurred".into(),
            })
        );
    }

    #[test]
    fn round_trips() {
        let node = |n: u8, addr: &str| CompactNode {
            id: NodeId([n; 20]),
            addr: addr.parse().unwrap(),
        };
        let messages = [
            Message::Query(QueryMessage {
                transaction: b"xy".to_vec(),
                id: NodeId([7; 20]),
                query: Query::GetPeers {
                    info_hash: NodeId([9; 20]),
                },
                want: Want { n4: true, n6: true },
                read_only: true,
            }),
            Message::Query(QueryMessage::new(
                b"z".to_vec(),
                NodeId([1; 20]),
                Query::AnnouncePeer {
                    info_hash: NodeId([2; 20]),
                    port: 0,
                    implied_port: true,
                    token: vec![1, 2, 3, 4],
                },
            )),
            Message::Response(Response {
                transaction: b"xy".to_vec(),
                id: Some(NodeId([3; 20])),
                nodes: vec![node(4, "198.18.0.1:6881"), node(5, "198.18.0.2:1")],
                nodes6: vec![node(6, "[fd00::1]:6881")],
                values: vec![
                    "198.18.0.9:51413".parse().unwrap(),
                    "[::1]:2".parse().unwrap(),
                ],
                token: Some(b"tok".to_vec()),
                ip: Some("198.18.0.3:4000".parse().unwrap()),
            }),
        ];
        for message in messages {
            assert_eq!(Message::decode(&message.encode()).unwrap(), message);
        }
    }

    #[test]
    fn rejects_and_bounds_hostile_datagrams() {
        assert_eq!(
            Message::decode(&[b'x'; MAX_DATAGRAM + 1]),
            Err(KrpcError::TooLong(MAX_DATAGRAM + 1))
        );
        assert!(matches!(
            Message::decode(b"d1:y"),
            Err(KrpcError::Bencode(_))
        ));
        assert_eq!(Message::decode(b"d1:t2:aa1:y1:xe"), Err(KrpcError::Type));
        // A node id of 19 bytes, nodes of a length that is no multiple of 26.
        assert_eq!(
            Message::decode(b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe"),
            Err(KrpcError::Field("id"))
        );
        assert_eq!(
            Message::decode(b"d1:rd2:id20:abcdefghij01234567895:nodes3:abce1:t2:aa1:y1:re"),
            Err(KrpcError::Field("nodes"))
        );
        let long_t = format!("d1:t17:{}1:y1:re", "a".repeat(17));
        assert_eq!(
            Message::decode(long_t.as_bytes()),
            Err(KrpcError::Field("t"))
        );
        // An unknown method is kept for an error answer, its name cut short.
        let unknown = format!(
            "d1:ad2:id20:abcdefghij0123456789e1:q40:{}1:t2:aa1:y1:qe",
            "m".repeat(40)
        );
        let Ok(Message::Query(query)) = Message::decode(unknown.as_bytes()) else {
            panic!("not a query");
        };
        assert_eq!(query.query, Query::Unknown("m".repeat(32)));
    }
}
