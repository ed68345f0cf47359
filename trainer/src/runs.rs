//! Retraining runs as records in the `retrain_run` view
//! (migrations/0010_retrain.toml): one row per state change, the newest row
//! of a run is its state.

use std::collections::{BTreeMap, HashMap};

use reprise_store::{FeatureStore, StoreError, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::Result;
use crate::train::TrainingSource;

pub const RUNS_VIEW: &str = "retrain_run";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStep {
    pub name: String,
    pub seconds: f64,
}

/// What both models were scored on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    pub store_version: u64,
    pub users: usize,
    pub train_interactions: usize,
    pub held_out_interactions: usize,
    /// Training interactions that came from feedback events.
    pub feedback_interactions: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainRun {
    pub run_id: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// `promoted`, `rejected`, or none while running / after a failure.
    pub decision: Option<String>,
    pub reason: String,
    /// `manual`, `schedule`, `drift_alert`, `play_rate_drop`, `cli`.
    pub trigger: String,
    pub source: TrainingSource,
    /// The metric compared, and the margin the candidate must beat the
    /// serving model by (a fraction).
    pub metric: String,
    pub margin: f64,
    pub steps: Vec<RunStep>,
    pub candidate: Option<String>,
    pub serving_before: Option<String>,
    /// Both scored on `held_out`.
    pub candidate_metrics: HashMap<String, f64>,
    pub serving_metrics: HashMap<String, f64>,
    pub held_out: Option<HeldOut>,
    /// Non-blocking schema anomalies of the training data.
    pub schema_warnings: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl RetrainRun {
    /// A new run (with a fresh id), running.
    pub fn new(
        trigger: &str,
        source: TrainingSource,
        metric: &str,
        margin: f64,
        started_at: String,
    ) -> Self {
        RetrainRun {
            run_id: uuid::Uuid::new_v4().simple().to_string(),
            status: "running".into(),
            decision: None,
            reason: String::new(),
            trigger: trigger.to_owned(),
            source,
            metric: metric.to_owned(),
            margin,
            steps: Vec::new(),
            candidate: None,
            serving_before: None,
            candidate_metrics: HashMap::new(),
            serving_metrics: HashMap::new(),
            held_out: None,
            schema_warnings: Vec::new(),
            started_at,
            finished_at: None,
        }
    }

    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

/// Writes the run's current state (one synced write).
pub fn save(store: &FeatureStore, run: &RetrainRun) -> Result<()> {
    let mut row = json!({"run_id": run.run_id,
        "event_timestamp": reprise_store::time::format_rfc3339(store.clock().now()),
        "status": run.status, "trigger": run.trigger,
        "record": serde_json::to_string(run).unwrap_or_default()});
    if let Some(decision) = &run.decision {
        row["decision"] = json!(decision);
    }
    store.push(RUNS_VIEW, &[row], false)?;
    Ok(())
}

/// Every run, newest state each, oldest first.
pub fn list(store: &FeatureStore) -> Result<Vec<RetrainRun>> {
    let rows = match store.view_history(RUNS_VIEW, store.version()) {
        Ok(rows) => rows,
        Err(StoreError::UnknownView { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let registry = store.registry();
    let Some(record) = registry
        .view(RUNS_VIEW)
        .and_then(|v| v.feature_index("record"))
    else {
        return Ok(Vec::new());
    };
    // Rows come by run, then time: the last one of a run is its state.
    let mut runs: BTreeMap<String, RetrainRun> = BTreeMap::new();
    for row in rows {
        if let (Some(id), Some(Some(Value::String(json)))) =
            (row.keys.first(), row.values.get(record))
        {
            if let Ok(run) = serde_json::from_str::<RetrainRun>(json) {
                runs.insert(id.clone(), run);
            }
        }
    }
    let mut out: Vec<RetrainRun> = runs.into_values().collect();
    out.sort_by(|a, b| (&a.started_at, &a.run_id).cmp(&(&b.started_at, &b.run_id)));
    Ok(out)
}

/// One run's newest state.
pub fn get(store: &FeatureStore, run_id: &str) -> Result<Option<RetrainRun>> {
    Ok(list(store)?.into_iter().find(|r| r.run_id == run_id))
}
