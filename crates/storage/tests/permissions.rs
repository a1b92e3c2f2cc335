//! A download directory the process may not write to gives a typed `PermissionDenied` with the
//! path. As root (which ignores permissions) the test re-runs itself as `nobody` via `setpriv`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cratetorrent_storage::{BackendKind, Storage, StorageConfig, StorageError, StorageEvent};
use cratetorrent_wire::BlockInfo;

mod common;
use common::{block_data, fixture};

const CHILD_DIR: &str = "CT_PERM_CHILD_DIR";
const TEST: &str = "an_unwritable_directory_is_permission_denied";

fn expect_permission_denied(dir: &Path) {
    for backend in [BackendKind::IoUring, BackendKind::Portable] {
        let fixture = fixture(&[("a", 16_384, false)], 16_384);
        let config = StorageConfig {
            backend,
            ..StorageConfig::default()
        };
        let (storage, events) = Storage::open(&fixture.metainfo, dir, config, || {}).unwrap();
        let block = BlockInfo {
            piece: 0,
            offset: 0,
            len: 16_384,
        };
        storage
            .write_block(0, 0, block_data(&fixture, block), 1)
            .unwrap();
        match events.recv_timeout(Duration::from_secs(20)).unwrap() {
            StorageEvent::WriteFailed { pieces, error } => {
                assert_eq!(pieces, [0]);
                assert!(
                    matches!(&error, StorageError::PermissionDenied { path } if path.starts_with(dir)),
                    "{backend:?}: {error:?}"
                );
            }
            other => panic!("{backend:?}: unexpected {other:?}"),
        }
    }
}

#[test]
fn an_unwritable_directory_is_permission_denied() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        expect_permission_denied(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    if rustix::process::geteuid().is_root() {
        // Root-owned and not writable by others: `nobody` gets EACCES.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let status = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "the unprivileged child did not see PermissionDenied"
        );
    } else {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        expect_permission_denied(dir.path());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}
