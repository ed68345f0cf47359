//! Migrations: applied in order once, checksums enforced, registry replayed
//! on reopen, views grow without breaking old rows.

use reprise_store::engine::RocksEngine;
use reprise_store::{FeatureStatus, FeatureStore, StoreConfig, StoreError, Value};
use serde_json::json;

use crate::common::{object, ts, DEFINITIONS};

fn open(dir: &std::path::Path) -> FeatureStore {
    FeatureStore::with_engine(
        Box::new(RocksEngine::open(dir).unwrap()),
        StoreConfig::default(),
    )
    .unwrap()
}

#[test]
fn applied_files_are_recorded_and_an_edited_one_stops_start_up() {
    let data = tempfile::tempdir().unwrap();
    let migrations = tempfile::tempdir().unwrap();
    std::fs::write(migrations.path().join("0001_base.toml"), DEFINITIONS).unwrap();
    std::fs::write(migrations.path().join("notes.md"), "ignored").unwrap();
    {
        let store = open(data.path());
        assert_eq!(
            store.migrate(migrations.path()).unwrap(),
            ["0001_base.toml"]
        );
        assert_eq!(
            store.migrate(migrations.path()).unwrap(),
            Vec::<String>::new(),
            "applied once"
        );
        store
            .push(
                "a",
                &[json!({"user_id": "u1", "event_timestamp": ts(1), "x": 5})],
                false,
            )
            .unwrap();
    }
    // A later file appends a feature to view a@1 and adds a@2 with a new type.
    std::fs::write(
        migrations.path().join("0002_grow.toml"),
        format!(
            "{}\n[[feature_view.feature]]\nname = \"z\"\ntype = \"string\"\n\n{}",
            &DEFINITIONS[DEFINITIONS.find("[[feature_view]]").unwrap()..DEFINITIONS.find("[[feature_view]]\nname = \"b\"").unwrap()].trim_end(),
            "[[feature_view]]\nname = \"a\"\nversion = 2\nentities = [\"user\"]\nttl = \"0\"\n[[feature_view.feature]]\nname = \"x\"\ntype = \"float64\"\n"
        ),
    )
    .unwrap();
    {
        let store = open(data.path());
        assert_eq!(
            store.registry().view("a").unwrap().version,
            1,
            "registry replayed from the store"
        );
        assert_eq!(
            store.migrate(migrations.path()).unwrap(),
            ["0002_grow.toml"]
        );
        let registry = store.registry();
        assert_eq!(registry.view("a@1").unwrap().features.len(), 3);
        assert_eq!(registry.view("a").unwrap().version, 2);
        // Old rows of the grown view still read; the new feature is null.
        let read = store
            .online_features(
                &["a@1:x".into(), "a@1:z".into()],
                &[object(json!({"user_id": "u1"}))],
            )
            .unwrap();
        assert_eq!(read.rows[0].values[0], Some(Value::Int64(5)));
        assert_eq!(read.rows[0].statuses[1], FeatureStatus::NullValue);
    }
    // Editing an applied file is refused with a clear error.
    std::fs::write(
        migrations.path().join("0001_base.toml"),
        DEFINITIONS.replace("100s", "200s"),
    )
    .unwrap();
    let store = open(data.path());
    let err = store.migrate(migrations.path()).unwrap_err();
    assert!(
        matches!(&err, StoreError::MigrationEdited { file, .. } if file == "0001_base.toml"),
        "{err}"
    );
    assert!(err.to_string().contains("new numbered file"), "{err}");
}

#[test]
fn a_bad_definition_applies_nothing() {
    let data = tempfile::tempdir().unwrap();
    let migrations = tempfile::tempdir().unwrap();
    std::fs::write(migrations.path().join("0001_base.toml"), DEFINITIONS).unwrap();
    std::fs::write(
        migrations.path().join("0002_bad.toml"),
        "[[feature_view]]\nname = \"c\"\nversion = 1\nentities = [\"user\"]\nttl = \"1w\"\n",
    )
    .unwrap();
    let store = open(data.path());
    let err = store.migrate(migrations.path()).unwrap_err();
    assert!(err.to_string().contains("0002_bad.toml"), "{err}");
    assert!(store.registry().view("c").is_none());
    assert!(
        store.registry().view("a").is_some(),
        "earlier files stay applied"
    );
    drop(store);
    let store = open(data.path());
    assert!(store.registry().view("c").is_none());
    assert_eq!(
        store.verify_migrations(migrations.path()).unwrap(),
        ["0002_bad.toml"],
        "still pending"
    );
}

#[test]
fn definitions_registered_at_run_time_survive_a_restart_and_do_not_block_migrations() {
    let data = tempfile::tempdir().unwrap();
    let migrations = tempfile::tempdir().unwrap();
    std::fs::write(migrations.path().join("0001_base.toml"), DEFINITIONS).unwrap();
    let runtime_view = "[[feature_view]]\nname = \"emb\"\nversion = 1\nentities = [\"user\"]\nttl = \"0\"\n[[feature_view.feature]]\nname = \"vector\"\ntype = \"float_vector\"\ndim = 2\n";
    {
        let store = open(data.path());
        store.migrate(migrations.path()).unwrap();
        let before = store.version();
        let version = store.register_definitions("emb_v1", runtime_view).unwrap();
        assert_eq!(version, before + 1, "a registration is one store version");
        assert!(matches!(
            store.register_definitions("emb_v1", runtime_view),
            Err(StoreError::Definition { .. })
        ));
        store
            .push(
                "emb@1",
                &[json!({"user_id": "u1", "event_timestamp": ts(1), "vector": [0.5, -1.0]})],
                false,
            )
            .unwrap();
        // A view of unknown entities is refused and leaves nothing behind.
        let bad = runtime_view.replace("[\"user\"]", "[\"nobody\"]");
        assert!(store.register_definitions("bad", &bad).is_err());
        assert!(store.registry().view("emb@1").is_some());
    }
    // A later migration file still applies; the run-time view is replayed.
    std::fs::write(
        migrations.path().join("0002_more.toml"),
        "[[feature_view]]\nname = \"c\"\nversion = 1\nentities = [\"user\"]\nttl = \"0\"\n[[feature_view.feature]]\nname = \"n\"\ntype = \"int64\"\n",
    )
    .unwrap();
    let store = open(data.path());
    assert_eq!(
        store.migrate(migrations.path()).unwrap(),
        ["0002_more.toml"]
    );
    let registry = store.registry();
    assert!(registry.view("emb@1").is_some() && registry.view("c").is_some());
    let rows = store.view_history("emb", store.version()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].keys, ["u1"]);
    assert_eq!(
        rows[0].values,
        vec![Some(Value::FloatVector(vec![0.5, -1.0]))]
    );
}
