//! Parking files the user does not want (see [`Layout`](crate::layout::Layout)): a file is
//! parked when it becomes unwanted before anything was written to it, and unparked when it is
//! wanted again, its part's bytes copied into it once no operation is using the part.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;

use super::{Deferred, Disk, OpMeta};
use crate::StorageError;
use crate::beneath::{Access, is_not_found};

/// Bytes copied at a time when a part is moved into its file.
const COPY_CHUNK: usize = 1 << 20;

impl Disk {
    /// Applies which files are wanted: an unwanted file with nothing on disk yet is parked; a
    /// parked file that is wanted again is queued to be unparked. A file that has data keeps it
    /// where it is (as libtorrent does).
    pub(super) fn set_wanted(&mut self, wanted: &[bool]) {
        let count = self.layout.files.len();
        for index in 0..count {
            let file = &self.layout.files[index];
            if file.padding || file.length == 0 {
                continue;
            }
            let want = wanted.get(index).copied().unwrap_or(true);
            let parked = self.layout.is_parked(index);
            if !want && !parked {
                // Files are created by their first write, on this thread: a file that is
                // neither open nor on disk has had nothing written, and nothing is in flight.
                let absent = !self.files.is_open(index)
                    && matches!(self.root.stat(&file.rel), Err(ref e) if is_not_found(e));
                if absent {
                    self.layout.set_parked(index, true);
                }
            } else if want && parked {
                self.unparking.insert(index);
            }
            if !want {
                self.unparking.remove(&index);
            }
        }
        self.try_unpark();
    }

    /// Unparks the queued files whose parts no write, read or sync is using.
    pub(super) fn try_unpark(&mut self) {
        if self.unparking.is_empty() {
            return;
        }
        // Queued writes are already mapped to the part: let them out first.
        self.submit_writes(true);
        let busy = self.parts_in_use();
        let queued = std::mem::take(&mut self.unparking);
        for index in queued {
            let part = self.layout.part_index(index);
            if busy.contains(&part) || self.files.in_use(part) {
                self.unparking.insert(index);
                continue;
            }
            if let Err(error) = self.unpark(index, part) {
                tracing::warn!(%error, "cannot move a part file's bytes into their file");
                // The bytes stay in the part, which reads keep using.
                continue;
            }
        }
    }

    /// The files that queued, deferred or in-flight writes and syncs name, gathered in one
    /// pass so a sweep over many parked files stays linear. Reads and writebacks hold their
    /// file open, which `FileCache::in_use` sees.
    fn parts_in_use(&self) -> HashSet<usize> {
        let mut busy: HashSet<usize> = self.waiting.iter().map(|w| w.file).collect();
        for op in &self.deferred {
            match op {
                Deferred::Write(run) => busy.extend(run.iter().map(|w| w.file)),
                Deferred::Read { file, .. } | Deferred::Sync(file) => {
                    busy.insert(*file);
                }
            }
        }
        for op in self.ops.values() {
            match op {
                OpMeta::Write { file, .. } | OpMeta::Sync(file) => {
                    busy.insert(*file);
                }
                OpMeta::Read { .. } | OpMeta::Writeback => {}
            }
        }
        busy
    }

    /// Copies the part's head and tail into file `index` (created at its full length, sparse),
    /// then removes the part and maps the file to itself again.
    fn unpark(&mut self, index: usize, part: usize) -> Result<(), StorageError> {
        let part_file = match self
            .root
            .open_file(&self.layout.file(part).rel, Access::Read)
        {
            Ok(file) => Some(file),
            Err(error) if is_not_found(&error) => None,
            Err(error) => return Err(error),
        };
        if let Some(part_file) = part_file {
            let length = self.layout.files[index].length;
            let piece_length = u64::from(self.layout.metainfo().piece_length());
            let own = self.files.get(&self.layout, index, true)?;
            let ranges = if length <= 2 * piece_length {
                vec![(0, length)]
            } else {
                vec![(0, piece_length), (length - piece_length, length)]
            };
            let mut buf = vec![0u8; COPY_CHUNK];
            for (start, end) in ranges {
                let mut at = start;
                while at < end {
                    let len = usize::try_from(end - at).map_or(COPY_CHUNK, |l| l.min(COPY_CHUNK));
                    let from = self.layout.part_offset(index, at);
                    let read = part_file.read_at(&mut buf[..len], from).map_err(|e| {
                        StorageError::from_io(e, self.layout.file(part).path.clone(), "read")
                    })?;
                    if read == 0 {
                        break;
                    }
                    own.write_all_at(&buf[..read], at).map_err(|e| {
                        StorageError::from_io(e, self.layout.files[index].path.clone(), "write")
                    })?;
                    at += read as u64;
                }
            }
            self.dirty.insert(index);
            self.unsaved = true;
        }
        self.files.close(part);
        self.dirty.remove(&part);
        self.layout.set_parked(index, false);
        let _ = self.root.remove_file(&self.layout.file(part).rel);
        Ok(())
    }
}
