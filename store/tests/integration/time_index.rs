//! Events views keep a time index: a window of events is one key range,
//! equal to filtering the whole history; stores made before it existed are
//! indexed once at open.

use reprise_store::cf::Cf;
use reprise_store::engine::{Engine, RocksEngine, WriteBatch};
use reprise_store::time::Micros;
use reprise_store::{FeatureStore, StoreConfig, Value};
use serde_json::json;

use crate::aggregations::EVENTS;
use crate::common::{seconds, store, store_with, ts, Kind};

fn window(store: &FeatureStore, version: u64, from: Micros, to: Micros) -> Vec<(Micros, i64)> {
    let mut out = Vec::new();
    let indexed = store
        .for_each_event_between("play", version, from, to, |at, values| {
            let Some(Value::Int64(s)) = values[0] else {
                panic!("seconds")
            };
            out.push((at, s));
            Ok(())
        })
        .unwrap();
    assert!(indexed);
    out
}

fn filtered(store: &FeatureStore, version: u64, from: Micros, to: Micros) -> Vec<(Micros, i64)> {
    let mut out: Vec<(Micros, i64)> = store
        .view_history("play", version)
        .unwrap()
        .into_iter()
        .filter(|r| r.event_ts > from && r.event_ts <= to)
        .map(|r| match r.values[0] {
            Some(Value::Int64(s)) => (r.event_ts, s),
            _ => panic!("seconds"),
        })
        .collect();
    // Ties on event time in write order (seconds grow with the version).
    out.sort();
    out
}

fn push_events(store: &FeatureStore, n: i64) -> Vec<u64> {
    (0..n)
        .map(|i| {
            // Out of order, with repeated times, several users and items.
            let at = (i * 37) % 101;
            let row = json!({"user_id": format!("u{}", i % 7), "item_id": format!("i{}", i % 5),
                             "event_timestamp": ts(at), "seconds": i, "device": "tv", "tags": []});
            store.push("play", &[row], true).unwrap().store_version
        })
        .collect()
}

#[test]
fn an_event_window_equals_the_filtered_history_at_every_pinned_version() {
    for kind in [Kind::Memory, Kind::Rocks] {
        let t = store_with(kind, EVENTS, 1_000);
        let versions = push_events(&t.store, 300);
        for version in [versions[0], versions[150], *versions.last().unwrap()] {
            for (from, to) in [(-1, 100), (10, 20), (50, 50), (99, 500)] {
                let (from, to) = (seconds(from), seconds(to));
                assert_eq!(
                    window(&t.store, version, from, to),
                    filtered(&t.store, version, from, to)
                );
            }
        }
        assert!(!window(&t.store, t.store.version(), seconds(10), seconds(20)).is_empty());
        // A state view has no time index.
        let states = store(kind, 1_000);
        let version = states.store.version();
        assert!(!states
            .store
            .for_each_event_between("a", version, 0, seconds(100), |_, _| Ok(()))
            .unwrap());
    }
}

#[test]
fn a_store_made_before_time_indexes_is_indexed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = tempfile::tempdir().unwrap();
    std::fs::write(migrations.path().join("0001_events.toml"), EVENTS).unwrap();
    let view_id = {
        let engine = RocksEngine::open(dir.path()).unwrap();
        let store = FeatureStore::with_engine(Box::new(engine), StoreConfig::default()).unwrap();
        store.migrate(migrations.path()).unwrap();
        push_events(&store, 200);
        let id = store.registry().view("play").unwrap().id;
        id
    };
    // What an older store holds: no time index and no record of one.
    {
        let engine = RocksEngine::open(dir.path()).unwrap();
        let mut prefix = view_id.to_be_bytes().to_vec();
        prefix.push(0);
        let entries = engine.scan_prefix(Cf::AggIndex, &prefix).unwrap();
        assert_eq!(entries.len(), 200);
        let mut batch = WriteBatch::default();
        for (key, _) in entries {
            batch.delete(Cf::AggIndex, key);
        }
        batch.delete(Cf::Meta, b"time_index/v1".to_vec());
        engine.write(batch).unwrap();
    }
    let engine = RocksEngine::open(dir.path()).unwrap();
    let store = FeatureStore::with_engine(Box::new(engine), StoreConfig::default()).unwrap();
    let version = store.version();
    let all = window(&store, version, seconds(-1), seconds(1_000));
    assert_eq!(all.len(), 200);
    assert_eq!(all, filtered(&store, version, seconds(-1), seconds(1_000)));
}
