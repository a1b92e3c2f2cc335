//! Transfers between two endpoints over links in memory: byte-identical streams through
//! loss, reordering and small windows; LEDBAT's use of a long link and of its queue.

mod sim;

use std::time::Duration;

use cratetorrent_utp::Config;
use sim::{Link, Net, transfer};

const MB: u64 = 1_000_000;

#[test]
fn a_stream_arrives_whole_on_a_clean_link() {
    let mut net = Net::new(2, Link::new(10, 100 * MB), Config::default(), 1);
    let (received, start) = transfer(&mut net, 5 * MB, Duration::from_secs(30));
    assert!(received.eof);
    assert_eq!(received.read, 5 * MB);
    assert_eq!(net.dropped, 0);
    let took = received.last_byte.unwrap() - start;
    assert!(took < Duration::from_millis(500), "{took:?}");
}

#[test]
fn loss_and_reordering_still_deliver_every_byte_in_order() {
    let link = Link {
        loss: 0.02,
        jitter: Duration::from_millis(4),
        ..Link::new(40, 10 * MB)
    };
    let mut net = Net::new(2, link, Config::default(), 7);
    let (received, _) = transfer(&mut net, 4 * MB, Duration::from_secs(60));
    assert!(received.eof, "read {} bytes", received.read);
    assert_eq!(received.read, 4 * MB);
    assert!(net.dropped > 50);
}

#[test]
fn small_windows_on_both_ends_bound_the_flow_but_not_the_result() {
    let config = Config {
        receive_window: 8 * 1024,
        send_buffer: 16 * 1024,
        ..Config::default()
    };
    let mut net = Net::new(2, Link::new(20, 10 * MB), config, 3);
    let (received, _) = transfer(&mut net, MB, Duration::from_secs(60));
    assert!(received.eof);
    assert_eq!(received.read, MB);
}

#[test]
fn one_connection_fills_a_long_link_and_keeps_its_queue_near_the_target() {
    // 10 MB/s, 100 ms, a queue of up to a second: LEDBAT should use the link and hold about
    // 100 ms of it queued, not fill it.
    let mut net = Net::new(2, Link::new(100, 10 * MB), Config::default(), 5);
    let (received, _) = transfer(&mut net, 60 * MB, Duration::from_secs(60));
    assert!(received.eof);
    let first = received.first_byte.unwrap();
    let took = received.last_byte.unwrap() - first;
    let whole = received.read as f64 / took.as_secs_f64() / (10 * MB) as f64;
    // After slow start (which overshoots by up to a round trip's growth), the rate and the
    // queue LEDBAT keeps.
    let settled = first + Duration::from_secs(2);
    let steady = received.rate_since(settled) / (10 * MB) as f64;
    let queue = net
        .queue_0_to_1
        .iter()
        .filter(|(at, _)| *at > settled)
        .map(|(_, queued)| *queued)
        .max()
        .unwrap();
    let start_up = net.max_queue[0][1];
    println!(
        "utilisation {whole:.3} whole, {steady:.3} settled; queue at most {queue:?} settled, \
         {start_up:?} in all"
    );
    assert!(steady > 0.95, "{steady}");
    assert!(queue < Duration::from_millis(150), "{queue:?}");
    assert_eq!(net.dropped, 0);
}

#[test]
fn a_reader_that_stops_closes_the_window_which_is_probed_until_it_reads_again() {
    let config = Config {
        receive_window: 64 * 1024,
        ..Config::default()
    };
    let mut net = Net::new(2, Link::new(20, 10 * MB), config, 13);
    let to = net.addr(1);
    let handle = net.hosts[0].endpoint.connect(to, net.now).expect("connect");
    let mut sender = sim::Sender::new(handle, MB);
    sender.pump(&mut net.hosts[0].endpoint);
    // Five seconds in which host 1 accepts but never reads: the window fills and closes.
    let mut incoming = None;
    let pause = net.now + Duration::from_secs(5);
    while net.step(pause) {
        for event in net.take_events(1) {
            if let cratetorrent_utp::Event::Incoming(h, _) = event {
                incoming = Some(h);
            }
        }
        for event in net.take_events(0) {
            if let cratetorrent_utp::Event::Writable(_) = event {
                sender.pump(&mut net.hosts[0].endpoint);
            }
        }
    }
    let incoming = incoming.expect("accepted");
    let stats = net.hosts[0].endpoint.stats(handle).expect("open");
    assert!(stats.peer_window < 1500, "{stats:?}");
    let delivered = net.delivered;
    // Then it reads everything.
    let mut receiver = sim::Receiver::default();
    let until = net.now + Duration::from_secs(30);
    while !receiver.eof && net.step(until) {
        let now = net.now;
        receiver.pump(&mut net.hosts[1].endpoint, incoming, now);
        for event in net.take_events(0) {
            if let cratetorrent_utp::Event::Writable(_) = event {
                sender.pump(&mut net.hosts[0].endpoint);
            }
        }
    }
    assert!(receiver.eof);
    assert_eq!(receiver.read, MB);
    assert!(net.delivered > delivered);
}
