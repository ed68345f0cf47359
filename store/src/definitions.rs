//! The definition-file format of `migrations/NNNN_*.toml` (CONTRACT.md
//! "Definition files"), as plain serde types. Checking and compiling them into
//! the registry is `registry.rs`'s job.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionFile {
    #[serde(default)]
    pub entity: Vec<EntityDef>,
    #[serde(default)]
    pub feature_view: Vec<FeatureViewDef>,
    /// Windowed aggregations over event views (CONTRACT.md v2, "Event views
    /// and declared aggregations").
    #[serde(default)]
    pub aggregation: Vec<AggregationDef>,
    /// The recommender's declaration (CONTRACT.md v2, "The recommender is
    /// declared, not coded"); a later file's declaration replaces it.
    pub recommender: Option<RecommenderDef>,
}

/// `[recommender]`: which views the recommender reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommenderDef {
    /// An events view whose first entity is the user and second the item.
    pub interactions: String,
    /// The engagement rule: an interaction that passes it is labelled 1,
    /// any other 0. Without it every interaction is engaged.
    pub engaged: Option<FilterDef>,
    /// A state view keyed by the item entity: the catalogue.
    pub items: Option<String>,
    /// A feature ref of item metadata that groups items into segments (for
    /// new-content candidates).
    pub segment: Option<String>,
    /// The embedding size (not read yet: `reprise train --factors` sets it).
    pub embedding_dim: Option<usize>,
    /// Feature refs the ranker reads (request context included).
    #[serde(default)]
    pub ranker_features: Vec<String>,
    /// The ranker kind: `logistic` (the default, and the only one yet).
    pub ranker: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityDef {
    pub name: String,
    pub join_key: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureViewDef {
    pub name: String,
    pub version: u32,
    pub entities: Vec<String>,
    /// `"30d"`, `"12h"`, `"0"` (no limit).
    pub ttl: String,
    /// How long history is kept (`"90d"`); absent or `"0"`: forever.
    /// Rows older than this are dropped by compactions; the latest row of
    /// a key stays readable online until its TTL.
    #[serde(default)]
    pub retention: Option<String>,
    #[serde(default)]
    pub description: String,
    /// `"state"` (default: the latest row per key is the value) or
    /// `"events"` (an append-only log of raw events, the source of
    /// aggregations).
    pub kind: Option<String>,
    #[serde(default)]
    pub feature: Vec<FeatureDefinition>,
    /// Event views only: features of other views read as of each event's
    /// time when it is pushed, and stored with it.
    #[serde(default)]
    pub lookup: Vec<LookupDef>,
}

/// `[[feature_view.lookup]]`: `name` takes the value of `ref` (another
/// view's feature, joined on the event's keys) as of the event time.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LookupDef {
    pub name: String,
    #[serde(rename = "ref")]
    pub feature_ref: String,
    #[serde(default)]
    pub description: String,
}

/// `[[aggregation]]`: features computed by the store from an event view,
/// grouped by some of its entities, over sliding windows.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationDef {
    pub name: String,
    pub version: u32,
    /// An events view: `name` (its newest version) or `name@N`.
    pub source: String,
    /// The entities it groups by: a subset of the source's.
    pub entities: Vec<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub feature: Vec<AggregationFeatureDef>,
    /// Declared transforms over the aggregate features (read like any
    /// derived feature).
    #[serde(default)]
    pub derived: Vec<FeatureDefinition>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationFeatureDef {
    pub name: String,
    /// `count`, `sum`, `mean`, `min`, `max`, `last`, `distinct_count`.
    pub op: String,
    /// The event column aggregated (all ops but `count`).
    pub input: Option<String>,
    /// `"1h"`, `"7d"`, … ; `"0"` = all time.
    pub windows: Vec<String>,
    pub filter: Option<FilterDef>,
    /// A string or string_list column of the event: one value per
    /// `vocabulary` entry (a float_vector).
    pub bucket_by: Option<String>,
    pub vocabulary: Option<Vec<String>>,
    pub drift_threshold: Option<f64>,
    #[serde(default)]
    pub description: String,
}

/// `{ feature = "played_seconds", op = ">=", value = 30 }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterDef {
    pub feature: String,
    pub op: String,
    pub value: Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureDefinition {
    pub name: String,
    #[serde(rename = "type")]
    pub feature_type: String,
    /// Required length of a `float_vector`.
    pub dim: Option<usize>,
    pub transform: Option<TransformDef>,
    /// Requests that lack a mandatory field are rejected (used by request
    /// context in the ranking path).
    #[serde(default)]
    pub mandatory: bool,
    /// Drift alert threshold on the L-infinity distance between two windows
    /// (numeric: the KS statistic); the monitor's default when absent.
    pub drift_threshold: Option<f64>,
    #[serde(default)]
    pub description: String,
}

/// A declared transform of an earlier feature of the same view (or of the
/// row's `event_timestamp`, for the calendar transforms).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TransformDef {
    /// `input * factor + offset`.
    Scale {
        input: String,
        #[serde(default = "one")]
        factor: f64,
        #[serde(default)]
        offset: f64,
    },
    /// `ln(1 + input)`; null for inputs at or below -1.
    Log1p { input: String },
    /// `min(max(input, min), max)`, as float64.
    Clip {
        input: String,
        min: Option<f64>,
        max: Option<f64>,
    },
    /// Index of the bucket: the number of boundaries `<=` the input.
    Bucketize { input: String, boundaries: Vec<f64> },
    /// Hour 0–23 (UTC) of a timestamp: `event_timestamp` or an int64 of Unix seconds.
    HourOfDay { input: String },
    /// Day 0–6 (Monday = 0, UTC) of a timestamp.
    DayOfWeek { input: String },
    /// `xxh3_64(input) mod buckets` of a string (or an int64's decimal form).
    HashBucket { input: String, buckets: u64 },
    /// A float_vector with 1.0 at the input's position in `vocabulary`.
    OneHot {
        input: String,
        vocabulary: Vec<String>,
    },
    /// The input, or `value` when the input is null.
    Default { input: String, value: Json },
}

fn one() -> f64 {
    1.0
}

impl TransformDef {
    pub fn kind(&self) -> &'static str {
        match self {
            TransformDef::Scale { .. } => "scale",
            TransformDef::Log1p { .. } => "log1p",
            TransformDef::Clip { .. } => "clip",
            TransformDef::Bucketize { .. } => "bucketize",
            TransformDef::HourOfDay { .. } => "hour_of_day",
            TransformDef::DayOfWeek { .. } => "day_of_week",
            TransformDef::HashBucket { .. } => "hash_bucket",
            TransformDef::OneHot { .. } => "one_hot",
            TransformDef::Default { .. } => "default",
        }
    }

    pub fn input(&self) -> &str {
        match self {
            TransformDef::Scale { input, .. }
            | TransformDef::Log1p { input }
            | TransformDef::Clip { input, .. }
            | TransformDef::Bucketize { input, .. }
            | TransformDef::HourOfDay { input }
            | TransformDef::DayOfWeek { input }
            | TransformDef::HashBucket { input, .. }
            | TransformDef::OneHot { input, .. }
            | TransformDef::Default { input, .. } => input,
        }
    }
}

impl DefinitionFile {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}
