//! The wire types of the HTTP contract (CONTRACT.md), as the client sends
//! and reads them. Feature values are JSON values; nested reports the
//! contract leaves open are JSON too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PushResponse {
    pub written: u64,
    pub store_version: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OnlineRow {
    pub values: Vec<Json>,
    /// `PRESENT`, `NOT_FOUND`, `OUTSIDE_MAX_AGE`, `NULL_VALUE`.
    pub statuses: Vec<String>,
    pub event_timestamps: Vec<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OnlineResponse {
    pub store_version: u64,
    pub features: Vec<String>,
    pub rows: Vec<OnlineRow>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SnapshotRequest {
    pub features: Vec<String>,
    /// Entity key columns, `event_timestamp`, and any passthrough columns
    /// (labels).
    pub entity_rows: Vec<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of_version: Option<u64>,
    /// `created` (default) or `event`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cutoff: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SnapshotInfo {
    pub snapshot_id: String,
    pub store_version: u64,
    pub rows: u64,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub cutoff: Option<String>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub columns: Vec<String>,
}

/// The two download formats of a snapshot's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFormat {
    Jsonl,
    Parquet,
}

impl SnapshotFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotFormat::Jsonl => "jsonl",
            SnapshotFormat::Parquet => "parquet",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RecommendRequest {
    pub user_id: String,
    /// `device` and `country` are mandatory in the demo catalogue.
    pub context: Json,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecommendedItem {
    pub item_id: String,
    pub score: f64,
    /// `history`, `ann`, `popular`, `trending`, `segment`.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Recommendations {
    pub request_id: String,
    pub model_version: Option<String>,
    pub arm: String,
    pub cold_start: bool,
    pub items: Vec<RecommendedItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RankRequest {
    pub user_id: String,
    pub context: Json,
    pub item_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ItemProbability {
    pub item_id: String,
    pub probability: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Ranked {
    #[serde(default)]
    pub request_id: Option<String>,
    pub model_version: String,
    pub scores: Vec<ItemProbability>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Event {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub user_id: String,
    pub item_id: String,
    /// `impression`, `play`, `skip`, `click`, `like`.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub played_seconds: Option<f64>,
    /// Plays: raw features of the declared interactions view.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub features: serde_json::Map<String, serde_json::Value>,
    /// The request context the event happened in (`device`, `hour`, …).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub context: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelSummary {
    pub version: String,
    pub kind: String,
    /// `serving`, `candidate` or `retired`.
    pub status: String,
    pub created_at: String,
    #[serde(default)]
    pub training_snapshot_id: String,
    #[serde(default)]
    pub store_version: u64,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RetrainStarted {
    pub run_id: String,
    #[serde(default)]
    pub joined: bool,
}

/// Per-run overrides of the server's retraining settings.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetrainRequest {
    /// `snapshot` or `served_log`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shuffle_labels: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunStep {
    pub name: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RetrainRun {
    pub run_id: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// `promoted`, `rejected` or none.
    pub decision: Option<String>,
    pub reason: String,
    #[serde(default)]
    pub trigger: String,
    #[serde(default)]
    pub steps: Vec<RunStep>,
    #[serde(default)]
    pub candidate: Option<String>,
    #[serde(default)]
    pub serving_before: Option<String>,
    #[serde(default)]
    pub candidate_metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub serving_metrics: BTreeMap<String, f64>,
}

impl RetrainRun {
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    pub name: String,
    pub model_version: String,
    /// Share of users, the arms' shares summing to 1.
    pub traffic: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Alert {
    pub id: String,
    pub check: String,
    pub view: String,
    pub feature: String,
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    pub blocking: bool,
    /// `open` or `acknowledged`.
    pub status: String,
    #[serde(default)]
    pub detail: Json,
    pub raised_at: String,
    pub updated_at: String,
}
