//! Online read of 1 entity × 10 features, in process, on RocksDB: warm
//! (moka cache hit) and through RocksDB (cache disabled).

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Map, Value as Json};

mod common;

fn bench(c: &mut Criterion) {
    let features = common::features();
    for (name, cache_bytes) in [
        ("online_read_1x10_warm_cache", 64 << 20),
        ("online_read_1x10_rocksdb", 0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = common::open(dir.path(), cache_bytes);
        for start in (0..10_000).step_by(1_000) {
            let rows: Vec<Json> = (start..start + 1_000)
                .map(|u| common::row(u, 1_000))
                .collect();
            store.push("stats", &rows, true).unwrap();
        }
        let entity: Vec<Map<String, Json>> =
            vec![json!({"user_id": "u4242"}).as_object().unwrap().clone()];
        store.online_features(&features, &entity).unwrap();
        c.bench_function(name, |b| {
            b.iter(|| store.online_features(&features, &entity).unwrap())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
