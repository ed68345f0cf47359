//! The ranker's context features in training: the declared ranker inputs
//! ([`RankerInputs`]) read through point-in-time snapshots
//! ([`SnapshotContext`]) and turned into model inputs by the same
//! `vectorize` serving calls on online reads.

use std::collections::HashMap;
use std::sync::Mutex;

use reprise_models::context::{ContextError, ContextRequest, ContextSource};
use reprise_models::dataset::Dataset;
use reprise_store::time::{format_rfc3339, MICROS_PER_SECOND};
use reprise_store::{FeatureStore, SnapshotSpec, Value};
use serde_json::json;

use crate::features::RankerInputs;

/// A fetched row: the request and the raw values of the inputs' refs.
pub type KeptRow = (ContextRequest, Vec<Option<Value>>);

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
}

impl<'a> SnapshotContext<'a> {
    pub fn new(
        store: &'a FeatureStore,
        dataset: &'a Dataset,
        inputs: &'a RankerInputs,
        store_version: u64,
    ) -> Self {
        SnapshotContext {
            store,
            dataset,
            inputs,
            store_version,
            snapshots: Mutex::new(Vec::new()),
            kept: None,
        }
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
        let spec = SnapshotSpec {
            features: self.inputs.refs.clone(),
            as_of_version: Some(self.store_version),
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
            .map(|v| self.inputs.vectorize_owned(v))
            .collect())
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
