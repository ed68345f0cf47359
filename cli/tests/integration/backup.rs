//! Backup and restore (CONTRACT.md "Backup"): a backup taken over HTTP while
//! writers push holds every batch acknowledged before it began, restores
//! into a store that serves the same pinned snapshots, and `reprise
//! backup`/`restore` do the same for a stopped store.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use reprise_sdk::SnapshotRequest;
use serde_json::{json, Value as Json};

use crate::server::{binary, migrations_dir, Server};

fn snapshot_rows(server: &Server, users: &[String], version: u64) -> Vec<Json> {
    let entity_rows = users
        .iter()
        .map(|u| json!({"user_id": u, "event_timestamp": "2026-11-02T00:00:00Z"}))
        .collect();
    let info = server
        .client
        .create_snapshot(&SnapshotRequest {
            features: vec!["user_stats:plays_7d".into()],
            entity_rows,
            as_of_version: Some(version),
            cutoff: Some("event".into()),
        })
        .unwrap();
    server.client.snapshot_rows(&info.snapshot_id).unwrap()
}

/// `reprise restore --from BACKUP` into `data_dir`; must succeed.
fn restore(backup: &Path, data_dir: &Path) {
    let out = Command::new(binary())
        .args([
            "--data-dir",
            data_dir.to_str().unwrap(),
            "restore",
            "--from",
        ])
        .arg(backup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_backup_under_push_load_holds_every_acknowledged_batch_and_restores() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let acknowledged: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (client, acknowledged, stop) =
                (server.client.clone(), Arc::clone(&acknowledged), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let user = format!("w{w}-{n}");
                    let rows = vec![json!({"user_id": user, "event_timestamp": "2026-11-01T00:00:00Z", "plays_7d": n})];
                    client.push("user_stats", &rows, true).unwrap();
                    acknowledged.lock().unwrap().push((user, n));
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before: Vec<(String, i64)> = acknowledged.lock().unwrap().clone();
    let dir = work.path().join("backup-1");
    let (status, body) = server.post("/v1/admin/backup", &json!({"dir": dir.to_str().unwrap()}));
    assert_eq!(status, 200, "{body}");
    let backup_version = body["store_version"].as_u64().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(
        before.len() >= 10,
        "only {} batches before the backup",
        before.len()
    );
    assert!(
        acknowledged.lock().unwrap().len() > before.len(),
        "writes went on during the backup"
    );

    // Bad requests name the field.
    let (status, body) = server.post("/v1/admin/backup", &json!({"dir": "relative/path"}));
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("dir")),
        "{body}"
    );
    let (status, _) = server.post("/v1/admin/backup", &json!({"dir": dir.to_str().unwrap()}));
    assert_eq!(status, 400, "an existing directory is refused");

    // An idle second backup; the snapshot pinned to its version is the
    // reference the restored store must reproduce.
    let users: Vec<String> = before.iter().map(|(u, _)| u.clone()).collect();
    let idle_dir = work.path().join("backup-2");
    let (status, body) = server.post(
        "/v1/admin/backup",
        &json!({"dir": idle_dir.to_str().unwrap()}),
    );
    assert_eq!(status, 200, "{body}");
    let idle_version = body["store_version"].as_u64().unwrap();
    let reference = snapshot_rows(&server, &users, idle_version);
    let pinned_before = snapshot_rows(&server, &users, backup_version);
    drop(server);

    // Restore the first backup: every batch acknowledged before it is there.
    let restored = work.path().join("restored-1");
    restore(&dir, &restored);
    let server = Server::start(&restored, &[]);
    assert!(server.store_version() >= backup_version);
    let rows = snapshot_rows(&server, &users, backup_version);
    for ((user, n), row) in before.iter().zip(&rows) {
        assert_eq!(
            row["user_stats__plays_7d"],
            json!(n),
            "batch {user} missing from the backup"
        );
    }
    assert_eq!(
        rows, pinned_before,
        "the pinned snapshot is the same in the restored store"
    );
    drop(server);

    // The idle backup restores the exact same snapshot.
    let restored = work.path().join("restored-2");
    restore(&idle_dir, &restored);
    let server = Server::start(&restored, &[]);
    assert_eq!(server.store_version(), idle_version);
    assert_eq!(snapshot_rows(&server, &users, idle_version), reference);
    drop(server);

    // Restoring over a data directory that is in use or not empty is refused.
    let out = Command::new(binary())
        .args([
            "--data-dir",
            restored.to_str().unwrap(),
            "restore",
            "--from",
            idle_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    // `reprise backup` of the stopped store.
    let offline = work.path().join("backup-offline");
    let out = Command::new(binary())
        .args([
            "--data-dir",
            restored.to_str().unwrap(),
            "--migrations",
            migrations_dir().to_str().unwrap(),
            "backup",
            "--out",
            offline.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("store version {idle_version}")));
}
