//! A DHT node fed hostile datagrams from a few addresses, with time passing: it never panics,
//! and its queues stay within their bounds.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cratetorrent_dht::{Config, Dht};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let router: SocketAddr = "10.1.0.1:6881".parse().expect("literal");
    let config = Config {
        bootstrap: vec![router],
        ..Config::default()
    };
    let mut dht = Dht::new(config, start, 7);
    let mut now = start;
    let mut rest = data;
    // Each record: one byte picking the sender and the time step, one length byte, the datagram.
    while let [pick, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        let from = SocketAddr::new([10, 1 + (pick & 3), 0, 1].into(), 6881);
        now += Duration::from_millis(u64::from(pick >> 2) * 50);
        dht.handle_datagram(now, from, datagram);
        if dht.poll_timeout() <= now {
            dht.handle_timeout(now);
        }
        while dht.poll_transmit().is_some() {}
        while dht.poll_event().is_some() {}
        let stats = dht.stats();
        assert!(stats.pending <= 1024 && stats.lookups <= 256);
    }
});
