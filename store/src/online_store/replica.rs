//! The replica's side: a store with no data of its own, its registry built
//! from the definitions the leader published and its online reads answered
//! by the shared online store (see `online.rs`), following the version the
//! shared store has published.
//!
//! A replica caches the rows it read. The leader records which keys each
//! publication changed before publishing it ([`OnlineStore::
//! record_changes`]); the follower reads those records, drops the keys
//! they name, and only then moves the replica's version up to the published
//! one ([`FeatureStore::follow_changes`]), so a cached row is the shared
//! store's row as of the replica's version. A reader caches a row only if
//! no record was applied while it read (checked under the key's lock, as
//! the leader's cache does with commits). Records missed (trimmed, or a
//! record chain that does not continue the one seen: a failover, an emptied
//! store) drop the whole cache. Redis replicates asynchronously, so a
//! failover may lose a record the follower already applied while the row
//! it announced is published again later under the same record; entries
//! therefore also expire [`REPLICA_CACHE_TTL`] after they were read, which
//! bounds how long such a row can stay stale.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::online_cache::{OnlineCache, StripedCache};

use crate::cf::Cf;
use crate::engine::{MemoryEngine, WriteBatch};
use crate::error::{Result, StoreError};
use crate::feature_store::{FeatureStore, StoreConfig};
use crate::proto::{Definitions, StoredEntry};
use crate::time::Micros;

use super::{LeaderState, OnlineStore};

/// How long a replica keeps a cached row at most.
pub const REPLICA_CACHE_TTL: Duration = Duration::from_secs(1);

/// Change records read per call, at most.
const RECORDS_PER_READ: usize = 256;

/// An aggregation group's published events with an event time after
/// `from`, as read from the shared store (every later one: the read is not
/// bounded above, so an event published early with a later time is there
/// when the clock reaches it).
pub struct CachedEvents {
    pub from: Micros,
    pub events: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Aggregation groups' events by group index prefix.
pub(crate) type EventCache = StripedCache<Arc<CachedEvents>>;

/// A replica's row cache and where its change feed stands.
pub struct ReplicaCache {
    /// Set when the replica store is built.
    cache: OnceLock<OnlineCache>,
    /// Aggregation events, kept like rows: change records name the groups
    /// a publication added events to.
    events: OnceLock<EventCache>,
    /// The version of the last change record applied, or [`NOT_FOLLOWING`]
    /// (before the follower's first round, after a feed error): nothing
    /// is read from or put in the cache then.
    position: AtomicU64,
    /// One follower round at a time.
    round: Mutex<()>,
    /// Moves before the whole cache is dropped.
    epoch: AtomicU64,
    /// The change records applied lately, with the keys each named, and
    /// the version of the newest one no longer kept: a reader caches what
    /// it read unless a record applied since it started names the key (a
    /// global "anything changed?" would refuse nearly every read while the
    /// leader writes, however unrelated).
    recent: Mutex<RecentRecords>,
    /// Times the whole cache was dropped.
    dropped_all: AtomicU64,
}

const NOT_FOLLOWING: u64 = u64::MAX;

/// Change records kept to check reads against (a read that started before
/// the oldest kept is not cached).
const RECENT_RECORDS: usize = 256;

/// Applied change records (version, keys named), oldest first, and the
/// version of the newest one dropped from the list.
type RecentRecords = (std::collections::VecDeque<(u64, Arc<Vec<Vec<u8>>>)>, u64);

/// Where the change feed stood when a read started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadMark {
    epoch: u64,
    position: u64,
}

impl Default for ReplicaCache {
    fn default() -> Self {
        ReplicaCache {
            cache: OnceLock::new(),
            events: OnceLock::new(),
            position: AtomicU64::new(NOT_FOLLOWING),
            round: Mutex::new(()),
            epoch: AtomicU64::new(0),
            recent: Mutex::new((std::collections::VecDeque::new(), 0)),
            dropped_all: AtomicU64::new(0),
        }
    }
}

/// What one [`FeatureStore::follow_changes`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FeedRound {
    pub records: usize,
    pub keys_dropped: usize,
    /// The whole cache was dropped (records missed, or one said so).
    pub dropped_all: bool,
}

impl ReplicaCache {
    /// Where the feed stood when a read started.
    fn mark(&self) -> Option<ReadMark> {
        // The epoch first: a round that stops following moves it after.
        let epoch = self.epoch.load(Ordering::Acquire);
        let position = self.position.load(Ordering::Acquire);
        (position != NOT_FOLLOWING).then_some(ReadMark { epoch, position })
    }

    /// The cache, when the feed is followed (a reader may use it), and the
    /// mark to check before putting a row in.
    pub(crate) fn active(&self) -> Option<(&OnlineCache, ReadMark)> {
        Some((self.cache.get()?, self.mark()?))
    }

    /// The events cache, when the feed is followed, and the mark to check
    /// before putting an entry in.
    pub(crate) fn active_events(&self) -> Option<(&EventCache, ReadMark)> {
        Some((self.events.get()?, self.mark()?))
    }

    /// Whether `key`, read from `mark` on, may be cached: the cache was not
    /// dropped since, and no record applied since names it (checked under
    /// the key's lock; a record is listed here before its keys are dropped,
    /// so a read that missed it put its row in before the drop).
    pub(crate) fn unchanged_since(&self, mark: ReadMark, key: &[u8]) -> bool {
        if self.epoch.load(Ordering::Acquire) != mark.epoch {
            return false;
        }
        let recent = crate::sync::lock(&self.recent);
        let (records, forgotten) = &*recent;
        *forgotten <= mark.position
            && records
                .iter()
                .rev()
                .take_while(|(version, _)| *version > mark.position)
                .all(|(_, keys)| !keys.iter().any(|k| k == key))
    }

    /// Lists a record's keys as applied (before they are dropped).
    fn note_record(&self, version: u64, keys: &[Vec<u8>]) {
        let mut recent = crate::sync::lock(&self.recent);
        let (records, forgotten) = &mut *recent;
        records.push_back((version, Arc::new(keys.to_vec())));
        while records.len() > RECENT_RECORDS {
            if let Some((version, _)) = records.pop_front() {
                *forgotten = version;
            }
        }
    }

    pub fn stats(&self) -> Option<crate::online_cache::CacheStats> {
        self.cache.get().map(OnlineCache::stats)
    }

    /// Times the whole cache was dropped.
    pub fn dropped_all(&self) -> u64 {
        self.dropped_all.load(Ordering::Relaxed)
    }

    /// Drops every cached row (no reader puts one back that it read
    /// before).
    fn drop_all(&self, round: &mut FeedRound) {
        let bump = || {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        };
        match (self.cache.get(), self.events.get()) {
            (Some(cache), Some(events)) => events.clear_with(|| cache.clear_with(bump)),
            (Some(cache), None) => cache.clear_with(bump),
            (None, Some(events)) => events.clear_with(bump),
            (None, None) => bump(),
        }
        self.dropped_all.fetch_add(1, Ordering::Relaxed);
        round.dropped_all = true;
    }

    /// Applies the records after the last one applied, up to `published`.
    fn apply_records(
        &self,
        remote: &dyn OnlineStore,
        published: u64,
        round: &mut FeedRound,
    ) -> Result<()> {
        let Some(cache) = self.cache.get() else {
            return Ok(());
        };
        let newest = remote.newest_change()?;
        let mut last = match self.position.load(Ordering::Acquire) {
            // The first round: nothing is cached yet. A record above the
            // published version is not in force yet: start next round.
            NOT_FOLLOWING if newest > published => return Ok(()),
            NOT_FOLLOWING => newest,
            last if newest < last => {
                // The feed went back (an emptied or replaced store).
                self.drop_all(round);
                newest.min(published)
            }
            last => last,
        };
        'feed: while last < newest.min(published) {
            let records = remote.changes_after(last, RECORDS_PER_READ)?;
            if records.is_empty() {
                break;
            }
            for record in &records {
                // Recorded before it is published: not in force yet.
                if record.version > published {
                    break 'feed;
                }
                round.records += 1;
                if record.everything || record.previous != last {
                    self.drop_all(round);
                } else {
                    self.note_record(record.version, &record.keys);
                    for key in &record.keys {
                        cache.invalidate(key);
                        if let Some(events) = self.events.get() {
                            events.invalidate(key);
                        }
                    }
                    round.keys_dropped += record.keys.len();
                }
                last = record.version;
                self.position.store(last, Ordering::Release);
            }
        }
        self.position.store(last, Ordering::Release);
        Ok(())
    }

    /// Stops using the cache (the feed could not be read: what changed is
    /// unknown) until a round succeeds.
    fn stop_following(&self, round: &mut FeedRound) {
        self.position.store(NOT_FOLLOWING, Ordering::Release);
        self.drop_all(round);
    }
}

/// The keyspaces definitions are carried from.
fn carried(cf: &str) -> Option<Cf> {
    [Cf::Registry, Cf::Meta, Cf::Models]
        .into_iter()
        .find(|c| c.name() == cf)
}

/// What definitions carry: the registry's migration records, retired-view
/// records, and the model registry (every stored model, each kind's
/// serving pointer and promotion history, the active experiment's name).
const CARRIED: [(Cf, &[u8]); 6] = [
    (Cf::Registry, b""),
    (Cf::Meta, crate::outbox::RETIRED_PREFIX),
    (Cf::Models, b""),
    (Cf::Meta, crate::codec::SERVING_MODEL_PREFIX),
    (Cf::Meta, crate::codec::SERVING_HISTORY_PREFIX),
    (Cf::Meta, crate::codec::ACTIVE_EXPERIMENT_KEY),
];

/// The store's definitions now (see [`CARRIED`]).
pub fn definitions_of(store: &FeatureStore) -> Result<Definitions> {
    let mut entries = Vec::new();
    for (cf, prefix) in CARRIED {
        for (key, value) in store.engine.scan_prefix(cf, prefix)? {
            entries.push(StoredEntry {
                cf: cf.name().to_owned(),
                key,
                value,
            });
        }
    }
    Ok(Definitions {
        store_version: store.version(),
        entries,
    })
}

fn write_definitions(store: &FeatureStore, definitions: &Definitions) -> Result<()> {
    let mut batch = WriteBatch::default();
    // Models the leader deleted (and pointers it dropped) go here too:
    // carried keys the new definitions lack are deleted first.
    let kept: std::collections::HashSet<(&str, &[u8])> = definitions
        .entries
        .iter()
        .map(|e| (e.cf.as_str(), e.key.as_slice()))
        .collect();
    for (cf, prefix) in CARRIED {
        for (key, _) in store.engine.scan_prefix(cf, prefix)? {
            if !kept.contains(&(cf.name(), key.as_slice())) {
                batch.delete(cf, key);
            }
        }
    }
    for entry in &definitions.entries {
        let cf = carried(&entry.cf).ok_or_else(|| {
            StoreError::Corrupt(format!("definitions name keyspace `{}`", entry.cf))
        })?;
        batch.put(cf, entry.key.clone(), entry.value.clone());
    }
    store.engine.write(batch)
}

impl FeatureStore {
    /// A replica's store: the registry from `definitions`, online reads
    /// from `shared`. It holds no rows; snapshots, history and writes are
    /// the leader's.
    pub fn replica(
        shared: Arc<dyn OnlineStore>,
        definitions: &Definitions,
        config: StoreConfig,
    ) -> Result<Self> {
        let cache_bytes = config.online_cache_bytes;
        let store = FeatureStore::with_engine(Box::new(MemoryEngine::new()), config)?;
        // Rows and aggregation events share the budget.
        let cache = OnlineCache::with_time_to_live(cache_bytes / 2, Some(REPLICA_CACHE_TTL));
        if store.replica_cache.cache.set(cache).is_err() {
            unreachable!("a new store has no replica cache yet");
        }
        let events = EventCache::build(cache_bytes / 2, Some(REPLICA_CACHE_TTL), |cached| {
            cached
                .events
                .iter()
                .map(|(key, row)| key.len() + row.len() + 48)
                .sum()
        });
        if store.replica_cache.events.set(events).is_err() {
            unreachable!("a new store has no events cache yet");
        }
        write_definitions(&store, definitions)?;
        store.reload_registry()?;
        store.follow(shared.published_version()?);
        if store.remote_online.set(shared).is_err() {
            unreachable!("a new store has no shared online store yet");
        }
        Ok(store)
    }

    /// Whether online reads go to a shared online store (a replica).
    pub fn is_replica(&self) -> bool {
        self.remote_online.get().is_some()
    }

    /// The shared online store a replica reads.
    pub fn shared_online_store(&self) -> Option<&Arc<dyn OnlineStore>> {
        self.remote_online.get()
    }

    /// Replaces a replica's definitions (the leader published new ones);
    /// cached rows, decoded under the old ones, are dropped.
    pub fn load_definitions(&self, definitions: &Definitions) -> Result<()> {
        write_definitions(self, definitions)?;
        self.reload_registry()?;
        self.replica_cache.drop_all(&mut FeedRound::default());
        Ok(())
    }

    /// Applies the change records after the last one applied, up to
    /// `published` (dropping the cached rows they name), then moves the
    /// version up to `published`, which the caller read before calling.
    /// When the feed cannot be read, the cache is dropped and not used
    /// until a round succeeds; the version moves all the same.
    pub fn follow_changes(&self, published: u64) -> Result<FeedRound> {
        let remote = self.shared_online_store().ok_or_else(|| {
            StoreError::invalid("online_store", "only a replica follows a change feed")
        })?;
        let feed = &self.replica_cache;
        let _one_round = crate::sync::lock(&feed.round);
        let mut round = FeedRound::default();
        let applied = feed.apply_records(remote.as_ref(), published, &mut round);
        if applied.is_err() {
            feed.stop_following(&mut round);
        }
        self.follow(published);
        applied.map(|()| round)
    }

    /// Times this replica dropped its whole row cache.
    pub fn replica_cache_drops(&self) -> u64 {
        self.replica_cache.dropped_all()
    }

    /// Moves a replica's store version up to `published` (never down).
    pub fn follow(&self, published: u64) {
        self.version
            .fetch_max(published, std::sync::atomic::Ordering::AcqRel);
    }
}

/// How far a replica is behind its leader.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplicaLag {
    pub published_version: u64,
    /// The leader's newest committed version, as it last said.
    pub leader_version: u64,
    /// Versions committed on the leader and not yet published.
    pub versions: u64,
    /// How long the oldest unpublished commit has waited (0 when none).
    pub seconds: f64,
    /// Age of the leader's last word (it writes every publish round).
    pub leader_silent_seconds: f64,
}

impl ReplicaLag {
    pub fn of(published_version: u64, leader: Option<LeaderState>, now: Micros) -> Self {
        let seconds = |from: Micros| (now.saturating_sub(from)).max(0) as f64 / 1e6;
        match leader {
            None => ReplicaLag {
                published_version,
                leader_version: 0,
                versions: 0,
                seconds: 0.0,
                leader_silent_seconds: f64::INFINITY,
            },
            Some(leader) => {
                let versions = leader.store_version.saturating_sub(published_version);
                ReplicaLag {
                    published_version,
                    leader_version: leader.store_version,
                    versions,
                    seconds: match (versions, leader.oldest_pending_at) {
                        (0, _) | (_, None) => 0.0,
                        (_, Some(at)) => seconds(at),
                    },
                    leader_silent_seconds: seconds(leader.at),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_cacheable_unless_a_record_since_names_its_key_and_the_list_is_bounded() {
        let feed = ReplicaCache::default();
        feed.position.store(10, Ordering::Release);
        let mark = feed.mark().expect("following");
        feed.note_record(11, &[b"a".to_vec()]);
        assert!(
            !feed.unchanged_since(mark, b"a"),
            "named since the read began"
        );
        assert!(feed.unchanged_since(mark, b"b"), "another key");
        // A read that began after the record is cacheable.
        feed.position.store(11, Ordering::Release);
        assert!(feed.unchanged_since(feed.mark().unwrap(), b"a"));
        // Past the kept records, a read older than the oldest kept is not.
        for version in 12..12 + RECENT_RECORDS as u64 {
            feed.note_record(version, &[b"z".to_vec()]);
        }
        assert_eq!(feed.recent.lock().unwrap().0.len(), RECENT_RECORDS);
        assert!(!feed.unchanged_since(mark, b"b"), "records were forgotten");
        // A dropped cache refuses every read begun before the drop.
        let late = ReadMark {
            epoch: feed.epoch.load(Ordering::Acquire),
            position: u64::MAX - 1,
        };
        feed.drop_all(&mut FeedRound::default());
        assert!(!feed.unchanged_since(late, b"b"));
    }
}
