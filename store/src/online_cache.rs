//! The moka cache in front of the online column family, bounded by bytes.
//!
//! Consistency with writers: a reader notes the store version before reading
//! the engine and caches what it read only if no batch committed meanwhile;
//! a writer invalidates the keys it touched before publishing its version.
//! So a cached row is never older than the newest committed one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use moka::sync::Cache;

use crate::row::RawRow;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    pub weighted_bytes: u64,
}

pub struct OnlineCache {
    cache: Cache<Vec<u8>, Option<Arc<RawRow>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl OnlineCache {
    pub fn new(max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &Vec<u8>, row: &Option<Arc<RawRow>>| {
                let row_bytes = row.as_ref().map_or(0, |r| approximate_size(r));
                u32::try_from(key.len() + row_bytes + 64).unwrap_or(u32::MAX)
            })
            .build();
        OnlineCache {
            cache,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// `Some(None)` is a cached "no such row".
    pub fn get(&self, key: &[u8]) -> Option<Option<Arc<RawRow>>> {
        let found = self.cache.get(key);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn insert(&self, key: Vec<u8>, row: Option<Arc<RawRow>>) {
        self.cache.insert(key, row);
    }

    pub fn invalidate(&self, key: &[u8]) {
        self.cache.invalidate(key);
    }

    /// Counters and sizes; moka updates sizes lazily, so pending
    /// maintenance runs first (cheap; called per metrics scrape).
    pub fn stats(&self) -> CacheStats {
        self.cache.run_pending_tasks();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.cache.entry_count(),
            weighted_bytes: self.cache.weighted_size(),
        }
    }
}

fn approximate_size(row: &RawRow) -> usize {
    use crate::types::Value;
    let values: usize = row
        .values
        .iter()
        .flatten()
        .map(|v| match v {
            Value::String(s) => s.len() + 24,
            Value::FloatVector(v) => v.len() * 4 + 24,
            Value::StringList(v) => v.iter().map(|s| s.len() + 24).sum::<usize>() + 24,
            _ => 8,
        })
        .sum();
    values + row.values.len() * 32 + 32
}
