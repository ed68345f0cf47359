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

/// The published listening histories a fleet's replicas rank with, added
/// after v2 (see the file).
pub const HISTORIES_SOURCE: &str = include_str!("system_views_histories.toml");

/// The name they are recorded under.
pub const HISTORIES_NAME: &str = "system-views-histories-v1";

/// The view of published histories (its join key is `user_id`).
pub const USER_HISTORY_VIEW: &str = "user_history";

/// Registers the system views unless the store has them; returns whether
/// any were registered now.
pub fn ensure(store: &FeatureStore) -> Result<bool, ActorError> {
    let core = store.ensure_definitions(NAME, SOURCE)?;
    let histories = store.ensure_definitions(HISTORIES_NAME, HISTORIES_SOURCE)?;
    Ok(core || histories)
}

/// Views only the server writes: experiment tallies are kept in step with
/// their rows (`experiments/tally.rs`), so a generic push to them (which
/// would change labels behind the tallies' back) is refused; published
/// histories follow the plays the server records.
pub const SERVER_WRITTEN: [&str; 4] = ["served_item", "feedback", "experiment", USER_HISTORY_VIEW];

/// Refuses a generic push to one of [`SERVER_WRITTEN`] (`name` or `name@N`).
pub fn refuse_server_written(view_spec: &str) -> Result<(), ActorError> {
    let name = view_spec.split('@').next().unwrap_or(view_spec);
    if SERVER_WRITTEN.contains(&name) {
        return Err(ActorError::invalid(
            "view",
            format!(
                "`{name}` is written by the server (served-feature log, feedback, experiments and published histories follow what it records): send feedback with POST /v1/events"
            ),
        ));
    }
    Ok(())
}
