//! The wire types of the HTTP API (CONTRACT.md), shared by the handlers and
//! the generated OpenAPI document. Request bodies are parsed field by field
//! (see `body.rs`) so errors can name the field; these request types
//! document their shape.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PushRequest {
    /// `name` (newest version) or `name@N`.
    pub view: String,
    /// Rows take their event time as created time (no created-time cutoff).
    #[serde(default)]
    pub backfill: bool,
    /// Objects with the view's join keys, `event_timestamp` and raw features.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Json>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PushResponse {
    pub written: usize,
    pub store_version: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OnlineRequest {
    /// Feature refs: `view:feature` or `view@N:feature`.
    pub features: Vec<String>,
    /// Objects of join-key values.
    #[schema(value_type = Vec<Object>)]
    pub entities: Vec<Json>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OnlineRow {
    /// One value per requested feature (null unless `PRESENT`): a number,
    /// string, bool, or an array (float vector, string list).
    #[schema(value_type = Vec<serde_json::Value>)]
    pub values: Vec<Option<reprise_store::Value>>,
    /// `PRESENT`, `NOT_FOUND`, `OUTSIDE_MAX_AGE` or `NULL_VALUE`.
    pub statuses: Vec<String>,
    pub event_timestamps: Vec<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OnlineResponse {
    pub store_version: u64,
    pub features: Vec<String>,
    pub rows: Vec<OnlineRow>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotRequest {
    pub features: Vec<String>,
    /// Pin to this store version (default: the current one).
    pub as_of_version: Option<u64>,
    /// `created` (default) or `event`.
    pub cutoff: Option<String>,
    /// Objects with join keys, `event_timestamp` and passthrough columns.
    #[schema(value_type = Vec<Object>)]
    pub entity_rows: Vec<Json>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotDescription {
    pub snapshot_id: String,
    pub store_version: u64,
    pub rows: u64,
    pub created_at: String,
    pub cutoff: String,
    /// Resolved refs, `view@N:feature`.
    pub features: Vec<String>,
    /// Output columns in order.
    pub columns: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code.
    pub code: String,
    pub message: String,
    /// The request field at fault (`rows[3].plays_7d`), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BackupRequest {
    /// An absolute path on the server's machine that does not exist yet.
    pub dir: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BackupResponse {
    pub dir: String,
    /// The backup holds every batch acknowledged up to this version.
    pub store_version: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Compacted {
    pub seconds: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Ready {
    /// `ready`, or `not_ready` (with a 503) when a replica cannot answer
    /// fresh reads.
    pub status: String,
    pub store_version: u64,
    pub feature_views: usize,
    /// In a fleet: `leader` or `replica` (absent on a single server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// In a fleet: store versions committed on the leader and not yet
    /// published to the shared online store (`replication.lag_versions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_versions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationState>,
}

/// How far the shared online store (and a replica reading it) is behind the
/// leader.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplicationState {
    /// The store version readers of the shared online store see.
    pub published_version: u64,
    /// The leader's newest committed version (as the replica last heard).
    pub leader_version: u64,
    pub lag_versions: u64,
    /// Age of the oldest commit not yet published (0 when none).
    pub lag_seconds: f64,
    /// Why a replica is not ready, or the last publish error of a leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelSummary {
    /// `kind-N`, e.g. `ranker-7`.
    pub version: String,
    pub kind: String,
    /// `serving`, `candidate` or `retired`.
    pub status: String,
    pub created_at: String,
    pub training_snapshot_id: String,
    pub store_version: u64,
    pub metrics: std::collections::BTreeMap<String, f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    pub models: Vec<ModelSummary>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecommendationRequest {
    pub user_id: String,
    /// Request context; `device` and `country` are mandatory in the demo
    /// catalogue (the `request_context` view's mandatory features).
    #[schema(value_type = Object)]
    pub context: Json,
    /// Items wanted (1–200, default 10).
    pub k: Option<usize>,
    /// Explain each ranked item (default false).
    pub explain: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecommendedItem {
    pub item_id: String,
    /// Engagement probability (cold start: relative popularity), in [0, 1].
    pub score: f64,
    /// `history`, `ann`, `popular`, `trending` or `segment`.
    pub source: String,
    /// With `"explain": true`, for a ranked (not cold-start) item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

/// One value a declared ranker feature read.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RawInput {
    /// `view:feature`, or `request_context:field` for the request's context.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Any JSON value (null when missing).
    #[schema(value_type = serde_json::Value)]
    pub value: Json,
    /// `present`, `not_found`, `outside_max_age`, `null_value`, or
    /// `request` for a request-context field.
    pub status: String,
    pub event_timestamp: Option<String>,
    /// The store version read (none for request context).
    pub store_version: Option<u64>,
}

/// One model input, in the ranker's input order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelInput {
    pub name: String,
    pub value: f64,
    /// In log-odds: `sigmoid(bias + Σ contribution)` is the item's score.
    pub contribution: f64,
}

/// Why an item got its score: raw values → model inputs → contributions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Explanation {
    pub raw: Vec<RawInput>,
    pub inputs: Vec<ModelInput>,
    /// The score of an average item, in log-odds.
    pub bias: f64,
}

/// One logged model input, with its replayed value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServedInput {
    pub name: String,
    pub logged: f64,
    /// Recomputed from the store (replay only; none for the candidate
    /// generators' inputs, which come from the model).
    pub replayed: Option<f64>,
    pub differs: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServedItem {
    pub item_id: String,
    pub position: i64,
    pub score: f64,
    pub source: String,
    pub inputs: Vec<ServedInput>,
    /// Replay only: the declared features' values read point-in-time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replayed_raw: Vec<RawInput>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplaySummary {
    pub store_version: u64,
    /// `event` (default) or `created`.
    pub cutoff: String,
    /// Inputs whose replayed value differs from the logged one.
    pub differences: usize,
}

/// What the served-feature log holds for one request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServedResponse {
    pub request_id: String,
    pub user_id: String,
    pub timestamp: String,
    pub model_version: Option<String>,
    pub arm: Option<String>,
    #[schema(value_type = Object)]
    pub context: Json,
    pub items: Vec<ServedItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplaySummary>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecommendationResponse {
    pub request_id: String,
    pub model_version: Option<String>,
    pub arm: String,
    pub cold_start: bool,
    pub items: Vec<RecommendedItem>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RankRequest {
    pub user_id: String,
    #[schema(value_type = Object)]
    pub context: Json,
    pub item_ids: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ItemProbability {
    pub item_id: String,
    pub probability: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RankResponse {
    pub request_id: String,
    pub model_version: String,
    pub scores: Vec<ItemProbability>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FeedbackEvent {
    /// The `request_id` of the response that served the item (joins the
    /// event to the served-feature log).
    pub request_id: Option<String>,
    pub user_id: String,
    pub item_id: String,
    /// `impression`, `play`, `skip`, `click` or `like`.
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: String,
    /// Length of a play; shorter than the skip threshold (30 s) is a skip
    /// (unless the `[recommender]` declares its own engagement rule).
    pub played_seconds: Option<f64>,
    /// Plays: raw features of the declared interactions view.
    #[schema(value_type = Option<Object>)]
    pub features: Option<serde_json::Map<String, serde_json::Value>>,
    /// The request context the event happened in (`device`, `hour`, …);
    /// plays log the fields the interactions view declares. Without it, a
    /// play naming a served `request_id` takes that request's context.
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsRequest {
    pub events: Vec<FeedbackEvent>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsResponse {
    pub accepted: usize,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Promoted {
    /// The ranker version now serving.
    pub serving: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertSummary {
    pub id: String,
    /// `drift`.
    pub check: String,
    pub view: String,
    pub feature: String,
    /// The distance that crossed its threshold (`linf`).
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    /// Open blocking alerts stop model promotion.
    pub blocking: bool,
    /// `open` or `acknowledged`.
    pub status: String,
    /// Every distance of the comparison.
    #[schema(value_type = Object)]
    pub detail: Json,
    pub raised_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertList {
    pub alerts: Vec<AlertSummary>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ValidationRun {
    /// Every feature compared, with all distances, whether or not it fired.
    #[schema(value_type = Vec<Object>)]
    pub comparisons: Json,
    /// Alerts raised by this run.
    pub raised: Vec<AlertSummary>,
    /// Serving context values that break the serving ranker's training
    /// schema (`missing_feature`, `low_presence`, `out_of_domain`,
    /// `out_of_range`, `type_mismatch`, `nan`, `new_feature`).
    #[schema(value_type = Vec<Object>)]
    pub anomalies: Json,
    /// Each compared feature's L∞ distance in the recent runs, oldest first
    /// (`at`, `check`, `view`, `feature`, `linf`, `threshold`; bounded).
    #[schema(value_type = Vec<Object>)]
    pub history: Json,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExperimentArm {
    pub name: String,
    pub model_version: String,
    /// Share of users, 0–1; the arms' shares sum to 1.
    pub traffic: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExperimentRequest {
    pub arms: Vec<ExperimentArm>,
    /// Hash salt (default: the experiment's name).
    pub salt: Option<String>,
    /// Default true.
    pub active: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExperimentList {
    /// `{name, arms, salt, active, defined_at}` each.
    #[schema(value_type = Vec<Object>)]
    pub experiments: Json,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExperimentReport {
    #[schema(value_type = Object)]
    pub experiment: Json,
    /// Per arm: impressions, plays, skips, play_rate, z, p_value, diff_ci95.
    #[schema(value_type = Vec<Object>)]
    pub arms: Json,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetrainStarted {
    pub run_id: String,
    /// A run was going: this trigger joined it.
    pub joined: bool,
}

/// Overrides of the server's retraining settings for one run (all
/// optional).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetrainRequest {
    /// `snapshot` or `served_log`.
    pub source: Option<String>,
    /// `ndcg@10`, `precision@10`, `recall@10` or `auc`.
    pub metric: Option<String>,
    pub margin: Option<f64>,
    pub factors: Option<u64>,
    pub iterations: Option<u64>,
    pub shuffle_labels: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetrainRunStatus {
    pub run_id: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// `promoted`, `rejected` or null.
    pub decision: Option<String>,
    pub reason: String,
    /// `manual`, `schedule`, `drift_alert …`, `play_rate_drop …`.
    pub trigger: String,
    /// `snapshot` or `served_log`.
    pub source: String,
    pub metric: String,
    pub margin: f64,
    #[schema(value_type = Vec<Object>)]
    pub steps: Json,
    pub candidate: Option<String>,
    pub serving_before: Option<String>,
    #[schema(value_type = Object)]
    pub candidate_metrics: Json,
    /// The serving ranker scored on the candidate's held-out data.
    #[schema(value_type = Object)]
    pub serving_metrics: Json,
    #[schema(value_type = Object)]
    pub held_out: Json,
    pub schema_warnings: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// The catalogue (see `reprise_store::catalog::Catalog`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CatalogResponse {
    pub store_version: u64,
    /// `name`, `join_key`, `description`.
    #[schema(value_type = Vec<Object>)]
    pub entities: Json,
    /// Per view version: `name`, `version`, `kind` (state, events,
    /// aggregation), `entities`, `ttl`, `retention`, `description`,
    /// `retired`, `last_write_version`, `features` (name, type, dim,
    /// transform, lookup, mandatory, drift_threshold, description) and an
    /// aggregation's declaration.
    #[schema(value_type = Vec<Object>)]
    pub views: Json,
}

/// Who the calling key is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Identity {
    /// The key's name (none without a keys file).
    pub key: Option<String>,
    /// `read`, `write`, `admin`.
    pub scopes: Vec<String>,
    /// Whether the server checks keys.
    pub keys_required: bool,
}

/// One row of the interactions view.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Play {
    pub item_id: String,
    pub event_timestamp: String,
    pub store_version: u64,
    /// The event's features by name (derived ones computed).
    #[schema(value_type = Object)]
    pub features: Json,
}

/// A user's newest plays, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserPlays {
    pub user_id: String,
    /// The interactions view read (`name@version`).
    pub view: String,
    pub plays: Vec<Play>,
}
