//! `GET /v1/served/{request_id}`: what the served-feature log holds for a
//! request (its context, each item's position, score, source and the exact
//! model inputs), and with a replay the same inputs recomputed from the
//! store point-in-time at the request's time through the training path (a
//! snapshot), side by side with the logged ones. Zero differences means a
//! training snapshot of that moment reproduces what was served; a feature
//! changed behind the log's back (a late backfill, a skewed writer) shows
//! up as exactly the inputs it feeds.

use reprise_store::snapshot::SnapshotSpec;
use reprise_store::time::format_rfc3339;
use reprise_store::{Cutoff, FeatureStore, StoreError, Value};
use reprise_trainer::features::RankerInputs;
use reprise_trainer::{model_io, TrainError};
use serde_json::{json, Map, Value as Json};

use super::explain::{json_of, RawInput};
use super::ranking::{join_keys, Shared};
use super::request::CONTEXT_VIEW;
use crate::error::ActorError;

/// The served-feature log's view (one row per served item).
pub const SERVED_VIEW: &str = "served_item";
/// The owner recorded on a replay's snapshot: deleted when it is read, and
/// collected with training runs' leftovers if the process died first.
pub const REPLAY_OWNER: &str = "replay";
/// More items than any response holds.
const MAX_ITEMS: usize = 10_000;

/// One model input of a served item.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedInput {
    pub name: String,
    /// As logged (the log keeps 32-bit floats).
    pub logged: f64,
    /// Recomputed from the store; `None` for the candidate generators'
    /// inputs (they come from the model, not the store) or without replay.
    pub replayed: Option<f64>,
    pub differs: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServedItem {
    pub item_id: String,
    pub position: i64,
    pub score: f64,
    pub source: String,
    pub inputs: Vec<ServedInput>,
    /// With a replay: the declared refs' values read point-in-time.
    pub replayed_raw: Vec<RawInput>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The store version the recomputation read.
    pub store_version: u64,
    pub cutoff: Cutoff,
    /// Inputs whose replayed value differs from the logged one, all items.
    pub differences: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServedRequest {
    pub request_id: String,
    pub user_id: String,
    pub timestamp: String,
    pub model_version: Option<String>,
    pub arm: Option<String>,
    /// The logged request context (device, country, hour, …).
    pub context: Map<String, Json>,
    pub items: Vec<ServedItem>,
    pub replay: Option<Replay>,
}

/// A logged row's features by name.
fn by_name(store: &FeatureStore, view: &str, values: Vec<Option<Value>>) -> Map<String, Json> {
    store
        .registry()
        .view(view)
        .map_or_else(Map::new, |v| v.values_by_name(values))
}

fn text(map: &Map<String, Json>, name: &str) -> Option<String> {
    map.get(name).and_then(Json::as_str).map(str::to_owned)
}

/// Deletes a snapshot when dropped, whatever happened in between.
struct TemporarySnapshot<'a> {
    store: &'a FeatureStore,
    id: String,
}

impl Drop for TemporarySnapshot<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.store.delete_snapshot(&self.id) {
            tracing::warn!(snapshot = %self.id, error = %e, "could not delete a replay snapshot");
        }
    }
}

impl Shared {
    /// Ranker `version`'s input names and declared inputs; `None` when the
    /// model is no longer stored (an error then if a replay needs them).
    fn signature(
        &self,
        version: &str,
        needed: bool,
    ) -> Result<Option<(Vec<String>, RankerInputs)>, ActorError> {
        if let Some(loaded) = self.catalog.loaded(version) {
            return Ok(Some((loaded.model.features.clone(), loaded.inputs.clone())));
        }
        match model_io::ranker_signature(&self.store, version) {
            Ok(signature) => Ok(Some(signature)),
            Err(TrainError::Store(StoreError::UnknownModel(_))) if !needed => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The served-feature log of `request_id`, replayed with `cutoff` when
    /// given.
    pub fn served(
        &self,
        request_id: &str,
        replay: Option<Cutoff>,
    ) -> Result<ServedRequest, ActorError> {
        let store = &self.store;
        let unknown = || ActorError::UnknownRequest(request_id.to_owned());
        {
            let registry = store.registry();
            if registry.view(SERVED_VIEW).is_none() || registry.view(CONTEXT_VIEW).is_none() {
                return Err(unknown());
            }
        }
        let context_row = store
            .online_rows_by_prefix(CONTEXT_VIEW, &[request_id], 1)?
            .pop()
            .ok_or_else(unknown)?;
        let time = context_row.event_ts;
        let mut context = by_name(store, CONTEXT_VIEW, context_row.values);
        let user_id = text(&context, "user_id").unwrap_or_default();
        context.remove("user_id");
        let mut rows: Vec<(String, Map<String, Json>)> = store
            .online_rows_by_prefix(SERVED_VIEW, &[request_id], MAX_ITEMS)?
            .into_iter()
            .map(|r| {
                let item = r.keys.get(1).cloned().unwrap_or_default();
                (item, by_name(store, SERVED_VIEW, r.values))
            })
            .collect();
        rows.sort_by_key(|(_, r)| r.get("position").and_then(Json::as_i64));
        let model_version = rows.first().and_then(|(_, r)| text(r, "model_version"));
        let arm = rows.first().and_then(|(_, r)| text(r, "arm"));
        // The model's input names and declared inputs: from the catalogue
        // when it is loaded, else read from the registry (no embeddings, no
        // index); a model collected since leaves the inputs unnamed, and
        // nothing to replay with.
        let signature = match &model_version {
            Some(v) => self.signature(v, replay.is_some())?,
            None => None,
        };
        let (names, inputs) = match signature {
            Some((names, inputs)) => (names, Some(inputs)),
            None => (Vec::new(), None),
        };
        let logged: Vec<Vec<f64>> = rows
            .iter()
            .map(|(_, r)| {
                r.get("features")
                    .and_then(Json::as_array)
                    .map(|a| a.iter().filter_map(Json::as_f64).collect())
                    .unwrap_or_default()
            })
            .collect();

        // Replay: the declared refs point-in-time at the request's time, the
        // logged context, vectorised as when serving.
        let mut replayed: Vec<Option<(Vec<f64>, Vec<RawInput>)>> = vec![None; rows.len()];
        let mut replay_info = None;
        if let (Some(cutoff), Some(inputs)) = (replay, &inputs) {
            let _span = tracing::info_span!("served.replay", items = rows.len()).entered();
            let refs = &inputs.refs;
            let (user_key, item_key) = join_keys(store);
            let timestamp = format_rfc3339(time);
            let mut values: Vec<Vec<Option<Value>>> = vec![Vec::new(); rows.len()];
            let mut store_version = store.version();
            if !refs.is_empty() && !rows.is_empty() {
                let spec = SnapshotSpec {
                    features: refs.clone(),
                    as_of_version: None,
                    cutoff,
                    owner: REPLAY_OWNER.to_owned(),
                };
                let entity_rows = rows.iter().map(|(item, _)| {
                    let mut row = Map::new();
                    row.insert(user_key.clone(), json!(user_id));
                    row.insert(item_key.clone(), json!(item));
                    row.insert("event_timestamp".to_owned(), json!(timestamp));
                    Ok(Json::Object(row))
                });
                let info = store.create_snapshot(&spec, entity_rows)?;
                store_version = info.store_version;
                let snapshot = TemporarySnapshot { store, id: info.id };
                let mut i = 0;
                store.read_snapshot(&snapshot.id, |_, chunk| {
                    for row in chunk {
                        values[i] = row.values;
                        i += 1;
                    }
                    Ok(())
                })?;
            }
            let request_context = inputs.context_values(|name| context.get(name).cloned());
            for (slot, row) in replayed.iter_mut().zip(values) {
                let vector = inputs.vectorize_owned(&row, &request_context);
                let raw = refs
                    .iter()
                    .zip(&row)
                    .map(|(reference, value)| RawInput {
                        reference: reference.clone(),
                        value: value.as_ref().map(json_of),
                        status: if value.is_some() {
                            "present"
                        } else {
                            "not_found"
                        },
                        event_timestamp: None,
                        store_version: Some(store_version),
                    })
                    .collect();
                *slot = Some((vector, raw));
            }
            replay_info = Some(Replay {
                store_version,
                cutoff,
                differences: 0,
            });
        }

        // The candidate generators' inputs come first; the declared
        // features' follow (what a replay recomputes).
        let generators = inputs
            .as_ref()
            .map_or(0, |i| names.len().saturating_sub(i.names().len()));
        let mut differences = 0;
        let items = rows
            .into_iter()
            .zip(logged)
            .zip(replayed)
            .map(|(((item_id, row), logged), replayed)| {
                let (vector, replayed_raw) = replayed.unzip();
                let inputs = logged
                    .iter()
                    .enumerate()
                    .map(|(i, &value)| {
                        let again = vector
                            .as_ref()
                            .and_then(|v| v.get(i.checked_sub(generators)?).copied());
                        // The log keeps 32-bit floats: compare at that width.
                        let differs = again.is_some_and(|x| x as f32 != value as f32);
                        differences += usize::from(differs);
                        ServedInput {
                            name: names
                                .get(i)
                                .cloned()
                                .unwrap_or_else(|| format!("input_{i}")),
                            logged: value,
                            replayed: again,
                            differs,
                        }
                    })
                    .collect();
                ServedItem {
                    item_id,
                    position: row.get("position").and_then(Json::as_i64).unwrap_or(0),
                    score: row.get("score").and_then(Json::as_f64).unwrap_or(0.0),
                    source: text(&row, "source").unwrap_or_default(),
                    inputs,
                    replayed_raw: replayed_raw.unwrap_or_default(),
                }
            })
            .collect();
        if let Some(info) = &mut replay_info {
            info.differences = differences;
        }
        Ok(ServedRequest {
            request_id: request_id.to_owned(),
            user_id,
            timestamp: format_rfc3339(time),
            arm,
            model_version,
            context,
            items,
            replay: replay_info,
        })
    }
}
