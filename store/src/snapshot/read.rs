//! Computing a snapshot's rows, one stored chunk of entity rows at a time.

use prost::Message;
use serde_json::{Map, Value as Json};

use std::collections::HashMap;

use super::{point_in_time, Cutoff};
use crate::aggregation;
use crate::cf::Cf;
use crate::codec;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::proto::{EntityRow, EntityRowChunk, SnapshotMeta};
use crate::registry::FeatureView;
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

/// Loaded aggregation groups: (plan, group key) → (earliest and latest
/// time asked, the group's events).
type LoadedGroups =
    HashMap<(usize, Vec<u8>), (Micros, Micros, Vec<aggregation::compute::GroupEvent>)>;

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

        // Each chunk's rows are looked up by several threads (one cursor
        // each), then handed over in input order.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4);
        for chunk_index in 0..meta.chunks {
            let bytes = self
                .engine
                .get(Cf::Snapshots, &codec::snapshot_chunk_key(id, chunk_index))?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("snapshot {id} lost chunk {chunk_index}"))
                })?;
            let mut rows = EntityRowChunk::decode(bytes.as_slice())?.rows;
            let part = rows.len().div_ceil(threads).max(1);
            let mut parts = Vec::with_capacity(threads);
            while rows.len() > part {
                let rest = rows.split_off(part);
                parts.push(std::mem::replace(&mut rows, rest));
            }
            parts.push(rows);
            let computed: Vec<Result<Vec<OutputRow>>> = std::thread::scope(|scope| {
                let handles: Vec<_> = parts
                    .into_iter()
                    .map(|part| {
                        scope.spawn(|| {
                            self.compute_rows(&meta, &plans, &feature_slots, cutoff, part)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("snapshot worker panicked"))
                    .collect()
            });
            let mut out = Vec::with_capacity(super::ENTITY_ROW_CHUNK);
            for part in computed {
                out.extend(part?);
            }
            visit(&meta, out)?;
        }
        Ok(meta)
    }

    /// The events of every aggregation group these entity rows read, each
    /// group loaded once for the time range its rows span, by (plan, group
    /// key).
    fn load_groups(
        &self,
        meta: &SnapshotMeta,
        plans: &[ViewPlan],
        entity_rows: &[EntityRow],
    ) -> Result<LoadedGroups> {
        let mut groups: LoadedGroups = HashMap::new();
        for (p, plan) in plans.iter().enumerate() {
            if plan.view.aggregation().is_none() {
                continue;
            }
            for row in entity_rows {
                let t = row.event_ts_micros;
                groups
                    .entry((p, plan_key(plan, row)))
                    .and_modify(|(from, to, _)| {
                        *from = (*from).min(t);
                        *to = (*to).max(t);
                    })
                    .or_insert((t, t, Vec::new()));
            }
        }
        if groups.is_empty() {
            return Ok(groups);
        }
        let mut cursor = self.engine.reverse_cursor(Cf::AggIndex)?;
        for ((p, key), (from, to, events)) in groups.iter_mut() {
            let spec = plans[*p]
                .view
                .aggregation()
                .expect("only aggregation plans");
            *events = aggregation::load_group(
                cursor.as_mut(),
                spec,
                key,
                *from,
                *to,
                meta.store_version,
            )?;
        }
        Ok(groups)
    }

    /// Point-in-time rows for some entity rows of one chunk, in order.
    fn compute_rows(
        &self,
        meta: &SnapshotMeta,
        plans: &[ViewPlan],
        feature_slots: &[(usize, usize)],
        cutoff: Cutoff,
        entity_rows: Vec<EntityRow>,
    ) -> Result<Vec<OutputRow>> {
        let mut cursor = self.engine.reverse_cursor(Cf::History)?;
        let groups = self.load_groups(meta, plans, &entity_rows)?;
        let mut rows = Vec::with_capacity(entity_rows.len());
        for entity_row in entity_rows {
            let mut computed: Vec<Option<Vec<Option<Value>>>> = Vec::with_capacity(plans.len());
            for (p, plan) in plans.iter().enumerate() {
                let entity_key = plan_key(plan, &entity_row);
                let found = match plan.view.aggregation() {
                    None => point_in_time(
                        cursor.as_mut(),
                        &plan.view,
                        &entity_key,
                        entity_row.event_ts_micros,
                        meta.store_version,
                        cutoff,
                    )?,
                    Some(spec) => Some(aggregation::aggregate_loaded(
                        spec,
                        plan.view.features.len(),
                        &groups[&(p, entity_key)].2,
                        entity_row.event_ts_micros,
                        meta.store_version,
                        cutoff,
                    )),
                };
                computed.push(found.map(|row| plan.view.compute(&row)));
            }
            let values = feature_slots
                .iter()
                .map(|&(plan, feature)| computed[plan].as_ref().and_then(|v| v[feature].clone()))
                .collect();
            let passthrough = match serde_json::from_str(&entity_row.passthrough_json) {
                Ok(Json::Object(map)) => map,
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "passthrough of snapshot {}",
                        meta.id
                    )))
                }
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
}
