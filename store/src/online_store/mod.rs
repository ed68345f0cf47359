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
//! row and any newer unpublished one; aggregation events carry their store
//! version and are filtered). A read of many keys is not a snapshot: rows
//! are read, then the published version, so while versions are published
//! concurrently one key may show version V+1 and another still V (each a
//! published value). A Redis master lost before its replica received a write
//! loses that write until the version is applied again; a publisher must
//! therefore keep each version until the cluster acknowledged it (the
//! leader's outbox, not built yet). Deletions (retention, retired views) are
//! not carried yet, so the event sets grow until they are.

mod embedded;
mod redis_cluster;

pub use embedded::EngineOnlineStore;
pub use redis_cluster::RedisClusterOnlineStore;

use crate::error::Result;
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
}

/// An online view published in store-version order.
pub trait OnlineStore: Send + Sync {
    /// Applies `changes`, then publishes its version.
    fn publish(&self, changes: &OnlineChanges) -> Result<()>;

    /// The newest published store version (0 before any).
    fn published_version(&self) -> Result<u64>;

    /// The latest row of each online key as of the published version.
    fn latest(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>>;

    /// The published events under an aggregation group's index `prefix`
    /// whose event time is in `(from, to]`, in index order (event time, store
    /// version, sequence), as (full index key, encoded row).
    fn group_events(
        &self,
        prefix: &[u8],
        from: Micros,
        to: Micros,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}
