//! The outbox: while a leader publishes the online view to a shared online
//! store (Redis Cluster), every commit also writes, in its own atomic batch,
//! an entry keyed by its store version listing what it changed. A publisher
//! drains the entries in version order and deletes each once the shared
//! store acknowledged it, so an outage of the shared store (or of the
//! leader) delays the replicas' view but loses nothing.
//!
//! The outbox is off until a leader turns it on (a flag in the store, so a
//! command-line push while the leader is down still fills it); turning it on
//! queues a full publication first, unless the shared store is where this
//! store last recorded leaving it. A server started without a publisher
//! turns it off, so nothing accumulates that nobody drains.

use prost::Message;

use crate::cf::Cf;
use crate::engine::WriteBatch;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::proto::OutboxEntry;
use crate::time::Micros;

/// The meta key of the on/off flag.
pub(crate) const ENABLED_KEY: &[u8] = b"outbox/enabled";

/// The meta key of the version this store last saw the shared store
/// publish.
const PUBLISHED_KEY: &[u8] = b"outbox/published";

fn put_published(batch: &mut WriteBatch, version: u64) {
    batch.put(
        Cf::Meta,
        PUBLISHED_KEY.to_vec(),
        version.to_be_bytes().to_vec(),
    );
}

/// The meta keys that are definitions (besides the registry's records).
pub(crate) const RETIRED_PREFIX: &[u8] = b"retired_view/";

/// How an entry's rows are to be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Publication {
    /// The keys the batch wrote.
    Keys,
    /// The whole online view (the batch changed rows it cannot list).
    Everything,
}

fn entry_key(version: u64) -> Vec<u8> {
    version.to_be_bytes().to_vec()
}

/// The entry of `batch`, or `None` when it changes nothing a replica reads.
pub(crate) fn entry_of(
    batch: &WriteBatch,
    publication: Publication,
    committed_at: Micros,
) -> Option<OutboxEntry> {
    let ops = batch
        .ops()
        .iter()
        .map(|(cf, key, value)| (*cf, key.as_slice(), value.is_some()));
    entry_of_ops(ops, publication, committed_at)
}

/// The entry of writes given as (keyspace, key, is a put).
pub(crate) fn entry_of_ops<'k>(
    ops: impl Iterator<Item = (Cf, &'k [u8], bool)>,
    publication: Publication,
    committed_at: Micros,
) -> Option<OutboxEntry> {
    let mut entry = OutboxEntry {
        committed_at_micros: committed_at,
        resync: publication == Publication::Everything,
        ..OutboxEntry::default()
    };
    for (cf, key, put) in ops {
        match (cf, put) {
            (Cf::Online, true) => entry.online_keys.push(key.to_vec()),
            (Cf::AggIndex, true) => entry.event_keys.push(key.to_vec()),
            (Cf::Online | Cf::AggIndex, false) => entry.resync = true,
            (Cf::Registry, _) => entry.definitions = true,
            (Cf::Meta, _) if key.starts_with(RETIRED_PREFIX) => entry.definitions = true,
            _ => {}
        }
    }
    let changes = entry.resync
        || entry.definitions
        || !entry.online_keys.is_empty()
        || !entry.event_keys.is_empty();
    changes.then_some(entry)
}

/// Adds the entry of `batch` (committing `version`) to it, when the outbox
/// is on and the batch changes anything published.
pub(crate) fn add_entry(
    store: &FeatureStore,
    batch: &mut WriteBatch,
    version: u64,
    publication: Publication,
) {
    if !store.outbox_enabled() {
        return;
    }
    if let Some(entry) = entry_of(batch, publication, store.clock.now()) {
        batch.put(Cf::Outbox, entry_key(version), entry.encode_to_vec());
    }
}

/// Adds to `commit` the entry of an ingestion of `runs` at `version`.
pub(crate) fn add_ingestion_entry(
    store: &FeatureStore,
    commit: &mut WriteBatch,
    runs: &[crate::engine::SortedRun],
    version: u64,
) {
    let keys = runs
        .iter()
        .flat_map(|run| run.entries.iter().map(|(key, _)| (run.cf, key.as_slice())));
    add_bulk_entry(store, commit, keys, version);
}

/// Adds to `commit` the entry of a bulk load of `keys` (column family,
/// key: every one a put) at `version`.
pub(crate) fn add_bulk_entry<'k>(
    store: &FeatureStore,
    commit: &mut WriteBatch,
    keys: impl Iterator<Item = (Cf, &'k [u8])>,
    version: u64,
) {
    if !store.outbox_enabled() {
        return;
    }
    let ops = keys.map(|(cf, key)| (cf, key, true));
    if let Some(mut entry) = entry_of_ops(ops, Publication::Keys, store.clock.now()) {
        // A bulk load too large to list (and to hold when published) is
        // published by a scan of the whole online view instead.
        if entry.online_keys.len() + entry.event_keys.len() > MAX_LISTED_KEYS {
            entry = OutboxEntry {
                committed_at_micros: entry.committed_at_micros,
                resync: true,
                ..OutboxEntry::default()
            };
        }
        commit.put(Cf::Outbox, entry_key(version), entry.encode_to_vec());
    }
}

/// Adds to `commit` the entry of a bulk load at `version` too large to
/// list its keys: published by a scan of the whole online view.
pub(crate) fn add_resync_entry(store: &FeatureStore, commit: &mut WriteBatch, version: u64) {
    if store.outbox_enabled() {
        let entry = OutboxEntry {
            committed_at_micros: store.clock.now(),
            resync: true,
            ..OutboxEntry::default()
        };
        commit.put(Cf::Outbox, entry_key(version), entry.encode_to_vec());
    }
}

/// Keys an entry lists at most; a larger change is published whole.
pub(crate) const MAX_LISTED_KEYS: usize = 1_000_000;

/// Outbox entries waiting, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEntry {
    pub version: u64,
    pub entry: OutboxEntry,
}

impl FeatureStore {
    /// Whether commits write outbox entries.
    pub fn outbox_enabled(&self) -> bool {
        self.outbox.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Turns the outbox on: a leader starts publishing to a shared store
    /// whose published version is `published` (`None`: publish everything
    /// whatever it holds). A full publication (rows,
    /// events, definitions) is queued at the current version unless the
    /// outbox was already on and `published` is the version this store last
    /// recorded publishing there: then the shared store holds everything up
    /// to it and the entries still queued cover every later commit (a
    /// command-line push while the leader was down queues its entry too),
    /// so only the definitions are queued again. Otherwise commits made
    /// while the outbox was off are listed nowhere, or the shared store
    /// lost what it held (flushed, replaced, failed over to an older copy).
    /// Returns whether a full publication was queued.
    pub fn enable_outbox(&self, published: Option<u64>) -> Result<bool> {
        let _writer = self.lock_writer();
        let resync = !self.outbox_enabled()
            || published.is_none()
            || self.recorded_publication()? != published;
        let version = self.version();
        let entry = OutboxEntry {
            committed_at_micros: self.clock.now(),
            definitions: true,
            resync,
            ..OutboxEntry::default()
        };
        let mut batch = WriteBatch::default();
        batch.put(Cf::Meta, ENABLED_KEY.to_vec(), b"1".to_vec());
        // Entries are keyed by version: a later commit's entry replaces
        // this one only by also being at the current version, which cannot
        // happen under the writer lock; an older entry at this version (a
        // commit since the last publication) is merged, not lost.
        let entry = match self.engine.get(Cf::Outbox, &entry_key(version))? {
            Some(bytes) => {
                let mut queued = OutboxEntry::decode(bytes.as_slice())?;
                queued.definitions = true;
                queued.resync |= resync;
                queued
            }
            None => entry,
        };
        batch.put(Cf::Outbox, entry_key(version), entry.encode_to_vec());
        self.engine.write(batch)?;
        self.outbox
            .store(true, std::sync::atomic::Ordering::Release);
        if resync {
            tracing::info!(
                store_version = version,
                "outbox on: full publication queued"
            );
        } else {
            tracing::info!(
                store_version = version,
                published = published.unwrap_or_default(),
                "outbox on: the shared store is where this store left it; publishing the queued entries"
            );
        }
        Ok(resync)
    }

    /// The version this store last recorded the shared store publishing.
    fn recorded_publication(&self) -> Result<Option<u64>> {
        let Some(bytes) = self.engine.get(Cf::Meta, PUBLISHED_KEY)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("outbox/published".into()))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// Records that the shared store has published `version`.
    pub fn record_publication(&self, version: u64) -> Result<()> {
        let mut batch = WriteBatch::default();
        put_published(&mut batch, version);
        self.engine.write(batch)
    }

    /// Turns the outbox off and drops its entries (a server without a
    /// publisher: nobody would drain them). The next leader publishes
    /// everything again.
    pub fn disable_outbox(&self) -> Result<bool> {
        let _writer = self.lock_writer();
        if !self.outbox_enabled() {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        batch.delete(Cf::Meta, ENABLED_KEY.to_vec());
        batch.delete(Cf::Meta, PUBLISHED_KEY.to_vec());
        self.engine.write(batch)?;
        self.engine.delete_prefix(Cf::Outbox, &[])?;
        self.outbox
            .store(false, std::sync::atomic::Ordering::Release);
        tracing::info!("outbox off: entries dropped");
        Ok(true)
    }

    /// Up to `limit` entries, oldest first.
    pub fn outbox_entries(&self, limit: usize) -> Result<Vec<PendingEntry>> {
        self.outbox_entries_after(None, limit)
    }

    /// Up to `limit` entries of versions after `after` (from the oldest
    /// when `None`), oldest first.
    pub fn outbox_entries_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<PendingEntry>> {
        let after = after.map(entry_key);
        self.engine
            .scan_prefix_page(Cf::Outbox, &[], after.as_deref(), limit)?
            .into_iter()
            .map(|(key, value)| {
                let version = <[u8; 8]>::try_from(key.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("outbox key".into()))?;
                Ok(PendingEntry {
                    version,
                    entry: OutboxEntry::decode(value.as_slice())?,
                })
            })
            .collect()
    }

    /// Drops the entries of `versions` (published), in one write.
    /// Removes the entries of `versions`, published by the shared store
    /// up to `published`, and records that version in the same write.
    pub fn outbox_remove_all(
        &self,
        versions: impl Iterator<Item = u64>,
        published: u64,
    ) -> Result<()> {
        let mut batch = WriteBatch::default();
        put_published(&mut batch, published);
        for version in versions {
            batch.delete(Cf::Outbox, entry_key(version));
        }
        self.engine.write(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lists_online_and_event_keys_and_flags_the_rest() {
        let mut batch = WriteBatch::default();
        batch.put(Cf::History, b"h".to_vec(), b"x".to_vec());
        batch.put(Cf::Online, b"o".to_vec(), b"x".to_vec());
        batch.put(Cf::AggIndex, b"e".to_vec(), b"x".to_vec());
        let entry = entry_of(&batch, Publication::Keys, 7).unwrap();
        assert_eq!(entry.online_keys, vec![b"o".to_vec()]);
        assert_eq!(entry.event_keys, vec![b"e".to_vec()]);
        assert!(!entry.resync && !entry.definitions);
        assert_eq!(entry.committed_at_micros, 7);

        let mut deletes = WriteBatch::default();
        deletes.delete(Cf::Online, b"o".to_vec());
        assert!(entry_of(&deletes, Publication::Keys, 0).unwrap().resync);

        let mut retired = WriteBatch::default();
        retired.put(Cf::Meta, b"retired_view/\0\0\0\x01".to_vec(), b"p".to_vec());
        assert!(
            entry_of(&retired, Publication::Keys, 0)
                .unwrap()
                .definitions
        );

        let mut nothing = WriteBatch::default();
        nothing.put(Cf::Meta, b"store_version".to_vec(), b"1".to_vec());
        nothing.put(Cf::Models, b"m".to_vec(), b"1".to_vec());
        assert!(entry_of(&nothing, Publication::Keys, 0).is_none());
        assert!(
            entry_of(&nothing, Publication::Everything, 0)
                .unwrap()
                .resync
        );
    }
}
