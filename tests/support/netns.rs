//! Two network namespaces joined by a veth pair, for tests that need a real local network
//! (multicast, several addresses) rather than loopback. Made with `ip` (root needed), removed
//! on drop; every address is in 198.18.0.0/15, and there is no route out.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::Command;

/// Namespaces `a` and `b`; `a` holds `ip_a`, `b` holds `ip_b`, on one /24 link with a route
/// for multicast.
pub struct NetnsPair {
    pub a: String,
    pub b: String,
    pub ip_a: Ipv4Addr,
    pub ip_b: Ipv4Addr,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("run ip {args:?}: {e}"));
    assert!(status.success(), "ip {args:?} failed: {status}");
}

/// `ip netns add` and `del` one at a time: iproute2 mounts `/run/netns` on first use, and two
/// at once can race there.
static NETNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Deletes namespaces an earlier test process made and could not remove (it was killed).
fn remove_stale() {
    let Ok(list) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        // ct-<tag>-<pid>-<a|b>
        let pid = name
            .strip_prefix("ct-")
            .and_then(|rest| rest.rsplit('-').nth(1));
        if let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok())
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

impl NetnsPair {
    /// Creates the pair, named after `tag` (a few letters) and this process.
    pub fn new(tag: &str) -> Self {
        let _one = NETNS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        remove_stale();
        let id = std::process::id();
        let pair = Self {
            a: format!("ct-{tag}-{id}-a"),
            b: format!("ct-{tag}-{id}-b"),
            ip_a: Ipv4Addr::new(198, 18, 14, 1),
            ip_b: Ipv4Addr::new(198, 18, 14, 2),
        };
        // Interface names are at most 15 bytes.
        let short = id % 1_000_000;
        let (veth_a, veth_b) = (format!("{tag:.4}a{short}"), format!("{tag:.4}b{short}"));
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        ip(&[
            "link", "add", &veth_a, "netns", &pair.a, "type", "veth", "peer", "name", &veth_b,
            "netns", &pair.b,
        ]);
        for (ns, veth, addr) in [(&pair.a, &veth_a, pair.ip_a), (&pair.b, &veth_b, pair.ip_b)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", veth]);
            ip(&["-n", ns, "link", "set", veth, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", veth]);
        }
        pair
    }

    /// Runs `f` on a thread inside namespace `ns`: threads it starts (an engine's network
    /// thread) are inside it too, and so are the sockets they open.
    pub fn run_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap_or_else(|e| panic!("enter {path}: {e}"));
            f()
        })
        .join()
        .expect("the thread in the namespace panicked")
    }

    /// `ip netns exec NS program args…`, for a reference client inside namespace `ns`.
    pub fn command(ns: &str, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns, program]);
        command
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        let _one = NETNS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Deleting a namespace deletes its end of the veth pair, and with it the other end.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
