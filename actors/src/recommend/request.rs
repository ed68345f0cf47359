//! Request and reply types of the serving path, and the checks of request
//! context against the `request_context` view's mandatory fields.

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
    pub raw: Map<String, Json>,
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
        raw: context.clone(),
    })
}
