//! nginx on loopback, serving a directory: the web seed of the web-seed tests.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::clients::free_port;

/// A running nginx (one process, in the foreground), stopped by its PID when dropped.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
}

impl Nginx {
    /// Serves `root` (with `extra` directives in its `location /`, e.g. `limit_rate 100k;`),
    /// waiting (at most 10 s) until it accepts connections.
    pub fn serve(root: &Path, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("nginx dir");
        let port = free_port();
        let prefix = dir.path().display().to_string();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n\
             error_log {prefix}/error.log warn;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log {prefix}/access.log;\n  client_body_temp_path {prefix}/body;\n\
             proxy_temp_path {prefix}/proxy;\n  fastcgi_temp_path {prefix}/fastcgi;\n\
             uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n\
             server {{\n    listen 127.0.0.1:{port};\n    root {root};\n\
             location / {{ {extra} }}\n  }}\n}}\n",
            root = root.display(),
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, dir, port }
    }

    /// The URL of `path` on it (`""` for its root, ending in `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// Its access log: one line per request, with the status after the request line.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// How many requests it answered with `status`.
    pub fn count(&self, status: u16) -> usize {
        let needle = format!("\" {status} ");
        self.access_log()
            .lines()
            .filter(|line| line.contains(&needle))
            .count()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
