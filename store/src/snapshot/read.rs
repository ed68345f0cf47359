//! Computing a snapshot's rows, one stored chunk of entity rows at a time.

use prost::Message;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value as Json;

use super::pit::{merge_point_in_time, PitQuery};
use super::Cutoff;
use crate::aggregation;
use crate::cf::Cf;
use crate::codec;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::proto::{EntityRow, EntityRowChunk, SnapshotMeta};
use crate::registry::FeatureView;
use crate::row::RawRow;
use crate::time::Micros;
use crate::types::Value;
use std::sync::Arc;

/// One output row: join keys (in `meta.join_keys` order), event time,
/// passthrough values (in `meta.passthrough` order) and one value per
/// feature (in `meta.features` order).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRow {
    pub keys: Vec<String>,
    pub event_ts: Micros,
    pub passthrough: Vec<Json>,
    pub values: Vec<Option<Value>>,
}

/// The entity key of `plan`'s view in an entity row.
fn plan_key(plan: &ViewPlan, row: &EntityRow) -> Vec<u8> {
    let keys: Vec<&str> = plan
        .key_positions
        .iter()
        .map(|&p| row.keys[p].as_str())
        .collect();
    codec::entity_key(&keys)
}

/// A view the snapshot reads, with where its join keys sit in the row.
struct ViewPlan {
    view: Arc<FeatureView>,
    key_positions: Vec<usize>,
}

impl FeatureStore {
    /// Computes the snapshot's rows in input order and hands them to `visit`
    /// a chunk at a time. Memory use is bounded by one pass (up to 1M entity
    /// rows: their stored chunks up to `StoreConfig::snapshot_kept_chunk_bytes`,
    /// each view's lookups and the encoded rows they found).
    pub fn read_snapshot(
        &self,
        id: &str,
        mut visit: impl FnMut(&SnapshotMeta, Vec<OutputRow>) -> Result<()>,
    ) -> Result<SnapshotMeta> {
        let _span = tracing::info_span!("store.snapshot_read", snapshot = id).entered();
        let meta = self.snapshot_meta(id)?;
        let registry = self.registry();
        let cutoff = Cutoff::parse(&meta.cutoff)
            .ok_or_else(|| StoreError::Corrupt(format!("cutoff {}", meta.cutoff)))?;
        let mut plans: Vec<ViewPlan> = Vec::new();
        let mut feature_slots: Vec<(usize, usize)> = Vec::new();
        for f in &meta.features {
            let label = format!("{}@{}", f.view, f.view_version);
            let view = registry.view(&label).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "snapshot {id} reads view {label}, which is not registered"
                ))
            })?;
            if registry.is_retired(view.id) {
                return Err(StoreError::Expired {
                    field: "snapshot".into(),
                    message: format!(
                        "snapshot {id} reads view `{label}`, which was retired: its rows have been deleted"
                    ),
                });
            }
            let feature = view.feature_index(&f.feature).ok_or_else(|| {
                StoreError::Corrupt(format!("view {label} lost feature {}", f.feature))
            })?;
            let plan = match plans.iter().position(|p| p.view.id == view.id) {
                Some(p) => p,
                None => {
                    let key_positions = view
                        .join_keys
                        .iter()
                        .map(|k| {
                            meta.join_keys
                                .iter()
                                .position(|j| j == k)
                                .expect("planned from these views")
                        })
                        .collect();
                    plans.push(ViewPlan {
                        view: Arc::clone(view),
                        key_positions,
                    });
                    plans.len() - 1
                }
            };
            feature_slots.push((plan, feature));
        }

        // Entity rows are computed a pass at a time: each view's lookups
        // sorted by (entity key, time) and merged with its history in key
        // order on both cores, then output rows are built chunk by chunk in
        // input order. A producer thread computes while this thread hands
        // finished chunks to `visit` (the Parquet or JSON encoder), so
        // encoding overlaps the lookups.
        // Entity rows whose lookups are merged with each view's history in
        // one pass (`StoreConfig::snapshot_pass_rows`). A pass reads the
        // stretch of history its lookups touch once, so the fewer passes
        // the better (1M entity rows over 1M entities step through the
        // whole history: in windows of 262k rows it was read four times).
        let pass_chunks = self.snapshot_pass_chunks;
        std::thread::scope(|scope| {
            let (sender, chunks) = std::sync::mpsc::sync_channel::<Result<Vec<OutputRow>>>(2);
            let (meta, plans, slots) = (&meta, &plans, &feature_slots);
            scope.spawn(move || {
                let mut first = 0;
                while first < meta.chunks {
                    let pass = first..(first + pass_chunks).min(meta.chunks);
                    first = pass.end;
                    let emit = |rows| sender.send(rows).is_ok();
                    match self.compute_pass(id, meta, plans, slots, cutoff, pass, emit) {
                        // The receiver is gone (`visit` failed): stop.
                        Ok(false) => return,
                        Ok(true) => {}
                        Err(e) => {
                            let _ = sender.send(Err(e));
                            return;
                        }
                    }
                }
            });
            for rows in chunks {
                visit(meta, rows?)?;
            }
            Ok::<(), StoreError>(())
        })?;
        Ok(meta)
    }

    /// One stored chunk of entity rows, still encoded.
    fn snapshot_chunk(&self, id: &str, chunk_index: u32) -> Result<Vec<u8>> {
        self.engine
            .get(Cf::Snapshots, &codec::snapshot_chunk_key(id, chunk_index))?
            .ok_or_else(|| StoreError::Corrupt(format!("snapshot {id} lost chunk {chunk_index}")))
    }

    /// Computes the entity rows of the stored chunks `pass` and hands their
    /// output rows to `emit` a chunk at a time, in input order; `Ok(false)`
    /// when `emit` refused one (nobody reads any more).
    #[allow(clippy::too_many_arguments)]
    fn compute_pass(
        &self,
        id: &str,
        meta: &SnapshotMeta,
        plans: &[ViewPlan],
        feature_slots: &[(usize, usize)],
        cutoff: Cutoff,
        pass: std::ops::Range<u32>,
        mut emit: impl FnMut(Result<Vec<OutputRow>>) -> bool,
    ) -> Result<bool> {
        // The pass's stored chunks and each view's lookups (sorted, with their
        // rows' positions in the pass), read in as many parts as there are
        // cores.
        let parts = pass_parts(pass.clone(), parallelism());
        let keep_bytes = self.snapshot_kept_chunk_bytes / parts.len().max(1);
        let read: Vec<Result<PassPart>> = std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .iter()
                .map(|chunks| {
                    scope.spawn(|| self.read_pass_part(id, meta, plans, chunks.clone(), keep_bytes))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("snapshot reader panicked"))
                .collect()
        });
        // The pass's chunks in order, each kept from reading or `None`.
        let mut chunks: Vec<Option<Vec<u8>>> = Vec::with_capacity(pass.len());
        let mut pass_rows = 0u32;
        // Per view, each part's sorted lookups, positions in the pass.
        let mut runs: Vec<Vec<Vec<(PitQuery, u32)>>> = plans.iter().map(|_| Vec::new()).collect();
        let mut earliest = Micros::MAX;
        for (part, part_chunks) in read.into_iter().zip(&parts) {
            let part = part?;
            let offset = pass_rows;
            pass_rows += part.rows;
            earliest = earliest.min(part.earliest);
            for (runs, mut run) in runs.iter_mut().zip(part.lookups) {
                run.iter_mut().for_each(|(_, position)| *position += offset);
                runs.push(run);
            }
            match part.chunks {
                Some(kept) => chunks.extend(kept.into_iter().map(Some)),
                None => chunks.extend(part_chunks.clone().map(|_| None)),
            }
        }
        let lookups: Vec<(Vec<PitQuery>, Vec<u32>)> = runs.into_iter().map(merge_sorted).collect();
        {
            let registry = self.registry();
            let now = self.clock.now();
            for plan in plans {
                crate::retention::check_lookup(&registry, &plan.view, earliest, now, || {
                    "entity_rows.event_timestamp".to_owned()
                })?;
            }
        }
        let answers: Vec<PassAnswers> = plans
            .iter()
            .zip(lookups)
            .map(|(plan, lookups)| self.answer_plan(meta, plan, cutoff, lookups))
            .collect::<Result<_>>()?;

        // A value is moved into its last column and cloned into any earlier
        // one (`v:f` and `v@N:f` name one feature under two columns).
        let last_use: Vec<bool> = feature_slots
            .iter()
            .enumerate()
            .map(|(i, slot)| !feature_slots[i + 1..].contains(slot))
            .collect();
        let names = column_names(meta);
        let mut position = 0usize;
        for (chunk_index, kept) in pass.zip(chunks) {
            let chunk = match kept {
                Some(chunk) => chunk,
                None => self.snapshot_chunk(id, chunk_index)?,
            };
            let entity_rows = EntityRowChunk::decode(chunk.as_slice())?.rows;
            let mut rows = Vec::with_capacity(entity_rows.len());
            for entity_row in entity_rows {
                let mut computed: Vec<Option<Vec<Option<Value>>>> = plans
                    .iter()
                    .zip(&answers)
                    .map(|(plan, answers)| {
                        answers
                            .get(position)
                            .map(|bytes| {
                                let row = RawRow::decode(bytes, plan.view.features.len())?;
                                Ok(plan.view.compute_owned(row))
                            })
                            .transpose()
                    })
                    .collect::<Result<_>>()?;
                position += 1;
                let values = feature_slots
                    .iter()
                    .zip(&last_use)
                    .map(|(&(plan, feature), &last)| {
                        let computed = computed[plan].as_mut()?;
                        if last {
                            computed[feature].take()
                        } else {
                            computed[feature].clone()
                        }
                    })
                    .collect();
                rows.push(OutputRow {
                    keys: entity_row.keys,
                    event_ts: entity_row.event_ts_micros,
                    passthrough: passthrough_of(meta, &names, &entity_row.passthrough_json)?,
                    values,
                });
            }
            if !emit(Ok(rows)) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One view's stored rows visible to every lookup of a pass: the
    /// lookups (sorted by entity key and time, with their positions), cut
    /// at entity boundaries into one run per core, each run merged with the view's history (or its
    /// aggregation index) by its own cursor.
    fn answer_plan(
        &self,
        meta: &SnapshotMeta,
        plan: &ViewPlan,
        cutoff: Cutoff,
        (queries, positions): (Vec<PitQuery>, Vec<u32>),
    ) -> Result<PassAnswers> {
        let runs = entity_runs(&queries, parallelism());
        let arenas: Vec<Result<RunAnswers>> = std::thread::scope(|scope| {
            let handles: Vec<_> = runs
                .iter()
                .map(|run| {
                    let queries = &queries[run.clone()];
                    scope.spawn(move || self.lookup_sorted(meta, plan, cutoff, queries))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("snapshot worker panicked"))
                .collect()
        });
        let mut answers = PassAnswers {
            arenas: Vec::with_capacity(arenas.len()),
            spans: vec![Span::NONE; positions.len()],
        };
        let mut at = 0;
        for (arena, run) in arenas.into_iter().enumerate() {
            let run = run?;
            for span in run.spans {
                if span.arena != Span::NONE.arena {
                    answers.spans[positions[at] as usize] = Span {
                        arena: arena as u32,
                        ..span
                    };
                }
                at += 1;
            }
            answers.arenas.push(run.bytes);
        }
        Ok(answers)
    }

    /// The stored chunks `chunks` of entity rows (kept while they fit in
    /// `keep_bytes`) and each view's lookups for them, sorted, positions
    /// counted from the part's start.
    fn read_pass_part(
        &self,
        id: &str,
        meta: &SnapshotMeta,
        plans: &[ViewPlan],
        chunks: std::ops::Range<u32>,
        keep_bytes: usize,
    ) -> Result<PassPart> {
        // Sized up front: growing a million-entry vector doubles it (and
        // faults in fresh pages) twenty times.
        let expected = (chunks.len() * super::ENTITY_ROW_CHUNK).min(meta.rows as usize);
        let mut kept_bytes = 0;
        let mut part = PassPart {
            chunks: Some(Vec::with_capacity(chunks.len())),
            rows: 0,
            lookups: plans.iter().map(|_| Vec::with_capacity(expected)).collect(),
            earliest: Micros::MAX,
        };
        for chunk_index in chunks {
            let chunk = self.snapshot_chunk(id, chunk_index)?;
            for row in EntityRowChunk::decode(chunk.as_slice())?.rows {
                part.earliest = part.earliest.min(row.event_ts_micros);
                let position = part.rows;
                for (plan, lookups) in plans.iter().zip(&mut part.lookups) {
                    let query = PitQuery {
                        entity_key: plan_key(plan, &row),
                        at: row.event_ts_micros,
                    };
                    lookups.push((query, position));
                }
                part.rows += 1;
            }
            kept_bytes += chunk.len();
            if kept_bytes > keep_bytes {
                // Wide entity rows: read again when output rows are built.
                part.chunks = None;
            }
            if let Some(kept) = &mut part.chunks {
                kept.push(chunk);
            }
        }
        for lookups in &mut part.lookups {
            lookups.sort_unstable();
        }
        Ok(part)
    }

    /// The rows of `plan`'s view visible to sorted lookups, still encoded.
    fn lookup_sorted(
        &self,
        meta: &SnapshotMeta,
        plan: &ViewPlan,
        cutoff: Cutoff,
        queries: &[PitQuery],
    ) -> Result<RunAnswers> {
        let mut answers = RunAnswers {
            // Most lookups find a row of a few dozen bytes.
            bytes: Vec::with_capacity(queries.len() * 64),
            spans: Vec::with_capacity(queries.len()),
        };
        let Some(spec) = plan.view.aggregation() else {
            let mut cursor = self.engine.scan_cursor(Cf::History)?;
            merge_point_in_time(
                cursor.as_mut(),
                &plan.view,
                queries,
                meta.store_version,
                cutoff,
                |row| answers.push(row),
            )?;
            return Ok(answers);
        };
        let mut cursor = self.engine.scan_cursor(Cf::AggIndex)?;
        for group in queries.chunk_by(|a, b| a.entity_key == b.entity_key) {
            let events = aggregation::load_group(
                cursor.as_mut(),
                spec,
                &group[0].entity_key,
                group[0].at,
                group[group.len() - 1].at,
                meta.store_version,
            )?;
            for query in group {
                let row = aggregation::aggregate_loaded(
                    spec,
                    plan.view.features.len(),
                    &events,
                    query.at,
                    meta.store_version,
                    cutoff,
                );
                answers.push(Some(&row.encode()));
            }
        }
        Ok(answers)
    }
}

/// The passthrough columns' names, sorted, with each one's position in
/// `meta.passthrough`: a stored object's keys are looked up here.
type ColumnNames<'a> = Vec<(&'a str, usize)>;

fn column_names(meta: &SnapshotMeta) -> ColumnNames<'_> {
    let mut names: ColumnNames = meta
        .passthrough
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    names.sort_unstable();
    names
}

/// The passthrough values of a stored entity row, one per column of
/// `meta.passthrough` (null where the row has none), read without building
/// a map of the row's object.
fn passthrough_of(meta: &SnapshotMeta, names: &ColumnNames, stored: &str) -> Result<Vec<Json>> {
    let mut values = vec![Json::Null; meta.passthrough.len()];
    if stored != "{}" {
        let mut json = serde_json::Deserializer::from_str(stored);
        PassthroughValues {
            names,
            values: &mut values,
        }
        .deserialize(&mut json)
        .and_then(|()| json.end())
        .map_err(|_| StoreError::Corrupt(format!("passthrough of snapshot {}", meta.id)))?;
    }
    Ok(values)
}

/// Reads a stored passthrough object into one value per column.
struct PassthroughValues<'a> {
    names: &'a [(&'a str, usize)],
    values: &'a mut [Json],
}

impl<'de> DeserializeSeed<'de> for PassthroughValues<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, json: D) -> std::result::Result<(), D::Error> {
        json.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PassthroughValues<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(column) = map.next_key_seed(ColumnOf(self.names))? {
            match column {
                Some(i) => self.values[i] = map.next_value()?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A passthrough object's key as the position of its column.
struct ColumnOf<'a>(&'a [(&'a str, usize)]);

impl<'de> DeserializeSeed<'de> for ColumnOf<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(
        self,
        json: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        json.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ColumnOf<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a column name")
    }

    fn visit_str<E>(self, name: &str) -> std::result::Result<Self::Value, E> {
        Ok(self
            .0
            .binary_search_by(|(column, _)| (*column).cmp(name))
            .ok()
            .map(|at| self.0[at].1))
    }
}

/// Where one lookup's answer sits: a range of one run's bytes.
#[derive(Debug, Clone, Copy)]
struct Span {
    arena: u32,
    len: u32,
    start: usize,
}

impl Span {
    /// No visible row.
    const NONE: Span = Span {
        arena: u32::MAX,
        len: 0,
        start: 0,
    };
}

/// The answers of one run of sorted lookups, in their order.
struct RunAnswers {
    bytes: Vec<u8>,
    spans: Vec<Span>,
}

impl RunAnswers {
    fn push(&mut self, row: Option<&[u8]>) {
        self.spans.push(match row {
            Some(row) => {
                let span = Span {
                    arena: 0,
                    len: row.len() as u32,
                    start: self.bytes.len(),
                };
                self.bytes.extend_from_slice(row);
                span
            }
            None => Span::NONE,
        });
    }
}

/// One view's answers for a pass, by the entity row's position in it.
struct PassAnswers {
    arenas: Vec<Vec<u8>>,
    spans: Vec<Span>,
}

impl PassAnswers {
    fn get(&self, position: usize) -> Option<&[u8]> {
        let span = self.spans[position];
        let arena = self.arenas.get(span.arena as usize)?;
        Some(&arena[span.start..span.start + span.len as usize])
    }
}

/// Cuts sorted lookups into at most `parts` runs of about equal length that
/// never split one entity's lookups.
fn entity_runs(queries: &[PitQuery], parts: usize) -> Vec<std::ops::Range<usize>> {
    let target = queries.len().div_ceil(parts.max(1)).max(1);
    let mut runs = Vec::with_capacity(parts);
    let mut start = 0;
    while start < queries.len() {
        let mut end = (start + target).min(queries.len());
        while end < queries.len() && queries[end].entity_key == queries[end - 1].entity_key {
            end += 1;
        }
        runs.push(start..end);
        start = end;
    }
    runs
}

/// One part of a pass, read on its own thread.
struct PassPart {
    /// Its stored chunks of entity rows, still encoded (`None` past the
    /// part's share of `StoreConfig::snapshot_kept_chunk_bytes`), and their
    /// rows.
    chunks: Option<Vec<Vec<u8>>>,
    rows: u32,
    /// Per view, sorted; positions count from the part's first row.
    lookups: Vec<Vec<(PitQuery, u32)>>,
    earliest: Micros,
}

/// Sorted runs of pairs merged into one sorted run (ties in run order),
/// unzipped: each side allocated once (fresh pages are dear: the kernel
/// zeroes each one), the elements moved.
fn merge_sorted<A: Ord, B: Ord>(runs: Vec<Vec<(A, B)>>) -> (Vec<A>, Vec<B>) {
    let len = runs.iter().map(Vec::len).sum();
    let mut merged = (Vec::with_capacity(len), Vec::with_capacity(len));
    let mut rests: Vec<std::vec::IntoIter<(A, B)>> = runs.into_iter().map(Vec::into_iter).collect();
    let mut heads: Vec<Option<(A, B)>> = rests.iter_mut().map(Iterator::next).collect();
    loop {
        let mut least: Option<usize> = None;
        for (i, head) in heads.iter().enumerate() {
            if let Some(head) = head {
                if least.is_none_or(|l| heads[l].as_ref().is_some_and(|best| head < best)) {
                    least = Some(i);
                }
            }
        }
        let Some(i) = least else {
            return merged;
        };
        merged.extend(heads[i].take());
        heads[i] = rests[i].next();
    }
}

/// Threads a pass's reading and merging use: the cores, at most four.
fn parallelism() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
}

/// Cuts a pass's chunks into at most `parts` contiguous ranges of about
/// equal length.
fn pass_parts(pass: std::ops::Range<u32>, parts: usize) -> Vec<std::ops::Range<u32>> {
    let len = pass.len() as u32;
    let parts = (parts as u32).clamp(1, len.max(1));
    (0..parts)
        .map(|i| pass.start + len * i / parts..pass.start + len * (i + 1) / parts)
        .filter(|r| !r.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::PassthroughColumn;

    #[test]
    fn sorted_runs_merge_into_one_sorted_run_unzipped() {
        let runs = vec![
            vec![(1, 'a'), (4, 'a'), (9, 'a')],
            vec![],
            vec![(1, 'b'), (2, 'b'), (10, 'b')],
            vec![(3, 'c')],
        ];
        assert_eq!(
            merge_sorted(runs),
            (
                vec![1, 1, 2, 3, 4, 9, 10],
                vec!['a', 'b', 'b', 'c', 'a', 'a', 'b']
            )
        );
        assert_eq!(
            merge_sorted(vec![vec![(5, 0), (6, 1)]]),
            (vec![5, 6], vec![0, 1])
        );
        assert_eq!(merge_sorted(Vec::<Vec<(u8, u8)>>::new()), (vec![], vec![]));
    }

    #[test]
    fn passthrough_values_come_in_column_order() {
        let meta = SnapshotMeta {
            passthrough: ["label", "tag \"q\"", "extra"]
                .map(|name| PassthroughColumn {
                    name: name.into(),
                    column_type: "json".into(),
                })
                .to_vec(),
            ..SnapshotMeta::default()
        };
        let names = column_names(&meta);
        let stored = r#"{"extra":{"a":[1,2]},"label":0.5,"other":7,"tag \"q\"":"x"}"#;
        assert_eq!(
            passthrough_of(&meta, &names, stored).unwrap(),
            vec![
                serde_json::json!(0.5),
                serde_json::json!("x"),
                serde_json::json!({"a": [1, 2]})
            ]
        );
        assert_eq!(
            passthrough_of(&meta, &names, r#"{"label":1}"#).unwrap(),
            vec![serde_json::json!(1), Json::Null, Json::Null]
        );
        assert_eq!(
            passthrough_of(&meta, &names, "{}").unwrap(),
            vec![Json::Null; 3]
        );
        assert!(passthrough_of(&meta, &names, r#"{"label":1"#).is_err());
        assert!(passthrough_of(&meta, &names, r#"[1]"#).is_err());
        assert!(passthrough_of(&meta, &names, r#"{"label":1} x"#).is_err());
    }

    #[test]
    fn a_pass_is_cut_into_contiguous_parts_that_cover_it() {
        assert_eq!(pass_parts(0..10, 2), vec![0..5, 5..10]);
        assert_eq!(pass_parts(3..10, 2), vec![3..6, 6..10]);
        assert_eq!(pass_parts(4..5, 4), vec![4..5]);
        assert_eq!(pass_parts(0..3, 4), vec![0..1, 1..2, 2..3]);
        assert!(pass_parts(2..2, 2).is_empty());
    }
}
