//! Retraining inside the server: runs of the trainer's pipeline
//! ([`reprise_trainer::retrain`]) on a sync worker, one at a time. Runs
//! start from `POST /v1/retrain`, the schedule (interval or cron), drift
//! alerts and drops of the online play rate; automatic triggers are
//! debounced (none within `debounce` of the last run's start) and a trigger
//! while a run is going joins it. Every run is stored with its steps,
//! metrics, decision and reason (the `retrain_run` view), so runs survive
//! restarts.

pub mod collect;
mod play_rate;
mod schedule;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use reprise_store::time::format_rfc3339;
use reprise_store::FeatureStore;
use reprise_trainer::model_io::{self, RANKER_KIND};
use reprise_trainer::retrain::{RetrainPolicy, METRICS};
use reprise_trainer::runs::{self, RetrainRun};
use reprise_trainer::TrainingSource;
use serde::Deserialize;

pub use play_rate::{PlayRateDrop, PlayRateMonitor, PlayRateSnapshot};
pub use schedule::Schedule;

use crate::error::ActorError;
use crate::recommend::Recommender;
use worker::{Current, RetrainWorker, Run};

#[derive(Debug, Clone)]
pub struct RetrainConfig {
    pub policy: RetrainPolicy,
    /// Scheduled runs (none: only triggered ones). Weekly by default.
    pub schedule: Option<Schedule>,
    /// An automatic trigger (schedule, drift, play rate) within this long
    /// of the last run's start is dropped.
    pub debounce: Duration,
    /// Verdicts (engaged or not) per play-rate window.
    pub play_rate_window: u64,
    /// A window this fraction under the baseline triggers a run (none:
    /// the play-rate trigger is off).
    pub play_rate_drop: Option<f64>,
    /// Rankers model collection keeps: the newest this many and as many
    /// rollback steps (`collect.rs`).
    pub keep_models: usize,
}

impl Default for RetrainConfig {
    fn default() -> Self {
        RetrainConfig {
            policy: RetrainPolicy::default(),
            schedule: Some(Schedule::Every(Duration::from_secs(7 * 86_400))),
            debounce: Duration::from_secs(600),
            play_rate_window: 500,
            play_rate_drop: Some(0.2),
            keep_models: 5,
        }
    }
}

/// Per-run settings a `POST /v1/retrain` may override.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOverrides {
    pub source: Option<TrainingSource>,
    pub metric: Option<String>,
    pub margin: Option<f64>,
    pub factors: Option<usize>,
    pub iterations: Option<usize>,
    /// Train the ranker on permuted labels (a null model).
    pub shuffle_labels: Option<bool>,
}

impl RunOverrides {
    fn apply(&self, mut policy: RetrainPolicy) -> Result<RetrainPolicy, ActorError> {
        if let Some(metric) = &self.metric {
            if !METRICS.contains(&metric.as_str()) {
                return Err(ActorError::invalid(
                    "metric",
                    format!("`{metric}` is not one of {}", METRICS.join(", ")),
                ));
            }
            policy.metric = metric.clone();
        }
        if let Some(margin) = self.margin {
            if !(0.0..10.0).contains(&margin) {
                return Err(ActorError::invalid("margin", "must be in [0, 10)"));
            }
            policy.margin = margin;
        }
        let options = &mut policy.options;
        if let Some(source) = self.source {
            options.source = source;
        }
        if let Some(factors) = self.factors {
            if !(1..=MAX_FACTORS).contains(&factors) {
                return Err(ActorError::invalid(
                    "factors",
                    format!("must be between 1 and {MAX_FACTORS}"),
                ));
            }
            options.params.als.factors = factors;
            options.declared_dimension = false;
        }
        if let Some(iterations) = self.iterations {
            if !(1..=MAX_ITERATIONS).contains(&iterations) {
                return Err(ActorError::invalid(
                    "iterations",
                    format!("must be between 1 and {MAX_ITERATIONS}"),
                ));
            }
            options.params.als.iterations = iterations;
        }
        if let Some(shuffle) = self.shuffle_labels {
            options.params.shuffle_labels = shuffle;
        }
        Ok(policy)
    }
}

/// Bounds of the retraining overrides (a run must not be able to take the
/// machine for hours or its memory).
pub const MAX_FACTORS: usize = 512;
pub const MAX_ITERATIONS: usize = 200;

/// Counters of runs since start, for the metrics.
#[derive(Debug, Default)]
pub struct RetrainStats {
    pub started: AtomicU64,
    pub promoted: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    pub debounced: AtomicU64,
    pub play_rate_drops: AtomicU64,
    /// Wall time of the last finished run, in milliseconds.
    pub last_run_millis: AtomicU64,
}

impl RetrainStats {
    fn finished(&self, run: &RetrainRun) {
        let counter = match run.decision.as_deref() {
            Some("promoted") => &self.promoted,
            Some(_) => &self.rejected,
            None => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let seconds: f64 = run.steps.iter().map(|s| s.seconds).sum();
        self.last_run_millis
            .store((seconds * 1000.0) as u64, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// What a trigger did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Triggered {
    Started(String),
    /// A run was going: the trigger joined it.
    Joined(String),
    /// An automatic trigger too soon after the last run.
    Debounced,
}

/// Handle to the retraining worker, its runs and its triggers.
#[derive(Clone)]
pub struct Retrainer {
    store: Arc<FeatureStore>,
    recommender: Recommender,
    worker: Addr<RetrainWorker>,
    current: Current,
    policy: RetrainPolicy,
    debounce: Duration,
    last_start: Arc<Mutex<Option<Instant>>>,
    play_rate: Option<Arc<PlayRateMonitor>>,
    /// Verdicts changed the play-rate windows since their last checkpoint.
    play_rate_dirty: Arc<AtomicBool>,
    stats: Arc<RetrainStats>,
}

/// The play-rate windows' checkpoint in the store.
const PLAY_RATE_STATE: &str = "play_rate";
const PLAY_RATE_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

impl Retrainer {
    /// Starts the worker and the schedule (inside an actix system); runs a
    /// crash left `running` are marked failed.
    pub fn start(
        store: Arc<FeatureStore>,
        recommender: Recommender,
        config: RetrainConfig,
    ) -> Result<Self, ActorError> {
        let now = format_rfc3339(store.clock().now());
        for mut run in runs::list(&store)?
            .into_iter()
            .filter(RetrainRun::is_running)
        {
            run.status = "failed".into();
            run.reason = "interrupted: the server stopped during the run".into();
            run.finished_at = Some(now.clone());
            runs::save(&store, &run)?;
        }
        let current: Current = Arc::new(Mutex::new(None));
        let stats = Arc::new(RetrainStats::default());
        let (s, r, c, st) = (
            Arc::clone(&store),
            recommender.clone(),
            Arc::clone(&current),
            Arc::clone(&stats),
        );
        // Models of runs a crash interrupted, and those older runs left
        // (a failure is logged: the server serves without collecting).
        let collected = {
            let _lifecycle = recommender.lifecycle();
            collect::collect_models(&store, config.keep_models)
        };
        if let Err(e) = collected {
            tracing::warn!(error = %e, "models not collected at start");
        }
        let keep_models = config.keep_models;
        let worker = SyncArbiter::start(1, move || RetrainWorker {
            store: Arc::clone(&s),
            recommender: r.clone(),
            current: Arc::clone(&c),
            stats: Arc::clone(&st),
            keep_models,
        });
        let retrainer = Retrainer {
            store,
            recommender,
            worker,
            current,
            policy: config.policy,
            debounce: config.debounce,
            last_start: Arc::new(Mutex::new(None)),
            play_rate: config
                .play_rate_drop
                .map(|drop| Arc::new(PlayRateMonitor::new(config.play_rate_window, drop))),
            play_rate_dirty: Arc::new(AtomicBool::new(false)),
            stats,
        };
        retrainer.resume_play_rate()?;
        retrainer.start_play_rate_checkpoints();
        if let Some(schedule) = config.schedule {
            schedule::RetrainSchedule {
                retrainer: retrainer.clone(),
                schedule,
            }
            .start();
        }
        Ok(retrainer)
    }

    /// Starts a run with the configured policy changed by `overrides`, or
    /// joins the one running. Blocking (it writes the run): call it off the
    /// HTTP workers.
    pub fn trigger(
        &self,
        trigger: &str,
        overrides: &RunOverrides,
    ) -> Result<Triggered, ActorError> {
        let mut policy = overrides.apply(self.policy.clone())?;
        // The run learns from the data as of its trigger.
        policy
            .options
            .as_of_version
            .get_or_insert_with(|| self.store.version());
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = current.as_ref().filter(|r| r.is_running()) {
            return Ok(Triggered::Joined(running.run_id.clone()));
        }
        if model_io::latest(&self.store, RANKER_KIND).is_err()
            && self
                .store
                .registry()
                .recommender()
                .map(|spec| spec.interactions.label())
                .map_or(Ok(Vec::new()), |view| {
                    self.store.view_history(&view, self.store.version())
                })?
                .is_empty()
        {
            return Err(ActorError::invalid(
                "retrain",
                "no interactions to train on: import data first",
            ));
        }
        let run = RetrainRun::new(
            trigger,
            policy.options.source,
            &policy.metric,
            policy.margin,
            format_rfc3339(self.store.clock().now()),
        );
        runs::save(&self.store, &run)?;
        *current = Some(run.clone());
        drop(current);
        *self.last_start.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.stats.started.fetch_add(1, Ordering::Relaxed);
        let id = run.run_id.clone();
        self.worker.do_send(Run { run, policy });
        tracing::info!(run = %id, trigger, "retraining run started");
        Ok(Triggered::Started(id))
    }

    /// A trigger of the schedule or a monitor: dropped within the debounce
    /// interval of the last run's start.
    pub fn trigger_automatic(&self, trigger: &str) -> Result<Triggered, ActorError> {
        let recent = self
            .last_start
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < self.debounce);
        if recent
            && !self
                .current
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .is_some_and(RetrainRun::is_running)
        {
            self.stats.debounced.fetch_add(1, Ordering::Relaxed);
            tracing::info!(trigger, "retraining trigger debounced");
            return Ok(Triggered::Debounced);
        }
        self.trigger(trigger, &RunOverrides::default())
    }

    /// Feeds the play-rate monitor with verdicts on served items; a drop
    /// triggers a run.
    pub fn observe_feedback(&self, verdicts: &[bool]) {
        let Some(monitor) = &self.play_rate else {
            return;
        };
        let serving = self.recommender.serving_version();
        let dropped = monitor.observe(serving.as_deref(), verdicts);
        self.play_rate_dirty.store(true, Ordering::Release);
        if let Some(drop) = dropped {
            self.stats.play_rate_drops.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                rate = drop.rate,
                baseline = drop.baseline,
                "play rate dropped"
            );
            let trigger = format!(
                "play_rate_drop ({:.3} vs baseline {:.3})",
                drop.rate, drop.baseline
            );
            if let Err(e) = self.trigger_automatic(&trigger) {
                tracing::warn!(error = %e, "retraining on a play-rate drop not started");
            }
        }
    }

    /// Resumes the play-rate windows after a restart from their last
    /// checkpoint (saved every second while verdicts change them): start-up costs one
    /// read, however long the served log. A crash loses at most the last
    /// second of verdicts from the windows (the events themselves are in
    /// the store).
    fn resume_play_rate(&self) -> Result<(), ActorError> {
        let Some(monitor) = &self.play_rate else {
            return Ok(());
        };
        if let Some(checkpoint) = self.store.service_state(PLAY_RATE_STATE)? {
            if !monitor.resume(&checkpoint) {
                tracing::warn!("play-rate checkpoint unreadable; the windows start afresh");
            }
        }
        Ok(())
    }

    /// Saves the play-rate windows every second while verdicts change them
    /// (off the actix threads: the save is a synced write).
    fn start_play_rate_checkpoints(&self) {
        let Some(monitor) = self.play_rate.clone() else {
            return;
        };
        let (store, dirty) = (Arc::clone(&self.store), Arc::clone(&self.play_rate_dirty));
        actix::spawn(async move {
            loop {
                actix_rt::time::sleep(PLAY_RATE_CHECKPOINT_EVERY).await;
                if !dirty.swap(false, Ordering::AcqRel) {
                    continue;
                }
                let (store, monitor) = (Arc::clone(&store), Arc::clone(&monitor));
                let saved = actix_rt::task::spawn_blocking(move || {
                    store.save_service_state(PLAY_RATE_STATE, monitor.checkpoint())
                })
                .await;
                if let Ok(Err(e)) = saved {
                    tracing::warn!(error = %e, "play-rate checkpoint not saved");
                }
            }
        });
    }

    pub fn play_rate(&self) -> PlayRateSnapshot {
        self.play_rate
            .as_ref()
            .map(|m| m.snapshot())
            .unwrap_or_default()
    }

    pub fn stats(&self) -> &RetrainStats {
        &self.stats
    }

    /// A run's newest state: the one going from memory, others from the
    /// store.
    pub fn run(&self, id: &str) -> Result<Option<RetrainRun>, ActorError> {
        if let Some(run) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|r| r.run_id == id)
        {
            return Ok(Some(run.clone()));
        }
        Ok(runs::get(&self.store, id)?)
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RetrainRun>, ActorError> {
        Ok(runs::list(&self.store)?)
    }
}
