//! The replication metrics of a fleet's leader and replicas (names defined
//! here; sampled at scrape time from the publisher's or follower's status).

use std::sync::atomic::Ordering;

use prometheus::{Gauge, IntCounter, IntGauge, Registry};
use reprise_actors::replication::{FollowerStatus, PublisherStatus};
use reprise_store::FeatureStore;

pub struct ReplicationMetrics {
    published_version: IntGauge,
    lag_versions: IntGauge,
    lag_seconds: Gauge,
    leader_silent_seconds: Gauge,
    errors: IntCounter,
    rows: IntCounter,
    events: IntCounter,
    cache_dropped: IntCounter,
}

fn raise(counter: &IntCounter, value: u64) {
    let current = counter.get();
    if value > current {
        counter.inc_by(value - current);
    }
}

impl ReplicationMetrics {
    pub fn new() -> Self {
        let int = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let float = |name: &str, help: &str| Gauge::new(name, help).expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        ReplicationMetrics {
            published_version: int(
                "reprise_replication_published_version",
                "Store version the shared online store has published",
            ),
            lag_versions: int(
                "reprise_replication_lag_versions",
                "Store versions committed on the leader and not yet published",
            ),
            lag_seconds: float(
                "reprise_replication_lag_seconds",
                "Age of the oldest commit not yet published (0 when none)",
            ),
            leader_silent_seconds: float(
                "reprise_replication_leader_silent_seconds",
                "Seconds since the leader last wrote its state (replicas)",
            ),
            errors: counter(
                "reprise_replication_errors_total",
                "Failed publish rounds (leader) or polls (replica) of the shared online store",
            ),
            rows: counter(
                "reprise_replication_rows_total",
                "Online rows published to the shared online store",
            ),
            events: counter(
                "reprise_replication_events_total",
                "Aggregation events published to the shared online store",
            ),
            cache_dropped: counter(
                "reprise_replication_cache_dropped_total",
                "Times a replica dropped its whole row cache (change records missed, a whole publication, new definitions, an unreadable feed)",
            ),
        }
    }

    pub fn register(&self, registry: &Registry) {
        let collectors: [Box<dyn prometheus::core::Collector>; 8] = [
            Box::new(self.published_version.clone()),
            Box::new(self.lag_versions.clone()),
            Box::new(self.lag_seconds.clone()),
            Box::new(self.leader_silent_seconds.clone()),
            Box::new(self.errors.clone()),
            Box::new(self.rows.clone()),
            Box::new(self.events.clone()),
            Box::new(self.cache_dropped.clone()),
        ];
        for c in collectors {
            registry.register(c).expect("metric names are unique");
        }
    }

    pub fn sample_leader(&self, store: &FeatureStore, status: &PublisherStatus, now: i64) {
        let published = status.published_version.load(Ordering::Acquire);
        self.published_version.set(published as i64);
        self.lag_versions
            .set(store.version().saturating_sub(published) as i64);
        let oldest = status.oldest_pending_at.load(Ordering::Acquire);
        self.lag_seconds.set(if oldest == 0 {
            0.0
        } else {
            (now - oldest as i64).max(0) as f64 / 1e6
        });
        self.leader_silent_seconds.set(0.0);
        raise(&self.errors, status.errors_total.load(Ordering::Relaxed));
        raise(&self.rows, status.rows_total.load(Ordering::Relaxed));
        raise(&self.events, status.events_total.load(Ordering::Relaxed));
    }

    pub fn sample_replica(&self, store: &FeatureStore, status: &FollowerStatus) {
        raise(&self.cache_dropped, store.replica_cache_drops());
        if let Some(lag) = status.lag() {
            self.published_version.set(lag.published_version as i64);
            self.lag_versions.set(lag.versions as i64);
            self.lag_seconds.set(lag.seconds);
            self.leader_silent_seconds.set(lag.leader_silent_seconds);
        }
        raise(&self.errors, status.errors_total.load(Ordering::Relaxed));
    }
}

impl Default for ReplicationMetrics {
    fn default() -> Self {
        Self::new()
    }
}
