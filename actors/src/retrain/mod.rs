//! Retraining runs inside the server: train a candidate on the store's
//! current data (the trainer crate's pipeline), compare it with the serving
//! ranker, and promote it only when it beats the serving one by the margin
//! and no blocking alert is open. One run at a time; a trigger while a run
//! is going joins it (debounce). Runs are kept with their steps, timings,
//! metrics, decision and reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use reprise_store::time::format_rfc3339;
use reprise_store::FeatureStore;
use reprise_trainer::model_io::{self, RANKER_KIND};
use reprise_trainer::TrainOptions;
use serde::Serialize;

use crate::error::ActorError;
use crate::recommend::Recommender;
use crate::validation::alerts;

#[derive(Debug, Clone)]
pub struct RetrainConfig {
    /// The candidate must beat the serving ranker's NDCG@10 by this
    /// fraction (0.01 = 1%).
    pub margin: f64,
    pub options: TrainOptions,
    /// A scheduled run this often (none: only triggered runs).
    pub every: Option<std::time::Duration>,
}

impl Default for RetrainConfig {
    fn default() -> Self {
        RetrainConfig {
            margin: 0.0,
            options: TrainOptions::default(),
            every: Some(std::time::Duration::from_secs(7 * 86_400)),
        }
    }
}

/// Triggers a scheduled run every `every`.
struct RetrainSchedule {
    retrainer: Retrainer,
    every: std::time::Duration,
}

impl Actor for RetrainSchedule {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.every, |s, _| {
            if let Err(e) = s.retrainer.trigger("schedule") {
                tracing::warn!(error = %e, "scheduled retraining not started");
            }
        });
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunStep {
    pub name: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetrainRun {
    pub run_id: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// `promoted`, `rejected`, or none while running / after a failure.
    pub decision: Option<String>,
    pub reason: String,
    pub trigger: String,
    pub steps: Vec<RunStep>,
    pub candidate: Option<String>,
    pub serving_before: Option<String>,
    pub candidate_metrics: HashMap<String, f64>,
    pub serving_metrics: HashMap<String, f64>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

type Runs = Arc<Mutex<Vec<RetrainRun>>>;

#[derive(Message)]
#[rtype(result = "()")]
struct Run {
    id: String,
}

struct RetrainWorker {
    store: Arc<FeatureStore>,
    recommender: Recommender,
    config: RetrainConfig,
    runs: Runs,
}

impl Actor for RetrainWorker {
    type Context = SyncContext<Self>;
}

impl RetrainWorker {
    fn update(&self, id: &str, f: impl FnOnce(&mut RetrainRun)) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(run) = runs.iter_mut().find(|r| r.run_id == id) {
            f(run);
        }
    }

    fn execute(&self, id: &str) -> Result<(String, String), ActorError> {
        let store = &self.store;
        let serving = self.recommender.serving_version();
        let serving_metrics = match &serving {
            Some(v) => store.load_model(v)?.metrics.into_iter().collect(),
            None => HashMap::new(),
        };
        self.update(id, |r| {
            r.serving_before = serving.clone();
            r.serving_metrics = serving_metrics.clone();
        });
        let outcome = reprise_trainer::train(store, &self.config.options, &mut |step| {
            let step = RunStep {
                name: step.name.to_owned(),
                seconds: step.seconds,
            };
            self.update(id, |r| r.steps.push(step));
        })?;
        let candidate = outcome.ranker_version.clone();
        let metrics = outcome.metrics.as_map();
        self.update(id, |r| {
            r.candidate = Some(candidate.clone());
            r.candidate_metrics = metrics.clone();
        });
        let new = metrics.get("ndcg@10").copied().unwrap_or(0.0);
        let old = serving_metrics.get("ndcg@10").copied().unwrap_or(0.0);
        let needed = old * (1.0 + self.config.margin);
        if serving.is_some() && new <= needed {
            return Ok((
                "rejected".into(),
                format!(
                    "{candidate} NDCG@10 {new:.4} does not beat the serving {} {old:.4} by {:.1}% (needs > {needed:.4})",
                    serving.as_deref().unwrap_or("-"),
                    self.config.margin * 100.0
                ),
            ));
        }
        if let Some(alert) = alerts::open_blocking(store)?.into_iter().next() {
            return Ok((
                "rejected".into(),
                format!(
                    "{candidate} is better (NDCG@10 {new:.4} vs {old:.4}) but blocking alert {} ({} on {}:{}) is open",
                    alert.id, alert.check, alert.view, alert.feature
                ),
            ));
        }
        self.recommender.promote(&candidate)?;
        Ok((
            "promoted".into(),
            format!("{candidate} NDCG@10 {new:.4} beats {old:.4}; promoted"),
        ))
    }
}

impl Handler<Run> for RetrainWorker {
    type Result = ();

    fn handle(&mut self, msg: Run, _: &mut Self::Context) {
        let result = self.execute(&msg.id);
        let now = format_rfc3339(self.store.clock().now());
        self.update(&msg.id, |r| {
            r.finished_at = Some(now);
            match result {
                Ok((decision, reason)) => {
                    r.status = "succeeded".into();
                    r.decision = Some(decision);
                    r.reason = reason;
                }
                Err(e) => {
                    r.status = "failed".into();
                    r.reason = e.to_string();
                }
            }
        });
        tracing::info!(run = %msg.id, "retraining run finished");
    }
}

/// Handle to the retraining worker and its runs.
#[derive(Clone)]
pub struct Retrainer {
    store: Arc<FeatureStore>,
    worker: Addr<RetrainWorker>,
    runs: Runs,
}

impl Retrainer {
    pub fn start(
        store: Arc<FeatureStore>,
        recommender: Recommender,
        config: RetrainConfig,
    ) -> Self {
        let runs: Runs = Arc::new(Mutex::new(Vec::new()));
        let every = config.every;
        let (s, r) = (Arc::clone(&store), Arc::clone(&runs));
        let worker = SyncArbiter::start(1, move || RetrainWorker {
            store: Arc::clone(&s),
            recommender: recommender.clone(),
            config: config.clone(),
            runs: Arc::clone(&r),
        });
        let retrainer = Retrainer {
            store,
            worker,
            runs,
        };
        if let Some(every) = every.filter(|d| !d.is_zero()) {
            RetrainSchedule {
                retrainer: retrainer.clone(),
                every,
            }
            .start();
        }
        retrainer
    }

    /// Starts a run (or joins the one running) and returns its id.
    pub fn trigger(&self, reason: &str) -> Result<String, ActorError> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = runs.iter().find(|r| r.status == "running") {
            return Ok(running.run_id.clone());
        }
        if model_io::latest(&self.store, RANKER_KIND).is_err()
            && self
                .store
                .view_history("ml_rating", self.store.version())?
                .is_empty()
        {
            return Err(ActorError::invalid(
                "retrain",
                "no interactions to train on: import data first",
            ));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        runs.push(RetrainRun {
            run_id: id.clone(),
            status: "running".into(),
            decision: None,
            reason: String::new(),
            trigger: reason.to_owned(),
            steps: Vec::new(),
            candidate: None,
            serving_before: None,
            candidate_metrics: HashMap::new(),
            serving_metrics: HashMap::new(),
            started_at: format_rfc3339(self.store.clock().now()),
            finished_at: None,
        });
        drop(runs);
        self.worker.do_send(Run { id: id.clone() });
        tracing::info!(run = %id, trigger = reason, "retraining run started");
        Ok(id)
    }

    pub fn run(&self, id: &str) -> Option<RetrainRun> {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|r| r.run_id == id)
            .cloned()
    }
}
