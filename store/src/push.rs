//! The push path: validate a batch of JSON rows against a view, then commit
//! it as one atomic batch with a new store version. Validation happens before
//! anything is written, so a rejected batch writes nothing. Concurrent
//! batches are group-committed: one engine write and one WAL sync for all
//! batches queued while the previous group prepared. A group is written
//! while the next one prepares (`write_pipeline.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message;

use serde_json::{Map, Value as Json};

use crate::cf::Cf;
use crate::codec::{self, HistoryPosition};
use crate::counters::Deltas;
use crate::engine::WriteBatch;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::proto;
use crate::registry::FeatureView;
use crate::row::RawRow;
use crate::sync::lock;
use crate::time::{parse_rfc3339, Micros};
use crate::transform::EVENT_TIMESTAMP;
use crate::types::{json_kind, Value};
use crate::write_pipeline::{OnlineTimes, Preparation};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushOutcome {
    pub written: usize,
    pub store_version: u64,
}

/// A batch's newest row for one entity: its event time and encoding.
type Newest = (Micros, Vec<u8>);

/// One row parsed against its view (from JSON by the push path, from text
/// cells by [`TextColumns`](crate::text_rows::TextColumns)), ready to be
/// checked and stored.
pub struct ParsedRow {
    /// Join-key values, in the view's order.
    pub(crate) keys: Vec<String>,
    pub(crate) entity_key: Vec<u8>,
    pub(crate) event_ts: Micros,
    pub(crate) values: Vec<Option<Value>>,
}

impl FeatureStore {
    /// Validates and writes `rows` (JSON objects with the view's join keys,
    /// `event_timestamp` and raw features) to the view `view_spec` (`name` or
    /// `name@N`). With `backfill`, each row's created time is its event time
    /// instead of the server clock.
    pub fn push(&self, view_spec: &str, rows: &[Json], backfill: bool) -> Result<PushOutcome> {
        let mut outcomes = self.push_all(&[(view_spec, rows)], backfill)?;
        Ok(outcomes.pop().expect("one batch, one outcome"))
    }

    /// Pushes several batches (each to its view, each with its own store
    /// version) in one atomic engine write: all are validated first, and a
    /// rejected one writes none. A request that logs to several views pays
    /// one WAL sync.
    pub fn push_all(
        &self,
        batches: &[(&str, &[Json])],
        backfill: bool,
    ) -> Result<Vec<PushOutcome>> {
        self.push_all_counting(batches, backfill, &[])
    }

    /// [`push_all`](Self::push_all) that also adds `counters` (name,
    /// delta) to their totals in the same atomic write: the totals include
    /// these rows exactly when the rows are stored (see `counters.rs`).
    pub fn push_all_counting(
        &self,
        batches: &[(&str, &[Json])],
        backfill: bool,
        counters: &[(String, i64)],
    ) -> Result<Vec<PushOutcome>> {
        let _span = tracing::info_span!("store.push", batches = batches.len()).entered();
        let registry = self.registry();
        let validated = batches
            .iter()
            .map(|(view_spec, rows)| self.validate_batch(&registry, view_spec, rows))
            .collect::<Result<Vec<_>>>()?;
        self.write_batches(validated, backfill, counters)
    }

    /// Pushes rows parsed from text cells by `columns` (one store version).
    pub fn push_parsed(
        &self,
        columns: &crate::text_rows::TextColumns,
        rows: Vec<ParsedRow>,
        backfill: bool,
    ) -> Result<PushOutcome> {
        let _span = tracing::info_span!("store.push", batches = 1).entered();
        let view = columns.view();
        let rows = self.check_rows(view, rows)?;
        let mut outcomes = self.write_batches(vec![(Arc::clone(view), rows)], backfill, &[])?;
        Ok(outcomes.pop().expect("one batch, one outcome"))
    }

    /// Writes validated batches (with `counters`) by group commit.
    pub(crate) fn write_batches(
        &self,
        batches: Vec<(Arc<FeatureView>, Vec<ParsedRow>)>,
        backfill: bool,
        counters: &[(String, i64)],
    ) -> Result<Vec<PushOutcome>> {
        let push = NEXT_PUSH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut pending = Vec::with_capacity(batches.len());
        for (view, parsed) in batches {
            pending.push(Arc::new(PendingBatch {
                view,
                push,
                backfill,
                rows: Mutex::new(parsed),
                counters: Mutex::new(Deltas::new()),
                outcome: Mutex::new(None),
            }));
        }
        match pending.first() {
            Some(first) => {
                let mut deltas = lock(&first.counters);
                for (name, delta) in counters {
                    *deltas.entry(name.clone()).or_default() += delta;
                }
            }
            None if !counters.is_empty() => {
                return Err(StoreError::invalid(
                    "counters",
                    "counters are added with a push of at least one batch",
                ))
            }
            None => {}
        }
        tracing::info_span!("commit").in_scope(|| self.commit_in_group(pending))
    }

    /// Checks one batch against its view and parses its rows, lookups
    /// filled in.
    pub(crate) fn validate_batch(
        &self,
        registry: &crate::registry::Registry,
        view_spec: &str,
        rows: &[Json],
    ) -> Result<(Arc<FeatureView>, Vec<ParsedRow>)> {
        let view = writable_view(registry, view_spec)?;
        let parsed = tracing::info_span!("validate", view = view_spec, rows = rows.len())
            .in_scope(|| {
                rows.iter()
                    .enumerate()
                    .map(|(i, row)| parse_row(view, i, row))
                    .collect::<Result<Vec<_>>>()
            })?;
        let parsed = self.check_rows(view, parsed)?;
        Ok((Arc::clone(view), parsed))
    }

    /// The checks every batch passes after parsing: not empty, no event
    /// time past the allowed lead; then its lookups are filled in.
    pub(crate) fn check_rows(
        &self,
        view: &FeatureView,
        mut rows: Vec<ParsedRow>,
    ) -> Result<Vec<ParsedRow>> {
        if rows.is_empty() {
            return Err(StoreError::invalid("rows", "a push needs at least one row"));
        }
        if let Some(latest) = self
            .max_future
            .map(|ahead| self.clock.now().saturating_add(ahead))
        {
            if let Some(i) = rows.iter().position(|row| row.event_ts > latest) {
                return Err(StoreError::invalid(
                    format!("rows[{i}].{EVENT_TIMESTAMP}"),
                    format!(
                        "is after {}, more than the allowed lead (--max-future) ahead of the server clock",
                        crate::time::format_rfc3339(latest)
                    ),
                ));
            }
        }
        if view.features.iter().any(|f| f.lookup.is_some()) {
            tracing::info_span!("lookups", view = view.label())
                .in_scope(|| self.fill_lookups(view, &mut rows))?;
        }
        Ok(rows)
    }

    /// Group commit: queue the batches, take the writer lock, and either
    /// find them taken by an earlier lock holder, or take everything queued
    /// (these batches included) as one group: one engine batch, one WAL
    /// sync. Each batch keeps its own store version; none is acknowledged
    /// before the sync. The group is written after the lock is released,
    /// while the next group prepares (`write_pipeline.rs`).
    fn commit_in_group(&self, batches: Vec<Arc<PendingBatch>>) -> Result<Vec<PushOutcome>> {
        // Queued together, so one group (one engine write) holds them all.
        lock(&self.pending).extend(batches.iter().cloned());
        let mut preparation = self.pipeline.lock_to_prepare();
        let group = std::mem::take(&mut *lock(&self.pending));
        let prepared = self.prepare_group(&mut preparation, group);
        drop(preparation);
        if let Some(prepared) = prepared {
            prepared.write();
        }
        // Answered by this thread's group, or by the one that took them.
        self.pipeline
            .wait_until(|| batches.iter().all(|b| lock(&b.outcome).is_some()));
        batches
            .iter()
            .map(|b| {
                lock(&b.outcome)
                    .take()
                    .expect("waited for every batch's outcome")
            })
            .collect()
    }

    /// Prepares `group` (under the writer lock `preparation`) for its write.
    /// The batches it does not write get their outcome now: refused ones
    /// (their view was retired), or all of them when preparing fails.
    fn prepare_group(
        &self,
        preparation: &mut Preparation,
        group: Vec<Arc<PendingBatch>>,
    ) -> Option<PreparedGroup<'_>> {
        // A push validated before its view version was retired (which
        // holds this lock) is refused whole, never written.
        let registry = self.registry();
        let refused: std::collections::HashSet<u64> = group
            .iter()
            .filter(|p| registry.is_retired(p.view.id))
            .map(|p| p.push)
            .collect();
        let (refused, group): (Vec<_>, Vec<_>) =
            group.into_iter().partition(|p| refused.contains(&p.push));
        for pending in &refused {
            *lock(&pending.outcome) = Some(Err(retired(&pending.view)));
        }
        if group.is_empty() {
            return None;
        }
        // A panic while preparing still answers the group's batches (their
        // callers check before they wait: they take this lock first).
        let answered = AnswerOnPanic(&group);
        let prepared = match self.prepare_write(preparation, &group) {
            Ok(prepared) => Some(prepared),
            Err(e) => {
                set_outcomes(&group, Err(e));
                None
            }
        };
        std::mem::forget(answered);
        prepared
    }

    /// Encodes `group` as one engine batch on top of the group in flight
    /// (or the store), then waits for its turn to write.
    fn prepare_write(
        &self,
        preparation: &mut Preparation,
        group: &[Arc<PendingBatch>],
    ) -> Result<PreparedGroup<'_>> {
        let mut counters = Deltas::new();
        for pending in group {
            for (name, delta) in std::mem::take(&mut *lock(&pending.counters)) {
                *counters.entry(name).or_default() += delta;
            }
        }
        let base = preparation
            .in_flight()
            .map_or_else(|| self.version(), |group| group.last_version);
        let mut version = base;
        let created_now = self.clock.now();
        // The groupings aggregations read, as registered now: a migration
        // that adds one holds this lock while it backfills.
        let groupings = crate::aggregation::index::indexed_groupings(&self.registry());
        let no_groupings = std::collections::BTreeSet::new();
        let mut batch = WriteBatch::default();
        let mut outcomes = Vec::with_capacity(group.len());
        // The newest row per (view, entity) over the group: later rows and
        // later batches win ties on event time.
        let mut newest = NewestRows::new();
        for pending in group {
            version += 1;
            let rows = std::mem::take(&mut *lock(&pending.rows));
            outcomes.push(PushOutcome {
                written: rows.len(),
                store_version: version,
            });
            let masks = groupings.get(&pending.view.id).unwrap_or(&no_groupings);
            let created = (!pending.backfill).then_some(created_now);
            encode_rows(
                &pending.view,
                rows,
                0,
                version,
                created,
                masks,
                Some(&mut newest),
                &mut |cf, key, value| batch.put(cf, key, value),
            )?;
        }

        let written_before = preparation.in_flight().map(|group| &group.online);
        let updates = self.online_updates(newest, written_before)?;
        let mut touched = Vec::with_capacity(updates.len());
        let mut online = OnlineTimes::with_capacity(updates.len());
        for (key, event_ts, bytes) in updates {
            touched.push(key.clone());
            online.insert(key.clone(), event_ts);
            batch.put(Cf::Online, key, bytes);
        }
        let written_before = preparation.in_flight().map(|group| &group.counters);
        let totals = self.add_counters(&mut batch, &counters, written_before)?;
        let ticket = self
            .pipeline
            .take_turn(preparation, version, online, totals);
        if self.version() != base {
            // The group it was prepared on was not written.
            preparation.forget_in_flight();
            return Err(StoreError::NotWritten("the write before it failed".into()));
        }
        Ok(PreparedGroup {
            store: self,
            batch: Some(batch),
            version,
            touched,
            outcomes,
            group: group.to_vec(),
            _ticket: ticket,
        })
    }

    /// Prepares a push of rows parsed from text cells by `columns` (one
    /// store version), to be written by [`PreparedPush::write`]: the next
    /// push prepares while this one is written (each waits for the one
    /// before it to be written before it returns). A CLI push of a file
    /// overlaps encoding with writing this way. Write (or drop) it before
    /// this thread prepares another: that one waits for it.
    pub fn prepare_parsed(
        &self,
        columns: &crate::text_rows::TextColumns,
        rows: Vec<ParsedRow>,
        backfill: bool,
    ) -> Result<PreparedPush<'_>> {
        let _span = tracing::info_span!("store.prepare_push").entered();
        let view = columns.view();
        let rows = self.check_rows(view, rows)?;
        let pending = Arc::new(PendingBatch {
            view: Arc::clone(view),
            push: NEXT_PUSH.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            backfill,
            rows: Mutex::new(rows),
            counters: Mutex::new(Deltas::new()),
            outcome: Mutex::new(None),
        });
        let mut preparation = self.pipeline.lock_to_prepare();
        let prepared = self.prepare_group(&mut preparation, vec![Arc::clone(&pending)]);
        drop(preparation);
        match prepared {
            Some(group) => Ok(PreparedPush { group, pending }),
            None => Err(lock(&pending.outcome)
                .take()
                .expect("a batch not prepared has its outcome")
                .expect_err("a batch not prepared was refused")),
        }
    }
}

/// A push prepared by [`FeatureStore::prepare_parsed`], its turn to write
/// come. Dropping it unwritten refuses it, and the push prepared after it.
pub struct PreparedPush<'s> {
    group: PreparedGroup<'s>,
    pending: Arc<PendingBatch>,
}

impl PreparedPush<'_> {
    /// Writes the push (durably) and publishes its store version.
    pub fn write(self) -> Result<PushOutcome> {
        self.group.write();
        lock(&self.pending.outcome)
            .take()
            .expect("a written group has its outcomes")
    }
}

/// One engine batch holding a group of push batches, its turn to write
/// come.
struct PreparedGroup<'s> {
    store: &'s FeatureStore,
    /// `None` once written.
    batch: Option<WriteBatch>,
    /// The last store version it writes.
    version: u64,
    /// The online keys it writes (their cached rows are dropped).
    touched: Vec<Vec<u8>>,
    group: Vec<Arc<PendingBatch>>,
    outcomes: Vec<PushOutcome>,
    /// Dropped after the outcomes are set: the next group may write.
    _ticket: crate::write_pipeline::Ticket<'s>,
}

impl PreparedGroup<'_> {
    /// Writes the batch and gives each push batch its outcome.
    fn write(mut self) {
        let batch = self.batch.take().expect("written once");
        let store = self.store;
        match store.commit(batch, self.version, &self.touched) {
            Ok(()) => {
                let writes: Vec<(u32, u64)> = self
                    .group
                    .iter()
                    .zip(&self.outcomes)
                    .map(|(p, o)| (p.view.id, o.store_version))
                    .collect();
                store.record_view_writes(&writes);
                for (pending, outcome) in self.group.iter().zip(&self.outcomes) {
                    *lock(&pending.outcome) = Some(Ok(*outcome));
                }
            }
            Err(e) => set_outcomes(&self.group, Err(e)),
        }
    }
}

impl Drop for PreparedGroup<'_> {
    /// Answers the batches not answered yet: dropped before its write, or
    /// a panic while writing. (The ticket, a field, is released after.)
    fn drop(&mut self) {
        answer_unanswered(
            &self.group,
            "not written: dropped before its write, or its write panicked",
        );
    }
}

/// While held, a panic answers the batches of a group being prepared.
struct AnswerOnPanic<'a>(&'a [Arc<PendingBatch>]);

impl Drop for AnswerOnPanic<'_> {
    fn drop(&mut self) {
        answer_unanswered(self.0, "not written: preparing its write panicked");
    }
}

/// Gives every batch of `group` without an outcome the engine error
/// `message`.
fn answer_unanswered(group: &[Arc<PendingBatch>], message: &str) {
    for pending in group {
        let mut outcome = lock(&pending.outcome);
        if outcome.is_none() {
            *outcome = Some(Err(StoreError::Engine(message.to_owned())));
        }
    }
}

/// Gives every batch of `group` the outcome `failed` (as an engine error
/// when there are several, since the error is not `Clone`).
fn set_outcomes(group: &[Arc<PendingBatch>], failed: Result<PushOutcome>) {
    match group {
        [only] => *lock(&only.outcome) = Some(failed),
        _ => {
            let Err(e) = &failed else {
                unreachable!("only failures are shared")
            };
            for pending in group {
                *lock(&pending.outcome) = Some(Err(e.shared()));
            }
        }
    }
}

impl FeatureStore {
    /// The online rows `newest` replaces (the online row moves only forward
    /// in event time), in key order, with their event times. The rows of
    /// the group in flight (`written_before`) count as stored.
    pub(crate) fn online_updates(
        &self,
        newest: NewestRows,
        written_before: Option<&OnlineTimes>,
    ) -> Result<Vec<OnlineUpdate>> {
        // Keys sorted, so the engine can look them up in order.
        let mut candidates: Vec<(Vec<u8>, Newest)> = newest.into_iter().collect();
        candidates.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let (keys, rows) = candidates.into_iter().unzip();
        self.online_replacements(keys, rows, StoredRows::PointLookups { written_before })
    }

    /// The candidates (online `keys`, in increasing order, and each one's
    /// event time and encoded row) that replace the stored online row: it
    /// moves only forward in event time. The stored rows are found as
    /// `lookup` says.
    pub(crate) fn online_replacements<R: Into<Vec<u8>>>(
        &self,
        keys: Vec<Vec<u8>>,
        rows: Vec<(Micros, R)>,
        lookup: StoredRows,
    ) -> Result<Vec<OnlineUpdate>> {
        // The stored row's event time, where there is one.
        let mut stored: Vec<Option<Micros>> = vec![None; keys.len()];
        match lookup {
            StoredRows::Walk => {
                self.engine.get_sorted(Cf::Online, &keys, &mut |i, row| {
                    stored[i] = Some(proto::RowTimes::decode(row)?.event_ts_micros);
                    Ok(())
                })?;
            }
            StoredRows::PointLookups { written_before } => {
                for (slot, row) in stored
                    .iter_mut()
                    .zip(self.engine.multi_get(Cf::Online, &keys)?)
                {
                    if let Some(row) = row {
                        *slot = Some(proto::RowTimes::decode(row.as_slice())?.event_ts_micros);
                    }
                }
                // What the group in flight writes is newer than the engine's.
                for (slot, key) in stored.iter_mut().zip(&keys) {
                    if let Some(ts) = written_before.and_then(|rows| rows.get(key)) {
                        *slot = Some(*ts);
                    }
                }
            }
        }
        let mut updates = Vec::with_capacity(keys.len());
        for ((key, (ts, row)), stored) in keys.into_iter().zip(rows).zip(stored) {
            if stored.is_none_or(|stored| ts >= stored) {
                updates.push((key, ts, row.into()));
            }
        }
        Ok(updates)
    }
}

/// An online row replacing the stored one: key, event time, encoding.
pub(crate) type OnlineUpdate = (Vec<u8>, Micros, Vec<u8>);

/// How the stored online rows a write may replace are found.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StoredRows<'a> {
    /// One cursor walk over the sorted keys: a bulk ingestion's keys cover
    /// the keyspace densely.
    Walk,
    /// A lookup per key: a live batch's few keys, where a walk would seek
    /// through every memtable and level for each and a point lookup skips
    /// most of them by their bloom filters. `written_before`: the online
    /// rows of the group in flight, which the engine may not hold yet.
    PointLookups {
        written_before: Option<&'a OnlineTimes>,
    },
}

/// The newest row per (view, entity) over the batches being written.
pub(crate) type NewestRows = HashMap<Vec<u8>, Newest>;

/// Encodes `rows` of `view` written at store `version`, after `first_seq`
/// others of that version (their sequence numbers in the history keys start
/// there): each row's history entry and its aggregation-index entries (one
/// per grouping in `masks`) go to `put`; `newest` keeps each entity's newest
/// row (later rows win ties on event time), if given. `created`: the
/// created time, or `None` for a backfill (each row's event time).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_rows(
    view: &FeatureView,
    rows: Vec<ParsedRow>,
    first_seq: usize,
    version: u64,
    created: Option<Micros>,
    masks: &std::collections::BTreeSet<u8>,
    mut newest: Option<&mut NewestRows>,
    put: &mut dyn FnMut(Cf, Vec<u8>, Vec<u8>),
) -> Result<()> {
    for (seq, row) in (first_seq..).zip(rows) {
        let prefix = codec::view_entity_prefix(view.id, &row.entity_key);
        let position = HistoryPosition {
            event_ts: row.event_ts,
            store_version: version,
            seq: seq as u32,
        };
        let groups = crate::aggregation::index::group_prefixes(view.id, masks, &row.entity_key)?;
        let bytes = RawRow {
            event_ts: row.event_ts,
            created_ts: created.unwrap_or(row.event_ts),
            store_version: version,
            values: row.values,
        }
        .encode();
        for group in groups {
            put(
                Cf::AggIndex,
                codec::history_key(&group, position),
                bytes.clone(),
            );
        }
        let Some(newest) = newest.as_deref_mut() else {
            put(
                Cf::History,
                codec::into_history_key(prefix, position),
                bytes,
            );
            continue;
        };
        put(
            Cf::History,
            codec::history_key(&prefix, position),
            bytes.clone(),
        );
        match newest.get_mut(&prefix) {
            Some(slot) if row.event_ts < slot.0 => {}
            Some(slot) => *slot = (row.event_ts, bytes),
            None => {
                newest.insert(prefix, (row.event_ts, bytes));
            }
        }
    }
    Ok(())
}

/// The view `view_spec` names, if rows may be written to it: known, not
/// retired, not an aggregation.
pub(crate) fn writable_view<'r>(
    registry: &'r crate::registry::Registry,
    view_spec: &str,
) -> Result<&'r Arc<FeatureView>> {
    let view = registry.require_view(view_spec, "view")?;
    if registry.is_retired(view.id) {
        return Err(retired(view));
    }
    if let Some(spec) = view.aggregation() {
        return Err(StoreError::invalid(
            "view",
            format!(
                "`{view_spec}` is an aggregation, computed from the events of `{}`; push those events instead",
                spec.source.label()
            ),
        ));
    }
    Ok(view)
}

/// Numbers pushes, so the batches of one push are told apart in a group.
static NEXT_PUSH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn retired(view: &FeatureView) -> StoreError {
    StoreError::Expired {
        field: "view".into(),
        message: format!(
            "view `{}` was retired (an old version whose rows were deleted); push to a newer version",
            view.label()
        ),
    }
}

/// A validated batch waiting for the writer.
pub(crate) struct PendingBatch {
    view: Arc<FeatureView>,
    /// The push it belongs to (its batches are written or refused together).
    push: u64,
    backfill: bool,
    rows: Mutex<Vec<ParsedRow>>,
    /// Counter deltas written with the batch (on the first of a push).
    counters: Mutex<Deltas>,
    outcome: Mutex<Option<Result<PushOutcome>>>,
}

fn parse_row(view: &FeatureView, index: usize, row: &Json) -> Result<ParsedRow> {
    let field = |name: &str| format!("rows[{index}].{name}");
    let object = row.as_object().ok_or_else(|| StoreError::WrongType {
        field: format!("rows[{index}]"),
        expected: "an object".into(),
        got: json_kind(row).into(),
    })?;
    let keys = join_key_values(object, &view.join_keys, &field)?;
    let event_ts = timestamp_field(object, &field)?;
    let mut values = vec![None; view.features.len()];
    for (name, json) in object {
        if name == EVENT_TIMESTAMP || view.join_keys.contains(name) {
            continue;
        }
        let index = view
            .feature_index(name)
            .ok_or_else(|| StoreError::UnknownFeature {
                field: field(name),
                feature: format!("{}:{name}", view.name),
            })?;
        let feature = writable_feature(view, index, &field(name))?;
        values[index] =
            Value::from_json(json, feature.feature_type, feature.dim).map_err(|got| {
                StoreError::WrongType {
                    field: field(name),
                    expected: feature.feature_type.name().into(),
                    got,
                }
            })?;
    }
    Ok(ParsedRow {
        entity_key: codec::entity_key(&keys),
        keys,
        event_ts,
        values,
    })
}

/// The feature at `index` of `view`, if a row may carry its value: not a
/// lookup, not derived. `field` names it in errors.
pub(crate) fn writable_feature<'v>(
    view: &'v FeatureView,
    index: usize,
    field: &str,
) -> Result<&'v crate::registry::Feature> {
    let feature = &view.features[index];
    let name = &feature.definition.name;
    if feature.lookup.is_some() {
        return Err(StoreError::invalid(
            field,
            format!("`{name}` is a lookup, read from another view when the event is stored; it cannot be pushed"),
        ));
    }
    if let Some(transform) = &feature.definition.transform {
        return Err(StoreError::DerivedFeature {
            field: field.to_owned(),
            feature: name.clone(),
            transform: transform.kind().into(),
        });
    }
    Ok(feature)
}

/// Reads the join keys from a JSON object: strings, or integers taken as
/// their decimal form.
pub(crate) fn join_key_values(
    object: &Map<String, Json>,
    join_keys: &[String],
    field: &dyn Fn(&str) -> String,
) -> Result<Vec<String>> {
    join_keys
        .iter()
        .map(|key| match object.get(key) {
            None | Some(Json::Null) => Err(StoreError::missing(field(key))),
            Some(Json::String(s)) if s.is_empty() => Err(StoreError::invalid(
                field(key),
                "a join key must not be empty",
            )),
            Some(Json::String(s)) => Ok(s.clone()),
            Some(Json::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
            Some(other) => Err(StoreError::WrongType {
                field: field(key),
                expected: "a string".into(),
                got: json_kind(other).into(),
            }),
        })
        .collect()
}

/// Reads the required RFC 3339 `event_timestamp` of a JSON object.
pub(crate) fn timestamp_field(
    object: &Map<String, Json>,
    field: &dyn Fn(&str) -> String,
) -> Result<Micros> {
    match object.get(EVENT_TIMESTAMP) {
        None | Some(Json::Null) => Err(StoreError::missing(field(EVENT_TIMESTAMP))),
        Some(Json::String(text)) => parse_rfc3339(text).ok_or_else(|| {
            StoreError::invalid(
                field(EVENT_TIMESTAMP),
                format!("`{text}` is not an RFC 3339 timestamp like 2026-01-01T00:00:00Z"),
            )
        }),
        Some(other) => Err(StoreError::WrongType {
            field: field(EVENT_TIMESTAMP),
            expected: "an RFC 3339 string".into(),
            got: json_kind(other).into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;
    use serde_json::json;

    const DEFINITIONS: &str = r#"
[[entity]]
name = "user"
join_key = "user_id"

[[feature_view]]
name = "plays"
version = 1
entities = ["user"]
ttl = "0"

[[feature_view.feature]]
name = "count"
type = "int64"
"#;

    /// A validated batch of one row for `user`, adding `delta` to the
    /// counter `c`.
    fn pending(store: &FeatureStore, user: &str, delta: i64) -> Arc<PendingBatch> {
        let row = json!({"user_id": user, "event_timestamp": "2026-01-01T00:00:00Z", "count": 1});
        let (view, rows) = store
            .validate_batch(&store.registry(), "plays", &[row])
            .unwrap();
        Arc::new(PendingBatch {
            view,
            push: NEXT_PUSH.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            backfill: true,
            rows: Mutex::new(rows),
            counters: Mutex::new(Deltas::from([("c".to_owned(), delta)])),
            outcome: Mutex::new(None),
        })
    }

    fn prepare(store: &FeatureStore, batch: Arc<PendingBatch>) -> PreparedGroup<'_> {
        let mut preparation = store.pipeline.lock_to_prepare();
        store
            .prepare_group(&mut preparation, vec![batch])
            .expect("prepared")
    }

    /// The memory engine, whose writes panic while `armed`.
    struct PanickingWrites {
        inner: crate::engine::MemoryEngine,
        armed: Arc<std::sync::atomic::AtomicBool>,
    }

    impl crate::engine::Engine for PanickingWrites {
        fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.inner.get(cf, key)
        }

        fn write(&self, batch: WriteBatch) -> Result<()> {
            let armed = self.armed.load(std::sync::atomic::Ordering::SeqCst);
            assert!(!armed, "injected: the engine write panics");
            self.inner.write(batch)
        }

        fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.inner.scan_prefix(cf, prefix)
        }

        fn scan_prefix_page(
            &self,
            cf: Cf,
            prefix: &[u8],
            after: Option<&[u8]>,
            limit: usize,
        ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.inner.scan_prefix_page(cf, prefix, after, limit)
        }

        fn cursor(&self, cf: Cf) -> Result<Box<dyn crate::engine::Cursor + '_>> {
            self.inner.cursor(cf)
        }

        fn delete_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<()> {
            self.inner.delete_prefix(cf, prefix)
        }
    }

    #[test]
    fn a_refusal_to_retry_reaches_every_batch_of_its_group_as_one() {
        let store = FeatureStore::in_memory(StoreConfig::default()).unwrap();
        store.register_definitions("test", DEFINITIONS).unwrap();
        let group = vec![pending(&store, "u", 1), pending(&store, "v", 1)];
        let refused = StoreError::NotWritten("the write before it failed".into());
        set_outcomes(&group, Err(refused));
        for batch in &group {
            let outcome = lock(&batch.outcome).take();
            assert!(
                matches!(outcome, Some(Err(StoreError::NotWritten(_)))),
                "{outcome:?}"
            );
        }
        set_outcomes(&group, Err(StoreError::Corrupt("a bad row".into())));
        for batch in &group {
            let outcome = lock(&batch.outcome).take();
            assert!(
                matches!(&outcome, Some(Err(StoreError::Engine(m))) if m.contains("a bad row")),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn a_write_that_panics_answers_every_batch_of_its_group_and_the_next_push_writes() {
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let engine = PanickingWrites {
            inner: crate::engine::MemoryEngine::new(),
            armed: Arc::clone(&armed),
        };
        let store = FeatureStore::with_engine(Box::new(engine), StoreConfig::default()).unwrap();
        store.register_definitions("test", DEFINITIONS).unwrap();
        let version = store.version();
        // Two callers' batches in one group.
        let (a, b) = (pending(&store, "u", 1), pending(&store, "v", 1));
        let group = {
            let mut preparation = store.pipeline.lock_to_prepare();
            store
                .prepare_group(&mut preparation, vec![Arc::clone(&a), Arc::clone(&b)])
                .expect("prepared")
        };
        armed.store(true, std::sync::atomic::Ordering::SeqCst);
        let write = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| group.write()));
        assert!(write.is_err(), "the write panicked");
        for batch in [&a, &b] {
            let outcome = lock(&batch.outcome);
            assert!(matches!(*outcome, Some(Err(_))), "every batch is answered");
        }
        armed.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(store.writes_in_flight(), 0);
        assert_eq!(store.version(), version);
        let row = json!({"user_id": "w", "event_timestamp": "2026-01-01T00:00:00Z", "count": 1});
        let written = store.push("plays", &[row], true).unwrap();
        assert_eq!(written.store_version, version + 1);
        assert_eq!(
            store.counter("c").unwrap(),
            None,
            "the panicked group's totals"
        );
    }

    #[test]
    fn a_group_prepared_while_one_is_written_adds_to_its_counter_totals() {
        let store = FeatureStore::in_memory(StoreConfig::default()).unwrap();
        store.register_definitions("test", DEFINITIONS).unwrap();
        let first = prepare(&store, pending(&store, "u", 2));
        std::thread::scope(|scope| {
            let second = scope.spawn(|| prepare(&store, pending(&store, "v", 3)));
            // The second group has read the totals and waits for its turn.
            let start = std::time::Instant::now();
            while store.writes_in_flight() < 2 {
                if start.elapsed().as_secs() > 30 {
                    drop(first);
                    panic!("the second group never took its turn");
                }
                std::thread::yield_now();
            }
            first.write();
            second.join().unwrap().write();
        });
        assert_eq!(store.counter("c").unwrap(), Some(5));
    }
}
