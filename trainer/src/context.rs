//! The ranker's context features: which stored features it reads and the one
//! function, [`vectorize`], that turns their values into model inputs. A
//! training run reads them through a point-in-time snapshot
//! ([`SnapshotContext`]); serving reads the same refs online and calls the
//! same [`vectorize`].

use std::collections::HashMap;
use std::sync::Mutex;

use reprise_models::context::{ContextError, ContextRequest, ContextSource};
use reprise_models::dataset::Dataset;
use reprise_store::time::{format_rfc3339, MICROS_PER_SECOND};
use reprise_store::{FeatureStore, SnapshotSpec, Value};
use serde_json::json;

use crate::movielens::GENRES;

/// The feature refs the ranker reads, in the order [`vectorize`] expects.
pub const CONTEXT_REFS: [&str; 10] = [
    "ml_user_ratings:plays_log",
    "ml_user_ratings:rating_mean_all",
    "ml_item_ratings:plays_log",
    "ml_item_ratings:plays_all",
    "ml_item_ratings:likes_all",
    "ml_item_ratings:rating_mean_all",
    "ml_user_ratings:genre_likes_all",
    "ml_item:genres",
    "ml_item:year",
    "ml_user_ratings:genre_likes_30d",
];

/// The model inputs [`vectorize`] produces, in order.
pub const CONTEXT_FEATURES: [&str; 7] = [
    "user_plays_log",
    "user_mean_rating",
    "item_plays_log",
    "item_like_rate",
    "item_mean_rating",
    "genre_affinity",
    "recent_genre_affinity",
];

/// A rating when nothing is known yet (the middle of MovieLens' scale).
const NEUTRAL_RATING: f64 = 3.0;

fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Int64(v) => Some(*v as f64),
        Value::Float64(v) => Some(*v),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Model inputs from the values of [`CONTEXT_REFS`] (missing values get
/// defaults): the user's and item's activity so far (declared aggregations
/// over the ratings), the item's smoothed like rate
/// `(likes + 1) / (plays + 2)`, and the user×item genre affinity (the
/// user's share of likes in the item's genres, summed; the shares are the
/// per-genre like counts over their total).
pub fn vectorize(values: &[Option<Value>]) -> Vec<f64> {
    let refs: Vec<Option<&Value>> = values.iter().map(Option::as_ref).collect();
    vectorize_refs(&refs)
}

/// [`vectorize`] over borrowed values (the serving path assembles rows
/// from shared user- and item-level values without cloning them).
pub fn vectorize_refs(values: &[Option<&Value>]) -> Vec<f64> {
    let get = |i: usize| values.get(i).copied().flatten();
    let item_plays = number(get(3)).unwrap_or(0.0);
    let item_likes = number(get(4)).unwrap_or(0.0);
    let genre_affinity = affinity(get(6), get(7));
    let recent_genre_affinity = affinity(get(9), get(7));
    vec![
        number(get(0)).unwrap_or(0.0),
        number(get(1)).unwrap_or(NEUTRAL_RATING),
        number(get(2)).unwrap_or(0.0),
        (item_likes + 1.0) / (item_plays + 2.0),
        number(get(5)).unwrap_or(NEUTRAL_RATING),
        genre_affinity,
        recent_genre_affinity,
    ]
}

/// The user's share of likes (per-genre like counts over their total) in
/// the item's genres, summed.
fn affinity(likes: Option<&Value>, genres: Option<&Value>) -> f64 {
    match (likes, genres) {
        (Some(Value::FloatVector(likes)), Some(Value::StringList(genres))) => {
            let total = likes.iter().map(|c| f64::from(*c)).sum::<f64>().max(1.0);
            genres
                .iter()
                .filter_map(|g| GENRES.iter().position(|k| k == g))
                .filter_map(|i| likes.get(i))
                .map(|c| f64::from(*c) / total)
                .sum()
        }
        _ => 0.0,
    }
}

/// A fetched row: the request and the raw values of [`CONTEXT_REFS`].
pub type KeptRow = (ContextRequest, Vec<Option<Value>>);

/// Context from point-in-time snapshots pinned to one store version: each
/// [`ContextSource::fetch`] creates one snapshot (recorded, so the model
/// can name the data it was trained on) and reads it back.
pub struct SnapshotContext<'a> {
    store: &'a FeatureStore,
    dataset: &'a Dataset,
    store_version: u64,
    snapshots: Mutex<Vec<String>>,
    /// The raw values of every fetched row, when asked to keep them.
    kept: Option<Mutex<Vec<KeptRow>>>,
}

impl<'a> SnapshotContext<'a> {
    pub fn new(store: &'a FeatureStore, dataset: &'a Dataset, store_version: u64) -> Self {
        SnapshotContext {
            store,
            dataset,
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
            features: CONTEXT_REFS.iter().map(|r| r.to_string()).collect(),
            as_of_version: Some(self.store_version),
            ..SnapshotSpec::default()
        };
        // Many candidates share a time; format each time once.
        let mut times: HashMap<i64, String> = HashMap::new();
        let rows = requests.iter().map(|r| {
            let time = times
                .entry(r.as_of)
                .or_insert_with(|| format_rfc3339(r.as_of * MICROS_PER_SECOND))
                .clone();
            Ok(json!({
                "user_id": self.dataset.users[r.user as usize],
                "item_id": self.dataset.items[r.item as usize],
                "event_timestamp": time,
            }))
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
        CONTEXT_FEATURES.iter().map(|s| s.to_string()).collect()
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
        Ok(values.iter().map(|v| vectorize(v)).collect())
    }
}

/// Columns of raw context values (by ref, JSON cells) of the rows of
/// snapshot `id`: what a schema is inferred from.
pub fn snapshot_columns(
    store: &FeatureStore,
    id: &str,
) -> reprise_store::Result<std::collections::BTreeMap<String, Vec<serde_json::Value>>> {
    let mut columns: std::collections::BTreeMap<String, Vec<serde_json::Value>> = CONTEXT_REFS
        .iter()
        .map(|r| (r.to_string(), Vec::new()))
        .collect();
    store.read_snapshot(id, |_, rows| {
        for row in rows {
            for (r, v) in CONTEXT_REFS.iter().zip(row.values) {
                let cell = v.map_or(serde_json::Value::Null, |v| {
                    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
                });
                columns.get_mut(*r).expect("one column per ref").push(cell);
            }
        }
        Ok(())
    })?;
    Ok(columns)
}

/// The name under which a training snapshot's inferred schema is attached.
pub const SCHEMA_ATTACHMENT: &str = "schema";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectorize_fills_defaults_and_sums_affinity_over_the_items_genres() {
        let mut likes = vec![0.0f32; 19];
        likes[1] = 2.0; // Action
        likes[8] = 1.0; // Drama
        likes[3] = 1.0; // Animation
        let values = vec![
            Some(Value::Float64(2.0)),
            Some(Value::Float64(4.5)),
            None,
            Some(Value::Int64(8)),
            Some(Value::Int64(3)),
            None,
            Some(Value::FloatVector(likes)),
            Some(Value::StringList(vec![
                "Action".into(),
                "Drama".into(),
                "Nope".into(),
            ])),
            None,
        ];
        assert_eq!(
            vectorize(&values),
            vec![2.0, 4.5, 0.0, 0.4, NEUTRAL_RATING, 0.75, 0.0]
        );
        assert_eq!(
            vectorize(&[]),
            vec![0.0, NEUTRAL_RATING, 0.0, 0.5, NEUTRAL_RATING, 0.0, 0.0]
        );
    }
}
