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

/// A byte-bounded moka cache of values by key, with the striped
/// check-and-insert / invalidate locks of the consistency note.
pub struct StripedCache<V: Clone + Send + Sync + 'static> {
    cache: Cache<Vec<u8>, V>,
    hits: AtomicU64,
    misses: AtomicU64,
    stripes: Vec<Mutex<()>>,
}

/// Online rows by online key (`None`: a cached "no such row").
pub type OnlineCache = StripedCache<Option<Arc<RawRow>>>;

impl OnlineCache {
    pub fn new(max_bytes: u64) -> Self {
        Self::with_time_to_live(max_bytes, None)
    }

    /// A cache whose entries also expire `ttl` after they went in.
    pub fn with_time_to_live(max_bytes: u64, ttl: Option<std::time::Duration>) -> Self {
        StripedCache::build(max_bytes, ttl, |row: &Option<Arc<RawRow>>| {
            row.as_ref().map_or(0, |r| approximate_size(r))
        })
    }
}

impl<V: Clone + Send + Sync + 'static> StripedCache<V> {
    /// A cache of at most `max_bytes` (each entry weighs its key, `weigh`
    /// of its value and 64 bytes), entries expiring `ttl` after they went
    /// in, if given.
    pub fn build(max_bytes: u64, ttl: Option<std::time::Duration>, weigh: fn(&V) -> usize) -> Self {
        let mut builder =
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(move |key: &Vec<u8>, value: &V| {
                    u32::try_from(key.len() + weigh(value) + 64).unwrap_or(u32::MAX)
                });
        if let Some(ttl) = ttl {
            builder = builder.time_to_live(ttl);
        }
        StripedCache {
            cache: builder.build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<V> {
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
        crate::sync::lock(&self.stripes[i])
    }

    /// Caches `row` under `key` if `still_current()` holds, checked under
    /// the key's stripe lock (see the module's consistency note).
    pub fn insert_if(&self, key: Vec<u8>, value: V, still_current: impl Fn(&[u8]) -> bool) {
        let _stripe = self.stripe(&key);
        if still_current(&key) {
            self.cache.insert(key, value);
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
        let _all: Vec<_> = self.stripes.iter().map(crate::sync::lock).collect();
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
