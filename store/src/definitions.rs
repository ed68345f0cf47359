//! The definition-file format of `migrations/NNNN_*.toml` (CONTRACT.md
//! "Definition files"), as plain serde types. Checking and compiling them into
//! the registry is `registry.rs`'s job.

use serde::Deserialize;
use serde_json::Value as Json;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionFile {
    #[serde(default)]
    pub entity: Vec<EntityDef>,
    #[serde(default)]
    pub feature_view: Vec<FeatureViewDef>,
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
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub feature: Vec<FeatureDefinition>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
