//! Shared set-up of the store benchmarks and the scale example.

#![allow(dead_code)]

use std::path::Path;

use reprise_store::{FeatureStore, StoreConfig};
use serde_json::{json, Value as Json};

/// One user view with ten features: eight raw, two derived.
pub const DEFINITIONS: &str = r#"
[[entity]]
name = "user"
join_key = "user_id"

[[feature_view]]
name = "stats"
version = 1
entities = ["user"]
ttl = "0"

[[feature_view.feature]]
name = "f0"
type = "int64"
[[feature_view.feature]]
name = "f1"
type = "int64"
[[feature_view.feature]]
name = "f2"
type = "int64"
[[feature_view.feature]]
name = "f3"
type = "int64"
[[feature_view.feature]]
name = "f4"
type = "float64"
[[feature_view.feature]]
name = "f5"
type = "float64"
[[feature_view.feature]]
name = "f6"
type = "float64"
[[feature_view.feature]]
name = "f7"
type = "string"
[[feature_view.feature]]
name = "f0_log"
type = "float64"
transform = { kind = "log1p", input = "f0" }
[[feature_view.feature]]
name = "f7_bucket"
type = "int64"
transform = { kind = "hash_bucket", input = "f7", buckets = 100 }
"#;

pub fn features() -> Vec<String> {
    [
        "f0",
        "f1",
        "f2",
        "f3",
        "f4",
        "f5",
        "f6",
        "f7",
        "f0_log",
        "f7_bucket",
    ]
    .iter()
    .map(|f| format!("stats:{f}"))
    .collect()
}

pub fn open(data_dir: &Path, cache_bytes: u64) -> FeatureStore {
    let store = FeatureStore::open(
        data_dir,
        StoreConfig {
            online_cache_bytes: cache_bytes,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let migrations = data_dir.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("0001_bench.toml"), DEFINITIONS).unwrap();
    store.migrate(&migrations).unwrap();
    store
}

/// A row of `user` at `second` seconds after the epoch.
pub fn row(user: u64, second: i64) -> Json {
    json!({
        "user_id": format!("u{user}"),
        "event_timestamp": reprise_store::time::format_rfc3339(second * 1_000_000),
        "f0": (user % 1000) as i64, "f1": second, "f2": 3, "f3": -4,
        "f4": 0.5, "f5": user as f64 * 1.5, "f6": 2.25, "f7": format!("g{}", user % 17),
    })
}
