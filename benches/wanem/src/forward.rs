//! The forwarding loop: reads IPv4 packets from every host's TUN device, passes each through
//! its sender's uplink and its receiver's downlink ([`Link`]), and writes it to the receiver's
//! device when it is due. One thread, epoll with nanosecond timeouts, a heap of due packets.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{Timespec, epoll};
use tun_rs::SyncDevice;

use crate::link::{Link, LinkStats, Verdict};

/// The largest packet read from a device (the MTU is 1500).
const MAX_PACKET: usize = 2048;

/// Packets in flight at most (beyond it, new ones are dropped): bounds memory whatever the
/// links' queues and delays say.
const MAX_IN_FLIGHT: usize = 200_000;

/// Where a packet is.
enum Stage {
    /// Through its sender's uplink; next, the receiver's downlink.
    Up { to: usize },
    /// Through both: write it to the receiver's device.
    Down { to: usize },
}

struct Packet {
    at: Instant,
    seq: u64,
    stage: Stage,
    data: Vec<u8>,
}

impl PartialEq for Packet {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Packet {}
impl PartialOrd for Packet {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Packet {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One host as the forwarder sees it.
pub(crate) struct Port {
    pub(crate) device: SyncDevice,
    pub(crate) addr: Ipv4Addr,
    pub(crate) up: Link,
    pub(crate) down: Link,
}

/// The counters of each host's links, (uplink, downlink), in host order.
pub(crate) type Counters = Vec<(LinkStats, LinkStats)>;

/// Runs until `stop` is set; returns the links' counters.
pub(crate) fn run(mut ports: Vec<Port>, stop: &Arc<AtomicBool>) -> std::io::Result<Counters> {
    let poll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    for (index, port) in ports.iter().enumerate() {
        port.device.set_nonblocking(true)?;
        epoll::add(
            &poll,
            port.device.as_fd(),
            epoll::EventData::new_u64(index as u64),
            epoll::EventFlags::IN,
        )?;
    }
    let mut heap: BinaryHeap<Reverse<Packet>> = BinaryHeap::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut events = Vec::with_capacity(ports.len().max(1));
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        // At most 100 ms between looks at `stop`.
        let wait = heap
            .peek()
            .map_or(Duration::from_millis(100), |p| {
                p.0.at.saturating_duration_since(now)
            })
            .min(Duration::from_millis(100));
        let timeout = Timespec {
            tv_sec: i64::try_from(wait.as_secs()).unwrap_or(0),
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        events.clear();
        match epoll::wait(&poll, spare_capacity(&mut events), Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(error) => return Err(error.into()),
        }
        for event in &events {
            let from = usize::try_from(event.data.u64()).unwrap_or(usize::MAX);
            read_all(&mut ports, from, &mut heap, &mut spare, &mut seq);
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|p| p.0.at <= now) {
            let Some(Reverse(packet)) = heap.pop() else {
                break;
            };
            match packet.stage {
                Stage::Up { to } => {
                    let Some(port) = ports.get_mut(to) else {
                        continue;
                    };
                    // The downlink takes the packet when the uplink delivers it.
                    match port.down.admit(packet.data.len(), packet.at) {
                        Verdict::Deliver(at) => {
                            seq += 1;
                            heap.push(Reverse(Packet {
                                at,
                                seq,
                                stage: Stage::Down { to },
                                data: packet.data,
                            }));
                        }
                        Verdict::Lost | Verdict::Dropped => spare.push(packet.data),
                    }
                }
                Stage::Down { to } => {
                    if let Some(port) = ports.get(to) {
                        // A full device queue loses the packet, as a congested link would.
                        let _ = port.device.send(&packet.data);
                    }
                    spare.push(packet.data);
                }
            }
        }
    }
    Ok(ports
        .iter()
        .map(|p| (p.up.stats(), p.down.stats()))
        .collect())
}

fn spare_capacity(
    events: &mut Vec<epoll::Event>,
) -> rustix::buffer::SpareCapacity<'_, epoll::Event> {
    rustix::buffer::spare_capacity(events)
}

/// Reads every packet waiting on host `from`'s device into its uplink.
fn read_all(
    ports: &mut [Port],
    from: usize,
    heap: &mut BinaryHeap<Reverse<Packet>>,
    spare: &mut Vec<Vec<u8>>,
    seq: &mut u64,
) {
    loop {
        let mut data = spare.pop().unwrap_or_default();
        data.resize(MAX_PACKET, 0);
        let Some(port) = ports.get(from) else {
            return;
        };
        let len = match port.device.recv(&mut data) {
            Ok(len) => len,
            Err(_) => {
                spare.push(data);
                return;
            }
        };
        data.truncate(len);
        // IPv4 only (the hosts have no IPv6 address); the destination is bytes 16..20.
        let to = data
            .get(16..20)
            .filter(|_| data.first().is_some_and(|b| b >> 4 == 4))
            .and_then(|dst| {
                let dst = Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3]);
                ports.iter().position(|p| p.addr == dst)
            });
        let Some(to) = to.filter(|&to| to != from) else {
            spare.push(data);
            continue;
        };
        if heap.len() >= MAX_IN_FLIGHT {
            spare.push(data);
            continue;
        }
        let now = Instant::now();
        match ports[from].up.admit(len, now) {
            Verdict::Deliver(at) => {
                *seq += 1;
                heap.push(Reverse(Packet {
                    at,
                    seq: *seq,
                    stage: Stage::Up { to },
                    data,
                }));
            }
            Verdict::Lost | Verdict::Dropped => spare.push(data),
        }
    }
}
