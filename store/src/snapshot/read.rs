//! Computing a snapshot's rows, one stored chunk of entity rows at a time.

use prost::Message;
use serde_json::{Map, Value as Json};

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
/// passthrough columns and one value per feature (in `meta.features` order).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRow {
    pub keys: Vec<String>,
    pub event_ts: Micros,
    pub passthrough: Map<String, Json>,
    pub values: Vec<Option<Value>>,
}

/// Entity rows computed together (a multiple of the stored chunk size):
/// the larger, the closer consecutive lookups of a view sit in its history
/// (a merge steps instead of seeking); memory grows with it.
const WINDOW_ROWS: usize = 64 * super::ENTITY_ROW_CHUNK;

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
    /// a chunk at a time. Memory use is bounded by one chunk.
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

        // Entity rows are computed a window of chunks at a time: each view's
        // lookups sorted by (entity key, time) and merged with its history
        // in key order on both cores, then handed over in input order.
        // A producer thread computes window after window (one ahead) while
        // this thread hands the previous one to `visit` (the Parquet or
        // JSON encoder), so encoding overlaps the lookups.
        std::thread::scope(|scope| {
            let (sender, windows) = std::sync::mpsc::sync_channel::<Result<Vec<OutputRow>>>(1);
            let (meta, plans, slots) = (&meta, &plans, &feature_slots);
            scope.spawn(move || {
                let mut window: Vec<EntityRow> = Vec::new();
                for chunk_index in 0..meta.chunks {
                    let computed = self
                        .snapshot_chunk(id, chunk_index)
                        .map(|rows| window.extend(rows))
                        .and_then(|()| {
                            if window.len() >= WINDOW_ROWS || chunk_index + 1 == meta.chunks {
                                let rows = std::mem::take(&mut window);
                                self.compute_window(meta, plans, slots, cutoff, rows)
                                    .map(Some)
                            } else {
                                Ok(None)
                            }
                        });
                    let stop = computed.is_err();
                    if let Some(rows) = computed.transpose() {
                        // The receiver gone (`visit` failed): stop.
                        if sender.send(rows).is_err() || stop {
                            return;
                        }
                    }
                }
            });
            for rows in windows {
                let mut rows = rows?.into_iter().peekable();
                while rows.peek().is_some() {
                    visit(meta, rows.by_ref().take(super::ENTITY_ROW_CHUNK).collect())?;
                }
            }
            Ok::<(), StoreError>(())
        })?;
        Ok(meta)
    }

    /// The entity rows of one stored chunk.
    fn snapshot_chunk(&self, id: &str, chunk_index: u32) -> Result<Vec<EntityRow>> {
        let bytes = self
            .engine
            .get(Cf::Snapshots, &codec::snapshot_chunk_key(id, chunk_index))?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("snapshot {id} lost chunk {chunk_index}"))
            })?;
        Ok(EntityRowChunk::decode(bytes.as_slice())?.rows)
    }

    /// The output rows of a window of entity rows, in input order.
    fn compute_window(
        &self,
        meta: &SnapshotMeta,
        plans: &[ViewPlan],
        feature_slots: &[(usize, usize)],
        cutoff: Cutoff,
        entity_rows: Vec<EntityRow>,
    ) -> Result<Vec<OutputRow>> {
        if let Some(earliest) = entity_rows.iter().map(|r| r.event_ts_micros).min() {
            let registry = self.registry();
            let now = self.clock.now();
            for plan in plans {
                crate::retention::check_lookup(&registry, &plan.view, earliest, now, || {
                    "entity_rows.event_timestamp".to_owned()
                })?;
            }
        }
        // computed[plan][row]: the view's features for that row (after
        // derived transforms), `None` when no row was visible.
        let mut computed: Vec<Vec<Option<Vec<Option<Value>>>>> = Vec::with_capacity(plans.len());
        for plan in plans {
            computed.push(self.compute_plan(meta, plan, cutoff, &entity_rows)?);
        }
        // A value is moved into its last column and cloned into any earlier
        // one (`v:f` and `v@N:f` name one feature under two columns).
        let last_use: Vec<bool> = feature_slots
            .iter()
            .enumerate()
            .map(|(i, slot)| !feature_slots[i + 1..].contains(slot))
            .collect();
        let mut rows = Vec::with_capacity(entity_rows.len());
        for (r, entity_row) in entity_rows.into_iter().enumerate() {
            let values = feature_slots
                .iter()
                .zip(&last_use)
                .map(|(&(plan, feature), &last)| {
                    let computed = computed[plan][r].as_mut()?;
                    if last {
                        computed[feature].take()
                    } else {
                        computed[feature].clone()
                    }
                })
                .collect();
            for plan in computed.iter_mut() {
                plan[r] = None;
            }
            let passthrough = match entity_row.passthrough_json.as_str() {
                "{}" => Map::new(),
                text => match serde_json::from_str(text) {
                    Ok(Json::Object(map)) => map,
                    _ => {
                        return Err(StoreError::Corrupt(format!(
                            "passthrough of snapshot {}",
                            meta.id
                        )))
                    }
                },
            };
            rows.push(OutputRow {
                keys: entity_row.keys,
                event_ts: entity_row.event_ts_micros,
                passthrough,
                values,
            });
        }
        Ok(rows)
    }

    /// One view's features for every entity row of a window, in input
    /// order: the lookups sorted by (entity key, time), cut at entity
    /// boundaries into one run per core, each run merged with the view's
    /// history (or its aggregation index) by its own cursor.
    fn compute_plan(
        &self,
        meta: &SnapshotMeta,
        plan: &ViewPlan,
        cutoff: Cutoff,
        entity_rows: &[EntityRow],
    ) -> Result<Vec<Option<Vec<Option<Value>>>>> {
        let mut order: Vec<(PitQuery, u32)> = entity_rows
            .iter()
            .enumerate()
            .map(|(r, row)| {
                (
                    PitQuery {
                        entity_key: plan_key(plan, row),
                        at: row.event_ts_micros,
                    },
                    r as u32,
                )
            })
            .collect();
        order.sort_unstable();
        let (queries, positions): (Vec<PitQuery>, Vec<u32>) = order.into_iter().unzip();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4);
        let runs = entity_runs(&queries, threads);
        let answers: Vec<Result<Vec<Option<RawRow>>>> = std::thread::scope(|scope| {
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
        let mut out: Vec<Option<Vec<Option<Value>>>> = vec![None; entity_rows.len()];
        let mut at = 0;
        for answer in answers {
            for row in answer? {
                out[positions[at] as usize] = row.map(|row| plan.view.compute_owned(row));
                at += 1;
            }
        }
        Ok(out)
    }

    /// The rows of `plan`'s view visible to sorted lookups.
    fn lookup_sorted(
        &self,
        meta: &SnapshotMeta,
        plan: &ViewPlan,
        cutoff: Cutoff,
        queries: &[PitQuery],
    ) -> Result<Vec<Option<RawRow>>> {
        let Some(spec) = plan.view.aggregation() else {
            let mut cursor = self.engine.cursor(Cf::History)?;
            return merge_point_in_time(
                cursor.as_mut(),
                &plan.view,
                queries,
                meta.store_version,
                cutoff,
            );
        };
        let mut cursor = self.engine.cursor(Cf::AggIndex)?;
        let mut answers = Vec::with_capacity(queries.len());
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
                answers.push(Some(aggregation::aggregate_loaded(
                    spec,
                    plan.view.features.len(),
                    &events,
                    query.at,
                    meta.store_version,
                    cutoff,
                )));
            }
        }
        Ok(answers)
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
