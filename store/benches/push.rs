//! Bulk push to RocksDB with durability on (WAL synced per batch): batches
//! of 10,000 rows × 8 raw features.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value as Json;

mod common;

const BATCH: u64 = 10_000;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), 64 << 20);
    let mut group = c.benchmark_group("push");
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(20);
    let mut second = 0;
    group.bench_function("push_10k_rows_synced", |b| {
        b.iter_batched(
            || {
                second += 1;
                (0..BATCH)
                    .map(|u| common::row(u, second))
                    .collect::<Vec<Json>>()
            },
            |rows| store.push("stats", &rows, true).unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
