//! The leader's publisher: drains the outbox into the shared online store.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use reprise_store::online_store::{publish_pending, OnlineStore};
use reprise_store::FeatureStore;

/// What the publisher has done, for `/metrics` and `/readyz`.
#[derive(Debug, Default)]
pub struct PublisherStatus {
    pub published_version: AtomicU64,
    pub rounds_total: AtomicU64,
    pub errors_total: AtomicU64,
    pub entries_total: AtomicU64,
    pub rows_total: AtomicU64,
    pub events_total: AtomicU64,
    /// When the oldest unpublished commit was made (micros; 0: none).
    pub oldest_pending_at: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

#[derive(Clone, Message)]
#[rtype(result = "()")]
struct Round;

struct PublishWorker {
    store: Arc<FeatureStore>,
    shared: Arc<dyn OnlineStore>,
    status: Arc<PublisherStatus>,
    busy: Arc<AtomicBool>,
    /// When the last error was logged (one line per 10 s while it lasts).
    last_logged: Option<Instant>,
}

impl Actor for PublishWorker {
    type Context = SyncContext<Self>;
}

impl Handler<Round> for PublishWorker {
    type Result = ();

    fn handle(&mut self, _: Round, _: &mut Self::Context) {
        // Drain while there is work (a round takes a bounded number of
        // entries), then wait for the next tick.
        loop {
            let result = publish_round(&self.store, self.shared.as_ref(), &self.status);
            match result {
                Ok(more) => {
                    if self.last_logged.take().is_some() {
                        tracing::info!("publishing to the shared online store again");
                    }
                    *self
                        .status
                        .last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = None;
                    if !more {
                        break;
                    }
                }
                Err(message) => {
                    self.status.errors_total.fetch_add(1, Ordering::Relaxed);
                    // The lag keeps growing while nothing is published.
                    if let Ok(head) = self.store.outbox_entries(1) {
                        let pending = head.first().map(|p| p.entry.committed_at_micros);
                        self.status
                            .oldest_pending_at
                            .store(pending.map_or(0, |t| t.max(1) as u64), Ordering::Release);
                    }
                    if self
                        .last_logged
                        .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
                    {
                        tracing::warn!(error = %message, "publishing to the shared online store failed; the outbox keeps every version");
                        self.last_logged = Some(Instant::now());
                    }
                    *self
                        .status
                        .last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(message);
                    break;
                }
            }
        }
        self.busy.store(false, Ordering::Release);
    }
}

/// One round; `Ok(true)` when entries remain.
fn publish_round(
    store: &FeatureStore,
    shared: &dyn OnlineStore,
    status: &PublisherStatus,
) -> Result<bool, String> {
    let round = publish_pending(store, shared).map_err(|e| e.to_string())?;
    status.rounds_total.fetch_add(1, Ordering::Relaxed);
    status
        .entries_total
        .fetch_add(round.entries as u64, Ordering::Relaxed);
    status
        .rows_total
        .fetch_add(round.rows as u64, Ordering::Relaxed);
    status
        .events_total
        .fetch_add(round.events as u64, Ordering::Relaxed);
    if let Some(version) = round.published_version {
        status
            .published_version
            .fetch_max(version, Ordering::AcqRel);
    }
    let pending = round.leader.and_then(|l| l.oldest_pending_at);
    status
        .oldest_pending_at
        .store(pending.map_or(0, |t| t.max(1) as u64), Ordering::Release);
    Ok(pending.is_some())
}

/// Handle to the leader's publisher.
#[derive(Clone)]
pub struct Publisher {
    pub status: Arc<PublisherStatus>,
}

impl Publisher {
    /// Turns the store's outbox on and starts draining it into `shared`
    /// every `interval` (must run inside an actix system); with `republish`,
    /// the whole online view goes out first whatever `shared` holds.
    pub fn start(
        store: Arc<FeatureStore>,
        shared: Arc<dyn OnlineStore>,
        interval: Duration,
        republish: bool,
    ) -> reprise_store::Result<Self> {
        reprise_store::online_store::check_target(&store, shared.as_ref())?;
        let published = (!republish)
            .then(|| shared.published_version())
            .transpose()?;
        store.enable_outbox(published)?;
        let status = Arc::new(PublisherStatus::default());
        status
            .published_version
            .store(shared.published_version()?, Ordering::Release);
        let busy = Arc::new(AtomicBool::new(false));
        let (s, b) = (Arc::clone(&status), Arc::clone(&busy));
        let worker = SyncArbiter::start(1, move || PublishWorker {
            store: Arc::clone(&store),
            shared: Arc::clone(&shared),
            status: Arc::clone(&s),
            busy: Arc::clone(&b),
            last_logged: None,
        });
        super::tick(worker, Round, busy, interval);
        Ok(Publisher { status })
    }
}
