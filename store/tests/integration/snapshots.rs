//! Snapshot behaviour users rely on: pinned versions, order, passthrough,
//! downloads, and rejected requests.

use reprise_store::{Cutoff, SnapshotSpec, StoreConfig, StoreError};
use serde_json::{json, Value as Json};

use crate::common::{
    snapshot_rows as rows_of, store, store_configured, ts, Kind, TestStore, DEFINITIONS,
};

fn entity_rows() -> Vec<Json> {
    vec![
        json!({"user_id": "u1", "event_timestamp": ts(100), "label": 1}),
        json!({"user_id": "u2", "event_timestamp": ts(100), "label": 0}),
        json!({"user_id": "u1", "event_timestamp": ts(50), "label": 0}),
    ]
}

#[test]
fn a_pinned_snapshot_ignores_later_corrections() {
    for kind in [Kind::Memory, Kind::Rocks] {
        let t = store(kind, 1_000);
        let s = &t.store;
        s.push(
            "a",
            &[
                json!({"user_id": "u1", "event_timestamp": ts(40), "x": 1}),
                json!({"user_id": "u2", "event_timestamp": ts(90), "x": 2}),
            ],
            true,
        )
        .unwrap();
        let spec = SnapshotSpec {
            features: vec!["a:x".into(), "a:x_log".into()],
            ..SnapshotSpec::default()
        };
        let first = s
            .create_snapshot(&spec, entity_rows().into_iter().map(Ok))
            .unwrap();
        let before = rows_of(s, &first.id);
        assert_eq!(before[0]["a__x"], json!(1));
        assert_eq!(before[1]["a__x"], json!(2));

        // Late corrections: same event time (newest write wins) and an earlier one.
        s.push(
            "a",
            &[
                json!({"user_id": "u1", "event_timestamp": ts(40), "x": 10}),
                json!({"user_id": "u2", "event_timestamp": ts(95), "x": 20}),
            ],
            true,
        )
        .unwrap();

        let pinned = SnapshotSpec {
            as_of_version: Some(first.store_version),
            ..spec.clone()
        };
        let again = s
            .create_snapshot(&pinned, entity_rows().into_iter().map(Ok))
            .unwrap();
        assert_eq!(
            rows_of(s, &again.id),
            before,
            "pinned snapshot equals the first, row for row"
        );
        assert_eq!(
            rows_of(s, &first.id),
            before,
            "re-reading the first gives the same rows"
        );

        let fresh = s
            .create_snapshot(&spec, entity_rows().into_iter().map(Ok))
            .unwrap();
        let after = rows_of(s, &fresh.id);
        assert_eq!(
            after[0]["a__x"],
            json!(10),
            "ties on event time go to the newest write"
        );
        assert_eq!(after[1]["a__x"], json!(20));
        assert_eq!(
            after[2]["a__x"],
            json!(10),
            "u1 at 50s sees the 40s correction"
        );
    }
}

#[test]
fn rows_come_back_in_input_order_with_passthrough_and_nulls() {
    let t = store(Kind::Memory, 1_000);
    let s = &t.store;
    s.push(
        "ui",
        &[json!({"user_id": "u1", "item_id": "i1", "event_timestamp": ts(10), "plays": 3})],
        true,
    )
    .unwrap();
    let spec = SnapshotSpec {
        features: vec!["ui:plays".into(), "b:y".into()],
        ..SnapshotSpec::default()
    };
    let rows = vec![
        json!({"user_id": "u1", "item_id": "i2", "event_timestamp": ts(20), "label": 0.5, "tag": "x"}),
        json!({"user_id": "u1", "item_id": "i1", "event_timestamp": ts(20), "label": 1}),
        json!({"user_id": "u1", "item_id": "i1", "event_timestamp": ts(5), "label": null}),
    ];
    let info = s.create_snapshot(&spec, rows.into_iter().map(Ok)).unwrap();
    assert_eq!(
        info.columns,
        [
            "user_id",
            "item_id",
            "event_timestamp",
            "label",
            "tag",
            "ui__plays",
            "b__y"
        ]
    );
    let got = rows_of(s, &info.id);
    assert_eq!(
        got[0],
        json!({"user_id": "u1", "item_id": "i2", "event_timestamp": ts(20), "label": 0.5, "tag": "x", "ui__plays": null, "b__y": null})
    );
    assert_eq!(got[1]["ui__plays"], json!(3));
    assert_eq!(
        got[2]["ui__plays"],
        Json::Null,
        "a row from the future is not visible"
    );
    assert_eq!(got[1]["tag"], Json::Null);
}

#[test]
fn created_cutoff_hides_rows_written_after_the_row_time() {
    let t = store(Kind::Memory, 500);
    let s = &t.store;
    // Written at clock 500s with event time 10s: late data.
    s.push(
        "a",
        &[json!({"user_id": "u1", "event_timestamp": ts(10), "x": 7})],
        false,
    )
    .unwrap();
    let rows = || vec![Ok(json!({"user_id": "u1", "event_timestamp": ts(100)}))];
    let created = s
        .create_snapshot(
            &SnapshotSpec {
                features: vec!["a:x".into()],
                ..Default::default()
            },
            rows(),
        )
        .unwrap();
    assert_eq!(rows_of(s, &created.id)[0]["a__x"], Json::Null);
    let event = SnapshotSpec {
        features: vec!["a:x".into()],
        cutoff: Cutoff::Event,
        ..Default::default()
    };
    let event = s.create_snapshot(&event, rows()).unwrap();
    assert_eq!(rows_of(s, &event.id)[0]["a__x"], json!(7));
}

#[test]
fn ttl_bounds_what_a_snapshot_sees() {
    let t = store(Kind::Memory, 0);
    let s = &t.store;
    s.push(
        "b",
        &[json!({"user_id": "u1", "event_timestamp": ts(0), "y": 1})],
        true,
    )
    .unwrap();
    let spec = SnapshotSpec {
        features: vec!["b:y".into()],
        ..Default::default()
    };
    let rows = vec![
        Ok(json!({"user_id": "u1", "event_timestamp": ts(99)})),
        Ok(json!({"user_id": "u1", "event_timestamp": ts(100)})),
    ];
    let info = s.create_snapshot(&spec, rows).unwrap();
    let got = rows_of(s, &info.id);
    assert_eq!(got[0]["b__y"], json!(1));
    assert_eq!(
        got[1]["b__y"],
        Json::Null,
        "ttl 100s: event time must be > row time - ttl"
    );
}

#[test]
fn bad_snapshot_requests_are_rejected_and_leave_nothing() {
    let t = store(Kind::Memory, 0);
    let s = &t.store;
    let spec = SnapshotSpec {
        features: vec!["a:x".into()],
        ..Default::default()
    };
    let err = s
        .create_snapshot(
            &spec,
            vec![
                Ok(json!({"user_id": "u1", "event_timestamp": ts(1)})),
                Ok(json!({"event_timestamp": ts(1)})),
            ],
        )
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::MissingField { field } if field == "entity_rows[1].user_id"),
        "{err}"
    );
    let err = s
        .create_snapshot(&spec, vec![Ok(json!({"user_id": "u1"}))])
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::MissingField { field } if field == "entity_rows[0].event_timestamp"),
        "{err}"
    );
    let future = SnapshotSpec {
        as_of_version: Some(s.version() + 1),
        ..spec.clone()
    };
    let err = s
        .create_snapshot(
            &future,
            vec![Ok(json!({"user_id": "u1", "event_timestamp": ts(1)}))],
        )
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidValue { field, .. } if field == "as_of_version"),
        "{err}"
    );
    let err = s
        .create_snapshot(
            &SnapshotSpec {
                features: vec!["a:nope".into()],
                ..Default::default()
            },
            Vec::new(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::UnknownFeature { field, .. } if field == "features[0]"),
        "{err}"
    );
    assert!(matches!(
        s.snapshot_info("nope"),
        Err(StoreError::UnknownSnapshot(_))
    ));
}

#[test]
fn large_snapshots_span_chunks_in_order_and_download_as_parquet() {
    // Entity rows kept from reading them to building output rows, and (a
    // budget of 0 bytes) read again.
    for kept_bytes in [StoreConfig::default().snapshot_kept_chunk_bytes, 0] {
        let config = StoreConfig {
            snapshot_kept_chunk_bytes: kept_bytes,
            ..StoreConfig::default()
        };
        large_snapshot_spans_chunks(store_configured(Kind::Rocks, DEFINITIONS, 0, config));
    }
}

fn large_snapshot_spans_chunks(t: TestStore) {
    let s = &t.store;
    let n = reprise_store::snapshot::ENTITY_ROW_CHUNK * 2 + 17;
    let writes: Vec<Json> = (0..100)
        .map(|u| json!({"user_id": format!("u{u}"), "event_timestamp": ts(u), "x": u}))
        .collect();
    s.push("a", &writes, true).unwrap();
    let rows = (0..n).map(|i| {
        Ok(json!({"user_id": format!("u{}", i % 150), "event_timestamp": ts(1_000), "i": i}))
    });
    let spec = SnapshotSpec {
        features: vec!["a:x".into()],
        ..Default::default()
    };
    let info = s.create_snapshot(&spec, rows).unwrap();
    assert_eq!(info.rows as usize, n);
    let got = rows_of(s, &info.id);
    assert_eq!(got.len(), n);
    for (i, row) in got.iter().enumerate() {
        assert_eq!(row["i"], json!(i));
        let u = i % 150;
        assert_eq!(row["a__x"], if u < 100 { json!(u) } else { Json::Null });
    }

    let mut parquet = Vec::new();
    assert_eq!(
        s.write_snapshot_parquet(&info.id, &mut parquet).unwrap() as usize,
        n
    );
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(parquet),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut total = 0;
    for batch in reader {
        let batch = batch.unwrap();
        let names: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["user_id", "event_timestamp", "i", "a__x"]);
        total += batch.num_rows();
    }
    assert_eq!(total, n);
}

#[test]
fn history_rows_stream_from_an_entity_in_key_order() {
    let t = crate::common::store(crate::common::Kind::Rocks, 100);
    let rows: Vec<serde_json::Value> = ["u3", "u1", "u2", "u1"]
        .iter()
        .enumerate()
        .map(|(i, u)| serde_json::json!({"user_id": u, "event_timestamp": crate::common::ts(i as i64), "x": i}))
        .collect();
    t.store.push("a", &rows, false).unwrap();
    let keys = |from: &[&str]| -> Vec<(String, i64)> {
        t.store
            .history_rows("a", t.store.version(), from)
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (r.keys[0].clone(), r.event_ts / 1_000_000)
            })
            .collect()
    };
    let all = vec![
        ("u1".into(), 1),
        ("u1".into(), 3),
        ("u2".into(), 2),
        ("u3".into(), 0),
    ];
    assert_eq!(keys(&[]), all);
    assert_eq!(keys(&["u2"]), all[2..].to_vec());
    // Keys are length-prefixed: a longer id sorts after every shorter one
    // (the served log's request ids all have one length).
    assert!(keys(&["u15"]).is_empty());
    assert!(keys(&["u4"]).is_empty());
    // Pinned below the push: nothing.
    assert_eq!(t.store.history_rows("a", 0, &[]).unwrap().count(), 0);
    assert!(t.store.history_rows("nope", 1, &[]).is_err());
}

#[test]
fn one_feature_under_two_columns_fills_both() {
    let t = store(Kind::Memory, 100);
    t.store
        .push(
            "a",
            &[json!({"user_id": "u1", "event_timestamp": ts(10), "x": 7})],
            false,
        )
        .unwrap();
    let spec = SnapshotSpec {
        features: vec!["a:x".into(), "a@1:x".into(), "a:x_log".into()],
        as_of_version: None,
        cutoff: Cutoff::Created,
        owner: String::new(),
    };
    let info = t
        .store
        .create_snapshot(
            &spec,
            [Ok(json!({"user_id": "u1", "event_timestamp": ts(100)}))],
        )
        .unwrap();
    let mut out = Vec::new();
    t.store.write_snapshot_jsonl(&info.id, &mut out).unwrap();
    let row: Json = serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(row["a__x"], json!(7));
    assert_eq!(row["a_v1__x"], json!(7));
    assert!(row["a__x_log"].as_f64().is_some());
}

#[test]
fn a_deleted_snapshot_is_gone_and_others_stay() {
    let t = store(Kind::Rocks, 100);
    t.store
        .push(
            "a",
            &[json!({"user_id": "u1", "event_timestamp": ts(10), "x": 7})],
            false,
        )
        .unwrap();
    let spec = SnapshotSpec {
        features: vec!["a:x".into()],
        as_of_version: None,
        cutoff: Cutoff::Created,
        owner: String::new(),
    };
    let rows = || (0..5000).map(|_| Ok(json!({"user_id": "u1", "event_timestamp": ts(100)})));
    let (first, second) = (
        t.store.create_snapshot(&spec, rows()).unwrap(),
        t.store.create_snapshot(&spec, rows()).unwrap(),
    );
    assert_eq!(t.store.snapshot_ids().unwrap().len(), 2);
    t.store.delete_snapshot(&first.id).unwrap();
    assert!(matches!(
        t.store.snapshot_info(&first.id),
        Err(StoreError::UnknownSnapshot(_))
    ));
    assert!(t
        .store
        .write_snapshot_jsonl(&first.id, &mut Vec::new())
        .is_err());
    assert_eq!(t.store.snapshot_ids().unwrap(), vec![second.id.clone()]);
    let mut out = Vec::new();
    assert_eq!(
        t.store.write_snapshot_jsonl(&second.id, &mut out).unwrap(),
        5000
    );
    assert!(matches!(
        t.store.delete_snapshot(&first.id),
        Err(StoreError::UnknownSnapshot(_))
    ));
}

/// A snapshot whose creation was cut short (entity rows written, no
/// metadata) is deleted at the next open; finished ones stay.
#[test]
fn rows_of_an_unfinished_snapshot_are_deleted_at_open() {
    use reprise_store::cf::Cf;
    use reprise_store::engine::{Engine, RocksEngine, WriteBatch};
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        reprise_store::FeatureStore::with_engine(
            Box::new(RocksEngine::open(dir.path()).unwrap()),
            reprise_store::StoreConfig::default(),
        )
        .unwrap()
    };
    let store = open();
    let migrations = tempfile::tempdir().unwrap();
    std::fs::write(
        migrations.path().join("0001_test.toml"),
        crate::common::DEFINITIONS,
    )
    .unwrap();
    store.migrate(migrations.path()).unwrap();
    let spec = SnapshotSpec {
        features: vec!["a:x".into()],
        ..Default::default()
    };
    let rows = (0..10).map(|_| Ok(json!({"user_id": "u1", "event_timestamp": ts(100)})));
    let finished = store.create_snapshot(&spec, rows).unwrap().id;
    drop(store);
    let unfinished = "0123456789abcdef0123456789abcdef";
    {
        let engine = RocksEngine::open(dir.path()).unwrap();
        let mut batch = WriteBatch::default();
        for chunk in 0..3u32 {
            let key = [unfinished.as_bytes(), b"\0rows", &chunk.to_be_bytes()].concat();
            batch.put(Cf::Snapshots, key, vec![1, 2, 3]);
        }
        engine.write(batch).unwrap();
        assert_eq!(
            engine
                .scan_prefix(Cf::Snapshots, unfinished.as_bytes())
                .unwrap()
                .len(),
            3
        );
    }
    let store = open();
    drop(store);
    let engine = RocksEngine::open(dir.path()).unwrap();
    assert!(engine
        .scan_prefix(Cf::Snapshots, unfinished.as_bytes())
        .unwrap()
        .is_empty());
    drop(engine);
    let store = open();
    assert_eq!(store.snapshot_ids().unwrap(), vec![finished.clone()]);
    let mut read = 0;
    store
        .read_snapshot(&finished, |_, rows| {
            read += rows.len();
            Ok(())
        })
        .unwrap();
    assert_eq!(read, 10);
}
