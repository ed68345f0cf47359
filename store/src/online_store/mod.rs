//! Where the online view can live: the latest row per (view, entity) and
//! the aggregation index, published one store version at a time. Two
//! engines: [`EngineOnlineStore`] over the store's own engine (RocksDB, or
//! memory in tests) and [`RedisClusterOnlineStore`] on a Redis Cluster, so
//! that serving processes other than the one holding the store can read the
//! online view. One conformance suite (`store/tests/integration/
//! online_store.rs`) runs on both.
//!
//! Guarantees (both engines):
//! - a reader sees the rows of every published version and of no later
//!   one: a version is published after all its changes are applied;
//! - publishing the same version again (after a crash between apply and
//!   publish) is harmless, and versions are published in increasing order;
//! - the latest row of a key only moves forward (the store sends a key's
//!   row only when it is newer).
//!
//! Limits on Redis Cluster, which has no transaction across hash slots: the
//! changes of one version are applied key by key, and hidden from readers
//! until the version is published (each row key keeps the newest published
//! row and any newer unpublished ones; aggregation events carry their store
//! version and are filtered). A read of many keys is not a snapshot: rows
//! are read, then the published version, so while versions are published
//! concurrently one key may show version V+1 and another still V (each a
//! published value). A Redis master lost before its replica received a write
//! loses that write; the leader therefore keeps each version in its outbox
//! (`crate::outbox`) until the masters' replicas hold it
//! ([`OnlineStore::await_replicas`], `WAIT`). Only the aggregation
//! groupings some aggregation reads are published, trimmed to their widest
//! window. Deletions are not carried as such: rows and event sets expire in
//! Redis with their view's retention or horizon (readers ignore them past it
//! anyway), and retired views are refused by readers, their keys left to
//! expire. A replica's answer names the published version read after its
//! rows.

mod embedded;
mod publisher;
mod redis_cluster;
mod replica;

pub use embedded::EngineOnlineStore;
pub use publisher::{check_target, publish_pending, PublishRound};
pub use redis_cluster::RedisClusterOnlineStore;
pub use replica::{
    definitions_of, CachedEvents, FeedRound, ReplicaCache, ReplicaLag, REPLICA_CACHE_TTL,
};

use crate::error::Result;
use crate::proto::Definitions;
use crate::time::Micros;

/// One committed store version's online changes, as the store wrote them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OnlineChanges {
    pub version: u64,
    /// The new latest row of each online key (`view id ++ entity key`),
    /// encoded as stored.
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// The events the aggregation index gained: the full index key (group
    /// prefix ++ history position) and the encoded row.
    pub events: Vec<(Vec<u8>, Vec<u8>)>,
    /// The retention of the views these rows and events belong to (view id,
    /// microseconds; absent or 0: forever). Readers ignore a row or event
    /// older than its view's retention, so a shared store may let it expire.
    pub retention: Vec<(u32, Micros)>,
    /// How far back readers look into each aggregation grouping's events
    /// (source view id, entity mask, microseconds; absent or 0: forever):
    /// the widest window of the aggregations reading it, within the
    /// source's retention. Older events may be dropped.
    pub event_horizon: Vec<(u32, u8, Micros)>,
}

impl OnlineChanges {
    /// The horizon of the grouping an aggregation index `prefix` (source
    /// view id ++ entity mask ++ group key) belongs to (0: forever).
    pub fn event_horizon_of(&self, prefix: &[u8]) -> Micros {
        let Some(grouping) = crate::codec::agg_index_grouping(prefix) else {
            return 0;
        };
        self.event_horizon
            .iter()
            .find(|(v, m, _)| (*v, *m) == grouping)
            .map_or(0, |(_, _, h)| *h)
    }

    /// The retention of view `view_id` (0: forever).
    pub fn retention_of(&self, view_id: u32) -> Micros {
        self.retention
            .iter()
            .find(|(id, _)| *id == view_id)
            .map_or(0, |(_, r)| *r)
    }
}

/// What the leader last told the shared store about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderState {
    /// Its newest committed store version.
    pub store_version: u64,
    /// When the oldest version not yet published was committed (`None`:
    /// everything committed is published).
    pub oldest_pending_at: Option<Micros>,
    /// When it said so.
    pub at: Micros,
}

impl LeaderState {
    pub fn encode(&self) -> String {
        let pending = self
            .oldest_pending_at
            .map_or_else(|| "-".to_owned(), |t| t.to_string());
        format!("{} {pending} {}", self.store_version, self.at)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split(' ');
        let store_version = parts.next()?.parse().ok()?;
        let oldest_pending_at = match parts.next()? {
            "-" => None,
            t => Some(t.parse().ok()?),
        };
        let at = parts.next()?.parse().ok()?;
        Some(LeaderState {
            store_version,
            oldest_pending_at,
            at,
        })
    }
}

/// Which online rows one publication round changed, recorded before its
/// version is published, so a replica caching rows knows which to drop.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeRecord {
    /// The round's (published) version.
    pub version: u64,
    /// The version of the record before this one (0: none): a reader that
    /// last saw another one has missed records (trimmed) and must assume
    /// every row changed.
    pub previous: u64,
    /// The online keys whose row changed.
    pub keys: Vec<Vec<u8>>,
    /// Every row may have changed (a whole publication).
    pub everything: bool,
}

/// Change records kept by a shared store (older ones are trimmed).
pub const CHANGE_RECORDS_KEPT: usize = 1_000;

/// A round that changed more keys than this is recorded as "everything":
/// records stay small (a replica then drops its whole cache).
pub const RECORDED_KEYS_MAX: usize = 2_000;

impl ChangeRecord {
    /// The record's keys (or "everything") as one value: a flag byte, then
    /// each key length-prefixed.
    pub fn encode_keys(&self) -> Vec<u8> {
        let mut out = vec![u8::from(self.everything)];
        for key in &self.keys {
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
        }
        out
    }

    /// `(keys, everything)` from [`ChangeRecord::encode_keys`]'s bytes.
    pub fn decode_keys(bytes: &[u8]) -> Result<(Vec<Vec<u8>>, bool)> {
        let corrupt = || crate::error::StoreError::Corrupt("a change record's keys".into());
        let (&flag, mut rest) = bytes.split_first().ok_or_else(corrupt)?;
        let mut keys = Vec::new();
        while !rest.is_empty() {
            let (len, tail) = rest.split_at_checked(4).ok_or_else(corrupt)?;
            let len = u32::from_le_bytes(len.try_into().map_err(|_| corrupt())?) as usize;
            let (key, tail) = tail.split_at_checked(len).ok_or_else(corrupt)?;
            keys.push(key.to_vec());
            rest = tail;
        }
        Ok((keys, flag == 1))
    }
}

/// An aggregation group's index prefix and the event times `(from, to]`
/// read from it.
pub type EventGroup = (Vec<u8>, Micros, Micros);

/// A group's events, as (full index key, encoded row), in index order.
pub type GroupEvents = Vec<(Vec<u8>, Vec<u8>)>;

/// A digest of what `definitions` carry (not the version they were
/// published at): a replica reloads when it changes, which a model saved
/// or promoted does without a new store version.
pub fn definitions_digest(definitions: &Definitions) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for entry in &definitions.entries {
        for part in [entry.cf.as_bytes(), &entry.key, &entry.value] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    }
    hasher.digest()
}

/// An online view published in store-version order, with what replicas
/// need besides (the definitions, the leader's state).
pub trait OnlineStore: Send + Sync + std::fmt::Debug {
    /// Stores `changes` without making its version visible: readers see
    /// none of it until [`publish_version`](Self::publish_version) reaches
    /// its version. Applying the same changes twice is harmless.
    fn apply(&self, changes: &OnlineChanges) -> Result<()>;

    /// Makes every applied version up to `version` visible; never lowers
    /// the published version.
    fn publish_version(&self, version: u64) -> Result<()>;

    /// Applies `changes`, then publishes its version.
    fn publish(&self, changes: &OnlineChanges) -> Result<()> {
        self.apply(changes)?;
        self.publish_version(changes.version)
    }

    /// Waits until everything applied and published so far is safe from
    /// the loss of one server of the shared store (its replicas have it),
    /// or fails; the publisher keeps an outbox entry until this returns.
    /// Stores without replicas return at once.
    fn await_replicas(&self) -> Result<()> {
        Ok(())
    }

    /// The newest published store version (0 before any).
    fn published_version(&self) -> Result<u64>;

    /// The latest row of each online key as of the published version.
    fn latest(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>>;

    /// [`latest`](Self::latest), with the published version read after the
    /// rows: none of them is from a later version.
    fn latest_with_version(&self, keys: &[Vec<u8>]) -> Result<(Vec<Option<Vec<u8>>>, u64)> {
        let rows = self.latest(keys)?;
        Ok((rows, self.published_version()?))
    }

    /// The published events under an aggregation group's index `prefix`
    /// whose event time is in `(from, to]`, in index order (event time, store
    /// version, sequence), as (full index key, encoded row).
    fn group_events(
        &self,
        prefix: &[u8],
        from: Micros,
        to: Micros,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// [`group_events`](Self::group_events) of several groups, each
    /// `(prefix, from, to)`, answered in order (a shared store answers them
    /// in one round trip).
    fn group_events_many(&self, groups: &[EventGroup]) -> Result<Vec<GroupEvents>> {
        groups
            .iter()
            .map(|(prefix, from, to)| self.group_events(prefix, *from, *to))
            .collect()
    }

    /// Replaces the definitions replicas build their registry from.
    fn publish_definitions(&self, definitions: &Definitions) -> Result<()>;

    /// The published definitions (`None` before any).
    fn definitions(&self) -> Result<Option<Definitions>>;

    fn set_leader_state(&self, state: &LeaderState) -> Result<()>;

    fn leader_state(&self) -> Result<Option<LeaderState>>;

    /// Appends the record of a round's changed keys (`keys`, or every key
    /// when `everything`) at `version`, after the newest record; recording
    /// a version not above the newest again does nothing (a round
    /// published again after a crash). Keeps the newest
    /// [`CHANGE_RECORDS_KEPT`].
    fn record_changes(&self, version: u64, keys: &[Vec<u8>], everything: bool) -> Result<()>;

    /// Up to `limit` change records with a version above `after`, oldest
    /// first.
    fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<ChangeRecord>>;

    /// The newest change record's version (0: none).
    fn newest_change(&self) -> Result<u64>;
}

#[cfg(test)]
mod tests {
    use super::LeaderState;

    #[test]
    fn leader_states_round_trip() {
        for state in [
            LeaderState {
                store_version: 7,
                oldest_pending_at: Some(-3),
                at: 11,
            },
            LeaderState {
                store_version: 0,
                oldest_pending_at: None,
                at: 1,
            },
        ] {
            assert_eq!(LeaderState::decode(&state.encode()), Some(state));
        }
        assert_eq!(LeaderState::decode("7 x 1"), None);
    }
}
