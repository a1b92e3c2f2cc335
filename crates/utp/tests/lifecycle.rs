//! Connections opening, failing, ending and being reset; strangers' packets; cross traffic
//! that LEDBAT must yield to.

mod sim;

use std::time::Duration;

use cratetorrent_utp::{CloseReason, Config, Endpoint, Event, Header, Packet, PacketType};
use sim::{Link, Net, Receiver, Sender};

const MB: u64 = 1_000_000;

fn closed(events: &[Event]) -> Option<CloseReason> {
    events.iter().find_map(|e| match e {
        Event::Closed(_, reason) => Some(*reason),
        _ => None,
    })
}

#[test]
fn a_refused_connection_is_reset_and_an_unanswered_one_times_out() {
    let refusing = Config {
        accept: false,
        ..Config::default()
    };
    let mut net = Net::new(2, Link::new(20, 10 * MB), refusing, 1);
    let to = net.addr(1);
    net.hosts[0].endpoint.connect(to, net.now).unwrap();
    let until = net.now + Duration::from_secs(1);
    while net.step(until) {}
    assert_eq!(closed(&net.take_events(0)), Some(CloseReason::Reset));

    // Every datagram lost: the SYN is sent three times, then the attempt fails.
    let lossy = Link {
        loss: 1.0,
        ..Link::new(20, 10 * MB)
    };
    let mut net = Net::new(2, lossy, Config::default(), 2);
    let to = net.addr(1);
    let start = net.now;
    net.hosts[0].endpoint.connect(to, net.now).unwrap();
    while net.step(start + Duration::from_secs(60)) {
        if closed(&net.hosts[0].events).is_some() {
            break;
        }
    }
    assert_eq!(closed(&net.take_events(0)), Some(CloseReason::TimedOut));
    assert_eq!(net.dropped, 3);
    assert!(
        net.now - start <= Duration::from_secs(8),
        "{:?}",
        net.now - start
    );
    assert!(net.hosts[0].endpoint.is_empty());
}

#[test]
fn an_aborted_connection_resets_the_peer_and_a_vanished_peer_times_out() {
    let mut net = Net::new(2, Link::new(20, 10 * MB), Config::default(), 3);
    let to = net.addr(1);
    let handle = net.hosts[0].endpoint.connect(to, net.now).unwrap();
    let until = net.now + Duration::from_secs(1);
    while net.step(until) {}
    net.hosts[0].endpoint.abort(handle);
    let until = net.now + Duration::from_secs(1);
    while net.step(until) {}
    assert_eq!(closed(&net.take_events(0)), Some(CloseReason::Aborted));
    assert_eq!(closed(&net.take_events(1)), Some(CloseReason::Reset));
    assert!(net.hosts[0].endpoint.is_empty() && net.hosts[1].endpoint.is_empty());

    // A connection whose peer goes silent mid-stream: timeouts back off, then it gives up.
    let mut net = Net::new(2, Link::new(20, 10 * MB), Config::default(), 4);
    let to = net.addr(1);
    let handle = net.hosts[0].endpoint.connect(to, net.now).unwrap();
    let mut sender = Sender::new(handle, 10 * MB);
    // Still in slow start, the receiver's window not yet full: packets in flight.
    let until = net.now + Duration::from_millis(100);
    while net.step(until) {
        sender.pump(&mut net.hosts[0].endpoint);
    }
    net.set_link(
        0,
        1,
        Link {
            loss: 1.0,
            ..Link::new(20, 10 * MB)
        },
    );
    let start = net.now;
    while net.step(start + Duration::from_secs(300)) {
        if closed(&net.hosts[0].events).is_some() {
            break;
        }
    }
    assert_eq!(closed(&net.take_events(0)), Some(CloseReason::TimedOut));
    // 0.5 + 1 + 2 + 4 + 8 + 16 + 32 s at most, from a 500 ms first timeout.
    assert!(
        net.now - start < Duration::from_secs(70),
        "{:?}",
        net.now - start
    );
}

#[test]
fn strangers_get_a_bounded_number_of_resets_and_syns_a_bounded_number_of_connections() {
    let now = std::time::Instant::now();
    let config = Config {
        max_connections: 10,
        ..Config::default()
    };
    let mut endpoint = Endpoint::new(config, now, 9);
    let mut rng = fastrand::Rng::with_seed(5);
    let mut buf = [0u8; 1500];
    for i in 0..1000u16 {
        let from = format!("10.9.{}.{}:{}", i % 7, i % 200, 1000 + i)
            .parse()
            .unwrap();
        let kind = [PacketType::Syn, PacketType::Data, PacketType::State][usize::from(i % 3)];
        let header = Header {
            kind,
            connection_id: rng.u16(..),
            timestamp_us: rng.u32(..),
            timestamp_diff_us: rng.u32(..),
            window: rng.u32(..),
            seq: rng.u16(..),
            ack: rng.u16(..),
        };
        let len = header.write(None, &mut buf);
        let garbage = rng.usize(..64);
        for byte in &mut buf[len..len + garbage] {
            *byte = rng.u8(..);
        }
        endpoint
            .handle_datagram(now, from, &buf[..len + garbage])
            .unwrap();
        assert!(endpoint.handle_datagram(now, from, &buf[..7]).is_err());
    }
    assert_eq!(endpoint.len(), 10);
    let mut sent = 0;
    while endpoint.poll_transmit(now, &mut buf).is_some() {
        sent += 1;
    }
    // Ten answers to SYNs and at most 64 resets queued.
    assert!(sent <= 10 + 64, "{sent}");
}

#[test]
fn ledbat_yields_to_cross_traffic_that_fills_the_bottleneck_and_recovers_after() {
    // A 2.5 MB/s, 50 ms bottleneck with a 300 ms queue in front of host 1, shared by our flow
    // (from host 0) and a flow that does not back off (from host 2) for 10 s of the 30.
    let link = Link {
        queue: Duration::from_millis(300),
        ..Link::new(50, 2_500_000)
    };
    let mut net = Net::new(3, link, Config::default(), 11);
    net.shared_into = Some(1);
    let to = net.addr(1);
    let start = net.now;
    let handle = net.hosts[0].endpoint.connect(to, net.now).unwrap();
    let mut sender = Sender::new(handle, 1 << 40);
    sender.pump(&mut net.hosts[0].endpoint);
    let mut receiver = Receiver::default();
    let cross_from = start + Duration::from_secs(10);
    let cross_to = start + Duration::from_secs(20);
    let mut next_cross = cross_from;
    let until = start + Duration::from_secs(30);
    loop {
        // The cross flow: 1,400-byte datagrams at the link's rate.
        let step_until = if net.now < cross_to {
            next_cross.min(until)
        } else {
            until
        };
        let more = net.step(step_until);
        while net.now >= next_cross && next_cross < cross_to {
            net.send(2, 1, vec![b'x'; 1400]);
            next_cross += Duration::from_micros(560);
        }
        for event in net.take_events(0) {
            if let Event::Writable(_) | Event::Connected(_) = event {
                sender.pump(&mut net.hosts[0].endpoint);
            }
        }
        for event in net.take_events(1) {
            if let Event::Readable(h) = event {
                let now = net.now;
                receiver.pump(&mut net.hosts[1].endpoint, h, now);
            }
        }
        if !more && net.now >= until {
            break;
        }
    }
    let read_by = |at: std::time::Instant| {
        receiver
            .progress
            .iter()
            .take_while(|(t, _)| *t <= at)
            .last()
            .map_or(0, |(_, read)| *read)
    };
    let rate = |from: u64, to: u64| {
        let (a, b) = (
            start + Duration::from_secs(from),
            start + Duration::from_secs(to),
        );
        (read_by(b) - read_by(a)) as f64 / (to - from) as f64 / 2_500_000.0
    };
    let (before, during, after) = (rate(3, 10), rate(12, 20), rate(25, 30));
    println!("share of the link before {before:.3}, during {during:.3}, after {after:.3}");
    assert!(before > 0.9, "{before}");
    assert!(during < 0.25, "{during}");
    assert!(after > 0.9, "{after}");
}

#[test]
fn a_peer_that_holds_back_its_ack_gets_one_tail_probe_not_a_stream_of_them() {
    // libutp under Transmission acknowledges a lone packet only with its own data, a couple
    // of hundred milliseconds later; a probe every two round trips would resend it dozens of
    // times, and shrinking the window at each would starve the connection.
    let start = std::time::Instant::now();
    let mut endpoint = Endpoint::new(Config::default(), start, 11);
    let peer = "10.0.0.2:6881".parse().unwrap();
    let handle = endpoint.connect(peer, start).unwrap();
    let mut buf = [0u8; 1500];
    let syn = endpoint.poll_transmit(start, &mut buf).unwrap();
    let syn = Packet::parse(&buf[..syn.len]).unwrap().header;
    // The SYN answered after a 20 ms round trip.
    let now = start + Duration::from_millis(20);
    let state = Header {
        kind: PacketType::State,
        connection_id: syn.connection_id,
        timestamp_us: 0,
        timestamp_diff_us: 0,
        window: 1 << 20,
        seq: 7,
        ack: syn.seq,
    };
    let len = state.write(None, &mut buf);
    endpoint.handle_datagram(now, peer, &buf[..len]).unwrap();
    assert_eq!(endpoint.write(handle, &[1; 300]), Ok(300));
    // Nothing comes back for 490 ms (just short of the retransmission timeout).
    let mut sends = Vec::new();
    let mut now = now;
    let until = now + Duration::from_millis(490);
    loop {
        while let Some(t) = endpoint.poll_transmit(now, &mut buf) {
            let packet = Packet::parse(&buf[..t.len]).unwrap();
            if packet.header.kind == PacketType::Data {
                sends.push(now - start);
            }
        }
        match endpoint.poll_timeout() {
            Some(at) if at <= until => {
                now = now.max(at);
                endpoint.handle_timeout(now);
            }
            _ => break,
        }
    }
    // The packet and one probe, the probe after the peer's allowed delay.
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert!(
        sends[1] - sends[0] >= Duration::from_millis(200),
        "{sends:?}"
    );
}

#[test]
fn an_unreachable_address_fails_a_dial_at_once_but_not_an_established_connection() {
    let mut net = Net::new(3, Link::new(20, 10 * MB), Config::default(), 12);
    let (to_one, to_two) = (net.addr(1), net.addr(2));
    // Established with host 1; then a second dial there and one to host 2, unanswered yet.
    let established = net.hosts[0].endpoint.connect(to_one, net.now).unwrap();
    let until = net.now + Duration::from_millis(100);
    while net.step(until) {}
    net.take_events(0);
    let dialling = net.hosts[0].endpoint.connect(to_one, net.now).unwrap();
    let other = net.hosts[0].endpoint.connect(to_two, net.now).unwrap();
    net.hosts[0].endpoint.unreachable(to_one);
    while let Some(event) = net.hosts[0].endpoint.poll_event() {
        net.hosts[0].events.push(event);
    }
    let events = net.take_events(0);
    assert!(
        events.contains(&Event::Closed(dialling, CloseReason::Unreachable)),
        "{events:?}"
    );
    assert_eq!(events.len(), 1, "{events:?}");
    // The established connection still carries data; the other dial still connects.
    assert_eq!(
        net.hosts[0].endpoint.write(established, b"still here"),
        Ok(10)
    );
    let until = net.now + Duration::from_millis(200);
    while net.step(until) {}
    let events = net.take_events(0);
    assert!(events.contains(&Event::Connected(other)), "{events:?}");
    assert_eq!(net.hosts[1].endpoint.len(), 1);
}
