//! Counters of the serving path, read by the API's `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct ServingStats {
    pub recommendations: AtomicU64,
    pub cold_start: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub missing_context: AtomicU64,
    pub events: AtomicU64,
    pub served_items: AtomicU64,
    pub model_swaps: AtomicU64,
}

impl ServingStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
