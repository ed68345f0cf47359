//! Declared aggregations (CONTRACT.md v2, "Event views and declared
//! aggregations"): features computed by the store from an events view,
//! grouped by some of its entities, over sliding windows.
//!
//! - [`spec`]: an `[[aggregation]]` definition compiled into an
//!   [`AggregationSpec`] and registered as a view of kind `aggregation`
//!   (so refs, snapshots, online reads and the served-feature log treat its
//!   features like any other);
//! - [`compute`]: the one implementation of "the aggregate of an entity at
//!   time t, store version v, cutoff c", called by online reads (t = now),
//!   snapshots (t = the row's time) and everything built on them;
//! - [`index`]: the per-group event index kept in `Cf::AggIndex`, written
//!   in the same atomic batch as the event and backfilled from history when
//!   a migration adds a new grouping.

pub mod compute;
pub mod index;
pub mod spec;

pub use compute::{aggregate, aggregate_loaded, load_group, GroupEvent};
pub use spec::{register, AggregationSpec, Column, Filter, Op};
