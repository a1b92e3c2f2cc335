//! Flushes: write what is queued, wait for it, sync the files written, then save resume data
//! that claims only what those syncs covered.

use std::sync::mpsc::Sender;
use std::time::Instant;

use super::{Deferred, Disk, OpMeta};
use crate::backend::Op;
use crate::hasher::HashJob;
use crate::resume;
use crate::{StorageError, StorageEvent};

impl Disk {
    /// Writes every block received so far, waits for those writes, syncs every file written
    /// since the last save, then saves resume data.
    pub(super) fn start_flush(&mut self, done: Option<Option<Sender<Result<(), StorageError>>>>) {
        if let Some(done) = done {
            self.flush_waiters.push(done);
        }
        // A flush wants verdicts: the hasher stops gathering for its lanes and hashes what it has.
        self.hashers.push(HashJob::Drain);
        if self.syncs_left > 0 || self.draining {
            return;
        }
        self.submit_writes(true);
        self.draining = true;
        self.finish_draining();
    }

    /// Starts the flush's syncs once the writes it waits for have completed: a sync issued beside
    /// a write still in flight would not cover it. New writes wait meanwhile (milliseconds).
    pub(super) fn finish_draining(&mut self) {
        if !self.draining
            || self
                .ops
                .values()
                .any(|op| matches!(op, OpMeta::Write { .. }))
            || self
                .deferred
                .iter()
                .any(|op| matches!(op, Deferred::Write(_)))
        {
            return;
        }
        self.draining = false;
        self.flush_snapshot = Some(self.have.clone());
        let dirty: Vec<usize> = self.dirty.drain().collect();
        self.syncs_left += dirty.len();
        for index in dirty {
            self.start_or_defer(Deferred::Sync(index));
        }
        if self.syncs_left == 0 {
            self.save_resume();
        }
    }

    pub(super) fn sync_done(&mut self, file: usize, _op: Op, mut result: std::io::Result<usize>) {
        if self.fail_sync == Some(file) {
            self.fail_sync = None;
            result = Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        if let Err(error) = result {
            let path = self.layout.file(file).path.clone();
            self.flush_error = Some(StorageError::from_io(error, path, "sync"));
            self.tainted.insert(file);
        }
        self.sync_finished();
    }

    pub(super) fn sync_finished(&mut self) {
        self.syncs_left -= 1;
        if self.syncs_left == 0 {
            self.save_resume();
        }
    }

    /// Clears from `covered` every piece that touches a file whose sync failed.
    fn drop_tainted(&self, covered: &mut cratetorrent_wire::Bitfield) {
        if self.tainted.is_empty() {
            return;
        }
        let metainfo = self.layout.metainfo();
        for piece in 0..metainfo.piece_count() {
            if covered.get(piece)
                && metainfo
                    .piece_slices(piece)
                    .any(|s| self.tainted.contains(&s.file_index))
            {
                covered.clear(piece);
            }
        }
    }

    /// Writes resume data covering the pieces verified before the syncs that just finished.
    pub(super) fn save_resume(&mut self) {
        self.last_save = Instant::now();
        let result = match self.flush_error.take() {
            Some(error) => Err(error),
            None => {
                let mut covered = self
                    .flush_snapshot
                    .take()
                    .unwrap_or_else(|| self.have.clone());
                self.drop_tainted(&mut covered);
                resume::save(&self.layout, &self.root, &covered, &self.tainted)
            }
        };
        if result.is_ok() {
            self.unsaved = false;
        }
        if let Err(error) = &result {
            self.emit(StorageEvent::ResumeSaveFailed(error.clone()));
            if self.shutdown.is_some() {
                self.flush_error = Some(error.clone());
            }
        }
        for done in self.flush_waiters.drain(..).flatten() {
            let _ = done.send(result.clone());
        }
    }
}
