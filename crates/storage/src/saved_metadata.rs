//! A magnet link's metadata kept beside the torrent's resume data
//! (`.cratetorrent/<info-hash>.torrent` in the download directory), so a restart does not
//! fetch it again. Written atomically; read and written without following links (see
//! [`crate::beneath`]).

use std::io::Read;
use std::path::Path;

use cratetorrent_metainfo::InfoHash;

use crate::StorageError;
use crate::beneath::{Access, Beneath, is_not_found};
use crate::layout::RESUME_DIR;

fn name(info_hash: InfoHash) -> String {
    format!("{info_hash}.torrent")
}

/// Saves `torrent` (a `.torrent` file's bytes) as the metadata of `info_hash` under
/// `download_dir`.
pub fn save_metadata(
    download_dir: &Path,
    info_hash: InfoHash,
    torrent: &[u8],
) -> Result<(), StorageError> {
    save_session_file(download_dir, &name(info_hash), torrent)
}

/// The metadata saved for `info_hash` under `download_dir`, if any and at most `max_len`
/// bytes (a longer file is not read: it is not ours).
pub fn load_metadata(
    download_dir: &Path,
    info_hash: InfoHash,
    max_len: u64,
) -> Result<Option<Vec<u8>>, StorageError> {
    load_session_file(download_dir, &name(info_hash), max_len)
}

/// Saves `bytes` atomically as `.cratetorrent/<file_name>` under `download_dir` (engine-wide
/// state such as the DHT's nodes). `file_name` is one path component.
pub fn save_session_file(
    download_dir: &Path,
    file_name: &str,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let root = Beneath::open(download_dir, true)?;
    root.replace_file(Path::new(RESUME_DIR), file_name, bytes)
}

/// The file saved by [`save_session_file`], if any and at most `max_len` bytes.
pub fn load_session_file(
    download_dir: &Path,
    file_name: &str,
    max_len: u64,
) -> Result<Option<Vec<u8>>, StorageError> {
    let root = match Beneath::open(download_dir, false) {
        Ok(root) => root,
        Err(error) if is_not_found(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    let rel = Path::new(RESUME_DIR).join(file_name);
    let file = match root.open_file(&rel, Access::Read) {
        Ok(file) => file,
        Err(error) if is_not_found(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut bytes = Vec::new();
    file.take(max_len.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| StorageError::from_io(e, download_dir.join(&rel), "read"))?;
    Ok((bytes.len() as u64 <= max_len).then_some(bytes))
}

/// Removes the metadata saved for `info_hash` (with the torrent's files and resume data).
pub(crate) fn remove(root: &Beneath, info_hash: InfoHash) {
    let _ = root.remove_file(&Path::new(RESUME_DIR).join(name(info_hash)));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn saved_metadata_comes_back_and_a_link_in_its_place_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let hash = InfoHash::new([7; 20]);
        assert_eq!(load_metadata(dir.path(), hash, 100).unwrap(), None);
        save_metadata(dir.path(), hash, b"d4:infod4:name1:aee").unwrap();
        save_metadata(dir.path(), hash, b"d4:infod4:name1:bee").unwrap();
        assert_eq!(
            load_metadata(dir.path(), hash, 100).unwrap().as_deref(),
            Some(&b"d4:infod4:name1:bee"[..]),
            "replaced"
        );
        assert_eq!(
            load_metadata(dir.path(), hash, 5).unwrap(),
            None,
            "too long"
        );
        // A link where the file belongs is refused, not read through.
        let other = InfoHash::new([8; 20]);
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"d4:infoee").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join(RESUME_DIR).join(name(other))).unwrap();
        assert!(load_metadata(dir.path(), other, 100).is_err());
    }
}
