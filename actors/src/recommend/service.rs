//! [`Recommender`]: the handle the API uses. Requests are checked, cold users
//! are answered from the [`ColdStart`] actor, and the blocking work (store
//! reads, ANN search, scoring, the served-feature log) runs on a pool of
//! `RankWorker` sync actors, bounded like the store workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use reprise_store::time::{parse_rfc3339, Micros};
use reprise_store::FeatureStore;
use serde_json::{json, Value as Json};

use super::candidate_cache::CandidateCache;
use super::catalog::Catalog;
use super::cold_start::{ColdStart, ColdStartConfig, ColdStartItems, RecordPlay};
use super::forwarded::ForwardedLog;
use super::histories::Histories;
use super::ranking::{ServedLog, Shared};
use super::request::{
    check_context, RankRequest, Ranked, RecommendRequest, Recommendation, RequestContext,
    ScoredItem,
};
use super::stats::ServingStats;
use crate::error::ActorError;
use crate::experiments::{self, Experiment, Tally};
use crate::supervise::supervised;
use crate::trace::TraceContext;

const NAME: &str = "ranker";
/// The arm of requests outside any experiment.
pub const DEFAULT_ARM: &str = "control";

#[derive(Debug, Clone)]
pub struct RecommenderConfig {
    pub workers: usize,
    pub queue: usize,
    pub cache_capacity: u64,
    /// A play shorter than this is a skip.
    pub skip_threshold_seconds: f64,
    pub history_candidates: usize,
    pub metadata_candidates: usize,
    pub max_k: usize,
    pub cold_start: ColdStartConfig,
    /// The most active users whose candidates are precomputed...
    pub warm_users: usize,
    /// ...at start and then this often.
    pub warm_interval: std::time::Duration,
    /// Items kept per user's history (the newest).
    pub max_history_items: usize,
    /// A fleet's leader: histories are published for replicas (written
    /// to the `user_history` view when they change), and the model it
    /// serves is recorded as serving, so replicas serve the same one.
    pub fleet_leader: bool,
}

impl Default for RecommenderConfig {
    fn default() -> Self {
        RecommenderConfig {
            workers: 4,
            queue: 256,
            cache_capacity: 10_000,
            skip_threshold_seconds: 30.0,
            history_candidates: 10,
            metadata_candidates: 30,
            max_k: 200,
            cold_start: ColdStartConfig::default(),
            warm_users: 1_000,
            warm_interval: std::time::Duration::from_secs(300),
            max_history_items: super::histories::DEFAULT_MAX_ITEMS_PER_USER,
            fleet_leader: false,
        }
    }
}

/// Work for a ranker worker.
#[derive(Message)]
#[rtype(result = "Result<(Recommendation, ServedLog), ActorError>")]
struct Recommend {
    request_id: String,
    user_id: String,
    context: RequestContext,
    k: usize,
    cold_items: Option<Vec<ScoredItem>>,
    /// The experiment arm's model, or the serving one.
    model_version: Option<String>,
    arm: String,
    /// The experiment's tally the served items count in.
    tally: Option<Tally>,
    explain: bool,
    /// The caller's trace: the worker's spans are its children.
    trace: TraceContext,
}

#[derive(Message)]
#[rtype(result = "Result<Ranked, ActorError>")]
struct Rank {
    request_id: String,
    user_id: String,
    context: RequestContext,
    item_ids: Vec<String>,
    /// The caller's trace: the worker's spans are its children.
    trace: TraceContext,
}

/// Precompute the candidates of these users (those not cached).
#[derive(Message)]
#[rtype(result = "usize")]
struct WarmCandidates {
    users: Vec<String>,
}

struct RankWorker {
    shared: Arc<Shared>,
}

impl Actor for RankWorker {
    type Context = SyncContext<Self>;
}

impl Handler<Recommend> for RankWorker {
    type Result = Result<(Recommendation, ServedLog), ActorError>;

    fn handle(&mut self, msg: Recommend, _: &mut Self::Context) -> Self::Result {
        let trace = msg.trace.clone();
        trace.in_child("recommend.worker", || {
            supervised("ranker", || {
                crate::supervise::inject("recommend", Some(&msg.user_id));
                let shared = &self.shared;
                let loaded = match &msg.model_version {
                    Some(v) => shared.catalog.get_or_load(&shared.store, v)?,
                    None => shared.catalog.serving()?,
                };
                let version = loaded.model.version.clone();
                let at = shared.store.clock().now();
                ServingStats::add(&shared.stats.recommendations, 1);
                let mut explanations = Vec::new();
                let (items, features, cold_start) = match msg.cold_items {
                    Some(items) if shared.is_cold(&loaded, &msg.user_id)? => {
                        ServingStats::add(&shared.stats.cold_start, 1);
                        (items, Vec::new(), true)
                    }
                    _ => {
                        let scored =
                            shared.recommend(&loaded, &msg.user_id, &msg.context, msg.k)?;
                        if msg.explain {
                            explanations =
                                shared.explain(&loaded, &msg.user_id, &msg.context, &scored)?;
                        }
                        let items = scored
                            .iter()
                            .map(|s| ScoredItem {
                                item_id: loaded.model.item_id(s.item).to_owned(),
                                score: s.probability,
                                source: s.source,
                            })
                            .collect();
                        (
                            items,
                            scored.into_iter().map(|s| s.features).collect(),
                            false,
                        )
                    }
                };
                let log = ServedLog {
                    request_id: msg.request_id.clone(),
                    user_id: msg.user_id,
                    context: msg.context,
                    model_version: version.clone(),
                    arm: msg.arm.clone(),
                    tally: msg.tally,
                    items: items.clone(),
                    features,
                    at,
                };
                let recommendation = Recommendation {
                    request_id: msg.request_id,
                    model_version: Some(version),
                    arm: msg.arm,
                    cold_start,
                    items,
                    explanations,
                };
                Ok((recommendation, log))
            })
        })
    }
}

impl Handler<WarmCandidates> for RankWorker {
    type Result = usize;

    fn handle(&mut self, msg: WarmCandidates, _: &mut Self::Context) -> usize {
        let Ok(loaded) = self.shared.catalog.serving() else {
            return 0;
        };
        let mut warmed = 0;
        for user in msg.users {
            if self.shared.cache.contains(&user) {
                continue;
            }
            match self.shared.candidates(&loaded, &user) {
                Ok(_) => warmed += 1,
                Err(e) => tracing::warn!(%user, error = %e, "could not precompute candidates"),
            }
        }
        tracing::debug!(warmed, "candidate cache warmed");
        warmed
    }
}

/// What the serving path shares, over `catalog` and `histories`, and the
/// ranker workers that use it.
fn start_workers(
    store: Arc<FeatureStore>,
    catalog: Catalog,
    histories: Histories,
    config: &RecommenderConfig,
) -> (Arc<Shared>, Addr<RankWorker>) {
    let stats = Arc::new(ServingStats::default());
    let shared = Arc::new(Shared {
        catalog: Arc::new(catalog),
        histories: Arc::new(histories),
        cache: CandidateCache::new(config.cache_capacity, Arc::clone(&stats)),
        stats,
        history_candidates: config.history_candidates,
        metadata_candidates: config.metadata_candidates,
        store,
    });
    let for_workers = Arc::clone(&shared);
    let threads = config.workers.clamp(1, super::ann::MAX_SEARCH_THREADS);
    let workers = SyncArbiter::start(threads, move || RankWorker {
        shared: Arc::clone(&for_workers),
    });
    (shared, workers)
}

/// A replica's check of the published serving pointer, every second, on
/// the blocking pool (a model load builds an ANN index); one at a time.
struct ServingFollower {
    recommender: Recommender,
    busy: Arc<std::sync::atomic::AtomicBool>,
    /// The last failure said (a failure is said once, not every second).
    last_error: Arc<std::sync::Mutex<Option<String>>>,
}

impl Actor for ServingFollower {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(std::time::Duration::from_secs(1), |follower, _| {
            if follower.busy.swap(true, Ordering::AcqRel) {
                return;
            }
            let (recommender, busy) = (follower.recommender.clone(), follower.busy.clone());
            let last_error = Arc::clone(&follower.last_error);
            actix_rt::spawn(async move {
                let _ = actix_rt::task::spawn_blocking(move || {
                    let error = recommender.follow_serving().err().map(|e| e.to_string());
                    let mut last = last_error.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(e) = error.as_ref().filter(|e| last.as_ref() != Some(*e)) {
                        tracing::warn!(error = %e, "the published serving model is not loaded (retried every second)");
                    }
                    *last = error;
                    busy.store(false, Ordering::Release);
                })
                .await;
            });
        });
    }
}

/// Asks the ranker workers, at start and then every `interval`, to
/// precompute the candidates of the most active users.
struct CacheWarmer {
    shared: Arc<Shared>,
    workers: Addr<RankWorker>,
    users: usize,
    interval: std::time::Duration,
}

impl CacheWarmer {
    fn warm(&self) {
        let users = self.shared.histories.most_active(self.users);
        if !users.is_empty() {
            self.workers.do_send(WarmCandidates { users });
        }
    }
}

impl Actor for CacheWarmer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.warm();
        ctx.run_interval(self.interval, |warmer, _| warmer.warm());
    }
}

impl Handler<Rank> for RankWorker {
    type Result = Result<Ranked, ActorError>;

    fn handle(&mut self, msg: Rank, _: &mut Self::Context) -> Self::Result {
        let trace = msg.trace.clone();
        trace.in_child("rank.worker", || {
            supervised("ranker", || {
                crate::supervise::inject("recommend", Some(&msg.user_id));
                let shared = &self.shared;
                let loaded = shared.catalog.serving()?;
                let model = &loaded.model;
                let items = msg
                    .item_ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        model.item_index(id).ok_or_else(|| {
                            ActorError::invalid(
                                format!("item_ids[{i}]"),
                                format!("unknown item `{id}`"),
                            )
                        })
                    })
                    .collect::<Result<Vec<u32>, _>>()?;
                let candidates = shared.candidates(&loaded, &msg.user_id)?;
                let scored =
                    shared.score(&loaded, &msg.user_id, &msg.context, &candidates, &items)?;
                Ok(Ranked {
                    request_id: msg.request_id,
                    model_version: model.version.clone(),
                    scores: msg
                        .item_ids
                        .into_iter()
                        .zip(scored)
                        .map(|(id, s)| (id, s.probability))
                        .collect(),
                })
            })
        })
    }
}

/// Rebuilds what feedback events changed before a restart: engaged plays
/// (plays, clicks, likes) go back into users' histories and the cold-start
/// counts, in time order, with the segment of the request that served them.
/// Both views are streamed; memory holds the engaged plays (inside the
/// feedback view's retention) and the segments of their requests only.
fn replay_feedback(shared: &Shared, cold: &mut ColdStart) -> Result<(), ActorError> {
    let store = &shared.store;
    let version = store.version();
    let registry = store.registry();
    let slot = |view: &str, name: &str| registry.view(view).and_then(|v| v.feature_index(name));
    let text = |row: &reprise_store::HistoryRow, index: Option<usize>| match index
        .and_then(|i| row.values.get(i))
    {
        Some(Some(reprise_store::Value::String(s))) => Some(s.clone()),
        _ => None,
    };
    let stream = |view: &str, visit: &mut dyn FnMut(reprise_store::HistoryRow)| match store
        .for_each_history_row(view, version, |row| {
            visit(row);
            Ok(())
        }) {
        Err(reprise_store::StoreError::UnknownView { .. }) => Ok(()),
        other => other.map_err(ActorError::from),
    };

    let (kind, user, engaged) = (
        slot("feedback", "type"),
        slot("feedback", "user_id"),
        slot("feedback", "engaged"),
    );
    // (time, user, item, request) of every engaged play.
    let mut plays: Vec<(i64, String, String, String)> = Vec::new();
    stream("feedback", &mut |row| {
        let is_engaged = matches!(
            engaged.and_then(|i| row.values.get(i)),
            Some(Some(reprise_store::Value::Bool(true)))
        );
        let counts = matches!(text(&row, kind).as_deref(), Some("play" | "like" | "click"));
        if !(is_engaged && counts) {
            return;
        }
        let Some(user) = text(&row, user) else {
            return;
        };
        if let Ok([request, item]) = <[String; 2]>::try_from(row.keys) {
            plays.push((row.event_ts, user, item, request));
        }
    })?;
    if plays.is_empty() {
        return Ok(());
    }

    // The segments of just those requests: online reads of the request
    // context (keyed by request id), a thousand at a time, so the cost
    // follows the plays, not the number of requests ever served.
    let mut wanted: Vec<&str> = plays.iter().map(|(_, _, _, r)| r.as_str()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let refs = [
        "request_context:country".to_owned(),
        "request_context:device".to_owned(),
    ];
    let mut segments: std::collections::HashMap<String, (String, String)> =
        std::collections::HashMap::with_capacity(wanted.len());
    if registry.view("request_context").is_some() {
        for chunk in wanted.chunks(1_000) {
            let entities: Vec<serde_json::Map<String, Json>> = chunk
                .iter()
                .map(|id| {
                    let mut entity = serde_json::Map::new();
                    entity.insert("request_id".into(), Json::String((*id).to_owned()));
                    entity
                })
                .collect();
            let read = store.online_features(&refs, &entities)?;
            for (id, row) in chunk.iter().zip(read.rows) {
                let field = |i: usize| match &row.values[i] {
                    Some(reprise_store::Value::String(s)) => s.clone(),
                    _ => "unknown".to_owned(),
                };
                segments.insert((*id).to_owned(), (field(0), field(1)));
            }
        }
    }

    plays.sort();
    let replayed = plays.len();
    for (at, user, item, request) in plays {
        shared.histories.record(&user, &item);
        let (country, device) = segments
            .get(&request)
            .cloned()
            .unwrap_or_else(|| ("unknown".to_owned(), "unknown".to_owned()));
        cold.record(&RecordPlay {
            item,
            country,
            device,
            at,
        });
    }
    tracing::info!(
        replayed,
        "feedback replayed into histories and cold-start counts"
    );
    Ok(())
}

/// A feedback event (`POST /v1/events`).
#[derive(Debug, Clone)]
pub struct Event {
    pub request_id: Option<String>,
    pub user_id: String,
    pub item_id: String,
    pub kind: String,
    /// RFC 3339.
    pub timestamp: String,
    pub played_seconds: Option<f64>,
    /// Raw features of the interactions view (plays only).
    pub features: serde_json::Map<String, Json>,
    /// The request context the event happened in (logged with plays).
    pub context: serde_json::Map<String, Json>,
}

/// Stripes of the feedback locks (by request id).
const FEEDBACK_LOCK_STRIPES: usize = 64;

/// The `request_id` under which events without one are stored.
pub const UNATTRIBUTED: &str = "unattributed";

pub const EVENT_TYPES: [&str; 5] = ["impression", "play", "skip", "click", "like"];

#[derive(Clone)]
pub struct Recommender {
    shared: Arc<Shared>,
    workers: Addr<RankWorker>,
    cold: Addr<ColdStart>,
    in_flight: Arc<AtomicUsize>,
    config: RecommenderConfig,
    /// The version serving now, as far as promotions know.
    serving_before: Arc<std::sync::Mutex<Option<String>>>,
    /// The active experiment, if any (read from the store at start, set by
    /// `put_experiment`).
    experiment: Arc<std::sync::RwLock<Option<Experiment>>>,
    /// The tallied experiment definitions feedback can count for (read at
    /// start, refreshed by `put_experiment`).
    tallied: Arc<std::sync::RwLock<Arc<[Experiment]>>>,
    /// Serialises feedback on the same served items (striped by request
    /// id) between reading their labels and writing the new verdicts, so
    /// the tallies' deltas are exact.
    feedback_locks: Arc<[std::sync::Mutex<()>]>,
    /// Held by promotions, rollbacks, experiment definitions and model
    /// collection, so collection never deletes a model one of them is
    /// about to serve.
    lifecycle: Arc<std::sync::Mutex<()>>,
    /// Hears the verdicts (engaged or not) of feedback on served items.
    feedback_hook: Arc<std::sync::OnceLock<FeedbackHook>>,
}

/// Called with the verdicts of each accepted feedback batch on served
/// items (events that name their request).
pub type FeedbackHook = Arc<dyn Fn(&[bool]) + Send + Sync>;

impl Recommender {
    /// Loads histories and the newest ranker from `store` and starts the
    /// actors (must run inside an actix system).
    pub fn start(store: Arc<FeatureStore>, config: RecommenderConfig) -> Result<Self, ActorError> {
        // Request ids are UUIDv7 from here on (`new_request_id`): windows of
        // the served log after this moment are key ranges.
        reprise_trainer::served_log::mark_time_ordered_ids(&store)?;
        let catalog = Catalog::load_latest(&store)?;
        let histories = Histories::load(&store, config.max_history_items)?;
        let (shared, workers) = start_workers(store, catalog, histories, &config);
        let mut cold_start = ColdStart::new(config.cold_start);
        replay_feedback(&shared, &mut cold_start)?;
        if config.fleet_leader {
            let written = shared.histories.publish_differences(&shared.store)?;
            tracing::info!(written, "histories published for replicas");
            // Served as the newest stored without a promotion: recorded, so
            // replicas (which follow the pointer) serve the same model.
            if let Some(version) = shared.catalog.serving_version() {
                if shared
                    .store
                    .serving_model(reprise_trainer::model_io::RANKER_KIND)?
                    .is_none()
                {
                    shared.store.set_serving_model(&version)?;
                }
            }
        }
        let cold = cold_start.start();
        if config.warm_users > 0 {
            CacheWarmer {
                shared: Arc::clone(&shared),
                workers: workers.clone(),
                users: config.warm_users,
                interval: config.warm_interval,
            }
            .start();
        }
        let serving_before = Arc::new(std::sync::Mutex::new(shared.catalog.serving_version()));
        let active = experiments::registry::active(&shared.store)?;
        shared
            .store
            .set_active_experiment(active.as_ref().map(|e| e.name.as_str()))?;
        let tallied = experiments::tally::tallied(
            &shared.store,
            experiments::registry::definitions(&shared.store)?,
        )?;
        Ok(Recommender {
            experiment: Arc::new(std::sync::RwLock::new(active)),
            tallied: Arc::new(std::sync::RwLock::new(tallied)),
            serving_before,
            ..Recommender::assemble(shared, workers, cold, config)
        })
    }

    /// A replica's recommender over the replica store `store` (must run
    /// inside an actix system): the models the leader published (it
    /// follows the serving pointer every second), histories as published,
    /// no experiments and no cold-start counts (those requests are the
    /// leader's, see [`serves_locally`](Self::serves_locally)). It writes
    /// nothing: [`recommend_unlogged`](Self::recommend_unlogged) hands the
    /// served-feature log to the caller, who sends it to the leader.
    pub fn start_replica(
        store: Arc<FeatureStore>,
        config: RecommenderConfig,
    ) -> Result<Self, ActorError> {
        let histories = Histories::published(Arc::clone(&store));
        let (shared, workers) = start_workers(store, Catalog::default(), histories, &config);
        let cold = ColdStart::new(config.cold_start).start();
        let recommender = Recommender::assemble(shared, workers, cold, config);
        if let Err(e) = recommender.follow_serving() {
            tracing::warn!(error = %e, "the published serving model is not loaded yet");
        }
        ServingFollower {
            recommender: recommender.clone(),
            busy: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            last_error: Arc::default(),
        }
        .start();
        Ok(recommender)
    }

    /// The parts every recommender has, no experiment defined.
    fn assemble(
        shared: Arc<Shared>,
        workers: Addr<RankWorker>,
        cold: Addr<ColdStart>,
        config: RecommenderConfig,
    ) -> Self {
        Recommender {
            feedback_hook: Arc::new(std::sync::OnceLock::new()),
            experiment: Arc::new(std::sync::RwLock::new(None)),
            tallied: Arc::new(std::sync::RwLock::new(Arc::from(Vec::new()))),
            lifecycle: Arc::new(std::sync::Mutex::new(())),
            feedback_locks: (0..FEEDBACK_LOCK_STRIPES)
                .map(|_| std::sync::Mutex::new(()))
                .collect(),
            serving_before: Arc::new(std::sync::Mutex::new(shared.catalog.serving_version())),
            shared,
            workers,
            cold,
            in_flight: Arc::new(AtomicUsize::new(0)),
            config,
        }
    }

    /// A replica: serves the model the published serving pointer names
    /// (loaded off to the side, then swapped in; other loaded models are
    /// let go). Returns whether it changed.
    pub fn follow_serving(&self) -> Result<bool, ActorError> {
        let store = &self.shared.store;
        let Some(version) = store.serving_model(reprise_trainer::model_io::RANKER_KIND)? else {
            return Ok(false);
        };
        if self.shared.catalog.serving_version().as_deref() == Some(version.as_str()) {
            return Ok(false);
        }
        let _lifecycle = self.lifecycle();
        self.shared.catalog.promote(store, &version)?;
        self.shared.catalog.keep_only(&version);
        self.shared.cache.invalidate_all();
        ServingStats::add(&self.shared.stats.model_swaps, 1);
        tracing::info!(%version, "serving the model the leader published");
        Ok(true)
    }

    /// Sets the hook that hears feedback verdicts (once; later calls are
    /// ignored).
    pub fn set_feedback_hook(&self, hook: FeedbackHook) {
        let _ = self.feedback_hook.set(hook);
    }

    pub fn stats(&self) -> &ServingStats {
        &self.shared.stats
    }

    /// What the served-feature log holds for `request_id`, replayed
    /// point-in-time with `replay`'s cutoff when given (blocking: reads the
    /// store, and a replay writes and deletes a snapshot).
    pub fn served(
        &self,
        request_id: &str,
        replay: Option<reprise_store::Cutoff>,
    ) -> Result<super::served::ServedRequest, ActorError> {
        self.shared.served(request_id, replay)
    }

    pub fn cached_users(&self) -> u64 {
        self.shared.cache.entries()
    }

    pub fn serving_version(&self) -> Option<String> {
        self.shared.catalog.serving_version()
    }

    /// The serving ranker and the embeddings it reads.
    pub fn serving_versions(&self) -> Vec<String> {
        match self.shared.catalog.serving() {
            Ok(loaded) => vec![
                loaded.model.version.clone(),
                loaded.model.embeddings_version.clone(),
            ],
            Err(_) => Vec::new(),
        }
    }

    fn experiment(&self) -> Option<Experiment> {
        self.experiment
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Defines (or redefines) an experiment; the active one routes traffic
    /// from the next request on. Its arms' models are loaded first.
    /// The model-lifecycle lock (see the field).
    pub fn lifecycle(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lifecycle.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn put_experiment(&self, experiment: Experiment) -> Result<(), ActorError> {
        let _lifecycle = self.lifecycle();
        // Sending traffic to a model that is not serving is a promotion:
        // the same alert gate applies.
        let serving = self.serving_version();
        if experiment.active
            && experiment
                .arms
                .iter()
                .any(|a| Some(&a.model_version) != serving.as_ref())
        {
            self.ensure_no_blocking_alert()?;
        }
        experiments::registry::put(&self.shared.store, &experiment)?;
        for arm in &experiment.arms {
            self.shared
                .catalog
                .get_or_load(&self.shared.store, &arm.model_version)?;
        }
        // Tallies first: a request routed by the new definition may get
        // feedback at once.
        *self.tallied.write().unwrap_or_else(|p| p.into_inner()) = experiments::tally::tallied(
            &self.shared.store,
            experiments::registry::definitions(&self.shared.store)?,
        )?;
        let active = experiments::registry::active(&self.shared.store)?;
        self.shared
            .store
            .set_active_experiment(active.as_ref().map(|e| e.name.as_str()))?;
        *self.experiment.write().unwrap_or_else(|p| p.into_inner()) = active;
        Ok(())
    }

    /// Every experiment, and the metrics of each arm of one.
    pub fn experiments(&self) -> Result<Vec<Experiment>, ActorError> {
        experiments::registry::list(&self.shared.store)
    }

    pub fn experiment_metrics(
        &self,
        name: &str,
    ) -> Result<(Experiment, Vec<experiments::ArmMetrics>), ActorError> {
        let e = self
            .experiments()?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| ActorError::UnknownExperiment(name.to_owned()))?;
        let metrics = experiments::arm_metrics(&self.shared.store, &e)?;
        Ok((e, metrics))
    }

    /// Returns to the ranker that served before the current one (no gate:
    /// it served already); caches are dropped. Returns its version.
    pub fn rollback(&self) -> Result<String, ActorError> {
        let _lifecycle = self.lifecycle();
        let previous = self
            .shared
            .store
            .rollback_serving_model(reprise_trainer::model_io::RANKER_KIND)?;
        self.shared.catalog.promote(&self.shared.store, &previous)?;
        self.shared.cache.invalidate_all();
        ServingStats::add(&self.shared.stats.model_swaps, 1);
        *self
            .serving_before
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(previous.clone());
        Ok(previous)
    }

    /// The gate of promotions and experiments: no blocking alert open.
    fn ensure_no_blocking_alert(&self) -> Result<(), ActorError> {
        match crate::validation::alerts::open_blocking(&self.shared.store)?
            .into_iter()
            .next()
        {
            Some(alert) => Err(ActorError::PromotionBlocked {
                alert_id: alert.id,
                check: alert.check,
                view: alert.view,
                feature: alert.feature,
            }),
            None => Ok(()),
        }
    }

    /// Loads ranker `version` (off to the side), serves it and records it
    /// as serving; cached candidates are dropped. In-flight requests finish
    /// on the model they started with. Blocking: run it off the HTTP
    /// workers.
    pub fn promote(&self, version: &str) -> Result<(), ActorError> {
        let _lifecycle = self.lifecycle();
        let record = self.shared.store.load_model(version)?;
        if record.kind != reprise_trainer::model_io::RANKER_KIND {
            return Err(ActorError::invalid(
                "version",
                format!("{version} is a {} model, not a ranker", record.kind),
            ));
        }
        self.ensure_no_blocking_alert()?;
        self.shared.catalog.promote(&self.shared.store, version)?;
        // The model served before any promotion (the newest at start) is
        // the first entry of the history, so it can be rolled back to.
        let store = &self.shared.store;
        if store.serving_history(&record.kind)?.is_empty() {
            if let Some(current) = self
                .serving_before
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                if current != version {
                    store.set_serving_model(&current)?;
                }
            }
        }
        store.set_serving_model(version)?;
        *self
            .serving_before
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(version.to_owned());
        self.shared.cache.invalidate_all();
        ServingStats::add(&self.shared.stats.model_swaps, 1);
        Ok(())
    }

    /// A place in the ranker's queue (refused when it is full), held until
    /// the request's work is done.
    fn admit(&self) -> Result<Admitted, ActorError> {
        Admitted::take(&self.in_flight, self.config.queue)
    }

    /// Asks a ranker worker (the caller holds a place in the queue).
    async fn ask<M, T>(&self, msg: M) -> Result<T, ActorError>
    where
        M: Message<Result = Result<T, ActorError>> + Send + 'static,
        T: Send + 'static,
        RankWorker: Handler<M>,
    {
        let reply = self.workers.send(msg).await;
        reply.map_err(|_| ActorError::Stopped(NAME))?
    }

    /// Counts and stores a request refused for missing context.
    fn record_anomaly(&self, request_id: &str, user: &str, field: &str) {
        ServingStats::add(&self.shared.stats.missing_context, 1);
        let store = &self.shared.store;
        // A replica writes nothing (its store is the leader's publication).
        if !store.is_replica() && store.registry().view("serving_anomaly").is_some() {
            let row = json!({"request_id": request_id, "event_timestamp":
                reprise_store::time::format_rfc3339(store.clock().now()),
                "kind": "missing_field", "field": field, "user_id": user});
            if let Err(e) = store.push("serving_anomaly", &[row], false) {
                tracing::warn!(error = %e, "could not store a serving anomaly");
            }
        }
        tracing::warn!(%request_id, %field, "request refused: missing mandatory context");
    }

    fn checked_context(
        &self,
        request_id: &str,
        user: &str,
        context: &serde_json::Map<String, Json>,
    ) -> Result<RequestContext, ActorError> {
        check_context(&self.shared.store, context).inspect_err(|e| {
            if let ActorError::MissingContext { field } = e {
                self.record_anomaly(request_id, user, field);
            }
        })
    }

    pub async fn recommend(&self, req: RecommendRequest) -> Result<Recommendation, ActorError> {
        let (recommendation, log, admitted) = self.recommend_unlogged(req).await?;
        // The synced log write waits on the blocking pool, not on a ranker
        // worker: the workers score the next requests meanwhile, and the
        // writes of concurrent requests share one WAL sync (the store's
        // group commit). The response waits for it: a served request is in
        // the log. The queue place goes with the write, which runs to its
        // end even if the caller goes away.
        let shared = Arc::clone(&self.shared);
        let trace = TraceContext::current();
        actix_rt::task::spawn_blocking(move || {
            let _admitted = admitted;
            trace.in_child("recommend.log", || {
                supervised("served log", || shared.log_served(&log))
            })
        })
        .await
        .map_err(|_| ActorError::Stopped("served log"))??;
        Ok(recommendation)
    }

    /// A recommendation and the served-feature log it needs, not yet
    /// written (a replica sends it to its leader), with the request's place
    /// in the ranker's queue, to hold until the log is written.
    pub async fn recommend_unlogged(
        &self,
        req: RecommendRequest,
    ) -> Result<(Recommendation, ServedLog, Admitted), ActorError> {
        if req.user_id.is_empty() {
            return Err(ActorError::invalid("user_id", "must not be empty"));
        }
        if req.k == 0 || req.k > self.config.max_k {
            return Err(ActorError::invalid(
                "k",
                format!("must be between 1 and {}", self.config.max_k),
            ));
        }
        let request_id = new_request_id();
        let context = self.checked_context(&request_id, &req.user_id, &req.context)?;
        // A user without history may be cold: fetch the cold-start list now
        // (an actor message), the worker decides. (A replica has no
        // cold-start counts: it answers users with a published history
        // only, and reading that history here would block the HTTP worker.)
        let cold_items = if !self.shared.histories.is_published()
            && self.shared.histories.get(&req.user_id)?.is_empty()
        {
            let items = self
                .cold
                .send(ColdStartItems {
                    country: context.country.clone(),
                    device: context.device.clone(),
                    k: req.k,
                    now: self.shared.store.clock().now(),
                })
                .await
                .map_err(|_| ActorError::Stopped("cold start"))?;
            let mut items: Vec<ScoredItem> = items
                .into_iter()
                .map(|(item_id, score, source)| ScoredItem {
                    item_id,
                    score,
                    source: source.as_str(),
                })
                .collect();
            if items.len() < req.k {
                self.fill_with_model_popular(&mut items, req.k);
            }
            Some(items)
        } else {
            None
        };
        let (model_version, arm, tally) = match self.experiment() {
            Some(e) => {
                let arm = e.arm_of(&req.user_id);
                (
                    Some(arm.model_version.clone()),
                    arm.name.clone(),
                    Some(Tally::of(&e)),
                )
            }
            None => (None, DEFAULT_ARM.to_owned(), None),
        };
        let admitted = self.admit()?;
        let (recommendation, log) = self
            .ask(Recommend {
                request_id,
                user_id: req.user_id,
                context,
                k: req.k,
                cold_items,
                model_version,
                arm,
                tally,
                explain: req.explain,
                trace: TraceContext::current(),
            })
            .await?;
        Ok((recommendation, log, admitted))
    }

    /// Writes the served-feature log a replica sent (blocking pool).
    pub async fn log_forwarded(&self, log: ForwardedLog) -> Result<(), ActorError> {
        // A replica that has not yet heard of an experiment ranked outside
        // it: refused, so the replica sends the request here instead.
        if let Some(experiment) = self.experiment() {
            return Err(ActorError::ExperimentRunning(experiment.name));
        }
        let log = log.into_served()?;
        let shared = Arc::clone(&self.shared);
        actix_rt::task::spawn_blocking(move || supervised("served log", || shared.log_served(&log)))
            .await
            .map_err(|_| ActorError::Stopped("served log"))?
    }

    /// Whether this replica answers `user_id` itself: a model serves, no
    /// experiment routes traffic (the leader keeps its tallies), and the
    /// user has a published history (a user without one may be cold, which
    /// the leader's cold-start counts answer). Anything else goes to the
    /// leader, which answers as it would have.
    pub fn serves_locally(&self, user_id: &str) -> bool {
        self.shared.catalog.serving().is_ok()
            && matches!(self.shared.store.active_experiment(), Ok(None))
            && self
                .shared
                .histories
                .get(user_id)
                .is_ok_and(|items| !items.is_empty())
    }

    /// Before any play event, the cold-start list is the serving model's
    /// popularity (scores relative to the most popular item).
    fn fill_with_model_popular(&self, items: &mut Vec<ScoredItem>, k: usize) {
        let Ok(loaded) = self.shared.catalog.serving() else {
            return;
        };
        let model = &loaded.model;
        let popular = model.most_popular(k + items.len());
        let top = popular
            .first()
            .map_or(1.0, |i| model.popularity(*i).max(1) as f64);
        for item in popular {
            if items.len() >= k {
                break;
            }
            let id = model.item_id(*item);
            if !items.iter().any(|i| i.item_id == id) {
                items.push(ScoredItem {
                    item_id: id.to_owned(),
                    score: model.popularity(*item) as f64 / top,
                    source: "popular",
                });
            }
        }
    }

    pub async fn rank(&self, req: RankRequest) -> Result<Ranked, ActorError> {
        if req.item_ids.is_empty() || req.item_ids.len() > 10 * self.config.max_k {
            return Err(ActorError::invalid(
                "item_ids",
                format!("needs 1 to {} items", 10 * self.config.max_k),
            ));
        }
        let request_id = new_request_id();
        let context = self.checked_context(&request_id, &req.user_id, &req.context)?;
        let _admitted = self.admit()?;
        self.ask(Rank {
            request_id,
            user_id: req.user_id,
            context,
            item_ids: req.item_ids,
            trace: TraceContext::current(),
        })
        .await
    }

    /// Writes feedback `batches` with the experiment tallies' deltas of
    /// their verdicts, holding the locks of their requests from reading the
    /// items' labels to the write.
    fn write_feedback(
        &self,
        events: &[Event],
        times: &[Micros],
        verdicts: &[Option<bool>],
        batches: &[(&str, &[Json])],
    ) -> Result<(), ActorError> {
        let store = &self.shared.store;
        let tallied = self
            .tallied
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let counted: Vec<experiments::tally::Verdict<'_>> = events
            .iter()
            .zip(times)
            .zip(verdicts)
            .filter_map(|((e, at), engaged)| {
                Some(experiments::tally::Verdict {
                    request_id: e.request_id.as_deref().filter(|r| !r.is_empty())?,
                    item_id: &e.item_id,
                    at: *at,
                    engaged: (*engaged)?,
                })
            })
            .collect();
        if tallied.is_empty() || counted.is_empty() {
            store.push_all(batches, false)?;
            return Ok(());
        }
        let mut stripes: Vec<usize> = counted
            .iter()
            .map(|v| {
                xxhash_rust::xxh3::xxh3_64(v.request_id.as_bytes()) as usize
                    % self.feedback_locks.len()
            })
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        // In stripe order, so two batches never wait on each other.
        let _held: Vec<_> = stripes
            .iter()
            .map(|&i| {
                self.feedback_locks[i]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
            })
            .collect();
        let deltas = experiments::tally::verdict_deltas(store, &tallied, &counted)?;
        store.push_all_counting(batches, false, &deltas)?;
        Ok(())
    }

    /// Stores events in the `feedback` view (a rejected batch writes
    /// nothing), then updates histories, the candidate cache and the
    /// cold-start counts. Returns how many were accepted.
    pub fn record_events(&self, events: &[Event]) -> Result<usize, ActorError> {
        let store = &self.shared.store;
        let mut rows = Vec::with_capacity(events.len());
        let mut times = Vec::with_capacity(events.len());
        let mut verdicts = Vec::with_capacity(events.len());
        let registry = store.registry();
        let declared = registry.recommender();
        let logs_context =
            declared.is_some_and(|spec| super::interactions::logs_request_context(store, spec));
        let mut interactions = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let field = |name: &str| format!("events[{i}].{name}");
            if !EVENT_TYPES.contains(&e.kind.as_str()) {
                return Err(ActorError::invalid(
                    field("type"),
                    format!("`{}` is not one of {}", e.kind, EVENT_TYPES.join(", ")),
                ));
            }
            if e.user_id.is_empty() || e.item_id.is_empty() {
                return Err(ActorError::invalid(
                    field(if e.user_id.is_empty() {
                        "user_id"
                    } else {
                        "item_id"
                    }),
                    "must not be empty",
                ));
            }
            let at = parse_rfc3339(&e.timestamp).ok_or_else(|| {
                ActorError::invalid(field("timestamp"), "is not an RFC 3339 time")
            })?;
            times.push(at);
            let long_enough = e
                .played_seconds
                .is_none_or(|s| s >= self.config.skip_threshold_seconds);
            let mut declared_verdict = None;
            if let Some(spec) =
                declared.filter(|_| e.kind == super::interactions::INTERACTION_EVENT)
            {
                // A play of a served item without its own context happened
                // in the served request's.
                let served = match e.request_id.as_deref() {
                    Some(id) if e.context.is_empty() && !id.is_empty() && logs_context => {
                        Some(super::interactions::served_context(store, id)?)
                    }
                    _ => None,
                };
                let (row, verdict) =
                    super::interactions::interaction_row(spec, i, e, served.as_ref(), long_enough)?;
                interactions.push(row);
                declared_verdict = verdict;
            } else if !e.features.is_empty() {
                return Err(ActorError::invalid(
                    field("features"),
                    "only plays carry features, and only with a [recommender] declaration",
                ));
            }
            let engaged = match e.kind.as_str() {
                "play" => Some(declared_verdict.unwrap_or(long_enough)),
                "click" | "like" => Some(true),
                "skip" => Some(false),
                _ => None,
            };
            verdicts.push(engaged);
            let mut row = json!({"request_id": e.request_id.clone().unwrap_or_else(|| UNATTRIBUTED.to_owned()),
                                 "item_id": e.item_id, "event_timestamp": e.timestamp,
                                 "user_id": e.user_id, "type": e.kind});
            if let Some(s) = e.played_seconds {
                row["played_seconds"] = json!(s);
            }
            if let Some(engaged) = engaged {
                row["engaged"] = json!(engaged);
            }
            rows.push(row);
        }
        if rows.is_empty() {
            return Ok(0);
        }
        // Feedback and the plays' interaction rows in one atomic write.
        let mut batches: Vec<(&str, &[Json])> = Vec::with_capacity(2);
        if registry.view("feedback").is_some() {
            batches.push(("feedback", &rows));
        }
        let interactions_view = declared.map(|spec| spec.interactions.label());
        if let Some(view) = interactions_view
            .as_deref()
            .filter(|_| !interactions.is_empty())
        {
            batches.push((view, &interactions));
        }
        if !batches.is_empty() {
            self.write_feedback(events, &times, &verdicts, &batches)?;
        }
        if let Some(hook) = self.feedback_hook.get() {
            let served: Vec<bool> = events
                .iter()
                .zip(&verdicts)
                .filter(|(e, _)| e.request_id.as_deref().is_some_and(|r| !r.is_empty()))
                .filter_map(|(_, v)| *v)
                .collect();
            if !served.is_empty() {
                hook(&served);
            }
        }
        let mut changed: Vec<&str> = Vec::new();
        for ((e, at), engaged) in events.iter().zip(times).zip(verdicts) {
            // Engaged plays, clicks and likes count; skips and short plays do not.
            if engaged != Some(true) {
                continue;
            }
            if self.shared.histories.record(&e.user_id, &e.item_id) {
                self.shared.cache.invalidate(&e.user_id);
                changed.push(&e.user_id);
            }
            let (country, device) = self.segment_of(e.request_id.as_deref());
            self.cold.do_send(RecordPlay {
                item: e.item_id.clone(),
                country,
                device,
                at,
            });
        }
        if self.config.fleet_leader && !changed.is_empty() {
            changed.sort_unstable();
            changed.dedup();
            // The events are stored: a failure here is repaired at the
            // leader's next start (it publishes every history that differs).
            if let Err(e) = self.shared.histories.publish(store, &changed) {
                tracing::warn!(error = %e, users = changed.len(), "histories not published");
            }
        }
        ServingStats::add(&self.shared.stats.events, events.len() as u64);
        Ok(events.len())
    }

    /// The (country, device) the request was served in, from its logged
    /// context.
    fn segment_of(&self, request_id: Option<&str>) -> (String, String) {
        let unknown = || ("unknown".to_owned(), "unknown".to_owned());
        let Some(id) = request_id.filter(|id| !id.is_empty()) else {
            return unknown();
        };
        let entity: serde_json::Map<String, Json> =
            [("request_id".to_owned(), Json::String(id.to_owned()))]
                .into_iter()
                .collect();
        let refs = [
            "request_context:country".to_owned(),
            "request_context:device".to_owned(),
        ];
        match self.shared.store.online_features(&refs, &[entity]) {
            Ok(result) => {
                let text = |i: usize| match result.rows[0].values.get(i) {
                    Some(Some(reprise_store::Value::String(s))) => s.clone(),
                    _ => "unknown".to_owned(),
                };
                (text(0), text(1))
            }
            Err(_) => unknown(),
        }
    }
}

/// A place in the ranker's queue, given back when dropped.
pub struct Admitted(Arc<AtomicUsize>);

impl Admitted {
    /// One of `capacity` places counted by `in_flight`, or `Overloaded`.
    fn take(in_flight: &Arc<AtomicUsize>, capacity: usize) -> Result<Self, ActorError> {
        if in_flight.fetch_add(1, Ordering::AcqRel) >= capacity {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(ActorError::Overloaded {
                actor: NAME,
                capacity,
            });
        }
        Ok(Admitted(Arc::clone(in_flight)))
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A new request id: a UUIDv7 (its first 48 bits are the Unix time in
/// milliseconds, then a counter and random bits), so the served-feature log
/// and feedback, keyed by request id first, are in time order and a time
/// window is a key range (`reprise_trainer::served_log`).
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[cfg(test)]
mod admission_tests {
    use super::*;

    #[test]
    fn the_queue_holds_at_most_its_capacity_and_a_dropped_place_frees_one() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let first = Admitted::take(&in_flight, 2).unwrap();
        let _second = Admitted::take(&in_flight, 2).unwrap();
        assert!(matches!(
            Admitted::take(&in_flight, 2),
            Err(ActorError::Overloaded { capacity: 2, .. })
        ));
        assert_eq!(
            in_flight.load(Ordering::Acquire),
            2,
            "a refusal takes no place"
        );
        // A place moved into a blocking task (the served-log write) is
        // held until that task ends, whoever awaited it.
        let task = std::thread::spawn(move || drop(first));
        task.join().unwrap();
        assert!(Admitted::take(&in_flight, 2).is_ok());
    }
}
