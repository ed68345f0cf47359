//! The large-snapshot measurement: HISTORY rows of a 10-feature view over
//! USERS users, then a snapshot of ENTITY_ROWS entity rows × 10 features,
//! written as Parquet to /dev/null-like sink. Prints timings; run under
//! `/usr/bin/time -v` to see peak memory.
//!
//! cargo run --release -p reprise-store --example snapshot_scale -- 10000000 1000000

use std::time::Instant;

use reprise_store::SnapshotSpec;
use serde_json::{json, Value as Json};

#[path = "../benches/common/mod.rs"]
mod common;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let history = args.first().copied().unwrap_or(10_000_000);
    let entity_rows = args.get(1).copied().unwrap_or(1_000_000);
    let users = (history / 10).max(1);
    let dir = std::env::var("SNAPSHOT_SCALE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("reprise-snapshot-scale"));
    let fresh = !dir.join("CURRENT").exists();
    let store = common::open(&dir, 64 << 20);

    if fresh {
        let start = Instant::now();
        let mut written = 0u64;
        // Ten rows per user, at ten different event times.
        for round in 0..10 {
            for first in (0..users).step_by(50_000) {
                let rows: Vec<Json> = (first..(first + 50_000).min(users))
                    .map(|u| common::row(u, 1_000 * (round + 1)))
                    .collect();
                written += rows.len() as u64;
                store.push("stats", &rows, true).unwrap();
            }
            eprintln!(
                "history: {written} rows in {:.1}s",
                start.elapsed().as_secs_f64()
            );
        }
        println!(
            "history rows: {written} in {:.1}s ({:.0} rows/s)",
            start.elapsed().as_secs_f64(),
            written as f64 / start.elapsed().as_secs_f64()
        );
    }

    let start = Instant::now();
    let rows = (0..entity_rows).map(|i| {
        let user = (i * 7_919) % users;
        Ok(json!({"user_id": format!("u{user}"), "event_timestamp": reprise_store::time::format_rfc3339(((i % 11) as i64 * 1_000 + 500) * 1_000_000), "label": i % 2}))
    });
    let spec = SnapshotSpec {
        features: common::features(),
        ..Default::default()
    };
    let info = store.create_snapshot(&spec, rows).unwrap();
    let stored = start.elapsed();
    let start = Instant::now();
    let count = store
        .write_snapshot_parquet(&info.id, std::io::sink())
        .unwrap();
    let computed = start.elapsed();
    println!(
        "snapshot: {count} entity rows x {} features; entity rows stored in {:.1}s, rows computed and written as Parquet in {:.1}s, total {:.1}s",
        spec.features.len(),
        stored.as_secs_f64(),
        computed.as_secs_f64(),
        (stored + computed).as_secs_f64()
    );
}
