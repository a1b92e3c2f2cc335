//! A user-space WAN emulator for benchmarks and tests.
//!
//! `tc netem` is missing from some kernels (this one has no `sch_netem`), so links are emulated
//! here: each host is a network namespace (`ctw-<pid>-<index>`) with one TUN device, address
//! `198.18.x.y/15` (RFC 2544's benchmarking range) and no route anywhere else. One forwarding
//! thread reads every packet a host sends, passes it through the sender's uplink and the
//! receiver's downlink ([`LinkConf`]: delay, jitter, rate, queue, loss), and writes it to the
//! receiver's device when it is due. Everything is removed when the [`Wan`] is dropped, and a
//! new one first removes what a killed run left. Needs root.
//!
//! ```no_run
//! use std::time::Duration;
//! use cratetorrent_wanem::{HostConf, LinkConf, Wan};
//!
//! let link = LinkConf { delay: Duration::from_millis(25), rate: 10_000_000, ..LinkConf::default() };
//! let wan = Wan::start(&[HostConf::symmetric(link), HostConf::symmetric(link)], 1)?;
//! // 100 ms of round trip between the two hosts, 10 MB/s each way.
//! let status = wan.command(0, "ping").args(["-c", "1", &wan.hosts()[1].addr.to_string()]).status()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod forward;
pub mod link;
pub mod measure;
mod netns;

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

pub use link::{Link, LinkConf, LinkStats, Loss, Verdict};

/// What can go wrong setting up or running the emulator.
#[derive(Debug, thiserror::Error)]
pub enum WanError {
    /// Creating namespaces or devices failed (not root, no `/dev/net/tun`, no `ip`).
    #[error("setting up the emulated network: {0}")]
    Setup(String),
    /// The forwarder failed.
    #[error("forwarding: {0}")]
    Io(#[from] std::io::Error),
}

/// A host's link to the emulated network, each way.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostConf {
    /// What the host sends.
    pub up: LinkConf,
    /// What the host receives.
    pub down: LinkConf,
}

impl HostConf {
    /// The same link both ways.
    pub fn symmetric(link: LinkConf) -> Self {
        Self {
            up: link,
            down: link,
        }
    }
}

/// A host of the emulated network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its network namespace (for `ip netns exec`).
    pub namespace: String,
    /// Its address.
    pub addr: Ipv4Addr,
}

/// Each link's counters when the emulator stopped: (uplink, downlink) per host.
pub type Counters = Vec<(LinkStats, LinkStats)>;

/// A running emulated network.
pub struct Wan {
    hosts: Vec<Host>,
    stop: Arc<AtomicBool>,
    forwarder: Option<JoinHandle<std::io::Result<Counters>>>,
}

impl Wan {
    /// Creates a host per entry of `hosts` and starts forwarding. `seed` makes losses and
    /// jitter replay exactly.
    pub fn start(hosts: &[HostConf], seed: u64) -> Result<Self, WanError> {
        netns::remove_stale();
        let pid = std::process::id();
        let now = Instant::now();
        let mut wan = Self {
            hosts: Vec::with_capacity(hosts.len()),
            stop: Arc::new(AtomicBool::new(false)),
            forwarder: None,
        };
        let mut ports = Vec::with_capacity(hosts.len());
        for (index, conf) in hosts.iter().enumerate() {
            let host = Host {
                namespace: netns::name(pid, index),
                addr: address(index)?,
            };
            netns::ip(&["netns", "add", &host.namespace])?;
            wan.hosts.push(host.clone());
            let device_name = format!("ctw{}-{index}", pid % 100_000);
            let device = tun_rs::DeviceBuilder::new()
                .name(&device_name)
                .build_sync()
                .map_err(|e| WanError::Setup(format!("TUN device {device_name}: {e}")))?;
            let ns = host.namespace.as_str();
            netns::ip(&["link", "set", &device_name, "netns", ns])?;
            let cidr = format!("{}/15", host.addr);
            netns::ip(&["-n", ns, "addr", "add", &cidr, "dev", &device_name])?;
            netns::ip(&[
                "-n",
                ns,
                "link",
                "set",
                &device_name,
                "txqueuelen",
                "10000",
                "up",
            ])?;
            netns::ip(&["-n", ns, "link", "set", "lo", "up"])?;
            let seed = seed.wrapping_mul(1_000_003).wrapping_add(index as u64 * 2);
            ports.push(forward::Port {
                device,
                addr: host.addr,
                up: Link::new(conf.up, seed, now),
                down: Link::new(conf.down, seed + 1, now),
            });
        }
        let stop = wan.stop.clone();
        let forwarder = std::thread::Builder::new()
            .name("wanem-forward".into())
            .spawn(move || forward::run(ports, &stop))
            .map_err(|e| WanError::Setup(format!("cannot start the forwarder: {e}")))?;
        wan.forwarder = Some(forwarder);
        Ok(wan)
    }

    /// The hosts, in the order given.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// `program` to run in host `index`'s namespace (through `ip netns exec`).
    pub fn command(&self, index: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        let namespace = self.hosts.get(index).map_or("", |h| h.namespace.as_str());
        command.args(["netns", "exec", namespace, program]);
        command
    }

    /// Moves the calling thread into host `index`'s namespace: sockets it opens afterwards are
    /// that host's. (Only the thread moves; use a thread of its own.)
    pub fn enter(&self, index: usize) -> Result<(), WanError> {
        let host = self
            .hosts
            .get(index)
            .ok_or_else(|| WanError::Setup(format!("no host {index}")))?;
        let path = format!("/run/netns/{}", host.namespace);
        let file =
            std::fs::File::open(&path).map_err(|e| WanError::Setup(format!("{path}: {e}")))?;
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| WanError::Setup(format!("entering {path}: {e}")))
    }

    /// Stops forwarding, removes the hosts, and returns the links' counters.
    pub fn stop(mut self) -> Result<Counters, WanError> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<Counters, WanError> {
        self.stop.store(true, Ordering::Relaxed);
        let counters = match self.forwarder.take().map(JoinHandle::join) {
            Some(Ok(result)) => result.map_err(WanError::Io),
            Some(Err(_)) => Err(WanError::Setup("the forwarder panicked".into())),
            None => Ok(Vec::new()),
        };
        for host in self.hosts.drain(..) {
            let _ = netns::ip(&["netns", "del", &host.namespace]);
        }
        counters
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}

/// Host `index`'s address: 198.18.0.1, 198.18.0.2, … (254 per /24, then 198.18.1.1, …).
fn address(index: usize) -> Result<Ipv4Addr, WanError> {
    let (high, low) = (index / 254, index % 254 + 1);
    let high = u8::try_from(high).map_err(|_| WanError::Setup("too many hosts".into()))?;
    let low = u8::try_from(low).unwrap_or(1);
    Ok(Ipv4Addr::new(198, 18, high, low))
}
