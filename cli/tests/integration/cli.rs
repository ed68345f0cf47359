//! The command line: help, migrate, push from files, snapshot to files.

use std::process::Command;

use crate::server::{binary, run_cli as reprise};

#[test]
fn help_lists_the_subcommands() {
    let out = Command::new(binary()).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for sub in [
        "serve",
        "migrate",
        "push",
        "snapshot",
        "import",
        "demo-data",
    ] {
        assert!(help.contains(sub), "{help}");
    }
}

/// `reprise --version` names the commit it was built from (this checkout's
/// HEAD when the tests run from one).
#[test]
fn the_version_names_the_commit() {
    let out = Command::new(binary()).arg("--version").output().unwrap();
    assert!(out.status.success());
    let version = String::from_utf8(out.stdout).unwrap();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    assert_eq!(
        version.trim(),
        format!(
            "reprise {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            head.trim()
        )
    );
}

/// `reprise completions SHELL` prints a script naming the subcommands.
#[test]
fn completions_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F _reprise"),
        ("zsh", "#compdef reprise"),
        ("fish", "complete -c reprise"),
    ] {
        let out = Command::new(binary())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: no `{marker}`");
        for command in ["serve", "snapshot", "retrain", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let out = Command::new(binary())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown shell is refused");
}

#[test]
fn push_csv_and_jsonl_then_snapshot_to_parquet_and_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let csv = dir.path().join("stats.csv");
    std::fs::write(
        &csv,
        "user_id,event_timestamp,plays_7d,minutes_7d,favourite_genre\n\
         007,2026-01-01T00:00:00Z,5,12.5,jazz\n\
         8,2026-01-02T00:00:00Z,,3,\n",
    )
    .unwrap();
    let out = reprise(
        &data,
        &[
            "push",
            "--view",
            "user_stats",
            "--backfill",
            csv.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pushed 2 rows"));

    let jsonl = dir.path().join("items.jsonl");
    std::fs::write(&jsonl, "{\"item_id\": \"i1\", \"event_timestamp\": \"2026-01-01T00:00:00Z\", \"kind\": \"podcast\", \"tags\": [\"news\"]}\n\n").unwrap();
    let out = reprise(
        &data,
        &[
            "push",
            "--view",
            "item_catalog",
            "--backfill",
            jsonl.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "user_id,event_timestamp,plays_7d\nu1,2026-01-01T00:00:00Z,many\n",
    )
    .unwrap();
    let out = reprise(
        &data,
        &["push", "--view", "user_stats", bad.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rows[0].plays_7d"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let entities = dir.path().join("entities.csv");
    std::fs::write(
        &entities,
        "user_id,item_id,event_timestamp,label\n007,i1,2026-01-03T00:00:00Z,1\n8,i1,2026-01-01T12:00:00Z,0\n",
    )
    .unwrap();
    let out_jsonl = dir.path().join("snap.jsonl");
    let out = reprise(
        &data,
        &[
            "snapshot",
            "--features",
            "user_stats:plays_7d,user_stats:hours_7d,item_catalog:kind_one_hot",
            "--entities",
            entities.to_str().unwrap(),
            "--out",
            out_jsonl.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&out_jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["user_id"], "007", "join keys stay strings");
    assert_eq!(rows[0]["user_stats__plays_7d"], 5);
    assert_eq!(
        rows[0]["item_catalog__kind_one_hot"],
        serde_json::json!([0.0, 1.0, 0.0])
    );
    assert_eq!(
        rows[1]["user_stats__plays_7d"],
        serde_json::Value::Null,
        "8 was pushed for Jan 2 only"
    );

    let out_parquet = dir.path().join("snap.parquet");
    let out = reprise(
        &data,
        &[
            "snapshot",
            "--features",
            "user_stats:plays_7d",
            "--entities",
            entities.to_str().unwrap(),
            "--out",
            out_parquet.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&std::fs::read(&out_parquet).unwrap()[..4], b"PAR1");
}

#[test]
fn export_writes_parquet_partitions_and_continues_from_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out_dir = dir.path().join("export");
    backfill_stats(
        dir.path(),
        &data,
        "u1,2026-01-01T00:00:00Z,5\nu2,2026-01-02T00:00:00Z,7\n",
    );
    let export = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["export", "--out", out_dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = reprise(&data, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first = export(&[]);
    assert_eq!(first["since_version"], 0);
    assert_eq!(first["rows"], 2);
    assert!(out_dir
        .join("user_stats/v1/date=2026-01-02")
        .read_dir()
        .unwrap()
        .any(|f| f
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".parquet")));
    // Nothing new since: an empty increment from where the manifest stands.
    let second = export(&[]);
    assert_eq!(second["since_version"], first["store_version"]);
    assert_eq!(second["rows"], 0);
    // Another starting point into the same directory is refused.
    let refused = reprise(
        &data,
        &[
            "export",
            "--out",
            out_dir.to_str().unwrap(),
            "--since-version",
            "0",
        ],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("holds the rows up to store version"));
}

#[test]
fn a_push_in_batches_keeps_the_newest_row_online_and_stops_at_the_bad_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now = reprise_store::time::Clock::system().now();
    let hours_ago = |h: i64| reprise_store::time::format_rfc3339(now - h * 3_600_000_000);
    // Batches of two: `u1`'s row in the second batch is older than the one
    // in the first (which stays online); `u2`'s is newer.
    let rows = [
        ("u1", 3, 30),
        ("u2", 5, 50),
        ("u1", 4, 40),
        ("u2", 1, 10),
        ("u3", 2, 20),
    ];
    let csv = dir.path().join("stats.csv");
    let mut text = String::from("user_id,event_timestamp,plays_7d\n");
    for (user, hours, plays) in rows {
        text.push_str(&format!("{user},{},{plays}\n", hours_ago(hours)));
    }
    std::fs::write(&csv, text).unwrap();
    let push = |file: &std::path::Path| {
        reprise(
            &data,
            &[
                "push",
                "--view",
                "user_stats",
                "--batch-size",
                "2",
                file.to_str().unwrap(),
            ],
        )
    };
    let out = push(&csv);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pushed 5 rows to user_stats@1 in 3 batches"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The third batch (data row 4 on) holds a row five hours ahead of the
    // clock, more than the allowed lead (one hour).
    let bad = dir.path().join("bad.csv");
    let mut text = String::from("user_id,event_timestamp,plays_7d\n");
    for (i, user) in ["b1", "b2", "b3", "b4", "b5"].iter().enumerate() {
        let hours = if i == 4 { -5 } else { 1 };
        text.push_str(&format!("{user},{},{i}\n", hours_ago(hours)));
    }
    std::fs::write(&bad, text).unwrap();
    let out = push(&bad);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rows[0].event_timestamp")
            && stderr.contains("the batch starts at data row 4 of the file"),
        "{stderr}"
    );

    let store = reprise_store::FeatureStore::open(&data, Default::default()).unwrap();
    let plays = online_plays(&store, &["u1", "u2", "u3", "b1", "b4", "b5"]);
    use reprise_store::Value::Int64;
    assert_eq!(
        plays,
        [Some(Int64(30)), Some(Int64(10)), Some(Int64(20)), Some(Int64(0)), Some(Int64(3)), None],
        "the newest row of each user; the bad file's first two batches are stored, its third is not"
    );
}

#[test]
fn a_backfill_of_many_sorted_runs_is_one_store_version_and_a_bad_row_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Rows within the view's TTL: `day` is hours before now, oldest first.
    let now = reprise_store::time::Clock::system().now();
    let at = |day: &str| {
        let hours: i64 = day.parse().unwrap();
        reprise_store::time::format_rfc3339(now - (10 - hours) * 3_600_000_000)
    };
    backfill_stats(dir.path(), &data, &format!("u0,{},1\n", at("01")));
    // What a backfill killed before it finished leaves behind.
    let leftover = data.join("scratch").join("backfill-killed");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("0.run"), b"partial").unwrap();
    let backfill = |name: &str, rows: &[(&str, &str, &str)]| {
        let csv = dir.path().join(name);
        let mut text = String::from("user_id,event_timestamp,plays_7d\n");
        for (user, day, plays) in rows {
            text.push_str(&format!("{user},{},{plays}\n", at(day)));
        }
        std::fs::write(&csv, text).unwrap();
        let args = [
            "push",
            "--view",
            "user_stats",
            "--backfill",
            "--ingest-rows",
            "2",
            csv.to_str().unwrap(),
        ];
        reprise(&data, &args)
    };
    // Sorted runs of two rows: the bad row is in the third.
    let bad = [
        ("u1", "02", "1"),
        ("u2", "02", "2"),
        ("u1", "03", "3"),
        ("u3", "02", "4"),
        ("u2", "04", "5"),
        ("u3", "03", "many"),
    ];
    let out = backfill("bad.csv", &bad);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 7") && stderr.contains("plays_7d"),
        "{stderr}"
    );
    let rows = [
        ("u1", "05", "10"),
        ("u2", "02", "20"),
        ("u1", "03", "30"),
        ("u3", "02", "40"),
        ("u2", "04", "50"),
    ];
    let out = backfill("good.csv", &rows);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("pushed 5 rows to user_stats@1 in 1 batch (store version"),
        "{stdout}"
    );
    assert!(!leftover.exists(), "the killed backfill's runs are removed");
    let spill = std::fs::read_dir(data.join("scratch")).unwrap();
    assert_eq!(spill.count(), 0, "the backfill removes its own runs");

    let store = reprise_store::FeatureStore::open(&data, Default::default()).unwrap();
    let version = store.version();
    let plays = online_plays(&store, &["u0", "u1", "u2", "u3"]);
    use reprise_store::Value::Int64;
    assert_eq!(
        plays,
        [
            Some(Int64(1)),
            Some(Int64(10)),
            Some(Int64(50)),
            Some(Int64(40))
        ],
        "each user's newest row, none of the bad file's"
    );
    // All five rows in one store version, nothing of the bad file.
    assert_eq!(store.view_history("user_stats", version).unwrap().len(), 6);
    assert_eq!(
        store.view_history("user_stats", version - 1).unwrap().len(),
        1
    );
}

#[test]
fn snapshot_reads_entity_rows_from_parquet() {
    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampSecondArray};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    backfill_stats(
        dir.path(),
        &data,
        "007,2026-01-01T00:00:00Z,5\n8,2026-01-02T00:00:00Z,3\n",
    );

    let jan = |day: i64| Some(1_767_225_600 + (day - 1) * 86_400);
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "user_id",
            std::sync::Arc::new(StringArray::from(vec!["007", "8", "8"])),
        ),
        (
            "event_timestamp",
            std::sync::Arc::new(
                TimestampSecondArray::from(vec![jan(3), jan(1), jan(3)]).with_timezone("UTC"),
            ),
        ),
        (
            "label",
            std::sync::Arc::new(Int64Array::from(vec![1, 0, 1])),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let entities = dir.path().join("entities.parquet");
    let file = std::fs::File::create(&entities).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let snapshot = dir.path().join("snap.jsonl");
    let args = [
        "snapshot",
        "--features",
        "user_stats:plays_7d",
        "--entities",
        entities.to_str().unwrap(),
        "--out",
        snapshot.to_str().unwrap(),
    ];
    let out = reprise(&data, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&snapshot)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let plays: Vec<_> = rows
        .iter()
        .map(|r| r["user_stats__plays_7d"].clone())
        .collect();
    let json = |v: i64| serde_json::json!(v);
    assert_eq!(
        plays,
        [json(5), serde_json::Value::Null, json(3)],
        "8 was pushed for Jan 2"
    );
    assert_eq!(rows[0]["label"], 1);

    // A file named .parquet that is not one.
    std::fs::write(&entities, "user_id,event_timestamp\n").unwrap();
    let out = reprise(&data, &args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("entity_rows") && stderr.contains("Parquet"),
        "{stderr}"
    );
}

/// The online `user_stats:plays_7d` of each of `users`.
fn online_plays(
    store: &reprise_store::FeatureStore,
    users: &[&str],
) -> Vec<Option<reprise_store::Value>> {
    let users: Vec<_> = users
        .iter()
        .map(|u| {
            serde_json::json!({ "user_id": u })
                .as_object()
                .unwrap()
                .clone()
        })
        .collect();
    let online = store
        .online_features(&["user_stats:plays_7d".to_owned()], &users)
        .unwrap();
    online.rows.iter().map(|r| r.values[0].clone()).collect()
}

/// Backfills `rows` (user, event time, plays) into `user_stats` of the
/// store in `data` through a CSV file in `dir`.
fn backfill_stats(dir: &std::path::Path, data: &std::path::Path, rows: &str) {
    let csv = dir.join("stats.csv");
    std::fs::write(&csv, format!("user_id,event_timestamp,plays_7d\n{rows}")).unwrap();
    let args = [
        "push",
        "--view",
        "user_stats",
        "--backfill",
        csv.to_str().unwrap(),
    ];
    let out = reprise(data, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
