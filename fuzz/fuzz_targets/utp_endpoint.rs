//! A uTP endpoint fed hostile packets on a connection it accepted or dialled (and strangers'
//! datagrams, and ICMP errors for the peer), with time passing and the application reading and
//! writing: it never panics and its buffers stay within their bounds.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cratetorrent_utp::{Config, Endpoint, Event, Packet};
use libfuzzer_sys::fuzz_target;

const ID: u16 = 0x4242;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let peer: SocketAddr = "10.1.0.1:6881".parse().expect("literal");
    let config = Config {
        receive_window: 64 * 1024,
        send_buffer: 64 * 1024,
        max_connections: 4,
        ..Config::default()
    };
    let mut endpoint = Endpoint::new(config, start, 7);
    let mut now = start;
    let mut buf = [0u8; 1500];
    let mut datagram = [0u8; 1500];
    let mut handles = Vec::new();
    // The first byte: whether we dial the peer rather than wait for its SYN.
    let Some((mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut dialled_id = None;
    if mode & 1 == 1 {
        if let Ok(handle) = endpoint.connect(peer, now) {
            handles.push(handle);
        }
        // Our SYN carries the id the peer's packets must name.
        if endpoint.poll_transmit(now, &mut buf).is_some() {
            dialled_id = Some(u16::from_be_bytes([buf[2], buf[3]]));
        }
    }
    // Each record: a byte of flags and time step, a length byte, the datagram (its connection
    // id made the connection's for most, so the packets reach its state machine; an empty one
    // is an ICMP "unreachable" for the peer).
    while let [pick, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_millis(u64::from(pick >> 3) * 20);
        let datagram = &mut datagram[..len];
        datagram.copy_from_slice(body);
        if len == 0 && pick & 1 == 0 {
            endpoint.unreachable(peer);
        } else if len >= 4 && pick & 1 == 0 {
            // Type and version of a SYN on the first record, the connection's id after.
            if let Some(id) = dialled_id {
                datagram[2..4].copy_from_slice(&id.to_be_bytes());
            } else if handles.is_empty() {
                datagram[0] = 0x41;
                datagram[2..4].copy_from_slice(&ID.to_be_bytes());
            } else {
                datagram[2..4].copy_from_slice(&ID.wrapping_add(1).to_be_bytes());
            }
        }
        let _ = Packet::parse(datagram);
        let _ = endpoint.handle_datagram(now, peer, datagram);
        if endpoint.poll_timeout().is_some_and(|t| t <= now) {
            endpoint.handle_timeout(now);
        }
        while let Some(event) = endpoint.poll_event() {
            if let Event::Incoming(handle, _) = event {
                handles.push(handle);
            }
        }
        for &handle in &handles {
            if pick & 2 != 0 {
                let _ = endpoint.write(handle, &buf[..(len * 5).min(buf.len())]);
            }
            if pick & 4 != 0 {
                let mut sink = [0u8; 4096];
                while let Ok(1..) = endpoint.read(handle, &mut sink) {}
            }
            if let Some(stats) = endpoint.stats(handle) {
                assert!(stats.buffered <= 64 * 1024);
            }
        }
        while endpoint.poll_transmit(now, &mut buf).is_some() {}
        assert!(endpoint.len() <= 4);
    }
});
