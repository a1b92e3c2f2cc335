//! Disk space: checked before a download starts (so a full disk is reported before anything
//! is written), and named with figures when a write fails for want of it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cratetorrent_metainfo::Metainfo;

use crate::error::{CliError, Result};
use crate::units::format_bytes;

/// Bytes free for us on the file system that holds `dir` (or its nearest existing parent).
pub(super) fn free(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|d| d.exists())?;
    let stats = rustix::fs::statvfs(existing).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Fails when the selected files need more space than `dir` has free (what is on disk
/// already, counted by allocated blocks since files are sparse, is not needed again).
pub(super) fn check(metainfo: &Metainfo, priorities: Option<&[u8]>, dir: &Path) -> Result<()> {
    let Some(free) = free(dir) else {
        return Ok(());
    };
    let root = dir;
    let mut needed = 0u64;
    for (index, file) in metainfo.files().iter().enumerate() {
        let wanted = priorities.is_none_or(|p| p.get(index).is_some_and(|&p| p > 0));
        if file.is_padding() || !wanted {
            continue;
        }
        let allocated = root
            .join(file.path())
            .symlink_metadata()
            .map_or(0, |m| m.blocks().saturating_mul(512));
        needed = needed.saturating_add(file.length().saturating_sub(allocated));
    }
    if needed > free {
        return Err(CliError::new(format!(
            "not enough space in {}: {} needs {} more, {} is free",
            dir.display(),
            metainfo.name(),
            format_bytes(needed),
            format_bytes(free)
        )));
    }
    Ok(())
}

/// `; 2.0 MiB still to download, 0 B free in DIR`: the figures behind a full disk.
pub(super) fn explain(dir: &Path, left: Option<u64>) -> String {
    let mut parts = Vec::new();
    if let Some(left) = left {
        parts.push(format!("{} still to download", format_bytes(left)));
    }
    if let Some(free) = free(dir) {
        parts.push(format!("{} free in {}", format_bytes(free), dir.display()));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; {}", parts.join(", "))
    }
}
