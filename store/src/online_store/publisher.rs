//! The leader's side: drains the outbox (`crate::outbox`) into a shared
//! online store, one store version at a time and in version order. Each
//! entry's rows and events are read from the store when published (the
//! outbox lists keys only), applied, and then its version is published; the
//! entry is deleted only after that, so a failure anywhere (Redis down, a
//! crash) leaves it to be published again, which is harmless.

use std::sync::atomic::Ordering;

use crate::cf::Cf;
use crate::error::Result;
use crate::feature_store::FeatureStore;
use crate::outbox::PendingEntry;
use crate::row::RawRow;

use super::{definitions_of, LeaderState, OnlineChanges, OnlineStore, RECORDED_KEYS_MAX};

/// Entries taken per round, at most: a round publishes them together, as
/// one change at the last one's version (readers see none of them before
/// all), up to [`KEYS_PER_ROUND`] keys.
const ENTRIES_PER_ROUND: usize = 512;
const KEYS_PER_ROUND: usize = 20_000;

/// Keys read and applied at a time.
const CHUNK: usize = 2_000;

/// Checks that `target` may receive `store`'s publications: a shared store
/// that has published a version this store has not reached belongs to
/// another store (or this one was restored from an older backup), and
/// publishing into it would mix the two.
pub fn check_target(store: &FeatureStore, target: &dyn OnlineStore) -> Result<()> {
    let published = target.published_version()?;
    if published > store.version() {
        return Err(crate::error::StoreError::invalid(
            "online_store",
            format!(
                "the shared online store has published store version {published}, beyond this store's {}: another store publishes to this namespace, or this one was restored from an older backup; use another namespace or empty this one",
                store.version()
            ),
        ));
    }
    Ok(())
}

/// What one [`publish_pending`] call did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishRound {
    /// Outbox entries published.
    pub entries: usize,
    /// Rows and events applied.
    pub rows: usize,
    pub events: usize,
    /// The version the shared store has published now (`None`: unchanged).
    pub published_version: Option<u64>,
    /// The leader's state as written to the shared store.
    pub leader: Option<LeaderState>,
    /// Whether the definitions were published for a model registry change.
    pub definitions: bool,
}

/// Publishes up to a round's worth of outbox entries, oldest first; when
/// the outbox is then empty, publishes the store's version itself (versions
/// that changed nothing online have no entry). Ends by writing the leader's
/// state. An error leaves the entry it stopped at in the outbox.
pub fn publish_pending(store: &FeatureStore, target: &dyn OnlineStore) -> Result<PublishRound> {
    let mut round = PublishRound::default();
    let entries = round_entries(store)?;
    if let Some(first) = entries.first() {
        // Said first too, so that a long round (a whole publication) shows
        // as lag while it runs.
        target.set_leader_state(&LeaderState {
            store_version: store.version(),
            oldest_pending_at: Some(first.entry.committed_at_micros),
            at: store.clock().now(),
        })?;
    }
    if let Some(merged) = merge(&entries) {
        let _span = tracing::info_span!(
            "outbox.publish",
            version = merged.version,
            entries = merged_count(&entries)
        )
        .entered();
        let taken = &entries[..merged_count(&entries)];
        publish_entry(store, target, &merged, &mut round)?;
        target.await_replicas()?;
        store.outbox_remove_all(taken.iter().map(|p| p.version), merged.version)?;
        round.entries += taken.len();
        round.published_version = Some(merged.version);
    }
    // The version first: an entry committed after this read has a higher
    // version, so an empty outbox now means everything up to it is out.
    let version = store.version();
    let head = store.outbox_entries(1)?;
    if head.is_empty() && target.published_version()? < version {
        target.publish_version(version)?;
        store.record_publication(version)?;
        round.published_version = Some(version);
    }
    // The model registry changes without a store version (a model saved,
    // promoted, rolled back or deleted): published with the definitions
    // once the round's rows are out, so a replica that follows a new
    // serving pointer finds the rows it was trained with.
    let models = store.models_changed.load(Ordering::Acquire);
    if models != store.models_published.load(Ordering::Acquire) {
        target.publish_definitions(&definitions_of(store)?)?;
        target.await_replicas()?;
        store.models_published.store(models, Ordering::Release);
        round.definitions = true;
    }
    let leader = LeaderState {
        store_version: version,
        oldest_pending_at: head.first().map(|p| p.entry.committed_at_micros),
        at: store.clock().now(),
    };
    target.set_leader_state(&leader)?;
    round.leader = Some(leader);
    Ok(round)
}

/// The oldest entries, read a few at a time until a round's worth of keys
/// (an entry can list many: it is not decoded unless the round takes it).
fn round_entries(store: &FeatureStore) -> Result<Vec<PendingEntry>> {
    let mut entries: Vec<PendingEntry> = Vec::new();
    let mut keys = 0;
    while entries.len() < ENTRIES_PER_ROUND && keys <= KEYS_PER_ROUND {
        let page = store.outbox_entries_after(entries.last().map(|p| p.version), 4)?;
        if page.is_empty() {
            break;
        }
        for pending in page {
            keys += pending.entry.online_keys.len() + pending.entry.event_keys.len();
            entries.push(pending);
        }
    }
    Ok(entries)
}

/// How many of `entries` (oldest first) one round publishes together.
fn merged_count(entries: &[PendingEntry]) -> usize {
    let mut keys = 0;
    let mut count = 0;
    for pending in entries {
        keys += pending.entry.online_keys.len() + pending.entry.event_keys.len();
        if count > 0 && keys > KEYS_PER_ROUND {
            break;
        }
        count += 1;
    }
    count
}

/// The entries a round publishes, as one entry at the last one's version.
fn merge(entries: &[PendingEntry]) -> Option<PendingEntry> {
    let taken = &entries[..merged_count(entries)];
    let last = taken.last()?;
    let mut merged = PendingEntry {
        version: last.version,
        entry: crate::proto::OutboxEntry {
            committed_at_micros: taken[0].entry.committed_at_micros,
            ..Default::default()
        },
    };
    for pending in taken {
        let (into, from) = (&mut merged.entry, &pending.entry);
        into.online_keys.extend(from.online_keys.iter().cloned());
        into.event_keys.extend(from.event_keys.iter().cloned());
        into.definitions |= from.definitions;
        into.resync |= from.resync;
    }
    // A key several entries wrote is read once, at its newest.
    merged.entry.online_keys.sort_unstable();
    merged.entry.online_keys.dedup();
    Some(merged)
}

fn publish_entry(
    store: &FeatureStore,
    target: &dyn OnlineStore,
    pending: &PendingEntry,
    round: &mut PublishRound,
) -> Result<()> {
    let version = pending.version;
    let entry = &pending.entry;
    if entry.definitions {
        // The current definitions (perhaps newer than `version`: they only
        // grow, and a replica that knows a view before its rows reads it as
        // not found).
        target.publish_definitions(&definitions_of(store)?)?;
    }
    let retention = retentions(store);
    let horizons = event_horizons(store);
    // The aggregation groups this entry adds events to: named in the
    // change record with the online keys, so replicas drop their cached
    // events too.
    let mut groups: Vec<Vec<u8>> = Vec::new();
    if entry.resync {
        publish_everything(store, target, version, &retention, &horizons, round)?;
    } else {
        for keys in entry.online_keys.chunks(CHUNK) {
            let found = store.engine.multi_get(Cf::Online, keys)?;
            let rows = rows_at(keys.iter().cloned().zip(found), version)?;
            round.rows += rows.len();
            target.apply(&OnlineChanges {
                version,
                rows,
                events: Vec::new(),
                retention: retention.clone(),
                event_horizon: horizons.clone(),
            })?;
        }
        let read: Vec<Vec<u8>> = entry
            .event_keys
            .iter()
            .filter(|key| is_read(&horizons, key))
            .cloned()
            .collect();
        groups = read
            .iter()
            .filter_map(|key| {
                key.len()
                    .checked_sub(crate::codec::HistoryPosition::LEN)
                    .map(|end| key[..end].to_vec())
            })
            .collect();
        groups.sort_unstable();
        groups.dedup();
        for keys in read.chunks(CHUNK) {
            let found = store.engine.multi_get(Cf::AggIndex, keys)?;
            let events: Vec<(Vec<u8>, Vec<u8>)> = keys
                .iter()
                .cloned()
                .zip(found)
                // Gone: expired by retention since.
                .filter_map(|(key, row)| row.map(|row| (key, row)))
                .collect();
            round.events += events.len();
            target.apply(&OnlineChanges {
                version,
                rows: Vec::new(),
                events,
                retention: retention.clone(),
                event_horizon: horizons.clone(),
            })?;
        }
    }
    // Before the version is visible: a replica that reads it has the
    // record of what it changed.
    let changed = entry.online_keys.len() + groups.len();
    let everything = entry.resync || changed > RECORDED_KEYS_MAX;
    let keys: Vec<Vec<u8>> = if everything {
        Vec::new()
    } else {
        entry.online_keys.iter().cloned().chain(groups).collect()
    };
    if everything || !keys.is_empty() {
        target.record_changes(version, &keys, everything)?;
    }
    target.publish_version(version)
}

/// Every view's retention (aggregation events are stored under their
/// source view's id, so they follow its retention).
fn retentions(store: &FeatureStore) -> Vec<(u32, crate::time::Micros)> {
    store
        .registry()
        .views()
        .iter()
        .filter(|v| v.retention_micros > 0)
        .map(|v| (v.id, v.retention_micros))
        .collect()
}

/// The aggregation groupings replicas read (source view id, entity mask)
/// and how far back: the widest window of the aggregations over it (0: one
/// is all-time), within the source's retention. Only these groupings'
/// events are published: an events view's time index (mask 0) serves the
/// leader's drift checks, not replicas, unless an aggregation groups by no
/// entity.
fn event_horizons(store: &FeatureStore) -> Vec<(u32, u8, crate::time::Micros)> {
    let mut out: Vec<(u32, u8, crate::time::Micros)> = Vec::new();
    for view in store.registry().views() {
        let Some(spec) = view.aggregation() else {
            continue;
        };
        let retention = spec.source.retention_micros;
        let keep = match (spec.horizon, retention) {
            (0, r) => r,
            (h, 0) => h,
            (h, r) => h.min(r),
        };
        let grouping = (spec.source.id, spec.group_mask());
        match out.iter_mut().find(|(v, m, _)| (*v, *m) == grouping) {
            // 0 is forever: it wins; otherwise the longer.
            Some(slot) => {
                slot.2 = if slot.2 == 0 || keep == 0 {
                    0
                } else {
                    slot.2.max(keep)
                }
            }
            None => out.push((grouping.0, grouping.1, keep)),
        }
    }
    out
}

/// Whether an aggregation index key belongs to a grouping replicas read.
fn is_read(horizons: &[(u32, u8, crate::time::Micros)], key: &[u8]) -> bool {
    let Some(grouping) = crate::codec::agg_index_grouping(key) else {
        return false;
    };
    horizons.iter().any(|(v, m, _)| (*v, *m) == grouping)
}

/// The rows a version `version` publishes: present, and not rewritten by a
/// later version (whose own entry publishes it).
fn rows_at(
    found: impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    version: u64,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut rows = Vec::new();
    for (key, row) in found {
        if let Some(row) = row {
            if RawRow::decode(&row, 0)?.store_version <= version {
                rows.push((key, row));
            }
        }
    }
    Ok(rows)
}

/// Publishes every online row and aggregation event as of `version` (the
/// outbox was off, or rows changed in ways it cannot list).
fn publish_everything(
    store: &FeatureStore,
    target: &dyn OnlineStore,
    version: u64,
    retention: &[(u32, crate::time::Micros)],
    horizons: &[(u32, u8, crate::time::Micros)],
    round: &mut PublishRound,
) -> Result<()> {
    let (retention, horizons) = (retention.to_vec(), horizons.to_vec());
    tracing::info!(version, "publishing the whole online view");
    for cf in [Cf::Online, Cf::AggIndex] {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = store
                .engine
                .scan_prefix_page(cf, &[], after.as_deref(), CHUNK)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            let changes = match cf {
                Cf::Online => {
                    let rows = rows_at(page.into_iter().map(|(k, v)| (k, Some(v))), version)?;
                    round.rows += rows.len();
                    OnlineChanges {
                        version,
                        rows,
                        events: Vec::new(),
                        retention: retention.clone(),
                        event_horizon: horizons.clone(),
                    }
                }
                _ => {
                    // Events of later versions stay hidden until those are
                    // published.
                    let page: Vec<_> = page
                        .into_iter()
                        .filter(|(key, _)| is_read(&horizons, key))
                        .collect();
                    round.events += page.len();
                    OnlineChanges {
                        version,
                        rows: Vec::new(),
                        events: page,
                        retention: retention.clone(),
                        event_horizon: horizons.clone(),
                    }
                }
            };
            target.apply(&changes)?;
        }
    }
    Ok(())
}
