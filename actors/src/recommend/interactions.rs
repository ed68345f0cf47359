//! Plays posted to `/v1/events` become rows of the declared interactions
//! view (CONTRACT.md v2): the event's `features` object carries the view's
//! raw features, so every aggregation over that view moves with the same
//! write that stores the feedback.

use reprise_store::aggregation::spec::{CmpOp, FilterValue};
use reprise_store::recommender::RecommenderSpec;
use reprise_store::types::FeatureType;
use reprise_store::Value;
use serde_json::{json, Map, Value as Json};

use super::service::Event;
use crate::error::ActorError;

/// The event type that appends to the interactions view.
pub const INTERACTION_EVENT: &str = "play";

/// A play's row for the interactions view, and whether the declared
/// engagement rule calls it engaged (`None` when the event does not carry
/// the rule's feature). A play that does not carry it is labelled by its
/// v1 verdict (`fallback`: long enough, or no length given); when the rule
/// is a bool equality (`liked == true`) that label is stored in the
/// feature, so the aggregations over the view agree with the label.
pub fn interaction_row(
    spec: &RecommenderSpec,
    index: usize,
    event: &Event,
    fallback: bool,
) -> Result<(Json, Option<bool>), ActorError> {
    let view = &spec.interactions;
    let mut row = Map::new();
    row.insert(spec.user_key().to_owned(), json!(event.user_id));
    row.insert(spec.item_key().to_owned(), json!(event.item_id));
    row.insert("event_timestamp".to_owned(), json!(event.timestamp));
    for (name, value) in &event.features {
        if view.feature_index(name).is_none() {
            return Err(ActorError::invalid(
                format!("events[{index}].features.{name}"),
                format!(
                    "`{name}` is not a feature of the interactions view `{}`",
                    view.name
                ),
            ));
        }
        row.insert(name.clone(), value.clone());
    }
    // The v1 wire field, for views that declare it.
    if let (Some(seconds), Some(i)) = (event.played_seconds, view.feature_index("played_seconds")) {
        if !row.contains_key("played_seconds") {
            let value = match view.features[i].feature_type {
                FeatureType::Int64 => json!(seconds.round() as i64),
                _ => json!(seconds),
            };
            row.insert("played_seconds".to_owned(), value);
        }
    }
    if let Some(filter) = &spec.engaged {
        let feature = &view.features[filter.feature];
        if let (false, FilterValue::Bool(wanted)) = (row.contains_key(&feature.name), &filter.value)
        {
            let holds = match filter.op {
                CmpOp::Eq => *wanted,
                _ => !*wanted,
            };
            row.insert(feature.name.clone(), json!(holds == fallback));
        }
    }
    let engaged = spec.engaged.as_ref().and_then(|filter| {
        let feature = &view.features[filter.feature];
        let value = row.get(&feature.name)?;
        let typed = Value::from_json(value, feature.feature_type, feature.dim).ok()??;
        Some(filter.passes(Some(&typed)))
    });
    Ok((Json::Object(row), engaged))
}
