//! The storage seam. Everything above this module talks to an [`Engine`];
//! [`RocksEngine`] is the durable default and [`MemoryEngine`] serves tests
//! and ephemeral use. Both pass the conformance suite in
//! `store/tests/integration/engine_conformance.rs`.

mod ingest;
mod memory;
mod rocks;
mod rocks_ingest;
mod slice_cursor;

pub use ingest::{Ingestion, SortedRun};
pub use memory::MemoryEngine;
pub use rocks::RocksEngine;
pub use slice_cursor::SliceCursor;

use crate::cf::Cf;
use crate::error::Result;

/// One write: `(cf, key, Some(value))` puts, `(cf, key, None)` deletes.
pub type WriteOp = (Cf, Vec<u8>, Option<Vec<u8>>);

/// The smallest key greater than every key starting with `prefix` (none
/// when the prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A set of writes applied atomically by [`Engine::write`].
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    ops: Vec<WriteOp>,
}

impl WriteBatch {
    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((cf, key, Some(value)));
    }

    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.ops.push((cf, key, None));
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The writes, in order.
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }
}

/// A cursor over one column family, seen as of its creation: walks
/// backwards from a `seek_for_prev` (point-in-time lookups) or forwards from
/// a `seek` (merges over sorted keys).
pub trait Cursor {
    /// Positions at the greatest key `<= key`.
    fn seek_for_prev(&mut self, key: &[u8]);
    /// Positions at the smallest key `>= key`.
    fn seek(&mut self, key: &[u8]);
    fn valid(&self) -> bool;
    /// Key and value at the current position; only when `valid()`.
    fn entry(&self) -> Option<(&[u8], &[u8])>;
    fn prev(&mut self);
    fn next(&mut self);
    /// The error that ended the walk early, if any (`entry` is `None` both at
    /// the end and after an I/O error).
    fn status(&self) -> Result<()> {
        Ok(())
    }
}

/// Runtime statistics an engine can report (all optional).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EngineStats {
    pub memtable_bytes: Option<u64>,
    pub pending_compaction_bytes: Option<u64>,
    pub live_data_bytes: Option<u64>,
}

/// Key-value storage with column families, atomic durable batches and
/// ordered iteration.
pub trait Engine: Send + Sync + 'static {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Looks up many keys of one column family; results in input order.
    fn multi_get(&self, cf: Cf, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(cf, k)).collect()
    }

    /// Hands `found` the stored value of each of `keys` (strictly
    /// increasing) that `cf` holds, with the key's index, in one forward
    /// walk of a cursor: a few steps by `next` when the next key is near,
    /// a `seek` otherwise. Many sorted keys of a dense range (a backfill's
    /// online rows) cost a step each instead of a point lookup each.
    fn get_sorted(
        &self,
        cf: Cf,
        keys: &[Vec<u8>],
        found: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        /// Steps before a seek (as RocksDB's iterators step over up to 8
        /// hidden versions of a key before they reseek).
        const STEPS_BEFORE_SEEK: usize = 8;
        let Some(first) = keys.first() else {
            return Ok(());
        };
        let mut cursor = self.cursor(cf)?;
        cursor.seek(first);
        for (i, key) in keys.iter().enumerate() {
            let mut steps = 0;
            loop {
                match cursor.entry() {
                    // Past the last key: the rest are not there.
                    None => return cursor.status(),
                    Some((at, value)) if at >= key.as_slice() => {
                        if at == key.as_slice() {
                            found(i, value)?;
                        }
                        break;
                    }
                    Some(_) if steps < STEPS_BEFORE_SEEK => {
                        cursor.next();
                        steps += 1;
                    }
                    Some(_) => cursor.seek(key),
                }
            }
        }
        cursor.status()
    }

    /// Applies all writes or none. When this returns `Ok`, the batch survives
    /// a crash of the process (and, for durable engines, of the machine).
    fn write(&self, batch: WriteBatch) -> Result<()>;

    /// Writes `batch` without the write-ahead log: it is durable only once
    /// [`persist`](Self::persist) of its column families returns. For bulk
    /// writes that are acknowledged later (a snapshot's entity rows, whose
    /// metadata is written after them): they skip the log's copy, and the
    /// next open does not replay them.
    fn write_unlogged(&self, batch: WriteBatch) -> Result<()> {
        self.write(batch)
    }

    /// Makes every write to `cf` made so far durable (unlogged ones
    /// included).
    fn persist(&self, _cf: Cf) -> Result<()> {
        Ok(())
    }

    /// Bulk load: `runs` (each one column family's puts in key order) and
    /// then `commit`, all or nothing across a crash (see `ingest.rs`; the
    /// RocksDB engine ingests files, bypassing its WAL and memtables). An
    /// ingested entry replaces an older one with its key.
    fn ingest(&self, runs: Vec<SortedRun>, commit: WriteBatch) -> Result<()> {
        self.write(ingest::as_one_batch(runs, commit))
    }

    /// Where bulk loads spill what does not fit in memory (a directory
    /// each, inside this one). The RocksDB engine's is in the store's
    /// directory, emptied at every open; others use the system's.
    fn scratch_dir(&self) -> std::path::PathBuf {
        std::env::temp_dir().join("reprise-scratch")
    }

    /// Starts a bulk load of sorted streams (see [`Ingestion`]): what
    /// [`ingest`](Self::ingest) does, for runs written one at a time.
    fn begin_ingestion(&self) -> Result<Box<dyn Ingestion + '_>> {
        Ok(Box::new(ingest::CollectedIngestion::new(
            move |runs, commit| self.ingest(runs, commit),
        )))
    }

    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// At most `limit` entries whose key starts with `prefix` and is
    /// `> after` (or from the start of the prefix when `after` is `None`),
    /// in key order: a long prefix read in pages of bounded memory.
    fn scan_prefix_page(
        &self,
        cf: Cf,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// A cursor over `cf`.
    fn cursor(&self, cf: Cf) -> Result<Box<dyn Cursor + '_>>;

    /// A cursor for a long forward scan (a snapshot's merge, an export):
    /// the blocks it reads do not evict the serving path's from the block
    /// cache, and reads ahead are large.
    fn scan_cursor(&self, cf: Cf) -> Result<Box<dyn Cursor + '_>> {
        self.cursor(cf)
    }

    /// Deletes every key of `cf` that starts with `prefix`, durably, as one
    /// write (RocksDB: a range tombstone, however many keys).
    fn delete_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<()>;

    fn stats(&self) -> EngineStats {
        EngineStats::default()
    }

    /// The retention rules compactions apply from now on (engines without
    /// compactions keep everything).
    fn set_retention(&self, _rules: std::sync::Arc<crate::retention::RetentionRules>) {}

    /// Compacts the column families retention applies to, so expired rows
    /// leave the disk now rather than at the next natural compaction.
    fn compact_history(&self) -> Result<()> {
        Ok(())
    }

    /// Waits until the compactions the writes so far made due have run (a
    /// bulk load's files pushed the LSM tree past its triggers): a process
    /// about to exit finishes them instead of dropping them half done and
    /// leaving them to the next open.
    fn wait_for_compactions(&self) -> Result<()> {
        Ok(())
    }

    /// Writes a consistent copy of everything written so far into `dir`
    /// (which must not exist), openable as a store of its own. Engines
    /// that keep nothing on disk cannot.
    fn checkpoint(&self, dir: &std::path::Path) -> Result<()> {
        Err(crate::error::StoreError::Engine(format!(
            "this storage engine keeps nothing on disk; no backup can be written to {}",
            dir.display()
        )))
    }
}
