//! `reprise-actors`: the actix actors that own Reprise's moving parts.
//!
//! Rules of this crate: actors talk to the store only through
//! `reprise-store`'s public API; they never see HTTP types. Each actor's
//! protocol (messages, replies, back-pressure) is documented in its module.

pub mod error;
pub mod experiments;
pub mod recommend;
pub mod replication;
pub mod retrain;
pub mod store_worker;
pub mod supervise;
pub mod system_views;
#[cfg(test)]
mod test_store;
pub mod trace;
pub mod validation;

pub use error::ActorError;
pub use store_worker::{CreateSnapshot, Push, StoreWorkers};
