//! Reference BitTorrent clients driven on loopback: a libtorrent leecher, a Transmission daemon
//! and aria2. Each is stopped by its PID when dropped, and every wait has a timeout.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support_dir;

/// A free TCP port on loopback (bound then released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Reads a child's stdout lines on a thread.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for the `READY <port>` line a libtorrent script prints once it listens.
fn ready_port(lines: &mpsc::Receiver<String>, what: &str) -> u16 {
    let line = lines
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{what} never became ready: {e}"));
    line.strip_prefix("READY ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected output from {what}: {line:?}"))
}

/// Waits for a line starting with `prefix` and returns the rest of it.
fn wait_line(
    lines: &mpsc::Receiver<String>,
    prefix: &str,
    timeout: Duration,
    what: &str,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return line[prefix.len()..].trim().into(),
            Ok(_) => {}
            Err(e) => panic!("no {prefix:?} from {what}: {e}"),
        }
    }
}

/// A libtorrent script's process (run with Debian's interpreter, which has the bindings),
/// past its `READY <port>` line; closing stdin asks it to stop, and it is killed on drop.
struct LibtorrentProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    port: u16,
}

impl LibtorrentProcess {
    fn spawn<S: AsRef<OsStr>>(script: &str, args: impl IntoIterator<Item = S>) -> Self {
        Self::spawn_in(None, script, args)
    }

    /// Inside network namespace `netns`, when given.
    fn spawn_in<S: AsRef<OsStr>>(
        netns: Option<&str>,
        script: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Self {
        let python = "/usr/bin/python3";
        let mut command = match netns {
            Some(ns) => crate::netns::NetnsPair::command(ns, python),
            None => Command::new(python),
        };
        let mut child = command
            .arg(support_dir().join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {script}: {e}"));
        let stdin = child.stdin.take();
        let lines = lines(&mut child);
        // Owned before the wait, so that a script that never gets ready is killed on drop.
        let mut process = Self {
            child,
            stdin,
            lines,
            port: 0,
        };
        process.port = ready_port(&process.lines, script);
        process
    }
}

impl Drop for LibtorrentProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A libtorrent leecher (`lt_leech.py`).
pub struct LibtorrentLeecher {
    process: LibtorrentProcess,
    /// Its listen port.
    pub port: u16,
}

impl LibtorrentLeecher {
    /// Starts downloading `torrent` (a `.torrent` path or a magnet link) into `save_path`,
    /// dialling `peers`.
    pub fn start(torrent: impl AsRef<OsStr>, save_path: &Path, peers: &[SocketAddr]) -> Self {
        let mut args = vec![
            torrent.as_ref().to_owned(),
            save_path.as_os_str().to_owned(),
        ];
        args.extend(peers.iter().map(|p| p.to_string().into()));
        let process = LibtorrentProcess::spawn("lt_leech.py", args);
        let port = process.port;
        Self { process, port }
    }

    /// Waits until it reports the download complete.
    pub fn wait_done(&self, timeout: Duration) {
        wait_line(
            &self.process.lines,
            "DONE",
            timeout,
            "the libtorrent leecher",
        );
    }
}

/// A libtorrent peer in a network namespace that finds peers by local service discovery only
/// (`lt_lsd.py`).
pub struct LibtorrentLsd {
    process: LibtorrentProcess,
    /// Its listen port.
    pub port: u16,
}

impl LibtorrentLsd {
    /// Seeds (`seed`, from `save_path`, which holds the payload) or downloads into `save_path`,
    /// inside namespace `netns`, listening on `ip`.
    pub fn start(netns: &str, seed: bool, torrent: &Path, save_path: &Path, ip: IpAddr) -> Self {
        let ip = ip.to_string();
        let args = [
            OsStr::new(if seed { "seed" } else { "leech" }),
            torrent.as_os_str(),
            save_path.as_os_str(),
            OsStr::new(&ip),
        ];
        let process = LibtorrentProcess::spawn_in(Some(netns), "lt_lsd.py", args);
        let port = process.port;
        Self { process, port }
    }

    /// Waits until a leecher reports its download complete.
    pub fn wait_done(&self, timeout: Duration) {
        wait_line(&self.process.lines, "DONE", timeout, "the libtorrent peer");
    }
}

/// A small DHT of libtorrent sessions on 127.{i+1}.0.1 (`lt_dht.py`), optionally seeding a
/// torrent from its last session or downloading a magnet link through the DHT.
pub struct LibtorrentDht {
    process: LibtorrentProcess,
    /// The port every session listens on (TCP and UDP).
    pub port: u16,
}

impl LibtorrentDht {
    /// `nodes` sessions on `port`; `extra` adds `seed TORRENT DIR`, `leech MAGNET DIR` and
    /// `bootstrap HOST:PORT` (nodes each session pings every 5 s).
    pub fn start(nodes: usize, port: u16, extra: &[&OsStr]) -> Self {
        let (nodes, port_arg) = (nodes.to_string(), port.to_string());
        let args = [OsStr::new(&nodes), OsStr::new(&port_arg)]
            .into_iter()
            .chain(extra.iter().copied());
        let process = LibtorrentProcess::spawn("lt_dht.py", args);
        Self { process, port }
    }

    /// The address of session `i`'s DHT node.
    pub fn node(&self, i: u8) -> SocketAddr {
        SocketAddr::from(([127, i + 1, 0, 1], self.port))
    }

    /// The peers libtorrent's DHT gives for `info_hash` (hex), asked from session 0, waiting at
    /// most `wait` for an answer with peers.
    pub fn get_peers(&mut self, info_hash: &str, wait: Duration) -> Vec<SocketAddr> {
        let stdin = self.process.stdin.as_mut().expect("its stdin");
        writeln!(stdin, "get_peers {info_hash} {}", wait.as_secs_f64()).expect("ask lt_dht");
        let line = wait_line(
            &self.process.lines,
            "PEERS ",
            wait + Duration::from_secs(10),
            "lt_dht.py",
        );
        line.split_whitespace()
            .skip(1)
            .filter_map(|peer| peer.parse().ok())
            .collect()
    }

    /// Waits for the leech's first payload byte and completion; returns the seconds from its
    /// start to each.
    pub fn wait_leech(&self, timeout: Duration) -> (f64, f64) {
        let first = wait_line(&self.process.lines, "FIRST_BYTE", timeout, "lt_dht.py");
        let done = wait_line(&self.process.lines, "DONE", timeout, "lt_dht.py");
        (
            first.parse().expect("seconds"),
            done.parse().expect("seconds"),
        )
    }
}

/// A libtorrent peer that reports its fast-extension message counters (`lt_fast.py`).
pub struct LibtorrentFast {
    process: LibtorrentProcess,
    /// Its listen port.
    pub port: u16,
}

impl LibtorrentFast {
    /// Seeds `torrent` from `save_path` (which holds the payload) with libtorrent settings
    /// overridden by `settings` (`name=int`).
    pub fn seed(torrent: &Path, save_path: &Path, settings: &[&str]) -> Self {
        let args = [
            OsStr::new("seed"),
            torrent.as_os_str(),
            save_path.as_os_str(),
        ];
        Self::start(&args, settings)
    }

    /// Downloads `torrent` into `save_path` from `peer`.
    pub fn leech(torrent: &Path, save_path: &Path, peer: SocketAddr, settings: &[&str]) -> Self {
        let peer = peer.to_string();
        let args = [
            OsStr::new("leech"),
            torrent.as_os_str(),
            save_path.as_os_str(),
            OsStr::new(&peer),
        ];
        Self::start(&args, settings)
    }

    fn start(args: &[&OsStr], settings: &[&str]) -> Self {
        let all = args.iter().copied().chain(settings.iter().map(OsStr::new));
        let process = LibtorrentProcess::spawn("lt_fast.py", all);
        let port = process.port;
        Self { process, port }
    }

    /// Waits until a leecher reports its download complete.
    pub fn wait_done(&self, timeout: Duration) {
        wait_line(&self.process.lines, "DONE", timeout, "the libtorrent peer");
    }

    /// Its counters: `incoming_reject`, `outgoing_have_all`, … (see `lt_fast.py`).
    pub fn counters(&mut self) -> serde_json::Value {
        let stdin = self.process.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(b"stats\n")
            .and_then(|()| stdin.flush())
            .expect("ask libtorrent for its counters");
        let json = wait_line(
            &self.process.lines,
            "STATS ",
            Duration::from_secs(20),
            "the libtorrent peer",
        );
        serde_json::from_str(&json).expect("counters as JSON")
    }
}

/// A `transmission-daemon` with its own config dir, driven over JSON-RPC.
pub struct Transmission {
    child: Child,
    _config: tempfile::TempDir,
    rpc_port: u16,
    session: Option<String>,
    /// Its peer port.
    pub peer_port: u16,
}

impl Transmission {
    /// Starts a daemon on loopback and waits (at most 30 s) for its RPC to answer.
    pub fn start() -> Self {
        Self::start_with(serde_json::json!({}))
    }

    /// As [`Transmission::start`], with `overrides` of its settings (e.g. `"utp-enabled"`,
    /// `"encryption"`: 0 prefer plain, 1 prefer encrypted, 2 require encryption).
    pub fn start_with(overrides: serde_json::Value) -> Self {
        let config = tempfile::tempdir().expect("config dir");
        let (peer_port, rpc_port) = (free_port(), free_port());
        let mut settings = serde_json::json!({
            "dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
            "port-forwarding-enabled": false, "bind-address-ipv4": "127.0.0.1",
            "bind-address-ipv6": "::1", "peer-port": peer_port, "peer-port-random-on-start": false,
            "rpc-enabled": true, "rpc-port": rpc_port, "rpc-bind-address": "127.0.0.1",
            "rpc-authentication-required": false, "rpc-whitelist-enabled": false,
            "rpc-host-whitelist-enabled": false, "encryption": 0,
            "speed-limit-down-enabled": false, "speed-limit-up-enabled": false,
            "alt-speed-enabled": false, "download-queue-enabled": false,
            "seed-queue-enabled": false, "queue-stalled-enabled": false,
            "ratio-limit-enabled": false, "idle-seeding-limit-enabled": false,
            "incomplete-dir-enabled": false, "start-added-torrents": true,
            "download-dir": config.path().join("downloads"), "message-level": 1,
        });
        if let (Some(settings), Some(overrides)) = (settings.as_object_mut(), overrides.as_object())
        {
            settings.extend(overrides.clone());
        }
        std::fs::write(config.path().join("settings.json"), settings.to_string())
            .expect("write settings");
        let child = Command::new("transmission-daemon")
            .arg("-f")
            .arg("-g")
            .arg(config.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start transmission-daemon");
        let mut daemon = Self {
            child,
            _config: config,
            rpc_port,
            session: None,
            peer_port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while daemon.try_rpc(r#"{"method":"session-get"}"#).is_none() {
            assert!(Instant::now() < deadline, "transmission RPC never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    /// The address of its peer port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.peer_port))
    }

    fn try_rpc(&mut self, body: &str) -> Option<serde_json::Value> {
        for _ in 0..2 {
            let mut stream = TcpStream::connect(("127.0.0.1", self.rpc_port)).ok()?;
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .ok()?;
            let session = self
                .session
                .as_ref()
                .map(|s| format!("X-Transmission-Session-Id: {s}\r\n"))
                .unwrap_or_default();
            let request = format!(
                "POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{session}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).ok()?;
            let mut response = String::new();
            stream.read_to_string(&mut response).ok()?;
            let (head, body) = response.split_once("\r\n\r\n")?;
            if head.starts_with("HTTP/1.1 409") || head.starts_with("HTTP/1.0 409") {
                self.session = head.lines().find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("X-Transmission-Session-Id")
                        .then(|| value.trim().to_string())
                });
                continue;
            }
            return serde_json::from_str(body).ok();
        }
        None
    }

    /// Calls an RPC method, failing the test if it does not succeed.
    pub fn rpc(&mut self, method: &str, arguments: serde_json::Value) -> serde_json::Value {
        let body = serde_json::json!({ "method": method, "arguments": arguments }).to_string();
        let answer = self
            .try_rpc(&body)
            .unwrap_or_else(|| panic!("transmission RPC {method} failed"));
        assert_eq!(answer["result"], "success", "{method}: {answer}");
        answer["arguments"].clone()
    }

    /// Adds a torrent that downloads into (or seeds from) `dir`.
    pub fn add(&mut self, torrent: &Path, dir: &Path) {
        self.rpc(
            "torrent-add",
            serde_json::json!({ "filename": torrent, "download-dir": dir, "paused": false }),
        );
    }

    /// Fraction done of the first torrent, and whether it is seeding (status 6).
    pub fn progress(&mut self) -> (f64, bool) {
        let answer = self.rpc(
            "torrent-get",
            serde_json::json!({ "fields": ["percentDone", "status", "recheckProgress"] }),
        );
        let torrent = &answer["torrents"][0];
        (
            torrent["percentDone"].as_f64().unwrap_or(0.0),
            torrent["status"].as_i64() == Some(6),
        )
    }

    /// Polls (every 200 ms, at most `timeout`) until the torrent is complete and seeding.
    pub fn wait_seeding(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let (done, seeding) = self.progress();
            if done >= 1.0 && seeding {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "transmission stuck at {:.1}%",
                done * 100.0
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Transmission {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `aria2c` process, seeding or downloading one torrent on a fixed loopback port.
pub struct Aria2 {
    pid: u32,
    exited: mpsc::Receiver<std::io::Result<std::process::ExitStatus>>,
    finished: bool,
    /// Its listen port.
    pub port: u16,
}

impl Aria2 {
    fn spawn(torrent: impl AsRef<OsStr>, dir: &Path, extra: &[&str]) -> Self {
        let port = free_port();
        let crypto = if extra.contains(&"--bt-require-crypto=true") {
            "--bt-min-crypto-level=arc4"
        } else {
            "--bt-min-crypto-level=plain"
        };
        let mut child = Command::new("aria2c")
            .args([
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--interface=127.0.0.1",
                "--file-allocation=none",
                crypto,
                "--console-log-level=warn",
                "--summary-interval=0",
            ])
            .arg(format!("--listen-port={port}"))
            .arg(format!("--dir={}", dir.display()))
            .args(extra)
            .arg(torrent)
            .stdout(Stdio::null())
            .spawn()
            .expect("start aria2c");
        let pid = child.id();
        let (tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        Self {
            pid,
            exited,
            finished: false,
            port,
        }
    }

    /// Downloads `torrent` into `dir` (peers must dial [`port`](Self::port)); exits when done.
    pub fn leech(torrent: &Path, dir: &Path) -> Self {
        Self::spawn(torrent, dir, &["--seed-time=0"])
    }

    /// Fetches a magnet link's metadata, then its data, into `dir` (the link must name a
    /// way to peers: a tracker); exits when done.
    pub fn leech_magnet(magnet: &str, dir: &Path) -> Self {
        Self::spawn(magnet, dir, &["--seed-time=0"])
    }

    /// Fetches a magnet link's metadata and data into `dir`, finding peers through the DHT it
    /// joins at `entry` (its own node on `dht_port`); exits when done.
    pub fn leech_magnet_by_dht(magnet: &str, dir: &Path, entry: SocketAddr, dht_port: u16) -> Self {
        let dht = [
            "--enable-dht=true".to_owned(),
            format!("--dht-entry-point={entry}"),
            format!("--dht-listen-port={dht_port}"),
            format!("--dht-file-path={}", dir.join("dht.dat").display()),
            "--seed-time=0".to_owned(),
        ];
        let dht: Vec<&str> = dht.iter().map(String::as_str).collect();
        Self::spawn(magnet, dir, &dht)
    }

    /// Verifies and seeds `torrent` from `dir` for up to 5 minutes.
    pub fn seed(torrent: &Path, dir: &Path) -> Self {
        Self::spawn(torrent, dir, &["--seed-ratio=0.0", "--seed-time=5", "-V"])
    }

    /// As [`seed`](Self::seed), refusing every peer that does not encrypt its payload with RC4
    /// (`--bt-require-crypto`, `--bt-min-crypto-level=arc4`).
    pub fn seed_requiring_rc4(torrent: &Path, dir: &Path) -> Self {
        Self::spawn(
            torrent,
            dir,
            &[
                "--seed-ratio=0.0",
                "--seed-time=5",
                "-V",
                "--bt-require-crypto=true",
            ],
        )
    }

    /// As [`leech`](Self::leech), refusing every peer that does not encrypt its payload with
    /// RC4.
    pub fn leech_requiring_rc4(torrent: &Path, dir: &Path) -> Self {
        Self::spawn(torrent, dir, &["--seed-time=0", "--bt-require-crypto=true"])
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Waits for the process to exit successfully (a leecher exits once complete).
    pub fn wait_exit(&mut self, timeout: Duration) {
        let status = self
            .exited
            .recv_timeout(timeout)
            .expect("aria2c did not finish in time")
            .expect("aria2c status");
        self.finished = true;
        assert!(status.success(), "aria2c failed: {status}");
    }
}

impl Drop for Aria2 {
    fn drop(&mut self) {
        if !self.finished {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(self.pid.to_string())
                .status();
            let _ = self.exited.recv_timeout(Duration::from_secs(10));
        }
    }
}

/// An rtorrent (rakshasa's libtorrent, an independent implementation) seeding one torrent in
/// daemon mode on 127.0.0.2, until dropped (then killed by its PID).
pub struct Rtorrent {
    child: Child,
    _session: tempfile::TempDir,
    /// Where it accepts peers.
    pub addr: SocketAddr,
}

impl Rtorrent {
    /// Seeds `torrent` (which must name a tracker: rtorrent refuses torrents without one; it
    /// need not answer) from `dir`, which holds the payload.
    pub fn seed(torrent: &Path, dir: &Path) -> Self {
        Self::seed_with(torrent, dir, "allow_incoming,try_outgoing,enable_retry")
    }

    /// As [`seed`](Self::seed), taking only peers that encrypt their payload with RC4.
    pub fn seed_requiring_rc4(torrent: &Path, dir: &Path) -> Self {
        Self::seed_with(
            torrent,
            dir,
            "allow_incoming,try_outgoing,require,require_RC4",
        )
    }

    /// Seeds with `encryption`, rtorrent's `protocol.encryption` flags.
    fn seed_with(torrent: &Path, dir: &Path, encryption: &str) -> Self {
        let session = tempfile::tempdir().expect("a session directory");
        let addr = SocketAddr::from(([127, 0, 0, 2], free_port()));
        let config = session.path().join("rtorrent.rc");
        let settings = format!(
            "directory.default.set = {dir}\n\
             session.path.set = {session}\n\
             network.bind_address.set = {ip}\n\
             network.port_range.set = {port}-{port}\n\
             network.port_random.set = no\n\
             dht.mode.set = disable\n\
             protocol.pex.set = no\n\
             trackers.use_udp.set = no\n\
             protocol.encryption.set = {encryption}\n\
             system.daemon.set = true\n\
             load.start_verbose = {torrent}\n",
            dir = dir.display(),
            session = session.path().display(),
            ip = addr.ip(),
            port = addr.port(),
            torrent = torrent.display(),
        );
        std::fs::write(&config, settings).expect("write rtorrent's settings");
        let child = Command::new("rtorrent")
            .arg("-n")
            .arg("-o")
            .arg(format!("import={}", config.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rtorrent");
        // Owned before the wait, so that an rtorrent that never listens is killed on drop.
        let rtorrent = Self {
            child,
            _session: session,
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rtorrent never listened on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        rtorrent
    }
}

impl Drop for Rtorrent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
