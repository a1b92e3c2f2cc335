//! Finds peers of a torrent through the DHT, driving the sans-IO node with a blocking UDP socket.
//!
//! usage: get_peers INFO_HASH_HEX [ROUTER:PORT ...] (default router.bittorrent.com:6881 and
//! dht.transmissionbt.com:6881). Stops after 30 s, or once a lookup has ended with peers.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use cratetorrent_dht::{Config, Dht, Event, LookupKind, NodeId};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let hex = args
        .next()
        .ok_or("usage: get_peers INFO_HASH_HEX [ROUTER:PORT ...]")?;
    if hex.len() != 40 {
        return Err("the info-hash is 40 hex digits".into());
    }
    let mut info_hash = [0u8; 20];
    for (i, byte) in info_hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16)?;
    }
    let mut routers: Vec<String> = args.collect();
    if routers.is_empty() {
        routers = vec![
            "router.bittorrent.com:6881".into(),
            "dht.transmissionbt.com:6881".into(),
        ];
    }
    let bootstrap: Vec<SocketAddr> = routers
        .iter()
        .filter_map(|r| r.to_socket_addrs().ok())
        .flatten()
        .filter(SocketAddr::is_ipv4)
        .collect();
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    let start = Instant::now();
    let seed = u64::from(start.elapsed().subsec_nanos()) ^ u64::from(std::process::id());
    let mut dht = Dht::new(
        Config {
            bootstrap,
            ..Config::default()
        },
        start,
        seed,
    );
    let target = NodeId(info_hash);
    let mut searching = false;
    let mut found = 0;
    let mut buf = [0; 1500];
    while start.elapsed() < Duration::from_secs(30) {
        while let Some(t) = dht.poll_transmit() {
            socket.send_to(&t.datagram, t.to)?;
        }
        while let Some(event) = dht.poll_event() {
            match event {
                Event::Peers { peers, .. } => {
                    found += peers.len();
                    for peer in peers {
                        println!("{peer}");
                    }
                }
                Event::LookupDone {
                    kind: LookupKind::GetPeers,
                    queried,
                    ..
                } => {
                    eprintln!("lookup done: {queried} nodes asked, {found} peers");
                    if found > 0 {
                        return Ok(());
                    }
                    searching = false;
                }
                Event::LookupDone { .. } => {}
            }
        }
        if !searching && dht.stats().nodes_v4 >= 8 {
            dht.get_peers(target, Instant::now());
            searching = true;
        }
        let wait = dht.poll_timeout().saturating_duration_since(Instant::now());
        socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => dht.handle_datagram(Instant::now(), from, &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                dht.handle_timeout(Instant::now());
            }
            Err(e) => return Err(e.into()),
        }
    }
    eprintln!("30 s elapsed: {found} peers, {:?}", dht.stats());
    Ok(())
}
