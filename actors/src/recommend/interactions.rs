//! Plays posted to `/v1/events` become rows of the declared interactions
//! view (CONTRACT.md v2): the event's `features` object carries the view's
//! raw features, so every aggregation over that view moves with the same
//! write that stores the feedback. The request context a play happened in
//! is logged with it, in the view's features of the same names (`device`,
//! `hour`, …): from the event's `context` object, else from the context
//! logged for the served request it names — what the ranker learns request
//! context from.

use reprise_store::aggregation::spec::{CmpOp, FilterValue};
use reprise_store::recommender::RecommenderSpec;
use reprise_store::recommender::REQUEST_CONTEXT_VIEW;
use reprise_store::types::FeatureType;
use reprise_store::{FeatureStore, Value};
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
    served_context: Option<&Map<String, Json>>,
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
    // The request context, for the fields the view logs.
    for (name, value) in event
        .context
        .iter()
        .chain(served_context.into_iter().flatten())
    {
        let logged = view
            .feature_index(name)
            .is_some_and(|i| view.features[i].is_pushed());
        if logged && !value.is_null() && !row.contains_key(name) {
            row.insert(name.clone(), value.clone());
        }
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

/// Whether the interactions view logs any request-context field (a pushed
/// feature named like one of the request-context view's): only then is a
/// play's served context worth reading.
pub fn logs_request_context(store: &FeatureStore, spec: &RecommenderSpec) -> bool {
    let registry = store.registry();
    let Some(context) = registry.view(REQUEST_CONTEXT_VIEW) else {
        return false;
    };
    spec.interactions
        .features
        .iter()
        .any(|f| f.is_pushed() && context.feature_index(&f.name).is_some())
}

/// The context logged for served request `request_id` (empty when the
/// request is unknown or the store has no request-context view).
pub fn served_context(
    store: &FeatureStore,
    request_id: &str,
) -> Result<Map<String, Json>, ActorError> {
    let registry = store.registry();
    let Some(view) = registry.view(REQUEST_CONTEXT_VIEW) else {
        return Ok(Map::new());
    };
    let refs: Vec<String> = view
        .features
        .iter()
        .map(|f| format!("{REQUEST_CONTEXT_VIEW}:{}", f.name))
        .collect();
    let mut entity = Map::new();
    entity.insert(view.join_keys[0].clone(), json!(request_id));
    let row = store.online_features(&refs, &[entity])?.rows.pop();
    Ok(view
        .features
        .iter()
        .zip(row.map(|r| r.values).unwrap_or_default())
        .filter_map(|(f, v)| Some((f.name.clone(), serde_json::to_value(v?).ok()?)))
        .collect())
}
