//! An acknowledged write survives SIGKILL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::server::{an_hour_ago, Server};

#[test]
fn every_acknowledged_batch_is_readable_after_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let acknowledged: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let client = server.client.clone();
            let acknowledged = Arc::clone(&acknowledged);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let time = an_hour_ago();
                let mut n = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let user = format!("w{w}-{n}");
                    let rows: Vec<_> = (0..50)
                        .map(|i| json!({"user_id": format!("{user}-{i}"), "event_timestamp": time, "plays_7d": n}))
                        .collect();
                    match client.push("user_stats", &rows, true) {
                        Ok(_) => acknowledged.lock().unwrap().push((user, n)),
                        Err(_) => break, // the server is gone
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 10,
        "only {} batches acknowledged",
        acknowledged.len()
    );

    let server = Server::start(data.path(), &[]);
    for chunk in acknowledged.chunks(50) {
        let entities: Vec<_> = chunk
            .iter()
            .flat_map(|(user, _)| {
                [
                    json!({"user_id": format!("{user}-0")}),
                    json!({"user_id": format!("{user}-49")}),
                ]
            })
            .collect();
        let read = server
            .client
            .online_features(&["user_stats:plays_7d"], &entities)
            .unwrap();
        for (i, (user, n)) in chunk.iter().enumerate() {
            for row in &read.rows[2 * i..2 * i + 2] {
                assert_eq!(row.values[0], json!(n), "batch {user} lost after SIGKILL");
            }
        }
    }
}

#[test]
fn a_kill_during_a_compaction_or_a_backup_loses_nothing_acknowledged() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut acknowledged: Vec<(String, i64)> = Vec::new();
    let time = an_hour_ago();
    for round in 0..2 {
        let server = Server::start(data.path(), &[]);
        for n in 0..40i64 {
            let user = format!("r{round}-{n}");
            let rows: Vec<_> = (0..200)
                .map(|i| json!({"user_id": format!("{user}-{i}"), "event_timestamp": time, "plays_7d": n}))
                .collect();
            server.client.push("user_stats", &rows, true).unwrap();
            acknowledged.push((user, n));
        }
        // Round 0 dies in a compaction, round 1 in a backup.
        let (path, body) = if round == 0 {
            ("/v1/admin/compact", json!({}))
        } else {
            let dir = work.path().join("interrupted-backup");
            ("/v1/admin/backup", json!({"dir": dir.to_str().unwrap()}))
        };
        let client = server.client.clone();
        let request = std::thread::spawn(move || {
            let _ = client.post_bytes(path, body.to_string().as_bytes());
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        server.kill();
        let _ = request.join();
    }
    let server = Server::start(data.path(), &[]);
    for chunk in acknowledged.chunks(50) {
        let entities: Vec<_> = chunk
            .iter()
            .map(|(user, _)| json!({"user_id": format!("{user}-199")}))
            .collect();
        let read = server
            .client
            .online_features(&["user_stats:plays_7d"], &entities)
            .unwrap();
        for ((user, n), row) in chunk.iter().zip(&read.rows) {
            assert_eq!(row.values[0], json!(n), "batch {user} lost");
        }
    }
    // A backup after the interrupted one works (to a new directory).
    let dir = work.path().join("backup-after");
    let (status, body) = server.post("/v1/admin/backup", &json!({"dir": dir.to_str().unwrap()}));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_created_snapshot_is_readable_after_sigkill() {
    // A small snapshot's entity rows are written with its metadata in one
    // logged batch; a large one's are written without the write-ahead log
    // and made durable before the metadata that makes it readable.
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let time = an_hour_ago();
    let rows: Vec<_> = (0..100)
        .map(|i| json!({"user_id": format!("u{i}"), "event_timestamp": time, "plays_7d": i}))
        .collect();
    server.client.push("user_stats", &rows, true).unwrap();
    // Three stored chunks of entity rows, and 18 (past one write of 16).
    let sizes = [10_000, 70_000];
    let ids: Vec<String> = sizes
        .iter()
        .map(|size| {
            let entity_rows: Vec<_> = (0..*size)
                .map(|i| json!({"user_id": format!("u{}", i % 100), "event_timestamp": time}))
                .collect();
            let (status, snapshot) = server.post(
                "/v1/snapshots",
                &json!({"features": ["user_stats:plays_7d"], "entity_rows": entity_rows, "cutoff": "event"}),
            );
            assert_eq!(status, 201, "{snapshot}");
            snapshot["snapshot_id"].as_str().unwrap().to_owned()
        })
        .collect();
    server.kill();

    let server = Server::start(data.path(), &[]);
    for (id, size) in ids.iter().zip(sizes) {
        let (status, text) = server.get_text(&format!("/v1/snapshots/{id}/rows?format=jsonl"));
        assert_eq!(status, 200, "{text}");
        let plays: Vec<i64> = text
            .lines()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).unwrap();
                row["user_stats__plays_7d"].as_i64().unwrap()
            })
            .collect();
        let expected: Vec<i64> = (0..size).map(|i| i % 100).collect();
        assert_eq!(plays, expected, "snapshot of {size} rows");
    }
}

#[test]
fn a_backfill_killed_at_any_point_stores_all_of_its_rows_or_none() {
    use crate::server::{binary, migrations_dir};
    let work = tempfile::tempdir().unwrap();
    let time = an_hour_ago();
    let rows = 200_000;
    let csv = work.path().join("stats.csv");
    let mut text = String::from("user_id,event_timestamp,plays_7d\n");
    for i in 0..rows {
        text.push_str(&format!("u{},{time},{i}\n", i % 5_000));
    }
    std::fs::write(&csv, text).unwrap();
    // Kills while it spills, merges, ingests (about 0.2 s here on 2
    // cores), and (last) not at all.
    for (trial, kill_after_ms) in [40, 80, 120, 160, 200, 240, u64::MAX]
        .into_iter()
        .enumerate()
    {
        let data = work.path().join(format!("data-{trial}"));
        let mut backfill = std::process::Command::new(binary())
            .arg("--data-dir")
            .arg(&data)
            .arg("--migrations")
            .arg(migrations_dir())
            .args([
                "push",
                "--view",
                "user_stats",
                "--backfill",
                "--ingest-rows",
                "20000",
            ])
            .arg(&csv)
            .env("REPRISE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if kill_after_ms == u64::MAX {
            assert!(backfill.wait().unwrap().success());
        } else {
            std::thread::sleep(std::time::Duration::from_millis(kill_after_ms));
            let _ = backfill.kill();
            backfill.wait().unwrap();
        }
        if !data.join("CURRENT").exists() {
            continue; // killed before the store was created
        }
        let store = reprise_store::FeatureStore::open(&data, Default::default()).unwrap();
        let stored = store
            .view_history("user_stats", store.version())
            .unwrap()
            .len();
        assert!(
            stored == 0 || stored == rows,
            "trial {trial} (killed after {kill_after_ms} ms): {stored} rows stored"
        );
        if kill_after_ms == u64::MAX {
            assert_eq!(stored, rows);
        }
        let scratch = data.join("scratch");
        assert!(
            !scratch.exists() || std::fs::read_dir(&scratch).unwrap().count() == 0,
            "trial {trial}: the killed backfill's runs are removed at open"
        );
    }
}
