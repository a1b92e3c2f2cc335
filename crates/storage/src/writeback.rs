//! Early write-out of downloaded data, so the sync before a resume save (and the one at shutdown)
//! finds little left to write.
//!
//! Buffered writes only dirty the page cache; left alone, a 1 GiB download keeps its 1 GiB dirty
//! until the final `fdatasync`, which then writes all of it while the user waits (about half a
//! second on this project's test machines, a third of the whole download). Every
//! [`WRITEBACK_BATCH`] bytes written, the disk thread asks the kernel to start writing out the
//! ranges written since the last time (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not
//! wait), so the device works while the network does. Durability is unchanged: resume data is
//! still saved only after an `fdatasync` of every file written since the last save.

use std::collections::HashMap;

/// Bytes written (over all files) between two rounds of write-out.
pub(crate) const WRITEBACK_BATCH: u64 = 8 * 1024 * 1024;

/// The byte ranges written since the last round, one span per file.
#[derive(Default)]
pub(crate) struct Writeback {
    spans: HashMap<usize, (u64, u64)>,
    bytes: u64,
}

impl Writeback {
    /// Records `len` bytes written at `offset` of file `file`; true once a round is due.
    pub(crate) fn record(&mut self, file: usize, offset: u64, len: u64) -> bool {
        let end = offset.saturating_add(len);
        self.spans
            .entry(file)
            .and_modify(|(start, stop)| {
                *start = (*start).min(offset);
                *stop = (*stop).max(end);
            })
            .or_insert((offset, end));
        self.bytes = self.bytes.saturating_add(len);
        self.bytes >= WRITEBACK_BATCH
    }

    /// The spans to write out now, as `(file, offset, len)`, forgetting them.
    pub(crate) fn take(&mut self) -> Vec<(usize, u64, u64)> {
        self.bytes = 0;
        self.spans
            .drain()
            .map(|(file, (start, stop))| (file, start, stop - start))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_is_due_after_a_batch_and_covers_each_file_once() {
        let mut writeback = Writeback::default();
        let block = 16 * 1024;
        let mut due = false;
        for index in 0..WRITEBACK_BATCH / block {
            assert!(!due, "due before a whole batch");
            let file = (index % 2) as usize;
            due = writeback.record(file, 1000 + index * block, block);
        }
        assert!(due);
        let mut spans = writeback.take();
        spans.sort_unstable();
        assert_eq!(spans.len(), 2);
        let last = WRITEBACK_BATCH / block - 1;
        assert_eq!(spans[0], (0, 1000, (last - 1) * block + block));
        assert_eq!(spans[1], (1, 1000 + block, (last - 1) * block + block));
        assert!(writeback.take().is_empty());
        assert!(!writeback.record(0, 0, 1), "the count starts again");
    }
}
