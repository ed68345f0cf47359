//! The interaction log a run learns from: every row of the ratings view's
//! history at a pinned store version, as a [`Dataset`].

use reprise_models::dataset::Dataset;
use reprise_store::time::MICROS_PER_SECOND;
use reprise_store::{FeatureStore, Value};

use crate::error::{Result, TrainError};
use crate::movielens::{RATINGS_VIEW, RATING_FEATURE};

/// Interactions with the store version they were read at.
pub struct Interactions {
    pub dataset: Dataset,
    pub store_version: u64,
    /// The view (`name@N`) they came from.
    pub view: String,
}

/// Reads the ratings view's history at `store_version`: one interaction per
/// row (user, item, event time in seconds, rating), in time order (ties by
/// user and item id), so indices are assigned the same way every time.
pub fn load_interactions(store: &FeatureStore, store_version: u64) -> Result<Interactions> {
    let registry = store.registry();
    let view = registry
        .view(RATINGS_VIEW)
        .ok_or_else(|| TrainError::NoInteractions {
            view: RATINGS_VIEW.into(),
            version: store_version,
        })?;
    let label = view.label();
    let rating = view.feature_index(RATING_FEATURE);
    let mut rows = store.view_history(&label, store_version)?;
    if rows.is_empty() {
        return Err(TrainError::NoInteractions {
            view: label,
            version: store_version,
        });
    }
    rows.sort_by(|a, b| (a.event_ts, &a.keys).cmp(&(b.event_ts, &b.keys)));
    let mut dataset = Dataset::default();
    for row in &rows {
        let [user, item] = row.keys.as_slice() else {
            return Err(TrainError::Context(format!(
                "{label} must have two entities (user, item)"
            )));
        };
        let value = rating.and_then(|i| row.values[i].as_ref());
        let rating = match value {
            Some(Value::Float64(r)) => *r as f32,
            Some(Value::Int64(r)) => *r as f32,
            _ => 1.0,
        };
        dataset.push(
            user,
            item,
            row.event_ts.div_euclid(MICROS_PER_SECOND),
            rating,
        );
    }
    Ok(Interactions {
        dataset,
        store_version,
        view: label,
    })
}
