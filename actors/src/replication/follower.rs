//! A replica's follower: keeps the replica store's version at the one the
//! shared online store has published (after dropping the cached rows its
//! change records name), reloads the definitions when the
//! leader publishes new ones, and measures the lag.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use reprise_store::online_store::{definitions_digest, ReplicaLag};
use reprise_store::FeatureStore;

/// What the follower last saw, for `/metrics` and `/readyz`.
#[derive(Debug, Default)]
pub struct FollowerStatus {
    pub lag: Mutex<Option<ReplicaLag>>,
    /// When the shared store last answered.
    pub last_contact: Mutex<Option<Instant>>,
    pub errors_total: AtomicU64,
    pub definitions_version: AtomicU64,
    /// [`definitions_digest`] of the definitions loaded (0: not yet read).
    pub definitions_digest: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl FollowerStatus {
    /// Seconds since the shared store last answered (infinite: never).
    pub fn silence_seconds(&self) -> f64 {
        self.last_contact
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or(f64::INFINITY, |t| t.elapsed().as_secs_f64())
    }

    pub fn lag(&self) -> Option<ReplicaLag> {
        *self.lag.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone, Message)]
#[rtype(result = "()")]
struct Poll;

/// Definitions are re-read at most this often (they are larger, and rare).
const DEFINITIONS_EVERY: Duration = Duration::from_secs(1);

struct FollowWorker {
    store: Arc<FeatureStore>,
    status: Arc<FollowerStatus>,
    busy: Arc<AtomicBool>,
    definitions_read: Option<Instant>,
}

impl Actor for FollowWorker {
    type Context = SyncContext<Self>;
}

impl FollowWorker {
    fn poll(&mut self) -> reprise_store::Result<()> {
        let shared = self
            .store
            .shared_online_store()
            .expect("a follower follows a replica store");
        if self
            .definitions_read
            .is_none_or(|t| t.elapsed() >= DEFINITIONS_EVERY)
        {
            if let Some(definitions) = shared.definitions()? {
                // Newer, or as new with other content (the model registry
                // changes without a store version); never older (a shared
                // store failed over to an older copy).
                let digest = definitions_digest(&definitions);
                if definitions.store_version
                    >= self.status.definitions_version.load(Ordering::Acquire)
                    && digest != self.status.definitions_digest.load(Ordering::Acquire)
                {
                    self.store.load_definitions(&definitions)?;
                    self.status
                        .definitions_version
                        .store(definitions.store_version, Ordering::Release);
                    self.status
                        .definitions_digest
                        .store(digest, Ordering::Release);
                    tracing::info!(
                        store_version = definitions.store_version,
                        "definitions reloaded from the shared online store"
                    );
                }
            }
            self.definitions_read = Some(Instant::now());
        }
        let published = shared.published_version()?;
        // Cached rows the published versions changed are dropped before
        // the replica's version moves.
        self.store.follow_changes(published)?;
        let lag = ReplicaLag::of(published, shared.leader_state()?, self.store.clock().now());
        *self.status.lag.lock().unwrap_or_else(|p| p.into_inner()) = Some(lag);
        *self
            .status
            .last_contact
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        Ok(())
    }
}

impl Handler<Poll> for FollowWorker {
    type Result = ();

    fn handle(&mut self, _: Poll, _: &mut Self::Context) {
        let result = self.poll();
        let mut last_error = self
            .status
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => *last_error = None,
            Err(e) => {
                self.status.errors_total.fetch_add(1, Ordering::Relaxed);
                if last_error.is_none() {
                    tracing::warn!(error = %e, "the shared online store does not answer");
                }
                *last_error = Some(e.to_string());
            }
        }
        self.busy.store(false, Ordering::Release);
    }
}

/// Handle to a replica's follower.
#[derive(Clone)]
pub struct Follower {
    pub status: Arc<FollowerStatus>,
}

impl Follower {
    /// Starts following for the replica store `store` every `interval`
    /// (must run inside an actix system). `definitions_version`: the version
    /// of the definitions the store was built from.
    pub fn start(store: Arc<FeatureStore>, definitions_version: u64, interval: Duration) -> Self {
        let status = Arc::new(FollowerStatus::default());
        status
            .definitions_version
            .store(definitions_version, Ordering::Release);
        *status
            .last_contact
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let busy = Arc::new(AtomicBool::new(false));
        let (s, b) = (Arc::clone(&status), Arc::clone(&busy));
        let worker = SyncArbiter::start(1, move || FollowWorker {
            store: Arc::clone(&store),
            status: Arc::clone(&s),
            busy: Arc::clone(&b),
            definitions_read: None,
        });
        super::tick(worker, Poll, busy, interval);
        Follower { status }
    }
}
