//! An old view version can be retired: its rows are deleted and reads of
//! it are refused with `expired` (a snapshot that named it too), across a
//! reopen; the newest version and aggregation sources cannot be.

use reprise_store::engine::RocksEngine;
use reprise_store::{FeatureStore, SnapshotSpec, StoreConfig, StoreError};
use serde_json::json;

use crate::common::{object, ts};

const V1: &str = r#"
[[entity]]
name = "user"
join_key = "user_id"

[[feature_view]]
name = "emb"
version = 1
entities = ["user"]
ttl = "0"

[[feature_view.feature]]
name = "v"
type = "float64"
"#;

const V2: &str = r#"
[[feature_view]]
name = "emb"
version = 2
entities = ["user"]
ttl = "0"

[[feature_view.feature]]
name = "v"
type = "float64"
"#;

fn expired<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Expired { field, message }) => format!("{field}: {message}"),
        other => panic!("expected expired, got {other:?}"),
    }
}

#[test]
fn a_retired_version_is_gone_and_refused_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let engine = RocksEngine::open(dir.path()).unwrap();
        FeatureStore::with_engine(Box::new(engine), StoreConfig::default()).unwrap()
    };
    let store = open();
    let migrations = tempfile::tempdir().unwrap();
    std::fs::write(migrations.path().join("0001_v1.toml"), V1).unwrap();
    std::fs::write(migrations.path().join("0002_v2.toml"), V2).unwrap();
    store.migrate(migrations.path()).unwrap();
    for view in ["emb@1", "emb@2"] {
        let rows: Vec<_> = (0..50)
            .map(|u| json!({"user_id": format!("u{u}"), "event_timestamp": ts(1), "v": u as f64}))
            .collect();
        store.push(view, &rows, true).unwrap();
    }
    let spec = SnapshotSpec {
        features: vec!["emb@1:v".into()],
        ..Default::default()
    };
    let entity = json!({"user_id": "u3", "event_timestamp": ts(5)});
    let snapshot = store.create_snapshot(&spec, vec![Ok(entity)]).unwrap().id;
    let user = [object(json!({"user_id": "u3"}))];
    let read = |store: &FeatureStore, r: &str| store.online_features(&[r.to_owned()], &user);
    assert!(read(&store, "emb@1:v").is_ok());

    for newest in ["emb@2", "emb"] {
        assert!(matches!(
            store.retire_view_version(newest),
            Err(StoreError::InvalidValue { .. })
        ));
    }
    assert!(store.retire_view_version("emb@1").unwrap());
    assert!(!store.retire_view_version("emb@1").unwrap(), "once");
    let check = |store: &FeatureStore| {
        let message = expired(read(store, "emb@1:v"));
        assert!(
            message.starts_with("features[0]: view `emb@1` was retired"),
            "{message}"
        );
        expired(store.read_snapshot(&snapshot, |_, _| Ok(())));
        expired(store.create_snapshot(&spec, vec![]));
        expired(store.view_history("emb@1", store.version()));
        assert_eq!(
            read(store, "emb:v").unwrap().rows[0].values[0],
            Some(reprise_store::Value::Float64(3.0))
        );
        assert_eq!(
            store.view_history("emb@2", store.version()).unwrap().len(),
            50
        );
    };
    check(&store);
    // A push to it is refused too (its rows would be dropped).
    let row = json!({"user_id": "u1", "event_timestamp": ts(2), "v": 1.0});
    expired(store.push("emb@1", &[row], false));
    drop(store);
    check(&open());
}

#[test]
fn a_version_a_lookup_reads_cannot_be_retired() {
    let dir = tempfile::tempdir().unwrap();
    let store = FeatureStore::with_engine(
        Box::new(RocksEngine::open(dir.path()).unwrap()),
        StoreConfig::default(),
    )
    .unwrap();
    let migrations = tempfile::tempdir().unwrap();
    std::fs::write(migrations.path().join("0001_v1.toml"), V1).unwrap();
    let plays = r#"
[[feature_view]]
name = "plays"
version = 1
kind = "events"
entities = ["user"]
ttl = "0"

[[feature_view.feature]]
name = "seconds"
type = "int64"

[[feature_view.lookup]]
name = "v_then"
ref = "emb@1:v"
"#;
    std::fs::write(migrations.path().join("0002_plays.toml"), plays).unwrap();
    std::fs::write(migrations.path().join("0003_v2.toml"), V2).unwrap();
    store.migrate(migrations.path()).unwrap();
    match store.retire_view_version("emb@1") {
        Err(StoreError::InvalidValue { message, .. }) => {
            assert!(message.contains("lookup of `plays@1`"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}
