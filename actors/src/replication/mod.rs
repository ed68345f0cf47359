//! Replication of the online view to a shared online store (Redis Cluster)
//! for a serving fleet: on the leader, the [`Publisher`] drains the store's
//! outbox into it; on each replica, the [`Follower`] tracks the version it
//! has published, the definitions, and how far it is behind the leader.
//!
//! Protocol: each is a sync actor on its own thread, woken by a schedule
//! every `interval`; a round that is still running when the next tick
//! comes is not queued twice (one round in flight at a time). Errors are
//! counted and logged, and the next round retries: nothing is lost, since
//! the outbox keeps every entry until its version is published.

mod follower;
mod publisher;

pub use follower::{Follower, FollowerStatus};
pub use publisher::{Publisher, PublisherStatus};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

/// Sends `message` to `worker` every `interval`, unless the previous one is
/// still being handled (`busy`, cleared by the worker).
struct Ticker<A: Actor<Context = SyncContext<A>>, M: Message + Send + Clone + 'static>
where
    A: Handler<M>,
    M::Result: Send,
{
    worker: Addr<A>,
    message: M,
    busy: Arc<AtomicBool>,
    interval: Duration,
}

impl<A, M> Actor for Ticker<A, M>
where
    A: Actor<Context = SyncContext<A>> + Handler<M>,
    M: Message + Send + Clone + Unpin + 'static,
    M::Result: Send,
{
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |ticker, _| {
            if !ticker.busy.swap(true, Ordering::AcqRel) {
                ticker.worker.do_send(ticker.message.clone());
            }
        });
    }
}

fn tick<A, M>(worker: Addr<A>, message: M, busy: Arc<AtomicBool>, interval: Duration)
where
    A: Actor<Context = SyncContext<A>> + Handler<M>,
    M: Message + Send + Clone + Unpin + 'static,
    M::Result: Send,
{
    Ticker {
        worker,
        message,
        busy,
        interval,
    }
    .start();
}
