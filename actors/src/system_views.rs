//! The server's own views (request context, served-feature log, feedback,
//! anomalies, alerts, experiments, retraining runs), defined here and
//! registered in the store by the server itself, so a catalogue's
//! migrations hold only its own entities, views, aggregations and
//! `[recommender]` declaration. A change to them is a new versioned name.

use reprise_store::FeatureStore;

use crate::error::ActorError;

/// The definitions, as a definition file.
pub const SOURCE: &str = include_str!("system_views.toml");

/// The name they are recorded under (`runtime/system-views-v2`). v2 added
/// retentions; a store made with v1 re-declares the same views with them.
pub const NAME: &str = "system-views-v2";

/// Registers the system views unless the store has them; returns whether
/// they were registered now.
pub fn ensure(store: &FeatureStore) -> Result<bool, ActorError> {
    Ok(store.ensure_definitions(NAME, SOURCE)?)
}
