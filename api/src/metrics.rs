//! Prometheus metrics: every metric name is defined here.

use std::sync::Arc;
use std::time::Instant;

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};
use reprise_actors::recommend::stats::ServingStats;
use reprise_actors::recommend::Recommender;
use reprise_actors::retrain::{RetrainStats, Retrainer};
use reprise_actors::validation::Validation;
use reprise_actors::StoreWorkers;
use reprise_store::FeatureStore;

/// Latency buckets from 25 µs to 10 s: fine below a millisecond, where
/// the online path answers.
const LATENCY_BUCKETS: &[f64] = &[
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A counter whose value is kept elsewhere (an atomic the actors count in)
/// and copied in at scrape time: exposed with the counter type.
struct SampledCounter {
    counter: IntCounter,
}

impl SampledCounter {
    fn new(name: &str, help: &str) -> Self {
        SampledCounter {
            counter: IntCounter::new(name, help).expect("valid metric"),
        }
    }

    /// Moves the counter up to `value` (the source only grows).
    fn set(&self, value: u64) {
        let current = self.counter.get();
        if value > current {
            self.counter.inc_by(value - current);
        }
    }
}

pub struct Metrics {
    registry: Registry,
    /// One scrape at a time: sampling moves counters up to their sources and
    /// refills the labelled gauges, which concurrent scrapes would interleave.
    scrape: std::sync::Mutex<()>,
    pub http_requests: IntCounterVec,
    pub http_latency: HistogramVec,
    pub store_latency: HistogramVec,
    pub replication: crate::replication_metrics::ReplicationMetrics,
    store_version: IntGauge,
    cache_hits: SampledCounter,
    cache_misses: SampledCounter,
    cache_hit_ratio: Gauge,
    cache_bytes: IntGauge,
    cache_entries: IntGauge,
    memtable_bytes: IntGauge,
    live_data_bytes: IntGauge,
    pending_compaction_bytes: IntGauge,
    worker_queue_depth: IntGauge,
    serving: Vec<ServingCounter>,
    candidate_cache_entries: IntGauge,
    serving_rankers: IntGauge,
    candidate_cache_hit_ratio: Gauge,
    alerts_open: IntGauge,
    alerts_blocking: IntGauge,
    alerts_raised: SampledCounter,
    drift_distance: GaugeVec,
    drift_threshold: GaugeVec,
    arm_play_rate: GaugeVec,
    retrain: Vec<RetrainCounter>,
    retrain_last_run: Gauge,
    play_rate_window: Gauge,
    play_rate_baseline: Gauge,
}

/// A counter and how to read its value off the retrainer.
type RetrainCounter = (SampledCounter, fn(&RetrainStats) -> u64);

/// The retrainer's counters, sampled at scrape time.
fn retrain_counters() -> Vec<RetrainCounter> {
    let g = SampledCounter::new;
    vec![
        (
            g(
                "reprise_retrain_runs_started_total",
                "Retraining runs started since start",
            ),
            |s| RetrainStats::get(&s.started),
        ),
        (
            g(
                "reprise_retrain_runs_promoted_total",
                "Retraining runs that promoted their candidate",
            ),
            |s| RetrainStats::get(&s.promoted),
        ),
        (
            g(
                "reprise_retrain_runs_rejected_total",
                "Retraining runs whose candidate was not promoted",
            ),
            |s| RetrainStats::get(&s.rejected),
        ),
        (
            g(
                "reprise_retrain_runs_failed_total",
                "Retraining runs that failed",
            ),
            |s| RetrainStats::get(&s.failed),
        ),
        (
            g(
                "reprise_retrain_triggers_debounced_total",
                "Automatic retraining triggers dropped by the debounce",
            ),
            |s| RetrainStats::get(&s.debounced),
        ),
        (
            g(
                "reprise_play_rate_drops_total",
                "Play-rate windows under the baseline by the margin",
            ),
            |s| RetrainStats::get(&s.play_rate_drops),
        ),
    ]
}

/// A counter and how to read its value off the recommender.
type ServingCounter = (SampledCounter, fn(&Recommender) -> u64);

/// The serving path's counters, sampled at scrape time.
fn serving_counters() -> Vec<ServingCounter> {
    let g = SampledCounter::new;
    vec![
        (
            g(
                "reprise_recommendations_total",
                "Recommendation requests answered",
            ),
            |r| ServingStats::get(&r.stats().recommendations),
        ),
        (
            g(
                "reprise_cold_start_recommendations_total",
                "Recommendations answered from the cold-start lists",
            ),
            |r| ServingStats::get(&r.stats().cold_start),
        ),
        (
            g(
                "reprise_candidate_cache_hits_total",
                "Candidate cache hits since start",
            ),
            |r| ServingStats::get(&r.stats().cache_hits),
        ),
        (
            g(
                "reprise_candidate_cache_misses_total",
                "Candidate cache misses since start",
            ),
            |r| ServingStats::get(&r.stats().cache_misses),
        ),
        (
            g(
                "reprise_missing_context_anomalies_total",
                "Requests refused for a missing mandatory context field",
            ),
            |r| ServingStats::get(&r.stats().missing_context),
        ),
        (
            g("reprise_feedback_events_total", "Feedback events accepted"),
            |r| ServingStats::get(&r.stats().events),
        ),
        (
            g(
                "reprise_served_items_total",
                "Items written to the served-feature log",
            ),
            |r| ServingStats::get(&r.stats().served_items),
        ),
        (
            g(
                "reprise_model_swaps_total",
                "Serving model swaps since start",
            ),
            |r| ServingStats::get(&r.stats().model_swaps),
        ),
    ]
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "reprise_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "reprise_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("valid metric");
        let store_latency = HistogramVec::new(
            HistogramOpts::new(
                "reprise_store_operation_duration_seconds",
                "Feature store operation latency",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )
        .expect("valid metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let metrics = Metrics {
            store_version: gauge("reprise_store_version", "Newest committed store version"),
            cache_hits: SampledCounter::new(
                "reprise_online_cache_hits_total",
                "Online cache hits since start",
            ),
            cache_misses: SampledCounter::new(
                "reprise_online_cache_misses_total",
                "Online cache misses since start",
            ),
            cache_hit_ratio: Gauge::new(
                "reprise_online_cache_hit_ratio",
                "Online cache hits / lookups since start",
            )
            .expect("valid metric"),
            cache_bytes: gauge(
                "reprise_online_cache_bytes",
                "Weighted size of the online cache",
            ),
            cache_entries: gauge(
                "reprise_online_cache_entries",
                "Rows held by the online cache",
            ),
            live_data_bytes: gauge(
                "reprise_rocksdb_live_data_bytes",
                "RocksDB estimated live data, all column families",
            ),
            memtable_bytes: gauge(
                "reprise_rocksdb_memtable_bytes",
                "RocksDB memtable size, all column families",
            ),
            pending_compaction_bytes: gauge(
                "reprise_rocksdb_pending_compaction_bytes",
                "RocksDB estimated bytes awaiting compaction",
            ),
            worker_queue_depth: gauge(
                "reprise_store_worker_queue_depth",
                "Requests queued at the store worker actors",
            ),
            serving: serving_counters(),
            candidate_cache_entries: gauge(
                "reprise_candidate_cache_entries",
                "Users whose candidates are cached",
            ),
            serving_rankers: gauge(
                "reprise_serving_rankers",
                "Rankers serving (0: recommendations answer 503)",
            ),
            alerts_open: IntGauge::new("reprise_alerts_open", "Open validation alerts")
                .expect("valid metric"),
            alerts_blocking: gauge(
                "reprise_alerts_blocking_open",
                "Open validation alerts that block promotion",
            ),
            alerts_raised: SampledCounter::new(
                "reprise_alerts_raised_total",
                "Validation alerts raised since start",
            ),
            drift_distance: GaugeVec::new(
                Opts::new(
                    "reprise_drift_distance",
                    "L-infinity distance of each compared feature in the last validation run",
                ),
                &["check", "view", "feature"],
            )
            .expect("valid metric"),
            drift_threshold: GaugeVec::new(
                Opts::new(
                    "reprise_drift_threshold",
                    "Alert threshold of each compared feature in the last validation run",
                ),
                &["check", "view", "feature"],
            )
            .expect("valid metric"),
            arm_play_rate: GaugeVec::new(
                Opts::new(
                    "reprise_experiment_play_rate",
                    "Play rate of each arm of each active experiment",
                ),
                &["experiment", "arm"],
            )
            .expect("valid metric"),
            retrain: retrain_counters(),
            retrain_last_run: Gauge::new(
                "reprise_retrain_last_run_duration_seconds",
                "Wall time of the last finished retraining run",
            )
            .expect("valid metric"),
            play_rate_window: Gauge::new(
                "reprise_play_rate_last_window",
                "Play rate of served items in the last closed window",
            )
            .expect("valid metric"),
            play_rate_baseline: Gauge::new(
                "reprise_play_rate_baseline",
                "Play-rate baseline of the serving model",
            )
            .expect("valid metric"),
            candidate_cache_hit_ratio: Gauge::new(
                "reprise_candidate_cache_hit_ratio",
                "Candidate cache hits / lookups since start",
            )
            .expect("valid metric"),
            replication: crate::replication_metrics::ReplicationMetrics::new(),
            registry,
            scrape: std::sync::Mutex::new(()),
            http_requests,
            http_latency,
            store_latency,
        };
        metrics.register_all();
        Arc::new(metrics)
    }

    fn register_all(&self) {
        let r = &self.registry;
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.http_requests.clone()),
            Box::new(self.http_latency.clone()),
            Box::new(self.store_latency.clone()),
            Box::new(self.store_version.clone()),
            Box::new(self.cache_hits.counter.clone()),
            Box::new(self.cache_misses.counter.clone()),
            Box::new(self.cache_hit_ratio.clone()),
            Box::new(self.cache_bytes.clone()),
            Box::new(self.cache_entries.clone()),
            Box::new(self.memtable_bytes.clone()),
            Box::new(self.live_data_bytes.clone()),
            Box::new(self.pending_compaction_bytes.clone()),
            Box::new(self.worker_queue_depth.clone()),
        ];
        let mut collectors = collectors;
        for (counter, _) in &self.serving {
            collectors.push(Box::new(counter.counter.clone()));
        }
        collectors.push(Box::new(self.candidate_cache_entries.clone()));
        collectors.push(Box::new(self.serving_rankers.clone()));
        collectors.push(Box::new(self.candidate_cache_hit_ratio.clone()));
        collectors.push(Box::new(self.alerts_open.clone()));
        collectors.push(Box::new(self.alerts_blocking.clone()));
        collectors.push(Box::new(self.alerts_raised.counter.clone()));
        collectors.push(Box::new(self.drift_distance.clone()));
        collectors.push(Box::new(self.drift_threshold.clone()));
        collectors.push(Box::new(self.arm_play_rate.clone()));
        for (counter, _) in &self.retrain {
            collectors.push(Box::new(counter.counter.clone()));
        }
        collectors.push(Box::new(self.retrain_last_run.clone()));
        collectors.push(Box::new(self.play_rate_window.clone()));
        collectors.push(Box::new(self.play_rate_baseline.clone()));
        for c in collectors {
            r.register(c).expect("metric names are unique");
        }
        self.replication.register(r);
    }

    /// Times one store operation.
    pub fn time_store<T>(&self, operation: &str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.store_latency
            .with_label_values(&[operation])
            .observe(start.elapsed().as_secs_f64());
        out
    }

    /// Samples the gauges and renders the text exposition format.
    pub fn render(
        &self,
        store: &FeatureStore,
        workers: &StoreWorkers,
        recommender: &Recommender,
        validation: &Validation,
        retrainer: &Retrainer,
    ) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        for (counter, read) in &self.retrain {
            counter.set(read(retrainer.stats()));
        }
        self.retrain_last_run
            .set(RetrainStats::get(&retrainer.stats().last_run_millis) as f64 / 1_000.0);
        let play_rate = retrainer.play_rate();
        self.play_rate_window
            .set(play_rate.last_window.unwrap_or(f64::NAN));
        self.play_rate_baseline
            .set(play_rate.baseline.unwrap_or(f64::NAN));
        if let Ok(alerts) = validation.alerts() {
            let open = alerts.iter().filter(|a| a.is_open());
            self.alerts_open.set(open.clone().count() as i64);
            self.alerts_blocking
                .set(open.filter(|a| a.blocking).count() as i64);
        }
        self.alerts_raised.set(validation.raised_total());
        // The last run's distances only: features no longer compared go.
        self.drift_distance.reset();
        self.drift_threshold.reset();
        if let Some(run) = validation.last_run() {
            for c in &run.comparisons {
                let labels = [c.check.as_str(), c.view.as_str(), c.feature.as_str()];
                self.drift_distance.with_label_values(&labels).set(c.linf());
                self.drift_threshold
                    .with_label_values(&labels)
                    .set(c.threshold);
            }
        }
        self.arm_play_rate.reset();
        for experiment in recommender.experiments().unwrap_or_default() {
            if !experiment.active {
                continue;
            }
            if let Ok(arms) = reprise_actors::experiments::arm_metrics(store, &experiment) {
                for arm in arms {
                    self.arm_play_rate
                        .with_label_values(&[experiment.name.as_str(), arm.arm.as_str()])
                        .set(arm.play_rate);
                }
            }
        }
        for (counter, read) in &self.serving {
            counter.set(read(recommender));
        }
        self.candidate_cache_entries
            .set(recommender.cached_users() as i64);
        self.serving_rankers
            .set(i64::from(recommender.serving_version().is_some()));
        let stats = recommender.stats();
        let (hits, misses) = (
            ServingStats::get(&stats.cache_hits),
            ServingStats::get(&stats.cache_misses),
        );
        self.candidate_cache_hit_ratio.set(if hits + misses == 0 {
            0.0
        } else {
            hits as f64 / (hits + misses) as f64
        });
        self.sample_store(store);
        self.worker_queue_depth.set(workers.queue_depth() as i64);
        self.encode()
    }

    /// A replica's metrics: its requests, its store (its version is the
    /// published one) and the replication state.
    pub fn render_replica(
        &self,
        store: &FeatureStore,
        follower: &reprise_actors::replication::FollowerStatus,
    ) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.sample_store(store);
        self.replication.sample_replica(store, follower);
        self.encode()
    }

    /// The leader's replication state, sampled before [`render`](Self::render).
    pub fn sample_publisher(
        &self,
        store: &FeatureStore,
        publisher: &reprise_actors::replication::PublisherStatus,
    ) {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.replication
            .sample_leader(store, publisher, store.clock().now());
    }

    fn sample_store(&self, store: &FeatureStore) {
        self.store_version.set(store.version() as i64);
        let cache = store.cache_stats();
        self.cache_hits.set(cache.hits);
        self.cache_misses.set(cache.misses);
        let lookups = cache.hits + cache.misses;
        self.cache_hit_ratio.set(if lookups == 0 {
            0.0
        } else {
            cache.hits as f64 / lookups as f64
        });
        self.cache_bytes.set(cache.weighted_bytes as i64);
        self.cache_entries.set(cache.entries as i64);
        let engine = store.engine_stats();
        self.memtable_bytes
            .set(engine.memtable_bytes.unwrap_or(0) as i64);
        self.live_data_bytes
            .set(engine.live_data_bytes.unwrap_or(0) as i64);
        self.pending_compaction_bytes
            .set(engine.pending_compaction_bytes.unwrap_or(0) as i64);
    }

    fn encode(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
