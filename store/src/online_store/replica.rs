//! The replica's side: a store with no data of its own, its registry built
//! from the definitions the leader published and its online reads answered
//! by the shared online store (see `online.rs`), following the version the
//! shared store has published.

use std::sync::Arc;

use crate::cf::Cf;
use crate::engine::{MemoryEngine, WriteBatch};
use crate::error::{Result, StoreError};
use crate::feature_store::{FeatureStore, StoreConfig};
use crate::proto::{Definitions, StoredEntry};
use crate::time::Micros;

use super::{LeaderState, OnlineStore};

/// The keyspaces definitions are carried from.
fn carried(cf: &str) -> Option<Cf> {
    [Cf::Registry, Cf::Meta]
        .into_iter()
        .find(|c| c.name() == cf)
}

/// The store's definitions now: its migration records and retired-view
/// records.
pub fn definitions_of(store: &FeatureStore) -> Result<Definitions> {
    let mut entries = Vec::new();
    for (cf, prefix) in [
        (Cf::Registry, &[][..]),
        (Cf::Meta, crate::outbox::RETIRED_PREFIX),
    ] {
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
        let store = FeatureStore::with_engine(Box::new(MemoryEngine::new()), config)?;
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

    /// Replaces a replica's definitions (the leader published new ones).
    pub fn load_definitions(&self, definitions: &Definitions) -> Result<()> {
        write_definitions(self, definitions)?;
        self.reload_registry()
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
