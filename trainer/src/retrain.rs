//! One retraining run: train a candidate (its training data validated
//! against the serving model's schema), score the serving model on the same
//! held-out data as the candidate, and promote the candidate only when it
//! beats the serving model by the margin on the chosen metric and no
//! blocking alert is open. The server's retrainer and `reprise retrain run`
//! both run this; what "promote" and "blocking alert" mean is theirs.

use std::collections::HashMap;
use std::time::Instant;

use reprise_models::dataset::chronological_split;
use reprise_store::FeatureStore;
use reprise_validation::schema::Schema;

use crate::context::{SnapshotContext, SCHEMA_ATTACHMENT};
use crate::data::load_interactions;
use crate::error::{Result, TrainError};
use crate::evaluate::{score_pipeline, TRAIN_FRACTION};
use crate::model_io::RANKER_KIND;
use crate::remap::load_ranker_onto;
use crate::runs::{HeldOut, RetrainRun, RunStep};
use crate::train::{train, TrainOptions};

/// Metrics a run can compare on (higher is better).
pub const METRICS: [&str; 4] = ["ndcg@10", "precision@10", "recall@10", "auc"];

#[derive(Debug, Clone)]
pub struct RetrainPolicy {
    /// The candidate must beat the serving model on `metric` by this
    /// fraction (0.01 = 1%).
    pub margin: f64,
    pub metric: String,
    pub options: TrainOptions,
}

impl Default for RetrainPolicy {
    fn default() -> Self {
        RetrainPolicy {
            margin: 0.0,
            metric: METRICS[0].to_owned(),
            options: TrainOptions::default(),
        }
    }
}

/// Where the candidate goes if it wins.
pub trait Promotion {
    /// An open blocking alert, described, if any.
    fn blocking_alert(&self) -> Result<Option<String>>;
    /// Serves `version`.
    fn promote(&self, version: &str) -> Result<()>;
}

/// The outcome of a run that did not fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub promoted: bool,
    pub reason: String,
}

/// The schema the serving model's training data had.
fn serving_schema(store: &FeatureStore, serving: &str) -> Result<Option<Schema>> {
    let record = store.load_model(serving)?;
    if record.training_snapshot_id.is_empty() {
        return Ok(None);
    }
    Ok(store
        .snapshot_attachment(&record.training_snapshot_id, SCHEMA_ATTACHMENT)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// Runs the pipeline, updating `run` (and calling `changed` after each
/// step) as it goes. `serving` is the ranker serving now.
pub fn execute(
    store: &FeatureStore,
    policy: &RetrainPolicy,
    serving: Option<&str>,
    promotion: &dyn Promotion,
    run: &mut RetrainRun,
    changed: &mut dyn FnMut(&RetrainRun),
) -> Result<Decision> {
    if !METRICS.contains(&policy.metric.as_str()) {
        return Err(TrainError::Config(format!(
            "metric `{}` is not one of {}",
            policy.metric,
            METRICS.join(", ")
        )));
    }
    run.serving_before = serving.map(str::to_owned);
    let mut options = policy.options.clone();
    if let Some(serving) = serving {
        options.expected_schema = serving_schema(store, serving)?;
        // Without a recorded serving pointer the newest ranker serves after
        // a restart; record the serving one, so a rejected candidate (now
        // the newest) never serves by being new.
        if store.serving_model(RANKER_KIND)?.is_none() {
            store.set_serving_model(serving)?;
        }
    }
    let outcome = train(store, &options, &mut |step| {
        run.steps.push(RunStep {
            name: step.name.to_owned(),
            seconds: step.seconds,
        });
        changed(run);
    })?;
    let candidate = outcome.ranker_version.clone();
    run.candidate = Some(candidate.clone());
    run.candidate_metrics = outcome.metrics.as_map();
    run.schema_warnings = outcome.schema_warnings.clone();
    changed(run);

    // The serving model on the candidate's held-out data: the newest
    // quarter of each user's interactions at the candidate's store version.
    // Appended data is later in time, so none of it trained the serving
    // model either.
    let started = Instant::now();
    let data = load_interactions(store, outcome.store_version)?;
    let split = chronological_split(&data.dataset.interactions, TRAIN_FRACTION);
    run.held_out = Some(HeldOut {
        store_version: outcome.store_version,
        users: data.dataset.user_count(),
        train_interactions: split.train.len(),
        held_out_interactions: split.test.len(),
        feedback_interactions: outcome.feedback_interactions,
    });
    let serving_metrics: HashMap<String, f64> = match serving {
        Some(version) => {
            let record = store.load_model(version)?;
            let model = load_ranker_onto(store, &record, &data.dataset, &split.train)?;
            let inputs = crate::model_io::ranker_inputs(store, &record)?;
            let context =
                SnapshotContext::new(store, &data.dataset, &inputs, outcome.store_version)?;
            score_pipeline(&model, &split, &context)?.as_map()
        }
        None => HashMap::new(),
    };
    run.serving_metrics = serving_metrics.clone();
    run.steps.push(RunStep {
        name: "evaluate serving model".into(),
        seconds: started.elapsed().as_secs_f64(),
    });
    changed(run);

    let metric = policy.metric.as_str();
    let new = run.candidate_metrics.get(metric).copied().unwrap_or(0.0);
    if let Some(version) = serving {
        let old = serving_metrics.get(metric).copied().unwrap_or(0.0);
        let needed = old * (1.0 + policy.margin);
        if new.is_nan() || new <= needed {
            return Ok(Decision {
                promoted: false,
                reason: format!(
                    "{candidate} {metric} {new:.4} does not beat the serving {version} {old:.4} on the same held-out data by {:.1}% (needs > {needed:.4})",
                    policy.margin * 100.0
                ),
            });
        }
    }
    let versus = match serving {
        Some(version) => format!(
            "beats the serving {version} {:.4}",
            serving_metrics.get(metric).copied().unwrap_or(0.0)
        ),
        None => "and nothing serves yet".to_owned(),
    };
    if let Some(alert) = promotion.blocking_alert()? {
        return Ok(Decision {
            promoted: false,
            reason: format!("{candidate} {metric} {new:.4} {versus}, but {alert} is open"),
        });
    }
    let started = Instant::now();
    promotion.promote(&candidate)?;
    run.steps.push(RunStep {
        name: "promote".into(),
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok(Decision {
        promoted: true,
        reason: format!("{candidate} {metric} {new:.4} {versus}; promoted"),
    })
}

/// Ends `run` with the pipeline's result.
pub fn finish<E: std::fmt::Display>(
    run: &mut RetrainRun,
    result: std::result::Result<Decision, E>,
    finished_at: String,
) {
    run.finished_at = Some(finished_at);
    match result {
        Ok(decision) => {
            run.status = "succeeded".into();
            run.decision = Some(
                if decision.promoted {
                    "promoted"
                } else {
                    "rejected"
                }
                .into(),
            );
            run.reason = decision.reason;
        }
        Err(e) => {
            run.status = "failed".into();
            run.reason = e.to_string();
        }
    }
}
