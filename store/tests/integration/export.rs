//! `FeatureStore::export_history`: the history of every view as Parquet
//! partitioned by view, version and date, with a manifest. An incremental
//! export after more writes (late rows into old dates, backfills, ties)
//! holds exactly the rows of a full export at the same version.

use std::collections::BTreeMap;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use reprise_store::export::Manifest;
use serde_json::json;

use crate::common::{store_with, ts, Kind, DEFINITIONS};

const EVENTS: &str = r#"
[[feature_view]]
name = "play"
version = 1
kind = "events"
entities = ["user", "item"]
ttl = "0"

[[feature_view.feature]]
name = "seconds"
type = "int64"

[[feature_view.feature]]
name = "tags"
type = "string_list"

[[aggregation]]
name = "user_plays"
version = 1
source = "play"
entities = ["user"]

[[aggregation.feature]]
name = "plays"
op = "count"
windows = ["0"]
"#;

const DAY: i64 = 86_400;

/// A small deterministic generator (the test must fail the same way twice).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn write(store: &reprise_store::FeatureStore, rng: &mut Lcg, batches: usize, end: i64) {
    for _ in 0..batches {
        let at = end - rng.next(5) as i64 * DAY - rng.next(3_600) as i64;
        let user = format!("u{}", rng.next(6));
        let backfill = rng.next(4) == 0;
        store
            .push(
                "a",
                &[json!({"user_id": user, "event_timestamp": ts(at), "x": rng.next(100)})],
                backfill,
            )
            .unwrap();
        let plays: Vec<_> = (0..3)
            .map(|_| {
                json!({"user_id": user, "item_id": format!("i{}", rng.next(4)),
                       "event_timestamp": ts(at - rng.next(2) as i64), "seconds": rng.next(300),
                       "tags": ["a", "b"]})
            })
            .collect();
        store.push("play", &plays, backfill).unwrap();
    }
}

/// Every row of every file the manifest lists, as text, per view.
fn rows(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let manifest = Manifest::read(dir).unwrap().expect("a manifest");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for export in &manifest.exports {
        for file in &export.files {
            let reader =
                SerializedFileReader::new(std::fs::File::open(dir.join(&file.path)).unwrap())
                    .unwrap();
            let rows: Vec<String> = reader
                .get_row_iter(None)
                .unwrap()
                .map(|r| r.unwrap().to_string())
                .collect();
            assert_eq!(rows.len() as u64, file.rows, "{}", file.path);
            out.entry(file.view.clone()).or_default().extend(rows);
        }
    }
    for rows in out.values_mut() {
        rows.sort();
    }
    out
}

#[test]
fn an_incremental_export_holds_what_a_full_export_holds() {
    let definitions = format!("{DEFINITIONS}\n{EVENTS}");
    let t = store_with(Kind::Rocks, &definitions, 100 * DAY);
    let store = &t.store;
    let mut rng = Lcg(7);
    write(store, &mut rng, 20, 90 * DAY);

    let incremental = tempfile::tempdir().unwrap();
    let first = store
        .export_history(incremental.path(), None, |_, _| {})
        .unwrap();
    assert_eq!(first.since_version, 0);
    assert_eq!(first.store_version, store.version());
    // Later writes, some into dates already exported.
    write(store, &mut rng, 20, 92 * DAY);
    let second = store
        .export_history(incremental.path(), None, |_, _| {})
        .unwrap();
    assert_eq!(second.since_version, first.store_version);

    let full = tempfile::tempdir().unwrap();
    let all = store
        .export_history(full.path(), Some(0), |_, _| {})
        .unwrap();
    assert_eq!(all.store_version, second.store_version);

    let (split, whole) = (rows(incremental.path()), rows(full.path()));
    assert_eq!(split, whole);
    // Every pushed row, once: 40 state rows, 120 events; no aggregation.
    assert_eq!(whole["a@1"].len(), 40);
    assert_eq!(whole["play@1"].len(), 120);
    assert!(!whole.contains_key("user_plays@1"));
    // Stored features only (x_log is derived), typed.
    let sample = &whole["a@1"][0];
    assert!(sample.contains("user_id:") && sample.contains("x:") && !sample.contains("x_log"));
    assert!(
        whole["play@1"][0].contains("tags: [\"a\", \"b\"]"),
        "{}",
        whole["play@1"][0]
    );

    // Partitioned by date: several dates, and some written by both exports.
    let manifest = Manifest::read(incremental.path()).unwrap().unwrap();
    assert_eq!(manifest.exports.len(), 2);
    let dates = |export: usize| -> std::collections::BTreeSet<String> {
        manifest.exports[export]
            .files
            .iter()
            .filter(|f| f.view == "play@1")
            .map(|f| f.path.split('/').nth(2).unwrap().to_owned())
            .collect()
    };
    assert!(dates(0).len() > 2, "{:?}", dates(0));
    assert!(dates(0).intersection(&dates(1)).count() > 0);
    assert!(manifest
        .views
        .iter()
        .any(|v| v.name == "play" && v.kind == "events"));
    assert!(manifest.definitions[0].source.contains("[[feature_view]]"));
    // Nothing new: an empty export that still moves the manifest on.
    let none = store
        .export_history(incremental.path(), None, |_, _| {})
        .unwrap();
    assert!(none.files.is_empty());
    assert!(store
        .export_history(incremental.path(), Some(store.version() + 1), |_, _| {})
        .is_err());
    // Exporting again from an earlier version into the same directory would
    // hold rows twice.
    assert!(store
        .export_history(incremental.path(), Some(0), |_, _| {})
        .is_err());
    assert_eq!(
        Manifest::read(incremental.path())
            .unwrap()
            .unwrap()
            .store_version,
        store.version()
    );
}
