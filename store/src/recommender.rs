//! The `[recommender]` declaration compiled against the registry: the
//! interactions view (first entity = user, second = item), the engagement
//! rule, the catalogue, the segment ref and the ranker's features. Serving
//! and training read these names from here, never from code.

use std::sync::Arc;

use crate::aggregation::spec::compile_filter;
use crate::aggregation::Filter;
use crate::definitions::RecommenderDef;
use crate::error::{Result, StoreError};
use crate::registry::{FeatureView, Registry, ResolvedRef};
use crate::types::{FeatureType, Value};

/// The system view of request context: `request_context:F` ranker entries
/// are the request's context field `F`.
pub const REQUEST_CONTEXT_VIEW: &str = "request_context";

/// The context field every request has: the hour of day (UTC, 0–23) given
/// in the request or of the server clock; in training, logged with the
/// interaction or of its event time.
pub const HOUR_FIELD: &str = "hour";

/// The field `F` of a `request_context:F` ranker entry.
pub fn context_field(entry: &str) -> Option<&str> {
    entry
        .trim()
        .strip_prefix(REQUEST_CONTEXT_VIEW)?
        .strip_prefix(':')
}

/// The type of request-context field `name` as the interactions view logs
/// it: its feature of that name, or `hour` (int64, from the event time).
fn logged_context_type(interactions: &FeatureView, name: &str) -> Option<FeatureType> {
    match interactions.feature_index(name) {
        Some(i) => Some(interactions.features[i].feature_type),
        None => (name == HOUR_FIELD).then_some(FeatureType::Int64),
    }
}

/// The ranker kinds a declaration may name (`ranker = "…"`).
pub const RANKER_KINDS: [&str; 2] = ["logistic", "gbdt"];

#[derive(Debug, Clone)]
pub struct RecommenderSpec {
    pub interactions: Arc<FeatureView>,
    pub engaged: Option<Filter>,
    pub items: Option<Arc<FeatureView>>,
    pub segment: Option<ResolvedRef>,
    pub embedding_dim: usize,
    pub ranker_features: Vec<String>,
    pub ranker: String,
    pub definition: RecommenderDef,
    /// The file that declared it.
    pub file: String,
}

impl RecommenderSpec {
    /// The user's join key in the interactions view.
    pub fn user_key(&self) -> &str {
        &self.interactions.join_keys[0]
    }

    /// The item's join key in the interactions view.
    pub fn item_key(&self) -> &str {
        &self.interactions.join_keys[1]
    }

    /// The type of request-context field `name` (a `request_context:F`
    /// ranker entry): each interaction logs it as its feature `name`
    /// (`hour` may instead come from the event time). `None`: not logged,
    /// so it cannot be learned.
    pub fn context_type(&self, name: &str) -> Option<FeatureType> {
        logged_context_type(&self.interactions, name)
    }

    /// Whether an interaction with these feature values (in the
    /// interactions view's order, as computed) is engaged.
    pub fn is_engaged(&self, values: &[Option<Value>]) -> bool {
        match &self.engaged {
            None => true,
            Some(filter) => filter.passes(values.get(filter.feature).and_then(Option::as_ref)),
        }
    }
}

/// The two refs of a `affinity(COUNTS, CATEGORIES)` ranker feature entry
/// (a declared user×item cross; see the trainer's `features.rs`).
pub fn parse_affinity(entry: &str) -> Option<(&str, &str)> {
    let inner = entry.trim().strip_prefix("affinity(")?.strip_suffix(')')?;
    let (a, b) = inner.split_once(',')?;
    Some((a.trim(), b.trim()))
}

/// The user's and the item's join keys: the declared interactions view's
/// first and second (`user_id` and `item_id` without a declaration).
pub fn join_keys(registry: &Registry) -> (String, String) {
    match registry.recommender() {
        Some(spec) => (spec.user_key().to_owned(), spec.item_key().to_owned()),
        None => ("user_id".to_owned(), "item_id".to_owned()),
    }
}

/// Compiles `def` against `registry` (the declaration of file `file`).
pub fn compile(registry: &Registry, file: &str, def: &RecommenderDef) -> Result<RecommenderSpec> {
    let fail = |message: String| StoreError::definition(file, format!("[recommender]: {message}"));
    let interactions = registry
        .view(&def.interactions)
        .cloned()
        .ok_or_else(|| fail(format!("unknown interactions view `{}`", def.interactions)))?;
    if !interactions.is_events() || interactions.entities.len() < 2 {
        return Err(fail(format!(
            "interactions `{}` must be a kind = \"events\" view of (user, item) entities",
            def.interactions
        )));
    }
    let engaged = def
        .engaged
        .as_ref()
        .map(|f| {
            let column = |name: &str| {
                interactions.feature_index(name).ok_or_else(|| {
                    format!("`{name}` is not a feature of `{}`", interactions.label())
                })
            };
            compile_filter(&interactions, f, &column)
        })
        .transpose()
        .map_err(|e| fail(format!("engaged: {e}")))?;
    let items = def
        .items
        .as_ref()
        .map(|name| {
            let view = registry
                .view(name)
                .cloned()
                .ok_or_else(|| fail(format!("unknown items view `{name}`")))?;
            if view.entities != [interactions.entities[1].clone()] {
                return Err(fail(format!(
                    "items `{name}` must be keyed by the item entity `{}` alone",
                    interactions.entities[1]
                )));
            }
            Ok(view)
        })
        .transpose()?;
    let segment = def
        .segment
        .as_ref()
        .map(|r| {
            registry
                .resolve(r, "segment")
                .map_err(|e| fail(format!("segment: {e}")))
        })
        .transpose()?;
    for (i, entry) in def.ranker_features.iter().enumerate() {
        let refs = match parse_affinity(entry) {
            Some((counts, categories)) => vec![counts, categories],
            None => vec![entry.as_str()],
        };
        for r in refs {
            if let Some(field) = context_field(r) {
                if logged_context_type(&interactions, field).is_none() {
                    return Err(fail(format!(
                        "ranker_features[{i}]: request context `{field}` is not logged with the interactions: declare a feature `{field}` in `{}` (only `{HOUR_FIELD}` can be taken from the event time)",
                        interactions.name
                    )));
                }
                continue;
            }
            registry
                .resolve(r, &format!("ranker_features[{i}]"))
                .map_err(|e| fail(format!("ranker_features[{i}]: {e}")))?;
        }
    }
    let ranker = def.ranker.clone().unwrap_or_else(|| "logistic".into());
    if !RANKER_KINDS.contains(&ranker.as_str()) {
        return Err(fail(format!(
            "ranker `{ranker}` is not one of {}",
            RANKER_KINDS.join(", ")
        )));
    }
    Ok(RecommenderSpec {
        interactions,
        engaged,
        items,
        segment,
        embedding_dim: def.embedding_dim.unwrap_or(32),
        ranker_features: def.ranker_features.clone(),
        ranker,
        definition: def.clone(),
        file: file.to_owned(),
    })
}
