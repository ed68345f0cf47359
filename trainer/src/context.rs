//! The ranker's context features in training: the declared ranker inputs
//! ([`RankerInputs`]) read through point-in-time snapshots
//! ([`SnapshotContext`]) and turned into model inputs by the same
//! `vectorize` serving calls on online reads. Request-context inputs take
//! the values logged with the interaction each row is shown in (its
//! occasion, see `reprise_models::context`).

use std::collections::HashMap;
use std::sync::Mutex;

use reprise_models::context::{ContextError, ContextRequest, ContextSource};
use reprise_models::dataset::Dataset;
use reprise_store::recommender::HOUR_FIELD;
use reprise_store::time::{format_rfc3339, MICROS_PER_SECOND};
use reprise_store::{FeatureStore, SnapshotSpec, Value};
use serde_json::json;

use crate::features::RankerInputs;

/// A fetched row: the request and the raw values of the inputs' refs.
pub type KeptRow = (ContextRequest, Vec<Option<Value>>);

/// The request context logged with each interaction, by (user, item, event
/// second), in [`RankerInputs::context`]'s order.
pub type LoggedContext = HashMap<(u32, u32, i64), Vec<Option<Value>>>;

/// Reads the request context the declared interactions view logged with
/// each interaction of `dataset` at `store_version` (nothing when the
/// inputs read no context). `hour`, when the view does not log it (or
/// logged null), is the UTC hour of the event time.
pub fn logged_context(
    store: &FeatureStore,
    dataset: &Dataset,
    inputs: &RankerInputs,
    store_version: u64,
) -> reprise_store::Result<LoggedContext> {
    let mut logged = LoggedContext::new();
    if inputs.context.is_empty() {
        return Ok(logged);
    }
    let registry = store.registry();
    let Some(spec) = registry.recommender() else {
        return Ok(logged);
    };
    let view = &spec.interactions;
    let slots: Vec<Option<usize>> = inputs
        .context
        .iter()
        .map(|c| view.feature_index(&c.name))
        .collect();
    let users: HashMap<&str, u32> = dataset
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.as_str(), i as u32))
        .collect();
    let items: HashMap<&str, u32> = dataset
        .items
        .iter()
        .enumerate()
        .map(|(i, u)| (u.as_str(), i as u32))
        .collect();
    for row in store.view_history(&view.label(), store_version)? {
        let (Some(user), Some(item)) = (
            row.keys.first().and_then(|u| users.get(u.as_str())),
            row.keys.get(1).and_then(|i| items.get(i.as_str())),
        ) else {
            continue;
        };
        let seconds = row.event_ts.div_euclid(MICROS_PER_SECOND);
        let values = inputs
            .context
            .iter()
            .zip(&slots)
            .map(|(field, slot)| {
                let logged = slot.and_then(|i| row.values.get(i).cloned().flatten());
                match logged {
                    None if field.name == HOUR_FIELD => {
                        Some(Value::Int64(seconds.rem_euclid(86_400) / 3_600))
                    }
                    other => other,
                }
            })
            .collect();
        logged.entry((*user, *item, seconds)).or_insert(values);
    }
    Ok(logged)
}

/// Context from point-in-time snapshots pinned to one store version: each
/// [`ContextSource::fetch`] creates one snapshot (recorded, so the model
/// can name the data it was trained on) and reads it back.
pub struct SnapshotContext<'a> {
    store: &'a FeatureStore,
    dataset: &'a Dataset,
    inputs: &'a RankerInputs,
    store_version: u64,
    snapshots: Mutex<Vec<String>>,
    /// The raw values of every fetched row, when asked to keep them.
    kept: Option<Mutex<Vec<KeptRow>>>,
    logged: LoggedContext,
    /// Snapshots to keep when the context is dropped (the others, which
    /// nothing references, are deleted then).
    keep: Mutex<Vec<String>>,
}

impl Drop for SnapshotContext<'_> {
    /// Deletes the snapshots this context created that were not kept: a
    /// training run's evaluation snapshots are referenced by nothing once
    /// the run is over.
    fn drop(&mut self) {
        let keep = std::mem::take(&mut *self.keep.lock().unwrap_or_else(|p| p.into_inner()));
        for id in self.snapshot_ids() {
            if keep.contains(&id) {
                continue;
            }
            if let Err(e) = self.store.delete_snapshot(&id) {
                tracing::warn!(snapshot = %id, error = %e, "a run's snapshot was not deleted");
            }
        }
    }
}

impl<'a> SnapshotContext<'a> {
    pub fn new(
        store: &'a FeatureStore,
        dataset: &'a Dataset,
        inputs: &'a RankerInputs,
        store_version: u64,
    ) -> reprise_store::Result<Self> {
        Ok(SnapshotContext {
            store,
            dataset,
            inputs,
            store_version,
            snapshots: Mutex::new(Vec::new()),
            kept: None,
            logged: logged_context(store, dataset, inputs, store_version)?,
            keep: Mutex::new(Vec::new()),
        })
    }

    /// The request context of `request`'s occasion (nulls without one).
    fn request_context(&self, request: &ContextRequest) -> Vec<Option<Value>> {
        request
            .occasion
            .and_then(|o| self.logged.get(&(request.user, o.item, o.timestamp)))
            .cloned()
            .unwrap_or_else(|| vec![None; self.inputs.context.len()])
    }

    /// Also keeps every fetched row's raw values (for checks and reports).
    pub fn keeping_rows(mut self) -> Self {
        self.kept = Some(Mutex::new(Vec::new()));
        self
    }

    /// Ids of the snapshots created so far, oldest first.
    pub fn snapshot_ids(&self) -> Vec<String> {
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Keeps snapshot `id` (one a model records) when the context is dropped.
    pub fn keep_snapshot(&self, id: &str) {
        self.keep
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id.to_owned());
    }

    /// Rows kept by [`SnapshotContext::keeping_rows`].
    pub fn kept_rows(&self) -> Vec<KeptRow> {
        self.kept.as_ref().map_or(Vec::new(), |k| {
            k.lock().unwrap_or_else(|p| p.into_inner()).clone()
        })
    }

    fn snapshot(
        &self,
        requests: &[ContextRequest],
    ) -> reprise_store::Result<Vec<Vec<Option<Value>>>> {
        if self.inputs.refs.is_empty() {
            return Ok(vec![Vec::new(); requests.len()]);
        }
        let spec = SnapshotSpec {
            features: self.inputs.refs.clone(),
            as_of_version: Some(self.store_version),
            // Collected once no model names it, even if the run is killed.
            owner: reprise_store::snapshot::TRAINING_OWNER.to_owned(),
            ..SnapshotSpec::default()
        };
        let (user_key, item_key) = reprise_store::recommender::join_keys(&self.store.registry());
        // Many candidates share a time; format each time once.
        let mut times: HashMap<i64, String> = HashMap::new();
        let rows = requests.iter().map(|r| {
            let time = times
                .entry(r.as_of)
                .or_insert_with(|| format_rfc3339(r.as_of * MICROS_PER_SECOND))
                .clone();
            let mut row = serde_json::Map::new();
            row.insert(user_key.clone(), json!(self.dataset.users[r.user as usize]));
            row.insert(item_key.clone(), json!(self.dataset.items[r.item as usize]));
            row.insert("event_timestamp".to_owned(), json!(time));
            Ok(serde_json::Value::Object(row))
        });
        let info = self.store.create_snapshot(&spec, rows)?;
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(info.id.clone());
        let mut values = Vec::with_capacity(requests.len());
        self.store.read_snapshot(&info.id, |_, chunk| {
            values.extend(chunk.into_iter().map(|row| row.values));
            Ok(())
        })?;
        Ok(values)
    }
}

impl ContextSource for SnapshotContext<'_> {
    fn names(&self) -> Vec<String> {
        self.inputs.names()
    }

    fn fetch(&self, requests: &[ContextRequest]) -> Result<Vec<Vec<f64>>, ContextError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let values = self.snapshot(requests)?;
        if let Some(kept) = &self.kept {
            kept.lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(requests.iter().copied().zip(values.iter().cloned()));
        }
        Ok(values
            .iter()
            .zip(requests)
            .map(|(v, r)| self.inputs.vectorize_owned(v, &self.request_context(r)))
            .collect())
    }

    fn uses_occasions(&self) -> bool {
        !self.inputs.context.is_empty()
    }
}

/// Columns of raw context values (by ref, JSON cells) of the rows of
/// snapshot `id` (whose features are `refs`): what a schema is inferred
/// from.
pub fn snapshot_columns(
    store: &FeatureStore,
    id: &str,
    refs: &[String],
) -> reprise_store::Result<std::collections::BTreeMap<String, Vec<serde_json::Value>>> {
    let mut columns: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        refs.iter().map(|r| (r.clone(), Vec::new())).collect();
    store.read_snapshot(id, |_, rows| {
        for row in rows {
            for (r, v) in refs.iter().zip(row.values) {
                let cell = v.map_or(serde_json::Value::Null, |v| {
                    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
                });
                columns.get_mut(r).expect("one column per ref").push(cell);
            }
        }
        Ok(())
    })?;
    Ok(columns)
}

/// The name under which a training snapshot's inferred schema is attached.
pub const SCHEMA_ATTACHMENT: &str = "schema";
