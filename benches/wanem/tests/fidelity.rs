//! The emulator's own fidelity (about 30 s): a plain TCP connection across one emulated link
//! sees the configured round trip and rate within 5 %, and the forwarder's capacity over
//! perfect links is printed. Needs root (network namespaces).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cratetorrent_wanem::{HostConf, LinkConf, Wan, measure};

#[test]
#[ignore = "needs reference peers"]
fn one_link_gives_its_round_trip_and_rate() {
    let link = LinkConf {
        delay: Duration::from_millis(10),
        rate: 10_000_000,
        queue: 400_000,
        ..LinkConf::default()
    };
    let wan = match Wan::start(&[HostConf::symmetric(link), HostConf::symmetric(link)], 1) {
        Ok(wan) => wan,
        Err(error) => panic!("{error} (the emulator needs root and /dev/net/tun)"),
    };
    let measured = measure::tcp(&wan, 0, 1, 10.0).unwrap();
    let counters = wan.stop().unwrap();
    let rtt = measured.rtt.as_secs_f64() / 0.040;
    let goodput = measured.throughput / (10e6 * measure::PAYLOAD_PER_PACKET);
    println!(
        "one link, RTT 40 ms, 10 MB/s: measured {:.2} ms, {:.3} MB/s of payload; {counters:?}",
        measured.rtt.as_secs_f64() * 1e3,
        measured.throughput / 1e6
    );
    assert!((rtt - 1.0).abs() <= 0.05, "round trip {:?}", measured.rtt);
    assert!(
        (goodput - 1.0).abs() <= 0.05,
        "throughput {}",
        measured.throughput
    );

    let perfect = Wan::start(&[HostConf::default(), HostConf::default()], 1).unwrap();
    let capacity = measure::tcp(&perfect, 0, 1, 5.0).unwrap();
    println!(
        "the forwarder's capacity: {:.2} Gbit/s of TCP payload, round trip {:.3} ms",
        capacity.throughput * 8.0 / 1e9,
        capacity.rtt.as_secs_f64() * 1e3
    );
}
