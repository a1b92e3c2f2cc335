//! The large swarm simulation: one seed and (by default) 2,000 leechers on links of 1–20 MB/s
//! and 10–200 ms, in simulated time. Prints the completion-time distribution and how much the
//! seed uploaded.
//!
//! ```text
//! cargo run --release -p cratetorrent --features sim --example swarm_sim -- [LEECHERS] [PIECES] [SEED]
//! ```

// Command-line counts and link rates in MB/s are small; their casts cannot truncate.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use std::time::{Duration, Instant};

use cratetorrent::sim::{HostSpec, Link, Sim};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut arg = |default: u64| args.next().and_then(|a| a.parse().ok()).unwrap_or(default);
    let (leechers, pieces, seed) = (arg(2000) as usize, arg(2000) as u32, arg(1));
    let piece_length = 16 * 1024;
    let Some(metainfo) = Sim::torrent(pieces, piece_length) else {
        eprintln!("cannot make a torrent of {pieces} pieces");
        std::process::exit(2);
    };
    let link = |up_mb: f64, down_mb: f64, rtt_ms: u64| Link {
        up: (up_mb * 1e6) as u64,
        down: (down_mb * 1e6) as u64,
        delay: Duration::from_millis(rtt_ms) / 4,
        loss: 0.0,
    };
    let mut sim = Sim::new(metainfo, seed);
    let seeder = sim.add_host(HostSpec::new(link(1.0, 20.0, 50), true), Duration::ZERO);
    let hosts: Vec<usize> = (0..leechers)
        .map(|_| {
            let rate = 1.0 + sim.rng().f64() * 19.0;
            let rtt = 10 + sim.rng().u64(..=190);
            let join = Duration::from_millis(sim.rng().u64(..5000));
            sim.add_host(HostSpec::new(link(rate, rate, rtt), false), join)
        })
        .collect();
    let started = Instant::now();
    while !hosts.iter().all(|&h| sim.completed_at(h).is_some()) {
        if sim.elapsed() > Duration::from_secs(3600) {
            eprintln!("not complete after an hour of simulated time");
            std::process::exit(1);
        }
        sim.run_for(Duration::from_secs(1));
    }
    let mut times: Vec<Duration> = hosts.iter().filter_map(|&h| sim.completed_at(h)).collect();
    times.sort();
    let at = |p: usize| times[(times.len() - 1) * p / 100];
    let total = f64::from(pieces) * f64::from(piece_length);
    println!(
        "1 seed -> {leechers} leechers, {pieces} pieces of 16 KiB: completion p0 {:.1?} p10 {:.1?} \
         p50 {:.1?} p90 {:.1?} p100 {:.1?}; the seed uploaded {:.2}x the payload; {} events, \
         {:.1?} simulated in {:.1?}",
        at(0),
        at(10),
        at(50),
        at(90),
        at(100),
        sim.traffic(seeder).0 as f64 / total,
        sim.events(),
        sim.elapsed(),
        started.elapsed()
    );
}
