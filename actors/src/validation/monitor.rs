//! The monitor actors: a sync `DriftMonitor` that runs the check (it scans
//! view history), and a `MonitorSchedule` that asks it every window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use reprise_store::FeatureStore;

use super::alerts::{self, Alert};
use super::drift::{self, DriftConfig, DriftRun};
use super::reports::{DistancePoint, Reports};
use super::skew::TrainingReference;
use crate::error::ActorError;

#[derive(Message)]
#[rtype(result = "Result<DriftRun, ActorError>")]
struct RunChecks;

/// Called with every raised alert (e.g. to trigger retraining on drift).
pub type AlertHook = Arc<dyn Fn(&Alert) + Send + Sync>;

struct DriftMonitor {
    store: Arc<FeatureStore>,
    config: DriftConfig,
    raised: Arc<AtomicU64>,
    reports: Arc<Mutex<Reports>>,
    hook: Option<AlertHook>,
    reference: TrainingReference,
}

impl Actor for DriftMonitor {
    type Context = SyncContext<Self>;
}

impl Handler<RunChecks> for DriftMonitor {
    type Result = Result<DriftRun, ActorError>;

    fn handle(&mut self, _: RunChecks, _: &mut Self::Context) -> Self::Result {
        let run = drift::run(&self.store, &self.config, &mut self.reference)?;
        for alert in &run.raised {
            if let Some(url) = &self.config.webhook {
                notify(url, alert);
            }
            if let Some(hook) = &self.hook {
                hook(alert);
            }
        }
        self.raised
            .fetch_add(run.raised.len() as u64, Ordering::Relaxed);
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(&run, self.store.clock().now());
        tracing::info!(
            comparisons = run.comparisons.len(),
            raised = run.raised.len(),
            "drift check ran"
        );
        Ok(run)
    }
}

/// POSTs `alert` as JSON to the webhook (5 s timeout); a failure is logged,
/// the alert stays stored either way.
fn notify(url: &str, alert: &Alert) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    match agent.post(url).send_json(alert) {
        Ok(_) => tracing::info!(id = %alert.id, %url, "alert sent to the webhook"),
        Err(e) => tracing::warn!(id = %alert.id, %url, error = %e, "alert webhook failed"),
    }
}

struct MonitorSchedule {
    monitor: Addr<DriftMonitor>,
    every: Duration,
}

impl Actor for MonitorSchedule {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.every, |s, _| s.monitor.do_send(RunChecks));
    }
}

/// Handle to the monitors and the alerts.
#[derive(Clone)]
pub struct Validation {
    store: Arc<FeatureStore>,
    monitor: Addr<DriftMonitor>,
    raised: Arc<AtomicU64>,
    reports: Arc<Mutex<Reports>>,
}

impl Validation {
    /// Starts the monitors; the drift check runs every window (must run
    /// inside an actix system).
    pub fn start(store: Arc<FeatureStore>, config: DriftConfig, hook: Option<AlertHook>) -> Self {
        let raised = Arc::new(AtomicU64::new(0));
        let every = Duration::from_micros(config.window_micros.max(1_000_000) as u64);
        let reports = Arc::new(Mutex::new(Reports::default()));
        let (s, r, l) = (
            Arc::clone(&store),
            Arc::clone(&raised),
            Arc::clone(&reports),
        );
        let monitor = SyncArbiter::start(1, move || DriftMonitor {
            store: Arc::clone(&s),
            config: config.clone(),
            raised: Arc::clone(&r),
            reports: Arc::clone(&l),
            hook: hook.clone(),
            reference: TrainingReference::default(),
        });
        MonitorSchedule {
            monitor: monitor.clone(),
            every,
        }
        .start();
        Validation {
            store,
            monitor,
            raised,
            reports,
        }
    }

    /// Runs the checks now.
    pub async fn run_now(&self) -> Result<DriftRun, ActorError> {
        self.monitor
            .send(RunChecks)
            .await
            .map_err(|_| ActorError::Stopped("drift monitor"))?
    }

    pub fn alerts(&self) -> Result<Vec<Alert>, ActorError> {
        alerts::list(&self.store)
    }

    pub fn acknowledge(&self, id: &str) -> Result<Alert, ActorError> {
        alerts::acknowledge(&self.store, id)
    }

    /// The latest run's report (statistics and distances per feature).
    pub fn last_run(&self) -> Option<DriftRun> {
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .cloned()
    }

    /// Each feature's distance over the recent runs, oldest first.
    pub fn distance_history(&self) -> Vec<DistancePoint> {
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .history()
    }

    pub fn raised_total(&self) -> u64 {
        self.raised.load(Ordering::Relaxed)
    }
}
