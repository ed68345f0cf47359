//! The aggregation index (`Cf::AggIndex`): every event of an events view,
//! once more under each grouping some aggregation declares over it, so that
//! one group's events in a time range are one contiguous key range.
//!
//! Writes: the push path adds the index entries of an event to the same
//! engine batch as its history row (`group_prefixes`), using the registry
//! current under the writer lock. A migration that declares a grouping not
//! indexed yet backfills it from history (`backfill`), also under the
//! writer lock, before its record is committed: a crash in between leaves
//! the migration unapplied, and re-applying it rewrites the same keys.

use std::collections::{BTreeMap, BTreeSet};

use crate::cf::Cf;
use crate::codec::{self, HistoryPosition};
use crate::engine::{Engine, WriteBatch};
use crate::error::{Result, StoreError};
use crate::registry::Registry;

/// Events read and written per backfill batch.
const BACKFILL_PAGE: usize = 20_000;

/// The grouping by no entity (mask 0): every event of a view in event-time
/// order. Every events view has it (its time index: a window of events is
/// one key range, read by drift checks), as has any view an aggregation
/// over all entities reads.
pub const TIME_INDEX_MASK: u8 = 0;

/// The groupings (entity masks) indexed for each events view id.
pub fn indexed_groupings(registry: &Registry) -> BTreeMap<u32, BTreeSet<u8>> {
    let mut out: BTreeMap<u32, BTreeSet<u8>> = BTreeMap::new();
    for view in registry.views() {
        if view.is_events() {
            out.entry(view.id).or_default().insert(TIME_INDEX_MASK);
        }
        if let Some(spec) = view.aggregation() {
            out.entry(spec.source.id)
                .or_default()
                .insert(spec.group_mask());
        }
    }
    out
}

/// The index prefixes an event of view `view_id` with entity key
/// `entity_key` is written under: one per grouping in `masks`.
pub fn group_prefixes(
    view_id: u32,
    masks: &BTreeSet<u8>,
    entity_key: &[u8],
) -> Result<Vec<Vec<u8>>> {
    if masks.is_empty() {
        return Ok(Vec::new());
    }
    let keys = codec::decode_entity_key(entity_key)?;
    Ok(masks
        .iter()
        .map(|&mask| {
            let group: Vec<&str> = keys
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, k)| k.as_str())
                .collect();
            codec::agg_index_prefix(view_id, mask, &codec::entity_key(&group))
        })
        .collect())
}

/// Indexes every stored event of the groupings `after` has and `before`
/// has not, in pages; `progress` hears (view label, events indexed so far)
/// after each page. Returns the number of index entries written.
pub fn backfill(
    engine: &dyn Engine,
    before: &Registry,
    after: &Registry,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<u64> {
    let old = indexed_groupings(before);
    let mut written = 0;
    for (view_id, masks) in indexed_groupings(after) {
        let new: BTreeSet<u8> = match old.get(&view_id) {
            Some(known) => masks.difference(known).copied().collect(),
            None => masks,
        };
        if new.is_empty() {
            continue;
        }
        let view = after
            .view_by_id(view_id)
            .ok_or_else(|| StoreError::Corrupt(format!("view id {view_id}")))?;
        written += index_history(engine, view_id, &view.label(), &new, progress)?;
    }
    Ok(written)
}

/// Writes the index entries under `masks` of every stored event of view
/// `view_id`, in pages (rewriting an existing entry writes the same
/// bytes). Returns the number written.
fn index_history(
    engine: &dyn Engine,
    view_id: u32,
    label: &str,
    masks: &BTreeSet<u8>,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<u64> {
    let prefix = view_id.to_be_bytes();
    let (mut last, mut done, mut written): (Option<Vec<u8>>, u64, u64) = (None, 0, 0);
    loop {
        let page = engine.scan_prefix_page(Cf::History, &prefix, last.as_deref(), BACKFILL_PAGE)?;
        if page.is_empty() {
            break;
        }
        let mut batch = WriteBatch::default();
        for (key, value) in &page {
            let split = key
                .len()
                .checked_sub(HistoryPosition::LEN)
                .filter(|&at| at >= prefix.len())
                .ok_or_else(|| StoreError::Corrupt("short history key".into()))?;
            let entity_key = &key[prefix.len()..split];
            let tail = &key[split..];
            for group in group_prefixes(view_id, masks, entity_key)? {
                batch.put(
                    Cf::AggIndex,
                    [group.as_slice(), tail].concat(),
                    value.clone(),
                );
                written += 1;
            }
        }
        done += page.len() as u64;
        engine.write(batch)?;
        progress(label, done);
        last = page.last().map(|(k, _)| k.clone());
    }
    Ok(written)
}

/// The store-wide record that events views' time indexes cover their
/// history (stores made before time indexes existed are backfilled once).
const TIME_INDEX_MARKER: &[u8] = b"time_index/v1";

/// Indexes the history of every events view of `registry` in event-time
/// order unless done before (at open, before any write; progress is
/// logged per page). Each view is marked when done, so an open after a
/// crash midway resumes with the view it was indexing (rewriting the same
/// entries). A one-time cost of one pass over events history.
pub fn ensure_time_indexes(
    engine: &dyn Engine,
    registry: &Registry,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<u64> {
    if engine.get(Cf::Meta, TIME_INDEX_MARKER)?.is_some() {
        return Ok(0);
    }
    let masks = BTreeSet::from([TIME_INDEX_MASK]);
    let mut written = 0;
    for view in registry.views().iter().filter(|v| v.is_events()) {
        // Per view, so an interrupted backfill resumes with the next view.
        let done = [TIME_INDEX_MARKER, b"/", &view.id.to_be_bytes()].concat();
        if engine.get(Cf::Meta, &done)?.is_some() {
            continue;
        }
        written += index_history(engine, view.id, &view.label(), &masks, progress)?;
        let mut batch = WriteBatch::default();
        batch.put(Cf::Meta, done, vec![1]);
        engine.write(batch)?;
    }
    let mut batch = WriteBatch::default();
    batch.put(Cf::Meta, TIME_INDEX_MARKER.to_vec(), vec![1]);
    engine.write(batch)?;
    Ok(written)
}
