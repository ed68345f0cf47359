//! The RocksDB engine: one column family per [`Cf`], every batch one atomic
//! `WriteBatch` written with `sync = true` (the WAL is fsynced before
//! `write` returns).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rocksdb::compaction_filter::Decision;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBRawIteratorWithThreadMode, Options,
    WriteOptions, DB,
};

use super::{Cursor, Engine, EngineStats, WriteBatch};
use crate::cf::Cf;
use crate::error::{Result, StoreError};
use crate::retention::{RetentionRules, SharedRules};

pub struct RocksEngine {
    pub(super) db: DB,
    /// The store's directory (ingestion stages its files inside).
    pub(super) path: PathBuf,
    /// Set when an ingestion failed after its marker: its store version
    /// may be half visible, so no write is accepted until a reopen rolls it
    /// forward.
    pub(super) unfinished_ingestion: std::sync::atomic::AtomicBool,
    /// Read by the compaction filters of the history and aggregation-index
    /// column families.
    retention: SharedRules,
}

/// Tuning knobs with sane defaults. Together they bound RocksDB's memory:
/// the block cache (data, index and filter blocks) plus the memtables.
#[derive(Debug, Clone)]
pub struct RocksOptions {
    /// Shared block cache for all column families.
    pub block_cache_bytes: usize,
    /// Memtables of all column families together (a write buffer manager);
    /// past it the largest memtable is flushed. Without it, each of the 7
    /// column families may hold two 64 MiB memtables.
    pub write_buffer_bytes: usize,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 256 << 20,
        }
    }
}

impl RocksEngine {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, &RocksOptions::default())
    }

    pub fn open_with(path: &Path, options: &RocksOptions) -> Result<Self> {
        std::fs::create_dir_all(path)?;
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.increase_parallelism(2);
        // A compaction from L0 into the bottom level (after a backfill's
        // overlapping ingestions) is split by key range over two threads.
        db_options.set_max_subcompactions(2);
        db_options.set_db_write_buffer_size(options.write_buffer_bytes);

        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let retention: SharedRules = Arc::new(RwLock::new(Arc::new(RetentionRules::none())));
        let descriptors = Cf::ALL.iter().map(|cf| {
            let mut cf_options = Options::default();
            cf_options.set_block_based_table_factory(&table_options(Some(&cache)));
            cf_options.set_compression_type(rocksdb::DBCompressionType::Lz4);
            if matches!(cf, Cf::History | Cf::AggIndex | Cf::Online) {
                // Ingestions of one batch each (`ingest_backfill`) write
                // one file per key range; the files of one ingestion are
                // apart, but each overlaps earlier ingestions' files, so it
                // lands in L0. At RocksDB's default of 4 files, every other
                // ingestion on 2 cores rewrote the whole bottom level. (A
                // spilled backfill's files overlap nothing it wrote.)
                cf_options.set_level_zero_file_num_compaction_trigger(L0_COMPACTION_TRIGGER);
                let (rules, cf) = (Arc::clone(&retention), *cf);
                cf_options.set_compaction_filter(
                    "reprise_retention",
                    move |_, key: &[u8], value: &[u8]| {
                        let rules = Arc::clone(&crate::sync::read(&rules));
                        if !rules.is_empty() && rules.expired(cf, key, value, rules.now()) {
                            Decision::Remove
                        } else {
                            Decision::Keep
                        }
                    },
                );
            }
            if *cf == Cf::Online {
                // Point lookups (serving, and every push's check of the
                // rows it replaces) skip the memtable's skip list for keys
                // it does not hold.
                cf_options.set_memtable_prefix_bloom_ratio(0.05);
                cf_options.set_memtable_whole_key_filtering(true);
            }
            ColumnFamilyDescriptor::new(cf.name(), cf_options)
        });
        let db = DB::open_cf_descriptors(&db_options, path, descriptors).map_err(|e| {
            let message = e.to_string();
            if message.contains("lock") {
                StoreError::Locked {
                    path: path.display().to_string(),
                }
            } else {
                StoreError::Engine(message)
            }
        })?;
        let engine = RocksEngine {
            db,
            path: path.to_path_buf(),
            unfinished_ingestion: std::sync::atomic::AtomicBool::new(false),
            retention,
        };
        engine.recover_ingestions()?;
        // What a bulk load killed midway spilled: nothing reads it now.
        match std::fs::remove_dir_all(engine.scratch_dir()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        Ok(engine)
    }

    /// One atomic batch, the WAL synced before it returns.
    pub(super) fn write_synced(&self, batch: WriteBatch) -> Result<()> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.write_with(batch, &options)
    }

    fn write_with(&self, batch: WriteBatch, options: &WriteOptions) -> Result<()> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        // Inserting in key order lets the memtable skip list reuse its
        // search path from one key to the next (a stable sort keeps the
        // order of writes to one key).
        let mut ops: Vec<&super::WriteOp> = batch.ops().iter().collect();
        ops.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (cf, key, value) in ops {
            match value {
                Some(value) => rocks_batch.put_cf(self.handle(*cf), key, value),
                None => rocks_batch.delete_cf(self.handle(*cf), key),
            }
        }
        self.db
            .write_opt(rocks_batch, options)
            .map_err(engine_error)
    }

    pub(super) fn refuse_after_failed_ingestion(&self) -> Result<()> {
        if self
            .unfinished_ingestion
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(StoreError::Engine(
                "an ingestion failed midway; restart to finish it before writing again".into(),
            ));
        }
        Ok(())
    }

    pub(super) fn handle(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(cf.name())
            .expect("every column family is created at open")
    }

    fn property(&self, cf: Cf, name: &str) -> Option<u64> {
        self.db
            .property_int_value_cf(self.handle(cf), name)
            .ok()
            .flatten()
    }
}

/// L0 files that start a compaction in the column families rows live in
/// (RocksDB's default: 4).
pub(super) const L0_COMPACTION_TRIGGER: i32 = 8;

/// The scratch directory inside the store's directory.
const SCRATCH_DIR: &str = "scratch";

/// How far a long scan reads ahead of its position.
const SCAN_READAHEAD_BYTES: usize = 2 << 20;

pub(super) fn engine_error(e: rocksdb::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

/// The table format of every column family (and of ingested files): bloom
/// filters, index and filter blocks in the block cache when there is one.
pub(super) fn table_options(cache: Option<&Cache>) -> BlockBasedOptions {
    let mut table = BlockBasedOptions::default();
    if let Some(cache) = cache {
        table.set_block_cache(cache);
    }
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    table
}

impl Engine for RocksEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.handle(cf), key).map_err(engine_error)
    }

    fn multi_get(&self, cf: Cf, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let handle = self.handle(cf);
        let sorted = keys.windows(2).all(|w| w[0] <= w[1]);
        self.db
            .batched_multi_get_cf(handle, keys, sorted)
            .into_iter()
            .map(|r| {
                r.map(|v| v.map(|slice| slice.to_vec()))
                    .map_err(engine_error)
            })
            .collect()
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.refuse_after_failed_ingestion()?;
        self.write_synced(batch)
    }

    fn write_unlogged(&self, batch: WriteBatch) -> Result<()> {
        self.refuse_after_failed_ingestion()?;
        let mut options = WriteOptions::default();
        options.disable_wal(true);
        self.write_with(batch, &options)
    }

    fn persist(&self, cf: Cf) -> Result<()> {
        let mut options = rocksdb::FlushOptions::default();
        options.set_wait(true);
        self.db
            .flush_cf_opt(self.handle(cf), &options)
            .map_err(engine_error)
    }

    fn ingest(&self, runs: Vec<super::SortedRun>, commit: WriteBatch) -> Result<()> {
        self.refuse_after_failed_ingestion()?;
        self.ingest_runs(runs, commit)
    }

    fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut iter = self.db.raw_iterator_cf(self.handle(cf));
        iter.seek(prefix);
        let mut out = Vec::new();
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_vec(), value.to_vec()));
            iter.next();
        }
        iter.status().map_err(engine_error)?;
        Ok(out)
    }

    fn scan_prefix_page(
        &self,
        cf: Cf,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut iter = self.db.raw_iterator_cf(self.handle(cf));
        iter.seek(after.unwrap_or(prefix));
        let mut out = Vec::new();
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            if after != Some(key) {
                out.push((key.to_vec(), value.to_vec()));
            }
            iter.next();
        }
        iter.status().map_err(engine_error)?;
        Ok(out)
    }

    fn cursor(&self, cf: Cf) -> Result<Box<dyn Cursor + '_>> {
        Ok(Box::new(RocksCursor {
            iter: self.db.raw_iterator_cf(self.handle(cf)),
        }))
    }

    fn scan_cursor(&self, cf: Cf) -> Result<Box<dyn Cursor + '_>> {
        let mut options = rocksdb::ReadOptions::default();
        options.fill_cache(false);
        options.set_readahead_size(SCAN_READAHEAD_BYTES);
        Ok(Box::new(RocksCursor {
            iter: self.db.raw_iterator_cf_opt(self.handle(cf), options),
        }))
    }

    fn delete_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<()> {
        self.refuse_after_failed_ingestion()?;
        let handle = self.handle(cf);
        let mut batch = rocksdb::WriteBatch::default();
        match super::prefix_end(prefix) {
            Some(end) => batch.delete_range_cf(handle, prefix, end.as_slice()),
            None => {
                // An all-0xff prefix: no range end exists; delete key by key.
                let mut iter = self.db.raw_iterator_cf(handle);
                iter.seek(prefix);
                while let Some(key) = iter.key().filter(|k| k.starts_with(prefix)) {
                    batch.delete_cf(handle, key);
                    iter.next();
                }
                iter.status().map_err(engine_error)?;
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options).map_err(engine_error)
    }

    fn set_retention(&self, rules: Arc<RetentionRules>) {
        *crate::sync::write(&self.retention) = rules;
    }

    fn compact_history(&self) -> Result<()> {
        for cf in [Cf::History, Cf::AggIndex, Cf::Online] {
            let mut options = rocksdb::CompactOptions::default();
            // Rewrite the bottom level too: that is where old rows sit.
            options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
            self.db
                .compact_range_cf_opt(self.handle(cf), None::<&[u8]>, None::<&[u8]>, &options);
        }
        Ok(())
    }

    fn wait_for_compactions(&self) -> Result<()> {
        self.db
            .wait_for_compact(&rocksdb::WaitForCompactOptions::default())
            .map_err(engine_error)
    }

    fn scratch_dir(&self) -> PathBuf {
        self.path.join(SCRATCH_DIR)
    }

    fn begin_ingestion(&self) -> Result<Box<dyn super::Ingestion + '_>> {
        self.refuse_after_failed_ingestion()?;
        self.begin_file_ingestion()
    }

    fn checkpoint(&self, dir: &Path) -> Result<()> {
        // A marker whose files are still staged would be copied without
        // them (the staging directory is not part of a checkpoint).
        self.refuse_after_failed_ingestion()?;
        // Hard links to the immutable SST files plus a copy of the live
        // WAL and manifest: consistent across column families, cheap on one
        // file system, a full copy across file systems.
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|checkpoint| checkpoint.create_checkpoint(dir))
            .map_err(engine_error)
    }

    fn stats(&self) -> EngineStats {
        let sum = |name: &str| {
            Cf::ALL
                .iter()
                .filter_map(|cf| self.property(*cf, name))
                .reduce(|a, b| a + b)
        };
        EngineStats {
            memtable_bytes: sum("rocksdb.cur-size-all-mem-tables"),
            pending_compaction_bytes: sum("rocksdb.estimate-pending-compaction-bytes"),
            live_data_bytes: sum("rocksdb.estimate-live-data-size"),
        }
    }
}

struct RocksCursor<'a> {
    iter: DBRawIteratorWithThreadMode<'a, DB>,
}

impl Cursor for RocksCursor<'_> {
    fn seek_for_prev(&mut self, key: &[u8]) {
        self.iter.seek_for_prev(key);
    }

    fn seek(&mut self, key: &[u8]) {
        self.iter.seek(key);
    }

    fn valid(&self) -> bool {
        self.iter.valid()
    }

    fn entry(&self) -> Option<(&[u8], &[u8])> {
        Some((self.iter.key()?, self.iter.value()?))
    }

    fn prev(&mut self) {
        self.iter.prev();
    }

    fn next(&mut self) {
        self.iter.next();
    }

    fn status(&self) -> Result<()> {
        self.iter.status().map_err(engine_error)
    }
}
