//! The interaction log a run learns from, at a pinned store version, as a
//! [`Dataset`]: every row of the ratings view's history, plus every engaged
//! play, click or like received as feedback on a catalogue item (the
//! `feedback` view), so retraining learns from what users did since import.

use std::collections::HashSet;

use reprise_models::dataset::Dataset;
use reprise_store::time::MICROS_PER_SECOND;
use reprise_store::{FeatureStore, Value};

use crate::error::{Result, TrainError};
use crate::movielens::{RATINGS_VIEW, RATING_FEATURE};
use crate::served_log::FEEDBACK_VIEW;

/// Interactions with the store version they were read at.
pub struct Interactions {
    pub dataset: Dataset,
    pub store_version: u64,
    /// The view (`name@N`) they came from.
    pub view: String,
    /// How many of them are engaged feedback events.
    pub from_feedback: usize,
}

/// One interaction before indexing.
struct Row {
    user: String,
    item: String,
    seconds: i64,
    rating: f32,
}

/// Engaged feedback on items of `catalogue`, as interactions (rating 5).
fn engaged_feedback(
    store: &FeatureStore,
    store_version: u64,
    catalogue: &HashSet<&str>,
) -> Result<Vec<Row>> {
    let registry = store.registry();
    let Some(view) = registry.view(FEEDBACK_VIEW) else {
        return Ok(Vec::new());
    };
    let (Some(user), Some(engaged)) =
        (view.feature_index("user_id"), view.feature_index("engaged"))
    else {
        return Ok(Vec::new());
    };
    let rows = store.view_history(&view.label(), store_version)?;
    Ok(rows
        .into_iter()
        .filter(|r| matches!(r.values.get(engaged), Some(Some(Value::Bool(true)))))
        .filter_map(|r| {
            let Some(Some(Value::String(user))) = r.values.get(user) else {
                return None;
            };
            let item = r.keys.get(1)?;
            catalogue.contains(item.as_str()).then(|| Row {
                user: user.clone(),
                item: item.clone(),
                seconds: r.event_ts.div_euclid(MICROS_PER_SECOND),
                rating: 5.0,
            })
        })
        .collect())
}

/// Reads the ratings view's history at `store_version` (one interaction per
/// row: user, item, event time in seconds, rating) and the engaged feedback,
/// in time order (ties by user and item id), so indices are assigned the
/// same way every time.
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
    let rows = store.view_history(&label, store_version)?;
    if rows.is_empty() {
        return Err(TrainError::NoInteractions {
            view: label,
            version: store_version,
        });
    }
    let mut interactions = Vec::with_capacity(rows.len());
    for row in &rows {
        let [user, item] = row.keys.as_slice() else {
            return Err(TrainError::Context(format!(
                "{label} must have two entities (user, item)"
            )));
        };
        let value = rating.and_then(|i| row.values[i].as_ref());
        if rating.is_some() && value.is_none() {
            // A play posted to /v1/events without a rating: it is in the
            // feedback view too, with its engagement verdict, and counted
            // from there.
            continue;
        }
        let rating = match value {
            Some(Value::Float64(r)) => *r as f32,
            Some(Value::Int64(r)) => *r as f32,
            _ => 1.0,
        };
        interactions.push(Row {
            user: user.clone(),
            item: item.clone(),
            seconds: row.event_ts.div_euclid(MICROS_PER_SECOND),
            rating,
        });
    }
    let catalogue: HashSet<&str> = rows.iter().map(|r| r.keys[1].as_str()).collect();
    let feedback = engaged_feedback(store, store_version, &catalogue)?;
    let from_feedback = feedback.len();
    interactions.extend(feedback);
    interactions.sort_by(|a, b| (a.seconds, &a.user, &a.item).cmp(&(b.seconds, &b.user, &b.item)));
    let mut dataset = Dataset::default();
    for r in &interactions {
        dataset.push(&r.user, &r.item, r.seconds, r.rating);
    }
    Ok(Interactions {
        dataset,
        store_version,
        view: label,
        from_feedback,
    })
}
