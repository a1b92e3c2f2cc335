//! Open files, created lazily, with a cap on descriptors.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

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

/// Keeps at most `max_open` files open (more only while operations hold them), closing the least
/// recently used first.
pub(crate) struct FileCache {
    open: HashMap<usize, OpenFile>,
    max_open: usize,
    clock: u64,
    preallocate: bool,
    root: Arc<Beneath>,
}

impl FileCache {
    pub(crate) fn new(max_open: usize, preallocate: bool, root: Arc<Beneath>) -> Self {
        Self {
            open: HashMap::new(),
            max_open: max_open.max(1),
            clock: 0,
            preallocate,
            root,
        }
    }

    /// The open file `index`, opened for writing (and created, with parent directories and its
    /// full length, sparse unless preallocating) when `write` is set; never through a link.
    pub(crate) fn get(
        &mut self,
        layout: &Layout,
        index: usize,
        write: bool,
    ) -> Result<Arc<File>, StorageError> {
        self.clock += 1;
        if let Some(open) = self.open.get_mut(&index)
            && (open.writable || !write)
        {
            open.last_used = self.clock;
            return Ok(open.file.clone());
        }
        self.evict();
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
        self.open.insert(
            index,
            OpenFile {
                file: file.clone(),
                writable: write,
                last_used: self.clock,
            },
        );
        Ok(file)
    }

    /// Whether file `index` is open.
    pub(crate) fn is_open(&self, index: usize) -> bool {
        self.open.contains_key(&index)
    }

    /// Whether an operation holds file `index` open.
    pub(crate) fn in_use(&self, index: usize) -> bool {
        self.open
            .get(&index)
            .is_some_and(|f| Arc::strong_count(&f.file) > 1)
    }

    /// Closes file `index` (once the operations holding it finish).
    pub(crate) fn close(&mut self, index: usize) {
        self.open.remove(&index);
    }

    /// File `index` if it is open for writing; never opens it.
    pub(crate) fn get_open(&self, index: usize) -> Option<Arc<File>> {
        self.open
            .get(&index)
            .filter(|open| open.writable)
            .map(|open| open.file.clone())
    }

    /// Whether file `index` can be had without going over the cap: it is open, there is room, or
    /// an open file is idle and can be closed.
    pub(crate) fn can_open(&self, index: usize) -> bool {
        self.open.contains_key(&index)
            || self.open.len() < self.max_open
            || self.open.values().any(|f| Arc::strong_count(&f.file) == 1)
    }

    /// Closes least recently used files not in use by an operation until one more fits.
    fn evict(&mut self) {
        while self.open.len() >= self.max_open {
            let idle = self
                .open
                .iter()
                .filter(|(_, f)| Arc::strong_count(&f.file) == 1)
                .min_by_key(|(_, f)| f.last_used)
                .map(|(index, _)| *index);
            match idle {
                Some(index) => {
                    self.open.remove(&index);
                }
                // Every open file has an operation in flight: go over the cap until they finish.
                None => break,
            }
        }
    }
}
