#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use super::*;

fn addr(i: u32) -> SocketAddr {
    // One node per /24.
    SocketAddr::new(Ipv4Addr::from(0x0a00_0001 + (i << 8)).into(), 6881)
}

fn node(id: NodeId, i: u32) -> CompactNode {
    CompactNode { id, addr: addr(i) }
}

#[test]
fn splits_towards_own_id_and_answers_closest() {
    let mut rng = fastrand::Rng::with_seed(3);
    let now = Instant::now();
    let own = NodeId::random(&mut rng);
    let mut table = RoutingTable::new(own, true, now);
    let mut inserted = Vec::new();
    for i in 0..2000 {
        let id = NodeId::random(&mut rng);
        if table.seen(node(id, i), true, true, now) == Seen::Inserted {
            inserted.push(id);
        }
    }
    assert!(table.buckets() > 6, "{} buckets", table.buckets());
    assert!(table.len() <= K * table.buckets());
    assert_eq!(table.len(), inserted.len());
    // The deepest buckets are the full ones: about 8 nodes per level of depth.
    assert!(table.len() >= K * (table.buckets() - 2), "{}", table.len());
    let target = NodeId::random(&mut rng);
    let closest = table.closest(&target, 8, true);
    let mut expected = inserted.clone();
    expected.sort_by_key(|id| target.distance(id));
    let got: Vec<NodeId> = closest.iter().map(|n| n.id).collect();
    assert_eq!(got, expected[..8]);
}

#[test]
fn one_node_per_ip_and_per_subnet_in_a_bucket() {
    let mut rng = fastrand::Rng::with_seed(4);
    let now = Instant::now();
    let own = NodeId::random(&mut rng);
    let mut table = RoutingTable::new(own, true, now);
    let a = CompactNode {
        id: own.random_at_depth(0, &mut rng),
        addr: "1.2.3.4:1000".parse().unwrap(),
    };
    assert_eq!(table.seen(a, true, true, now), Seen::Inserted);
    let same_ip = CompactNode {
        id: own.random_at_depth(1, &mut rng),
        addr: "1.2.3.4:1001".parse().unwrap(),
    };
    assert_eq!(table.seen(same_ip, true, true, now), Seen::Rejected);
    let same_subnet = CompactNode {
        id: own.random_at_depth(0, &mut rng),
        addr: "1.2.3.5:1000".parse().unwrap(),
    };
    assert_eq!(table.seen(same_subnet, true, true, now), Seen::Rejected);
    // Another id at a known address is taken from that node's own answer only.
    let moved = CompactNode {
        id: own.random_at_depth(2, &mut rng),
        addr: a.addr,
    };
    assert_eq!(table.seen(moved, false, true, now), Seen::Rejected);
    assert_eq!(table.seen(a, true, true, now), Seen::Updated);
    assert_eq!(table.seen(moved, true, true, now), Seen::Inserted);
    assert_eq!(table.closest(&moved.id, 8, true), [moved]);
    assert_eq!(table.len(), 1);
    // Only nodes that answered us split the last bucket.
    for i in 0..20u8 {
        let near = CompactNode {
            id: own.random_at_depth(100, &mut rng),
            addr: SocketAddr::new([20, i, 0, 1].into(), 1),
        };
        table.seen(near, false, true, now);
    }
    assert_eq!(table.buckets(), 1, "unconfirmed nodes split nothing");
    // Until they answer.
    let near = CompactNode {
        id: own.random_at_depth(100, &mut rng),
        addr: SocketAddr::new([30, 0, 0, 1].into(), 1),
    };
    assert_ne!(table.seen(near, false, true, now), Seen::Rejected);
    assert_eq!(table.seen(near, true, true, now), Seen::Inserted);
    assert!(table.buckets() > 1);

    let mut open = RoutingTable::new(own, false, now);
    assert_eq!(open.seen(a, true, true, now), Seen::Inserted);
    assert_eq!(open.seen(same_ip, true, true, now), Seen::Inserted);
    assert_eq!(open.seen(same_subnet, true, true, now), Seen::Inserted);
}

#[test]
fn full_bucket_keeps_replacements_and_promotes_them_when_nodes_fail() {
    let mut rng = fastrand::Rng::with_seed(5);
    let now = Instant::now();
    let own = NodeId::random(&mut rng);
    let mut table = RoutingTable::new(own, true, now);
    // Split once so that the bucket of prefix 0 is no longer the last one.
    for i in 0..9 {
        let id = own.random_at_depth(if i == 0 { 5 } else { 0 }, &mut rng);
        table.seen(node(id, i), true, true, now);
    }
    let far: Vec<CompactNode> = (100..120)
        .map(|i| node(own.random_at_depth(0, &mut rng), i))
        .collect();
    for n in &far {
        table.seen(*n, true, true, now);
    }
    let in_bucket = table.buckets[0].nodes.len();
    assert_eq!(in_bucket, K);
    assert!(!table.buckets[0].replacements.is_empty());
    let victim = table.buckets[0].nodes[0].addr;
    table.failed(victim);
    assert!(table.contains(&victim), "one failure is forgiven");
    table.failed(victim);
    assert!(
        !table.contains(&victim),
        "two in a row give way to a replacement"
    );
    assert_eq!(table.buckets[0].nodes.len(), K);
}

#[test]
fn quiet_nodes_are_pinged_once_per_spacing() {
    let mut rng = fastrand::Rng::with_seed(6);
    let start = Instant::now();
    let own = NodeId::random(&mut rng);
    let mut table = RoutingTable::new(own, true, start);
    for i in 0..4 {
        table.seen(node(NodeId::random(&mut rng), i), true, true, start);
    }
    assert!(table.due_pings(start, 10).is_empty());
    let later = start + QUESTIONABLE_AFTER;
    assert_eq!(table.due_pings(later, 10).len(), 4);
    assert!(table.due_pings(later, 10).is_empty(), "pinged already");
    assert_eq!(table.due_pings(later + PING_SPACING, 2).len(), 2);
    // A node that only queried us is pinged at once.
    let seen = table.seen(node(NodeId::random(&mut rng), 50), false, true, later);
    assert_eq!(seen, Seen::Inserted);
    let pinged = table.due_pings(later, 10);
    assert!(pinged.contains(&addr(50)), "{pinged:?} {:?}", addr(50));
    assert!(
        table.refresh_target(later, &mut rng).is_none(),
        "active just now"
    );
    assert!(
        table
            .refresh_target(later + SPARSE_REFRESH, &mut rng)
            .is_some(),
        "room left"
    );
    assert!(
        table
            .refresh_target(later + QUESTIONABLE_AFTER, &mut rng)
            .is_some()
    );
}

#[test]
fn rebuilt_for_a_new_id_keeps_the_nodes() {
    let mut rng = fastrand::Rng::with_seed(8);
    let now = Instant::now();
    let own = NodeId::random(&mut rng);
    let mut table = RoutingTable::new(own, true, now);
    for i in 0..50 {
        table.seen(node(NodeId::random(&mut rng), i), true, true, now);
    }
    let before = table.len();
    let rebuilt = table.rebuilt(NodeId::random(&mut rng), now);
    assert!(rebuilt.len() + rebuilt.replacements() >= before.min(K * 2));
    assert_eq!(rebuilt.confirmed_nodes().len(), rebuilt.len());
}
