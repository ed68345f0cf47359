//! Models are versioned per kind and load back exactly.

use std::collections::HashMap;

use prost::Message;
use reprise_store::engine::RocksEngine;
use reprise_store::proto::{Matrix, ModelRecord};
use reprise_store::{FeatureStore, StoreConfig, StoreError};

fn open(dir: &std::path::Path) -> FeatureStore {
    FeatureStore::with_engine(
        Box::new(RocksEngine::open(dir).unwrap()),
        StoreConfig::default(),
    )
    .unwrap()
}

fn embeddings(seed: f32) -> ModelRecord {
    let factors = Matrix {
        rows: 2,
        cols: 3,
        values: vec![seed, -0.1, 1e-7, 3.0, f32::MIN_POSITIVE, -seed],
        row_ids: vec!["i1".into(), "i2".into()],
    };
    ModelRecord {
        kind: "als".into(),
        training_snapshot_id: "snap-1".into(),
        store_version: 42,
        feature_refs: vec!["ml_rating:liked".into()],
        hyperparameters_json: r#"{"factors":3}"#.into(),
        metrics: HashMap::from([("ndcg@10".to_owned(), 0.193)]),
        code_version: env!("CARGO_PKG_VERSION").into(),
        payload: factors.encode_to_vec(),
        ..Default::default()
    }
}

#[test]
fn models_are_versioned_per_kind_and_load_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let saved = {
        let store = open(dir.path());
        let first = store.save_model(embeddings(0.5)).unwrap();
        let second = store.save_model(embeddings(0.25)).unwrap();
        let ranker = store
            .save_model(ModelRecord {
                kind: "ranker".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            (first.as_str(), second.as_str(), ranker.as_str()),
            ("als-1", "als-2", "ranker-1")
        );
        let err = store
            .save_model(ModelRecord {
                kind: "Bad Kind".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(err.field(), Some("kind"));
        store.load_model("als-2").unwrap()
    };
    // After a restart, every version still loads, bit for bit.
    let store = open(dir.path());
    let loaded = store.load_model("als-2").unwrap();
    assert_eq!(loaded, saved);
    let factors = Matrix::decode(loaded.payload.as_slice()).unwrap();
    let expected = Matrix::decode(embeddings(0.25).payload.as_slice()).unwrap();
    let bits = |m: &Matrix| m.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&factors), bits(&expected));
    assert_eq!(loaded.metrics["ndcg@10"], 0.193);
    let versions: Vec<String> = store
        .models()
        .unwrap()
        .into_iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions.len(), 3);
    assert!(versions.contains(&"als-1".to_owned()) && versions.contains(&"ranker-1".to_owned()));
    assert_eq!(
        store.save_model(embeddings(1.0)).unwrap(),
        "als-3",
        "counters survive restarts"
    );
    assert!(matches!(
        store.load_model("als-9"),
        Err(StoreError::UnknownModel(_))
    ));
}
