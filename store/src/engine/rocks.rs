//! The RocksDB engine: one column family per [`Cf`], every batch one atomic
//! `WriteBatch` written with `sync = true` (the WAL is fsynced before
//! `write` returns).

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBRawIteratorWithThreadMode, Options,
    WriteOptions, DB,
};

use super::{Engine, EngineStats, ReverseCursor, WriteBatch};
use crate::cf::Cf;
use crate::error::{Result, StoreError};

pub struct RocksEngine {
    db: DB,
}

/// Tuning knobs with sane defaults.
#[derive(Debug, Clone)]
pub struct RocksOptions {
    /// Shared block cache for all column families.
    pub block_cache_bytes: usize,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            block_cache_bytes: 256 << 20,
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

        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let descriptors = Cf::ALL.iter().map(|cf| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(10.0, false);
            table.set_cache_index_and_filter_blocks(true);
            let mut cf_options = Options::default();
            cf_options.set_block_based_table_factory(&table);
            cf_options.set_compression_type(rocksdb::DBCompressionType::Lz4);
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
        Ok(RocksEngine { db })
    }

    fn handle(&self, cf: Cf) -> &rocksdb::ColumnFamily {
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

fn engine_error(e: rocksdb::Error) -> StoreError {
    StoreError::Engine(e.to_string())
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
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(rocks_batch, &options)
            .map_err(engine_error)
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

    fn reverse_cursor(&self, cf: Cf) -> Result<Box<dyn ReverseCursor + '_>> {
        Ok(Box::new(RocksCursor {
            iter: self.db.raw_iterator_cf(self.handle(cf)),
        }))
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

impl ReverseCursor for RocksCursor<'_> {
    fn seek_for_prev(&mut self, key: &[u8]) {
        self.iter.seek_for_prev(key);
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
}
