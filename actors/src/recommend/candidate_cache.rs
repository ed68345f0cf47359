//! The candidate cache: each frequent user's candidates (the generators'
//! lists, which cost an ANN search and an item-kNN pass) held in moka,
//! keyed by user and checked against the model version they were built
//! for. A play by the user invalidates their entry; a model swap
//! invalidates all. Hits and misses are counted for `/metrics`.

use std::sync::Arc;

use moka::sync::Cache;
use reprise_models::pipeline::CandidateLists;

use super::stats::ServingStats;

/// Candidates of one user for one model.
pub struct CachedCandidates {
    pub model_version: String,
    pub lists: CandidateLists,
    /// Candidate items (generator lists and recent history), by item index.
    pub items: Vec<u32>,
    /// The user's vector, if they have one.
    pub user_vector: Option<Vec<f32>>,
    /// Item indices of the user's history, oldest first.
    pub history: Vec<u32>,
    /// The most recent history items offered again.
    pub recent: Vec<u32>,
    /// New items in the genres of the user's recent items.
    pub metadata: Vec<u32>,
}

pub struct CandidateCache {
    cache: Cache<String, Arc<CachedCandidates>>,
    stats: Arc<ServingStats>,
}

impl CandidateCache {
    pub fn new(capacity: u64, stats: Arc<ServingStats>) -> Self {
        CandidateCache {
            cache: Cache::new(capacity),
            stats,
        }
    }

    /// The cached candidates of `user` for `model_version`.
    pub fn get(&self, user: &str, model_version: &str) -> Option<Arc<CachedCandidates>> {
        let hit = self
            .cache
            .get(user)
            .filter(|c| c.model_version == model_version);
        let counter = if hit.is_some() {
            &self.stats.cache_hits
        } else {
            &self.stats.cache_misses
        };
        ServingStats::add(counter, 1);
        hit
    }

    pub fn put(&self, user: &str, candidates: Arc<CachedCandidates>) {
        self.cache.insert(user.to_owned(), candidates);
    }

    pub fn contains(&self, user: &str) -> bool {
        self.cache.contains_key(user)
    }

    pub fn invalidate(&self, user: &str) {
        self.cache.invalidate(user);
    }

    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    pub fn entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}
