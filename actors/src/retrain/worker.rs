//! The sync actor that runs one retraining pipeline at a time, recording
//! each step in memory and in the store.

use std::sync::{Arc, Mutex};

use actix::prelude::*;
use reprise_store::time::format_rfc3339;
use reprise_store::FeatureStore;
use reprise_trainer::retrain::{self, Promotion, RetrainPolicy};
use reprise_trainer::runs::{self, RetrainRun};
use reprise_trainer::TrainError;

use super::RetrainStats;
use crate::error::ActorError;
use crate::recommend::Recommender;
use crate::supervise::supervised;
use crate::validation::alerts;

/// The run in progress, readable while it goes.
pub(super) type Current = Arc<Mutex<Option<RetrainRun>>>;

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Run {
    pub run: RetrainRun,
    pub policy: RetrainPolicy,
}

pub(super) struct RetrainWorker {
    pub store: Arc<FeatureStore>,
    pub recommender: Recommender,
    pub current: Current,
    pub stats: Arc<RetrainStats>,
    /// Rankers kept by model collection (`collect.rs`).
    pub keep_models: usize,
}

impl Actor for RetrainWorker {
    type Context = SyncContext<Self>;
}

/// Promotion inside the server: the recommender swaps models; the alert
/// view gates.
struct ServerPromotion<'a> {
    store: &'a FeatureStore,
    recommender: &'a Recommender,
}

impl Promotion for ServerPromotion<'_> {
    fn blocking_alert(&self) -> reprise_trainer::Result<Option<String>> {
        let open =
            alerts::open_blocking(self.store).map_err(|e| TrainError::Promotion(e.to_string()))?;
        Ok(open.into_iter().next().map(|a| {
            format!(
                "blocking alert {} ({} on {}:{})",
                a.id, a.check, a.view, a.feature
            )
        }))
    }

    fn promote(&self, version: &str) -> reprise_trainer::Result<()> {
        self.recommender
            .promote(version)
            .map_err(|e| TrainError::Promotion(e.to_string()))
    }
}

impl RetrainWorker {
    fn record(&self, run: &RetrainRun) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(run.clone());
        if let Err(e) = runs::save(&self.store, run) {
            tracing::warn!(error = %e, run = %run.run_id, "retraining run state not stored");
        }
    }
}

impl Handler<Run> for RetrainWorker {
    type Result = ();

    fn handle(&mut self, msg: Run, _: &mut Self::Context) {
        let Run { mut run, policy } = msg;
        let serving = self.recommender.serving_version();
        let promotion = ServerPromotion {
            store: &self.store,
            recommender: &self.recommender,
        };
        // A panic in the run ends it `failed` (never "running" for good).
        let result = supervised("retrain", || {
            crate::supervise::inject("retrain", None);
            retrain::execute(
                &self.store,
                &policy,
                serving.as_deref(),
                &promotion,
                &mut run,
                &mut |r| self.record(r),
            )
            .map_err(ActorError::from)
        });
        retrain::finish(&mut run, result, format_rfc3339(self.store.clock().now()));
        self.stats.finished(&run);
        self.record(&run);
        // Before the next run can start: collection never races a run.
        let lifecycle = self.recommender.lifecycle();
        let collected = super::collect::collect_models(&self.store, self.keep_models);
        drop(lifecycle);
        if let Err(e) = collected {
            tracing::warn!(error = %e, "models not collected");
        }
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!(run = %run.run_id, status = %run.status, decision = ?run.decision, reason = %run.reason, "retraining run finished");
    }
}
