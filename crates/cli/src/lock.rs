//! One process per torrent and download directory: a lock file in the directory's
//! `.cratetorrent/`, held (by `flock`) for as long as the process runs, naming its pid.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use cratetorrent_metainfo::InfoHash;
use rustix::fs::{FlockOperation, flock};

use crate::error::{CliError, Result};

/// The directory the engine keeps its resume data in, inside the download directory.
const STATE_DIR: &str = ".cratetorrent";

/// Held until dropped (the kernel releases it when the process ends, however it ends).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `info_hash` in `dir`, or says which process holds it. `verb` is what that
    /// process is doing (`downloading`, `seeding`).
    pub(crate) fn acquire(dir: &Path, info_hash: &InfoHash, verb: &str) -> Result<Self> {
        let state = dir.join(STATE_DIR);
        std::fs::create_dir_all(&state).map_err(|e| CliError::with(state.display(), &e))?;
        let path = state.join(format!("{}.lock", info_hash.to_hex()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(|e| CliError::with(path.display(), &e))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut text = String::new();
            let _ = (&mut file).take(16).read_to_string(&mut text);
            let pid = text.trim();
            let who = if pid.is_empty() {
                "another cratetorrent".to_owned()
            } else {
                format!("another cratetorrent (pid {pid})")
            };
            return Err(CliError::new(format!(
                "{who} is {verb} this torrent into {}: stop it first, or pass another -o",
                dir.display()
            )));
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        written.map_err(|e| CliError::with(path.display(), &e))?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let hash = InfoHash::new([7; 20]);
        let first = DirLock::acquire(dir.path(), &hash, "downloading").unwrap();
        let second = DirLock::acquire(dir.path(), &hash, "downloading").unwrap_err();
        let message = second.to_string();
        assert!(
            message.contains(&format!("(pid {})", std::process::id()))
                && message.contains("is downloading this torrent into"),
            "{message}"
        );
        // Another torrent in the same directory is not held back.
        DirLock::acquire(dir.path(), &InfoHash::new([8; 20]), "downloading").unwrap();
        drop(first);
        DirLock::acquire(dir.path(), &hash, "downloading").unwrap();
    }
}
