//! Writes in two stages, so one push group is written while the next one is
//! prepared.
//!
//! A group is *prepared* under the writer lock: it takes the next store
//! versions, is encoded, and reads the online rows it may replace. Before it
//! releases the lock it takes a [`Ticket`] and waits until the group before
//! it is written. It is then *written* (engine write, WAL sync, version
//! published) after the lock is released, while the next group prepares.
//! Hence writes follow the order of preparation, and at most one group is in
//! flight (prepared, not yet written) while another prepares. That group
//! lends the next one its last store version, the online rows and the
//! counter totals it writes, which the engine may not hold yet
//! ([`InFlight`]).
//!
//! If a group in flight is not written (its engine write failed, or it was
//! dropped), the group prepared after it was built on versions that never
//! came: it finds the published version is not the one it started from, and
//! is refused whole.
//!
//! Every other writer (migrations, ingestion, retirement, the model
//! registry) takes the lock [exclusively](WritePipeline::lock_exclusive),
//! which also waits until no group is in flight: it sees the store as of the
//! last written version.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::sync::lock;
use crate::time::Micros;

/// The writer lock and the tickets that order writes.
#[derive(Default)]
pub(crate) struct WritePipeline {
    preparation: Mutex<Preparation>,
    /// The last ticket handed out (changed only under the lock).
    issued: AtomicU64,
    /// The highest ticket whose group is written (or given up).
    finished: Mutex<u64>,
    /// Signalled whenever a ticket finishes.
    turn: Condvar,
}

/// What the writer lock guards.
#[derive(Default)]
pub(crate) struct Preparation {
    in_flight: Option<InFlight>,
}

/// A prepared group not yet written: what the next group needs from it.
pub(crate) struct InFlight {
    ticket: u64,
    /// The last store version it writes.
    pub(crate) last_version: u64,
    /// The online rows it writes: key and event time.
    pub(crate) online: OnlineTimes,
    /// The counter totals it writes.
    pub(crate) counters: crate::counters::Deltas,
}

/// Online keys and the event time of the row written under each.
pub(crate) type OnlineTimes = HashMap<Vec<u8>, Micros>;

pub(crate) type WriterLock<'a> = MutexGuard<'a, Preparation>;

impl WritePipeline {
    /// The writer lock, with no group in flight.
    pub(crate) fn lock_exclusive(&self) -> WriterLock<'_> {
        let mut preparation = lock(&self.preparation);
        self.drain(&mut preparation);
        preparation
    }

    /// The writer lock for preparing a group; a group may be in flight.
    pub(crate) fn lock_to_prepare(&self) -> WriterLock<'_> {
        let mut preparation = lock(&self.preparation);
        let written = preparation
            .in_flight
            .as_ref()
            .is_some_and(|group| *lock(&self.finished) >= group.ticket);
        if written {
            preparation.in_flight = None;
        }
        preparation
    }

    /// Waits (holding the lock) until the group in flight is written.
    fn drain(&self, preparation: &mut Preparation) {
        self.wait_for_ticket(self.issued.load(Ordering::Acquire));
        preparation.in_flight = None;
    }

    /// Hands the group just prepared (writing up to `last_version`, the
    /// `online` rows and the `counters` totals) its ticket, and waits until
    /// the group before it is written. The caller then checks it was (the
    /// store version is the one it prepared on) and releases the lock.
    pub(crate) fn take_turn(
        &self,
        preparation: &mut Preparation,
        last_version: u64,
        online: OnlineTimes,
        counters: crate::counters::Deltas,
    ) -> Ticket<'_> {
        let ticket = self.issued.fetch_add(1, Ordering::AcqRel) + 1;
        preparation.in_flight = Some(InFlight {
            ticket,
            last_version,
            online,
            counters,
        });
        self.wait_for_ticket(ticket - 1);
        Ticket {
            pipeline: self,
            number: ticket,
        }
    }

    /// Waits until `done` holds, checked again each time a ticket finishes.
    /// Whoever sets what `done` reads does so before finishing its ticket,
    /// or under the writer lock before the waiter took it (a refusal).
    pub(crate) fn wait_until(&self, done: impl Fn() -> bool) {
        let mut finished = lock(&self.finished);
        while !done() {
            finished = self.turn.wait(finished).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Groups prepared and not yet written: 0, 1 (writing, or its turn
    /// come) or 2 (one writing, the next one waiting for its turn).
    pub(crate) fn in_flight_count(&self) -> u64 {
        let finished = *lock(&self.finished);
        self.issued.load(Ordering::Acquire).saturating_sub(finished)
    }

    fn wait_for_ticket(&self, ticket: u64) {
        let mut finished = lock(&self.finished);
        while *finished < ticket {
            finished = self.turn.wait(finished).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Preparation {
    /// The group in flight, if any.
    pub(crate) fn in_flight(&self) -> Option<&InFlight> {
        self.in_flight.as_ref()
    }

    /// Forgets the group in flight (it was not written).
    pub(crate) fn forget_in_flight(&mut self) {
        self.in_flight = None;
    }
}

/// A group's place in the write order. Dropping it (written or not) lets
/// the next group write.
pub(crate) struct Ticket<'a> {
    pipeline: &'a WritePipeline,
    number: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut finished = lock(&self.pipeline.finished);
        *finished = (*finished).max(self.number);
        self.pipeline.turn.notify_all();
    }
}
