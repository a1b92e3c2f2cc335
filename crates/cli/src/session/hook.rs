//! `--on-complete CMD`: a shell command run when a torrent completes, told which one in its
//! environment; the session waits for the commands it started before it exits.

use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};

use super::entry::Completed;
use crate::progress::Reporter;

/// Commands started (one per torrent at most: each completes once).
#[derive(Default)]
pub(super) struct Hooks {
    running: Vec<(String, Child)>,
}

impl Hooks {
    /// Runs `command` with `sh -c`, its stdout on our stderr (stdout may carry JSON).
    pub(super) fn run(&mut self, command: &str, completed: &Completed, reporter: &mut Reporter) {
        let stdout = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_or_else(|_| Stdio::null(), Stdio::from);
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("CRATETORRENT_NAME", &completed.name)
            .env("CRATETORRENT_PATH", &completed.path)
            .env("CRATETORRENT_INFO_HASH", &completed.info_hash)
            .stdin(Stdio::null())
            .stdout(stdout)
            .spawn();
        match spawned {
            Ok(child) => self.running.push((completed.name.clone(), child)),
            Err(error) => reporter.note(
                "hook",
                &format!("{}: cannot run --on-complete: {error}", completed.name),
            ),
        }
    }

    /// Waits for every command started; a failure is a note, not the session's failure.
    pub(super) fn wait(&mut self, reporter: &mut Reporter) {
        for (name, mut child) in self.running.drain(..) {
            match child.wait() {
                Ok(status) if status.success() => {}
                Ok(status) => reporter.note(
                    "hook",
                    &format!("{name}: --on-complete exited with {status}"),
                ),
                Err(error) => reporter.note("hook", &format!("{name}: --on-complete: {error}")),
            }
        }
    }
}
