//! Prometheus metrics: every metric name is defined here.

use std::sync::Arc;
use std::time::Instant;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use reprise_actors::recommend::stats::ServingStats;
use reprise_actors::recommend::Recommender;
use reprise_actors::retrain::{RetrainStats, Retrainer};
use reprise_actors::validation::Validation;
use reprise_actors::StoreWorkers;
use reprise_store::FeatureStore;

/// Latency buckets from 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_latency: HistogramVec,
    pub store_latency: HistogramVec,
    store_version: IntGauge,
    cache_hits: IntGauge,
    cache_misses: IntGauge,
    cache_hit_ratio: Gauge,
    cache_bytes: IntGauge,
    cache_entries: IntGauge,
    memtable_bytes: IntGauge,
    live_data_bytes: IntGauge,
    pending_compaction_bytes: IntGauge,
    worker_queue_depth: IntGauge,
    serving: Vec<SampledGauge>,
    candidate_cache_hit_ratio: Gauge,
    alerts_open: IntGauge,
    alerts_raised: IntGauge,
    retrain: Vec<RetrainGauge>,
    play_rate_window: Gauge,
    play_rate_baseline: Gauge,
}

/// A gauge and how to read its value off the retrainer.
type RetrainGauge = (IntGauge, fn(&RetrainStats) -> u64);

/// The retrainer's counters, sampled at scrape time.
fn retrain_gauges() -> Vec<RetrainGauge> {
    let g = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
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
        (
            g(
                "reprise_retrain_last_run_milliseconds",
                "Wall time of the last finished retraining run",
            ),
            |s| RetrainStats::get(&s.last_run_millis),
        ),
    ]
}

/// A gauge and how to read its value off the recommender.
type SampledGauge = (IntGauge, fn(&Recommender) -> u64);

/// The serving path's counters, sampled at scrape time.
fn serving_gauges() -> Vec<SampledGauge> {
    let g = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
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
                "reprise_cold_start_total",
                "Recommendations answered from the cold-start lists",
            ),
            |r| ServingStats::get(&r.stats().cold_start),
        ),
        (
            g(
                "reprise_candidate_cache_hits",
                "Candidate cache hits since start",
            ),
            |r| ServingStats::get(&r.stats().cache_hits),
        ),
        (
            g(
                "reprise_candidate_cache_misses",
                "Candidate cache misses since start",
            ),
            |r| ServingStats::get(&r.stats().cache_misses),
        ),
        (
            g(
                "reprise_candidate_cache_entries",
                "Users whose candidates are cached",
            ),
            |r| r.cached_users(),
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
            cache_hits: gauge("reprise_online_cache_hits", "Online cache hits since start"),
            cache_misses: gauge(
                "reprise_online_cache_misses",
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
            serving: serving_gauges(),
            alerts_open: IntGauge::new("reprise_alerts_open", "Open validation alerts")
                .expect("valid metric"),
            alerts_raised: IntGauge::new(
                "reprise_alerts_raised_total",
                "Validation alerts raised since start",
            )
            .expect("valid metric"),
            retrain: retrain_gauges(),
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
            registry,
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
            Box::new(self.cache_hits.clone()),
            Box::new(self.cache_misses.clone()),
            Box::new(self.cache_hit_ratio.clone()),
            Box::new(self.cache_bytes.clone()),
            Box::new(self.cache_entries.clone()),
            Box::new(self.memtable_bytes.clone()),
            Box::new(self.live_data_bytes.clone()),
            Box::new(self.pending_compaction_bytes.clone()),
            Box::new(self.worker_queue_depth.clone()),
        ];
        let mut collectors = collectors;
        for (gauge, _) in &self.serving {
            collectors.push(Box::new(gauge.clone()));
        }
        collectors.push(Box::new(self.candidate_cache_hit_ratio.clone()));
        collectors.push(Box::new(self.alerts_open.clone()));
        collectors.push(Box::new(self.alerts_raised.clone()));
        for (gauge, _) in &self.retrain {
            collectors.push(Box::new(gauge.clone()));
        }
        collectors.push(Box::new(self.play_rate_window.clone()));
        collectors.push(Box::new(self.play_rate_baseline.clone()));
        for c in collectors {
            r.register(c).expect("metric names are unique");
        }
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
        for (gauge, read) in &self.retrain {
            gauge.set(read(retrainer.stats()) as i64);
        }
        let play_rate = retrainer.play_rate();
        self.play_rate_window
            .set(play_rate.last_window.unwrap_or(f64::NAN));
        self.play_rate_baseline
            .set(play_rate.baseline.unwrap_or(f64::NAN));
        if let Ok(alerts) = validation.alerts() {
            self.alerts_open
                .set(alerts.iter().filter(|a| a.is_open()).count() as i64);
        }
        self.alerts_raised.set(validation.raised_total() as i64);
        for (gauge, read) in &self.serving {
            gauge.set(read(recommender) as i64);
        }
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
        self.store_version.set(store.version() as i64);
        let cache = store.cache_stats();
        self.cache_hits.set(cache.hits as i64);
        self.cache_misses.set(cache.misses as i64);
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
        self.worker_queue_depth.set(workers.queue_depth() as i64);
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
