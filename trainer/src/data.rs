//! The interaction log a run learns from, at a pinned store version, as a
//! [`Dataset`]: every row of the declared interactions view's history
//! (`[recommender] interactions`; plays posted to `/v1/events` are among
//! them), plus every engaged click or like received as feedback on a
//! catalogue item (the `feedback` view), so retraining learns from what
//! users did since import.

use std::collections::HashSet;

use reprise_models::dataset::Dataset;
use reprise_store::time::MICROS_PER_SECOND;
use reprise_store::{FeatureStore, Value};

use crate::error::{Result, TrainError};
use crate::served_log::FEEDBACK_VIEW;

/// Feedback types whose engaged events are interactions besides the rows
/// of the interactions view (plays are in that view already).
const FEEDBACK_INTERACTIONS: [&str; 2] = ["click", "like"];

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

/// Engaged clicks and likes on items of `catalogue`, as interactions.
fn engaged_feedback(
    store: &FeatureStore,
    store_version: u64,
    catalogue: &HashSet<&str>,
) -> Result<Vec<Row>> {
    let registry = store.registry();
    let Some(view) = registry.view(FEEDBACK_VIEW) else {
        return Ok(Vec::new());
    };
    let (Some(user), Some(engaged), Some(kind)) = (
        view.feature_index("user_id"),
        view.feature_index("engaged"),
        view.feature_index("type"),
    ) else {
        return Ok(Vec::new());
    };
    let rows = store.view_history(&view.label(), store_version)?;
    Ok(rows
        .into_iter()
        .filter(|r| matches!(r.values.get(engaged), Some(Some(Value::Bool(true)))))
        .filter(|r| {
            matches!(r.values.get(kind), Some(Some(Value::String(k))) if FEEDBACK_INTERACTIONS.contains(&k.as_str()))
        })
        .filter_map(|r| {
            let Some(Some(Value::String(user))) = r.values.get(user) else {
                return None;
            };
            let item = r.keys.get(1)?;
            catalogue.contains(item.as_str()).then(|| Row {
                user: user.clone(),
                item: item.clone(),
                seconds: r.event_ts.div_euclid(MICROS_PER_SECOND),
                rating: 1.0,
            })
        })
        .collect())
}

/// Reads the declared interactions view's history at `store_version` (one
/// interaction per row: user, item, event time in seconds) and the engaged
/// clicks and likes, in time order (ties by user and item id), so indices
/// are assigned the same way every time.
pub fn load_interactions(store: &FeatureStore, store_version: u64) -> Result<Interactions> {
    let registry = store.registry();
    let spec = registry.recommender().ok_or(TrainError::NoDeclaration)?;
    let label = spec.interactions.label();
    let rows = store.view_history(&label, store_version)?;
    if rows.is_empty() {
        return Err(TrainError::NoInteractions {
            view: label,
            version: store_version,
        });
    }
    let mut interactions = Vec::with_capacity(rows.len());
    for row in &rows {
        let (Some(user), Some(item)) = (row.keys.first(), row.keys.get(1)) else {
            return Err(TrainError::Context(format!(
                "{label} must have two entities (user, item)"
            )));
        };
        interactions.push(Row {
            user: user.clone(),
            item: item.clone(),
            seconds: row.event_ts.div_euclid(MICROS_PER_SECOND),
            rating: if spec.is_engaged(&row.values) {
                1.0
            } else {
                0.0
            },
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
