//! Open files, created lazily, with a cap on descriptors shared by every torrent of a disk
//! pool: a thousand seeding torrents hold the files their peers are reading, not a thousand.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::StorageError;
use crate::beneath::{Access, Beneath};
use crate::layout::Layout;

/// How many descriptors are kept open when nothing else is said.
pub(crate) const DEFAULT_MAX_OPEN_FILES: usize = 256;

struct OpenFile {
    file: Arc<File>,
    writable: bool,
    last_used: u64,
}

/// The files open for every torrent of a pool, by torrent and file index: at most `max_open`
/// (more only while operations hold them), the least recently used closed first.
pub(crate) struct OpenFiles {
    open: HashMap<(u64, usize), OpenFile>,
    max_open: usize,
    clock: u64,
}

impl OpenFiles {
    pub(crate) fn shared(max_open: usize) -> Arc<Mutex<OpenFiles>> {
        Arc::new(Mutex::new(Self {
            open: HashMap::new(),
            max_open: max_open.max(1),
            clock: 0,
        }))
    }

    /// Closes least recently used files not in use by an operation until one more fits.
    fn evict(&mut self) {
        while self.open.len() >= self.max_open {
            let idle = self
                .open
                .iter()
                .filter(|(_, f)| Arc::strong_count(&f.file) == 1)
                .min_by_key(|(_, f)| f.last_used)
                .map(|(key, _)| *key);
            match idle {
                Some(key) => {
                    self.open.remove(&key);
                }
                // Every open file has an operation in flight: go over the cap until they finish.
                None => break,
            }
        }
    }
}

/// One torrent's view of its pool's open files (the pool's thread is the only one using it,
/// so the lock is never contended).
pub(crate) struct FileCache {
    table: Arc<Mutex<OpenFiles>>,
    /// This torrent's key in the table.
    owner: u64,
    preallocate: bool,
    root: Arc<Beneath>,
}

impl FileCache {
    /// A cache of its own, with room for `max_open` files.
    #[cfg(test)]
    pub(crate) fn new(max_open: usize, preallocate: bool, root: Arc<Beneath>) -> Self {
        Self::in_table(OpenFiles::shared(max_open), 0, preallocate, root)
    }

    /// Torrent `owner`'s share of `table`.
    pub(crate) fn in_table(
        table: Arc<Mutex<OpenFiles>>,
        owner: u64,
        preallocate: bool,
        root: Arc<Beneath>,
    ) -> Self {
        Self {
            table,
            owner,
            preallocate,
            root,
        }
    }

    fn table(&self) -> MutexGuard<'_, OpenFiles> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The open file `index`, opened for writing (and created, with parent directories and its
    /// full length, sparse unless preallocating) when `write` is set; never through a link.
    pub(crate) fn get(
        &mut self,
        layout: &Layout,
        index: usize,
        write: bool,
    ) -> Result<Arc<File>, StorageError> {
        let key = (self.owner, index);
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.clock += 1;
        let clock = table.clock;
        if let Some(open) = table.open.get_mut(&key)
            && (open.writable || !write)
        {
            open.last_used = clock;
            return Ok(open.file.clone());
        }
        table.evict();
        let entry = layout.file(index);
        let path = &entry.path;
        let access = if write {
            Access::ReadWrite
        } else {
            Access::Read
        };
        let file = self.root.open_file(&entry.rel, access)?;
        if write {
            let length = file
                .metadata()
                .map_err(|e| StorageError::from_io(e, path, "stat"))?
                .len();
            if length < entry.length {
                if self.preallocate {
                    rustix::fs::fallocate(
                        &file,
                        rustix::fs::FallocateFlags::empty(),
                        0,
                        entry.length,
                    )
                    .map_err(|e| StorageError::from_io(e.into(), path, "preallocate"))?;
                } else {
                    file.set_len(entry.length)
                        .map_err(|e| StorageError::from_io(e, path, "set length"))?;
                }
            }
        }
        let file = Arc::new(file);
        table.open.insert(
            key,
            OpenFile {
                file: file.clone(),
                writable: write,
                last_used: clock,
            },
        );
        Ok(file)
    }

    /// Whether file `index` is open.
    pub(crate) fn is_open(&self, index: usize) -> bool {
        self.table().open.contains_key(&(self.owner, index))
    }

    /// Whether an operation holds file `index` open.
    pub(crate) fn in_use(&self, index: usize) -> bool {
        self.table()
            .open
            .get(&(self.owner, index))
            .is_some_and(|f| Arc::strong_count(&f.file) > 1)
    }

    /// Closes file `index` (once the operations holding it finish).
    pub(crate) fn close(&mut self, index: usize) {
        self.table().open.remove(&(self.owner, index));
    }

    /// File `index` if it is open for writing; never opens it.
    pub(crate) fn get_open(&self, index: usize) -> Option<Arc<File>> {
        self.table()
            .open
            .get(&(self.owner, index))
            .filter(|open| open.writable)
            .map(|open| open.file.clone())
    }

    /// Whether file `index` can be had without going over the cap: it is open, there is room, or
    /// an open file is idle and can be closed.
    pub(crate) fn can_open(&self, index: usize) -> bool {
        let table = self.table();
        table.open.contains_key(&(self.owner, index))
            || table.open.len() < table.max_open
            || table.open.values().any(|f| Arc::strong_count(&f.file) == 1)
    }
}

impl Drop for FileCache {
    /// The torrent's files are closed with it (once the operations holding them finish).
    fn drop(&mut self) {
        let owner = self.owner;
        self.table().open.retain(|(of, _), _| *of != owner);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cratetorrent_metainfo::{Metainfo, TorrentBuilder};

    use super::*;

    #[test]
    fn torrents_of_one_pool_share_its_cap_and_close_their_files_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, [1u8; 1000]).unwrap();
        let bytes = TorrentBuilder::new(&path)
            .piece_length(16384)
            .build()
            .unwrap();
        let layout = Layout::new(&Metainfo::from_bytes(&bytes).unwrap(), dir.path());
        let root = Arc::new(Beneath::open(dir.path(), false).unwrap());
        let table = OpenFiles::shared(1);
        let mut first = FileCache::in_table(table.clone(), 1, false, root.clone());
        let mut second = FileCache::in_table(table.clone(), 2, false, root);
        drop(first.get(&layout, 0, false).unwrap());
        assert!(first.is_open(0));
        // The second torrent's file takes the one place: the first torrent's is closed.
        let held = second.get(&layout, 0, false).unwrap();
        assert!(second.is_open(0) && !first.is_open(0));
        // While an operation holds it, the first torrent cannot have its file back.
        assert!(!first.can_open(0));
        drop(held);
        assert!(first.can_open(0));
        drop(second);
        assert!(table.lock().unwrap().open.is_empty());
    }
}
