//! `StoreWorker`: a pool of sync actors that run blocking store writes
//! (pushes with their WAL fsync, snapshot creation) off the HTTP workers.
//!
//! Protocol:
//! - messages [`Push`] and [`CreateSnapshot`], each answered once with the
//!   store's result through the actix reply channel;
//! - the queue is bounded: [`StoreWorkers::send`] counts requests in flight
//!   and answers [`ActorError::Overloaded`] at once when `capacity` are
//!   waiting, instead of queueing without limit;
//! - the store itself serialises writes and hands out store versions, so the
//!   pool size only bounds how many requests validate and wait at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use reprise_store::{FeatureStore, PushOutcome, SnapshotInfo, SnapshotSpec};
use serde_json::Value as Json;

use crate::error::ActorError;
use crate::supervise::supervised;

const NAME: &str = "store worker";

/// Push rows to a view (see `FeatureStore::push`).
#[derive(Message)]
#[rtype(result = "Result<PushOutcome, ActorError>")]
pub struct Push {
    pub view: String,
    pub rows: Vec<Json>,
    pub backfill: bool,
}

/// Create a snapshot (see `FeatureStore::create_snapshot`).
#[derive(Message)]
#[rtype(result = "Result<SnapshotInfo, ActorError>")]
pub struct CreateSnapshot {
    pub spec: SnapshotSpec,
    pub entity_rows: Vec<Json>,
}

/// One worker of the pool; reached only through [`StoreWorkers`].
pub struct StoreWorker {
    store: Arc<FeatureStore>,
}

impl Actor for StoreWorker {
    type Context = SyncContext<Self>;
}

impl Handler<Push> for StoreWorker {
    type Result = Result<PushOutcome, ActorError>;

    fn handle(&mut self, msg: Push, _: &mut Self::Context) -> Self::Result {
        supervised(NAME, || {
            crate::supervise::inject_delay("slow_push", &msg.view, 3);
            crate::supervise::inject("push", Some(&msg.view));
            crate::system_views::refuse_server_written(&msg.view)?;
            Ok(self.store.push(&msg.view, &msg.rows, msg.backfill)?)
        })
    }
}

impl Handler<CreateSnapshot> for StoreWorker {
    type Result = Result<SnapshotInfo, ActorError>;

    fn handle(&mut self, msg: CreateSnapshot, _: &mut Self::Context) -> Self::Result {
        supervised(NAME, || {
            Ok(self
                .store
                .create_snapshot(&msg.spec, msg.entity_rows.into_iter().map(Ok))?)
        })
    }
}

/// Handle to the worker pool.
#[derive(Clone)]
pub struct StoreWorkers {
    addr: Addr<StoreWorker>,
    in_flight: Arc<AtomicUsize>,
    capacity: usize,
}

impl StoreWorkers {
    /// Starts `threads` workers (must run inside an actix system).
    pub fn start(store: Arc<FeatureStore>, threads: usize, capacity: usize) -> Self {
        let addr = SyncArbiter::start(threads.max(1), move || StoreWorker {
            store: Arc::clone(&store),
        });
        StoreWorkers {
            addr,
            in_flight: Arc::new(AtomicUsize::new(0)),
            capacity: capacity.max(1),
        }
    }

    /// Requests queued or running now.
    pub fn queue_depth(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Sends `msg` and waits for the reply, shedding load when full.
    pub async fn send<M, T>(&self, msg: M) -> Result<T, ActorError>
    where
        M: Message<Result = Result<T, ActorError>> + Send + 'static,
        T: Send + 'static,
        StoreWorker: Handler<M>,
    {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(ActorError::Overloaded {
                actor: NAME,
                capacity: self.capacity,
            });
        }
        let reply = self.addr.send(msg).await;
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        match reply {
            Ok(result) => result,
            Err(_) => Err(ActorError::Stopped(NAME)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reprise_store::{StoreConfig, StoreError};

    fn store() -> Arc<FeatureStore> {
        let store = FeatureStore::in_memory(StoreConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("0001_test.toml"),
            r#"
            [[entity]]
            name = "user"
            join_key = "user_id"
            [[feature_view]]
            name = "user_stats"
            version = 1
            entities = ["user"]
            ttl = "0"
            [[feature_view.feature]]
            name = "plays"
            type = "int64"
            "#,
        )
        .unwrap();
        store.migrate(dir.path()).unwrap();
        Arc::new(store)
    }

    #[actix_rt::test]
    async fn pushes_go_through_the_pool_and_errors_come_back_typed() {
        let store = store();
        let workers = StoreWorkers::start(Arc::clone(&store), 2, 8);
        let row = serde_json::json!({"user_id": "u1", "event_timestamp": "2026-01-01T00:00:00Z", "plays": 3});
        let outcome = workers
            .send(Push {
                view: "user_stats".into(),
                rows: vec![row],
                backfill: false,
            })
            .await
            .unwrap();
        assert_eq!(outcome.written, 1);
        assert_eq!(outcome.store_version, store.version());

        let bad = serde_json::json!({"user_id": "u1", "event_timestamp": "2026-01-01T00:00:00Z", "plays": "x"});
        let err = workers
            .send(Push {
                view: "user_stats".into(),
                rows: vec![bad],
                backfill: false,
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, ActorError::Store(StoreError::WrongType { ref field, .. }) if field == "rows[0].plays")
        );
        assert_eq!(workers.queue_depth(), 0);
    }
}
