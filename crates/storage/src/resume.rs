//! Resume: fast-resume data saved atomically after a sync, and the check of existing data.

use std::io::Read;
use std::path::{Component, Path};
use std::sync::atomic::{AtomicU32, Ordering};

use cratetorrent_metainfo::bencode::{self, DictBuilder, Encode};
use cratetorrent_wire::Bitfield;
use rustix::fs::FileType;

use crate::StorageError;
use crate::beneath::{Access, Beneath, is_not_found};
use crate::layout::{Layout, RESUME_DIR};
use crate::piece_check::hash_pieces;

/// Progress of a check of existing data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckProgress {
    /// Pieces checked so far (hashed or decided without hashing).
    pub checked: u32,
    /// Pieces to check.
    pub total: u32,
}

/// A file's identity as resume data records it: size and modification time in nanoseconds.
type Stamp = (u64, i64);

/// The stamp of the regular file at `rel`, not following links.
fn stamp(root: &Beneath, rel: &Path) -> Option<Stamp> {
    let stat = root.stat(rel).ok()?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return None;
    }
    // The field types differ between architectures.
    #[allow(clippy::useless_conversion)]
    let nanos = i64::try_from(stat.st_mtime)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(i64::try_from(stat.st_mtime_nsec).ok()?)?;
    Some((u64::try_from(stat.st_size).ok()?, nanos))
}

/// Writes resume data for `have` (which must only hold pieces whose data is synced): to a
/// temporary file, synced, then renamed over the old one, and the directory synced. Every step
/// is relative to the resume directory's descriptor and follows no link. Files in `untrusted`
/// get no stamp, so their pieces are hashed on the next open.
pub(crate) fn save(
    layout: &Layout,
    root: &Beneath,
    have: &Bitfield,
    untrusted: &std::collections::HashSet<usize>,
) -> Result<(), StorageError> {
    let files: Vec<DictBuilder> = layout
        .files
        .iter()
        .enumerate()
        .map(|(index, file)| {
            let mut entry = DictBuilder::new();
            if untrusted.contains(&index) {
                return entry;
            }
            if let Some((size, mtime)) = stamp(root, &file.rel) {
                entry
                    .insert("size", i64::try_from(size).unwrap_or(i64::MAX))
                    .insert("mtime", mtime);
            }
            entry
        })
        .collect();
    let mut dict = DictBuilder::new();
    dict.insert("info-hash", &layout.metainfo().info_hash().as_bytes()[..])
        .insert("pieces", have.as_bytes())
        .insert("files", files);
    root.replace_file(
        Path::new(RESUME_DIR),
        &layout.resume_name(),
        &dict.to_bencode(),
    )
}

/// Resume data as saved: the pieces had and each file's stamp.
struct Saved {
    have: Bitfield,
    stamps: Vec<Option<Stamp>>,
}

/// Refuses a torrent whose root would be the resume directory: its files would be other
/// torrents' resume data. Deeper components of that name are harmless (resume data lives only at
/// the top of the download directory).
pub(crate) fn check_reserved(layout: &Layout) -> Result<(), StorageError> {
    let reserved = layout
        .files
        .iter()
        .any(|f| f.rel.components().next() == Some(Component::Normal(RESUME_DIR.as_ref())));
    if reserved {
        return Err(StorageError::ReservedName {
            path: layout.root().join(RESUME_DIR),
        });
    }
    Ok(())
}

/// The most bytes resume data for `layout` can take: the fixed keys and info-hash, the
/// bitfield, and one `size`/`mtime` dictionary (under 64 bytes) per file, with room to spare.
fn max_len(layout: &Layout) -> u64 {
    256 + u64::from(layout.metainfo().piece_count().div_ceil(8)) + 96 * layout.files.len() as u64
}

/// Loads resume data: `Ok(None)` when there is none or it is foreign or malformed (the pieces
/// are then hashed); an error, without reading it, when the file is a link, not a regular file,
/// or larger than resume data for this torrent can be.
fn load(layout: &Layout, root: &Beneath) -> Result<Option<Saved>, StorageError> {
    let path = layout.resume_path();
    let file = match root.open_file(&layout.resume_rel(), Access::Read) {
        Ok(file) => file,
        Err(error) if is_not_found(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    let max = max_len(layout);
    let len = file
        .metadata()
        .map_err(|e| StorageError::from_io(e, &path, "stat"))?
        .len();
    // `take` also bounds a file that grows while it is read.
    let mut bytes = Vec::new();
    if len <= max {
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| StorageError::from_io(e, &path, "read"))?;
    }
    if len > max || bytes.len() as u64 > max {
        return Err(StorageError::ResumeTooLarge { path, max });
    }
    Ok(parse(layout, &bytes))
}

fn parse(layout: &Layout, bytes: &[u8]) -> Option<Saved> {
    let value = bencode::decode(bytes).ok()?;
    let dict = value.as_dict()?;
    if dict.get(b"info-hash")?.as_bytes()? != layout.metainfo().info_hash().as_bytes() {
        return None;
    }
    let have = Bitfield::from_payload(
        dict.get(b"pieces")?.as_bytes()?,
        layout.metainfo().piece_count(),
    )
    .ok()?;
    let stamps: Vec<Option<Stamp>> = dict
        .get(b"files")?
        .as_list()?
        .iter()
        .map(|f| {
            let f = f.as_dict()?;
            Some((
                u64::try_from(f.get(b"size")?.as_int()?).ok()?,
                f.get(b"mtime")?.as_int()?,
            ))
        })
        .collect();
    (stamps.len() == layout.files.len()).then_some(Saved { have, stamps })
}

/// Works out which pieces are on disk: trusted from resume data where every file a piece touches
/// is unchanged since it was saved, hashed (on `threads` threads) where not.
pub(crate) fn check(
    layout: &Layout,
    root: &Beneath,
    threads: usize,
    progress: &(dyn Fn(CheckProgress) + Sync),
) -> Bitfield {
    let metainfo = layout.metainfo();
    let total = metainfo.piece_count();
    let saved = load(layout, root).unwrap_or_else(|error| {
        tracing::warn!(%error, "ignoring resume data; every piece present is hashed");
        None
    });
    let current: Vec<Option<Stamp>> = layout
        .files
        .iter()
        .map(|f| if f.padding { None } else { stamp(root, &f.rel) })
        .collect();
    let unchanged: Vec<bool> = match &saved {
        Some(saved) => current
            .iter()
            .zip(&saved.stamps)
            .map(|(now, then)| now.is_some() && now == then)
            .collect(),
        None => vec![false; current.len()],
    };
    let mut have = Bitfield::new(total);
    let mut to_hash = Vec::new();
    for piece in 0..total {
        let slices: Vec<_> = metainfo
            .piece_slices(piece)
            .filter(|s| !layout.files[s.file_index].padding)
            .collect();
        let trusted = saved.as_ref().is_some_and(|s| s.have.get(piece))
            && slices.iter().all(|s| unchanged[s.file_index]);
        if trusted {
            have.set(piece);
        } else if slices.iter().all(|s| {
            // A parked file's bytes are in its part: let the hash decide.
            layout.is_parked(s.file_index)
                || current[s.file_index].is_some_and(|(size, _)| size >= s.offset + s.len)
        }) {
            to_hash.push(piece);
        }
    }
    let checked = AtomicU32::new(total - to_hash.len() as u32);
    progress(CheckProgress {
        checked: checked.load(Ordering::Relaxed),
        total,
    });
    let verified = hash_pieces(layout, root, &to_hash, threads, &|| {
        let done = checked.fetch_add(1, Ordering::Relaxed) + 1;
        progress(CheckProgress {
            checked: done,
            total,
        });
    });
    for piece in verified {
        have.set(piece);
    }
    have
}

/// Hashes `pieces` from disk on `threads` threads and returns those that match.
/// Hashes every piece whose files are present and long enough, trusting nothing: read-only.
pub fn verify(
    metainfo: &cratetorrent_metainfo::Metainfo,
    download_dir: &std::path::Path,
    threads: usize,
    progress: &(dyn Fn(CheckProgress) + Sync),
) -> Bitfield {
    let layout = Layout::new(metainfo, download_dir);
    let total = metainfo.piece_count();
    let Ok(root) = Beneath::open(download_dir, false) else {
        return Bitfield::new(total);
    };
    layout.detect_parked(&root);
    let sizes: Vec<Option<u64>> = layout
        .files
        .iter()
        .map(|f| {
            if f.padding {
                None
            } else {
                stamp(&root, &f.rel).map(|(size, _)| size)
            }
        })
        .collect();
    let to_hash: Vec<u32> = (0..total)
        .filter(|&piece| {
            metainfo
                .piece_slices(piece)
                .filter(|s| !layout.files[s.file_index].padding)
                .all(|s| {
                    layout.is_parked(s.file_index)
                        || sizes[s.file_index].is_some_and(|size| size >= s.offset + s.len)
                })
        })
        .collect();
    let checked = AtomicU32::new(total - to_hash.len() as u32);
    progress(CheckProgress {
        checked: checked.load(Ordering::Relaxed),
        total,
    });
    let mut have = Bitfield::new(total);
    for piece in hash_pieces(&layout, &root, &to_hash, threads, &|| {
        let done = checked.fetch_add(1, Ordering::Relaxed) + 1;
        progress(CheckProgress {
            checked: done,
            total,
        });
    }) {
        have.set(piece);
    }
    have
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use cratetorrent_metainfo::{Metainfo, TorrentBuilder};

    use super::*;

    #[test]
    fn an_oversized_resume_file_is_a_typed_error_and_is_not_read() {
        let source = tempfile::tempdir().unwrap();
        std::fs::write(source.path().join("a.bin"), vec![7u8; 40_000]).unwrap();
        let bytes = TorrentBuilder::new(source.path().join("a.bin"))
            .build()
            .unwrap();
        let metainfo = Metainfo::from_bytes(&bytes).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(&metainfo, dir.path());
        let root = Beneath::open(dir.path(), false).unwrap();
        assert!(
            load(&layout, &root).unwrap().is_none(),
            "no resume data yet"
        );
        save(
            &layout,
            &root,
            &Bitfield::full(metainfo.piece_count()),
            &Default::default(),
        )
        .unwrap();
        assert!(load(&layout, &root).unwrap().is_some());

        std::fs::File::options()
            .write(true)
            .open(layout.resume_path())
            .unwrap()
            .set_len(max_len(&layout) + 1)
            .unwrap();
        let error = load(&layout, &root).err().expect("too large");
        assert!(
            matches!(&error, StorageError::ResumeTooLarge { path, max }
                if *path == layout.resume_path() && *max == max_len(&layout)),
            "{error:?}"
        );
    }
}
