use std::sync::Arc;

use actix_web::web;
use reprise_api::{AppState, ServerConfig};
use reprise_store::{FeatureStore, StoreConfig};

pub const DEFINITIONS: &str = r#"
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

[[feature_view.feature]]
name = "plays_log"
type = "float64"
transform = { kind = "log1p", input = "plays" }
"#;

/// App state over an in-memory store with [`DEFINITIONS`] and one user row.
pub fn state() -> web::Data<AppState> {
    state_with(&ServerConfig::default())
}

/// [`state`] with server settings of the test's choosing.
pub fn state_with(config: &ServerConfig) -> web::Data<AppState> {
    let store = FeatureStore::in_memory(StoreConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0001_test.toml"), DEFINITIONS).unwrap();
    store.migrate(dir.path()).unwrap();
    let row =
        serde_json::json!({"user_id": "u1", "event_timestamp": "2026-01-01T00:00:00Z", "plays": 3});
    store.push("user_stats", &[row], true).unwrap();
    reprise_api::state(Arc::new(store), config).unwrap()
}
