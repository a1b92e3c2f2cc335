//! opentracker on loopback (HTTP and UDP), serving a whitelist of info-hashes.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::clients::free_port;

/// A running opentracker, stopped by its PID when dropped.
pub struct Opentracker {
    child: Child,
    _dir: tempfile::TempDir,
    /// Its HTTP port.
    pub http_port: u16,
    /// Its UDP port.
    pub udp_port: u16,
}

impl Opentracker {
    /// Starts opentracker for these info-hashes (40 hex characters each), waiting (at most
    /// 10 s) until its HTTP port accepts connections.
    pub fn start(info_hashes: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("tracker dir");
        let whitelist = dir.path().join("whitelist");
        std::fs::write(&whitelist, info_hashes.join("\n") + "\n").expect("write whitelist");
        let conf = dir.path().join("opentracker.conf");
        std::fs::write(&conf, format!("access.whitelist {}\n", whitelist.display()))
            .expect("write conf");
        // It drops privileges to an unprivileged user that must still read both files.
        for (path, mode) in [(dir.path(), 0o755), (&whitelist, 0o644), (&conf, 0o644)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let (http_port, udp_port) = (free_port(), free_port());
        let child = Command::new("opentracker")
            .args(["-i", "127.0.0.1", "-p", &http_port.to_string()])
            .args(["-P", &udp_port.to_string(), "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start opentracker");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            assert!(Instant::now() < deadline, "opentracker never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            _dir: dir,
            http_port,
            udp_port,
        }
    }

    /// Its HTTP announce URL.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.http_port)
    }

    /// Its UDP announce URL.
    pub fn udp_url(&self) -> String {
        format!("udp://127.0.0.1:{}", self.udp_port)
    }
}

impl Drop for Opentracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
