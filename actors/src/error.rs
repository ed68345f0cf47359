//! Errors of the actor layer.

use reprise_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ActorError {
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The actor's queue is full; the caller should retry later.
    #[error("the {actor} queue is full ({capacity} requests waiting); retry later")]
    Overloaded {
        actor: &'static str,
        capacity: usize,
    },

    /// The actor stopped (shutdown in progress).
    #[error("the {0} actor is not running")]
    Stopped(&'static str),
}
