//! Online read of 1 entity × 12 declared aggregate features (count, sum and
//! mean of an event column over 1h, 1d, 7d and 30d), in process, on
//! RocksDB, for a user with 100 events in the last 30 days (and 100 older
//! ones the read must not visit) among 10,000 users.

use criterion::{criterion_group, criterion_main, Criterion};
use reprise_store::time::{now_micros, MICROS_PER_SECOND};
use reprise_store::{FeatureStore, StoreConfig};
use serde_json::{json, Map, Value as Json};

const DEFINITIONS: &str = include_str!("aggregations.toml");

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = FeatureStore::open(dir.path(), StoreConfig::default()).unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("0001_bench.toml"), DEFINITIONS).unwrap();
    store.migrate(&migrations).unwrap();
    let now = now_micros();
    let day = 86_400 * MICROS_PER_SECOND;
    // 200 events per user over 60 days: 100 in the widest window.
    for first in (0..10_000u64).step_by(500) {
        let rows: Vec<Json> = (first..first + 500)
            .flat_map(|u| {
                (0..200i64).map(move |e| {
                    json!({"user_id": format!("u{u}"), "item_id": format!("i{}", (u as i64 * 31 + e) % 5000),
                           "event_timestamp": reprise_store::time::format_rfc3339(now - (e * 60 * day) / 200 - 1),
                           "seconds": 30 + e})
                })
            })
            .collect();
        store.push("play", &rows, true).unwrap();
    }
    let features: Vec<String> = ["plays", "seconds_sum", "seconds_mean"]
        .iter()
        .flat_map(|f| ["1h", "1d", "7d", "30d"].map(|w| format!("user_plays:{f}_{w}")))
        .collect();
    let entity: Vec<Map<String, Json>> =
        vec![json!({"user_id": "u4242"}).as_object().unwrap().clone()];
    let row = store.online_features(&features, &entity).unwrap();
    assert_eq!(
        row.rows[0].values[3],
        Some(reprise_store::Value::Int64(100))
    );
    c.bench_function("online_read_1x12_aggregates_rocksdb", |b| {
        b.iter(|| store.online_features(&features, &entity).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
