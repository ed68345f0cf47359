//! Request and reply types of the serving path, and the checks of request
//! context against the `request_context` view's mandatory fields.

use reprise_store::recommender::HOUR_FIELD;
use reprise_store::time::MICROS_PER_SECOND;
use reprise_store::FeatureStore;
use serde_json::{Map, Value as Json};

use crate::error::ActorError;

/// The view whose mandatory features a request's context must carry.
pub const CONTEXT_VIEW: &str = "request_context";

#[derive(Debug, Clone)]
pub struct RecommendRequest {
    pub user_id: String,
    pub context: Map<String, Json>,
    pub k: usize,
    /// Explain each ranked item (raw values, model inputs, contributions).
    pub explain: bool,
}

#[derive(Debug, Clone)]
pub struct RankRequest {
    pub user_id: String,
    pub context: Map<String, Json>,
    pub item_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoredItem {
    pub item_id: String,
    pub score: f64,
    /// `history`, `ann`, `popular`, `trending` or `segment`.
    pub source: &'static str,
}

#[derive(Debug, Clone)]
pub struct Recommendation {
    pub request_id: String,
    pub model_version: Option<String>,
    pub arm: String,
    pub cold_start: bool,
    pub items: Vec<ScoredItem>,
    /// With `explain`, one per ranked item, in `items`' order (none for a
    /// cold-start list, which no model scored).
    pub explanations: Vec<super::explain::Explanation>,
}

#[derive(Debug, Clone)]
pub struct Ranked {
    pub request_id: String,
    pub model_version: String,
    pub scores: Vec<(String, f64)>,
}

/// The checked context of a request.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub country: String,
    pub device: String,
    /// The hour of day (UTC) given, or of the server clock.
    pub hour: i64,
    pub raw: Map<String, Json>,
}

impl RequestContext {
    /// Context field `name` as the ranker reads it (`hour` always has one).
    pub fn get(&self, name: &str) -> Option<Json> {
        if name == HOUR_FIELD {
            return Some(Json::from(self.hour));
        }
        self.raw.get(name).cloned()
    }
}

/// Checks `context` against the mandatory features of [`CONTEXT_VIEW`]
/// (none when the view is not defined). The first missing one is named as
/// `context.{name}`.
pub fn check_context(
    store: &FeatureStore,
    context: &Map<String, Json>,
) -> Result<RequestContext, ActorError> {
    let registry = store.registry();
    if let Some(view) = registry.view(CONTEXT_VIEW) {
        for feature in view.features.iter().filter(|f| f.mandatory) {
            match context.get(&feature.name) {
                None | Some(Json::Null) => {
                    return Err(ActorError::MissingContext {
                        field: format!("context.{}", feature.name),
                    })
                }
                Some(Json::String(s)) if s.is_empty() => {
                    return Err(ActorError::MissingContext {
                        field: format!("context.{}", feature.name),
                    })
                }
                _ => {}
            }
        }
    }
    let hour = match context.get(HOUR_FIELD) {
        None | Some(Json::Null) => {
            store
                .clock()
                .now()
                .div_euclid(MICROS_PER_SECOND)
                .rem_euclid(86_400)
                / 3_600
        }
        Some(value) => value
            .as_i64()
            .filter(|h| (0..24).contains(h))
            .ok_or_else(|| {
                ActorError::invalid("context.hour", "must be an integer hour of day, 0 to 23")
            })?,
    };
    let text = |name: &str| {
        context
            .get(name)
            .and_then(Json::as_str)
            .unwrap_or("unknown")
            .to_owned()
    };
    Ok(RequestContext {
        country: text("country"),
        device: text("device"),
        hour,
        raw: context.clone(),
    })
}
