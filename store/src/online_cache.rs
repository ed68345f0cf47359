//! The moka cache in front of the online column family, bounded by bytes.
//!
//! Consistency with writers: a reader notes the store version before reading
//! the engine and caches what it read only if no batch committed meanwhile,
//! checking and inserting under the key's stripe lock; a writer publishes
//! its version, then invalidates each key it touched under the same lock.
//! So once a write is acknowledged, no older row of its keys is cached: a
//! reader that checked before the publish inserted before the writer's
//! invalidation (which removes it), one that checks after sees the new
//! version and caches nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use moka::sync::Cache;

use crate::row::RawRow;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    pub weighted_bytes: u64,
}

/// Stripes of the check-and-insert / invalidate locks.
const STRIPES: usize = 64;

pub struct OnlineCache {
    cache: Cache<Vec<u8>, Option<Arc<RawRow>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    stripes: Vec<Mutex<()>>,
}

impl OnlineCache {
    pub fn new(max_bytes: u64) -> Self {
        Self::with_time_to_live(max_bytes, None)
    }

    /// A cache whose entries also expire `ttl` after they went in.
    pub fn with_time_to_live(max_bytes: u64, ttl: Option<std::time::Duration>) -> Self {
        let mut builder = Cache::builder().max_capacity(max_bytes).weigher(
            |key: &Vec<u8>, row: &Option<Arc<RawRow>>| {
                let row_bytes = row.as_ref().map_or(0, |r| approximate_size(r));
                u32::try_from(key.len() + row_bytes + 64).unwrap_or(u32::MAX)
            },
        );
        if let Some(ttl) = ttl {
            builder = builder.time_to_live(ttl);
        }
        let cache = builder.build();
        OnlineCache {
            cache,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
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

    fn stripe(&self, key: &[u8]) -> std::sync::MutexGuard<'_, ()> {
        let i = (xxhash_rust::xxh3::xxh3_64(key) % STRIPES as u64) as usize;
        self.stripes[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Caches `row` under `key` if `still_current()` holds, checked under
    /// the key's stripe lock (see the module's consistency note).
    pub fn insert_if(
        &self,
        key: Vec<u8>,
        row: Option<Arc<RawRow>>,
        still_current: impl Fn() -> bool,
    ) {
        let _stripe = self.stripe(&key);
        if still_current() {
            self.cache.insert(key, row);
        }
    }

    /// Drops `key` (a writer, after publishing its version).
    pub fn invalidate(&self, key: &[u8]) {
        let _stripe = self.stripe(key);
        self.cache.invalidate(key);
    }

    /// Drops every entry (after a compaction reclaimed expired rows).
    pub fn clear(&self) {
        self.clear_with(|| ());
    }

    /// Runs `first`, then drops every entry, holding every stripe lock: a
    /// reader checking its condition under its key's lock sees what `first`
    /// changed, or went in before the drop.
    pub fn clear_with(&self, first: impl FnOnce()) {
        let _all: Vec<_> = self
            .stripes
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()))
            .collect();
        first();
        self.cache.invalidate_all();
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
