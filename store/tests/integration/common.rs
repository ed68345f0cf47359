//! Helpers shared by the integration tests.

use reprise_store::engine::{Engine, MemoryEngine, RocksEngine};
use reprise_store::time::{Clock, Micros, MICROS_PER_SECOND};
use reprise_store::{FeatureStore, StoreConfig};
use serde_json::{Map, Value as Json};
use tempfile::TempDir;

/// Definitions used by most tests: two user views (one with a TTL) and an
/// interaction view keyed by (user, item).
pub const DEFINITIONS: &str = r#"
[[entity]]
name = "user"
join_key = "user_id"

[[entity]]
name = "item"
join_key = "item_id"

[[feature_view]]
name = "a"
version = 1
entities = ["user"]
ttl = "0"

[[feature_view.feature]]
name = "x"
type = "int64"

[[feature_view.feature]]
name = "x_log"
type = "float64"
transform = { kind = "log1p", input = "x" }

[[feature_view]]
name = "b"
version = 1
entities = ["user"]
ttl = "100s"

[[feature_view.feature]]
name = "y"
type = "int64"

[[feature_view]]
name = "ui"
version = 1
entities = ["user", "item"]
ttl = "0"

[[feature_view.feature]]
name = "plays"
type = "int64"
"#;

/// Which engine a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Memory,
    Rocks,
}

pub struct TestStore {
    pub store: FeatureStore,
    pub clock: Clock,
    _dirs: Vec<TempDir>,
}

pub fn engine(kind: Kind) -> (Box<dyn Engine>, Option<TempDir>) {
    match kind {
        Kind::Memory => (Box::new(MemoryEngine::new()), None),
        Kind::Rocks => {
            let dir = tempfile::tempdir().unwrap();
            (Box::new(RocksEngine::open(dir.path()).unwrap()), Some(dir))
        }
    }
}

/// A migrated store with [`DEFINITIONS`] and a manual clock at `start` seconds.
pub fn store(kind: Kind, start_seconds: i64) -> TestStore {
    store_with(kind, DEFINITIONS, start_seconds)
}

pub fn store_with(kind: Kind, definitions: &str, start_seconds: i64) -> TestStore {
    store_configured(kind, definitions, start_seconds, StoreConfig::default())
}

/// [`store_with`] under `config` (its clock replaced by a manual one).
pub fn store_configured(
    kind: Kind,
    definitions: &str,
    start_seconds: i64,
    config: StoreConfig,
) -> TestStore {
    let (engine, data_dir) = engine(kind);
    let clock = Clock::manual(seconds(start_seconds));
    let store = FeatureStore::with_engine(
        engine,
        StoreConfig {
            clock: clock.clone(),
            ..config
        },
    )
    .unwrap();
    let migrations = tempfile::tempdir().unwrap();
    std::fs::write(migrations.path().join("0001_test.toml"), definitions).unwrap();
    store.migrate(migrations.path()).unwrap();
    let mut dirs = vec![migrations];
    dirs.extend(data_dir);
    TestStore {
        store,
        clock,
        _dirs: dirs,
    }
}

pub fn seconds(s: i64) -> Micros {
    s * MICROS_PER_SECOND
}

/// A snapshot's rows, read as JSON lines.
pub fn snapshot_rows(store: &FeatureStore, id: &str) -> Vec<Json> {
    let mut out = Vec::new();
    store.write_snapshot_jsonl(id, &mut out).unwrap();
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

pub fn ts(s: i64) -> String {
    reprise_store::time::format_rfc3339(seconds(s))
}

pub fn object(json: Json) -> Map<String, Json> {
    match json {
        Json::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}
