//! Entity rows given as text cells (a CSV file): the same snapshot as the
//! JSON objects a CSV row stands for, and the same checks, naming the
//! column or the row's field.

use reprise_store::{FeatureStore, SnapshotInfo, SnapshotSpec, StoreError};
use serde_json::{json, Value as Json};

use crate::common::{snapshot_rows as rows_of, store, ts, Kind};

fn parquet_of(store: &FeatureStore, id: &str) -> Vec<u8> {
    let mut out = Vec::new();
    store.write_snapshot_parquet(id, &mut out).unwrap();
    out
}

fn spec() -> SnapshotSpec {
    SnapshotSpec {
        features: vec!["ui:plays".into(), "a:x".into()],
        ..SnapshotSpec::default()
    }
}

fn from_text(
    store: &FeatureStore,
    headers: &[&str],
    rows: &[&[&str]],
) -> Result<SnapshotInfo, StoreError> {
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let rows: Vec<Result<Vec<String>, String>> = rows
        .iter()
        .map(|cells| Ok(cells.iter().map(|c| c.to_string()).collect()))
        .collect();
    store.create_snapshot_from_text::<_, Vec<String>>(&spec(), &headers, rows)
}

#[test]
fn text_cells_make_the_snapshot_their_json_objects_make() {
    let t = store(Kind::Rocks, 1_000);
    let s = &t.store;
    s.push(
        "ui",
        &[json!({"user_id": "007", "item_id": "i1", "event_timestamp": ts(10), "plays": 3})],
        true,
    )
    .unwrap();
    s.push(
        "a",
        &[json!({"user_id": "007", "event_timestamp": ts(10), "x": 4})],
        true,
    )
    .unwrap();
    let (t20, t5) = (ts(20), ts(5));
    // Columns in a file's order, passthrough ones among the keys; cells of
    // every kind a CSV holds.
    let headers = [
        "tag",
        "user_id",
        "label",
        "event_timestamp",
        "item_id",
        "flag",
        "weight",
    ];
    let text: Vec<[&str; 7]> = vec![
        ["he said \"hi\", ok", "007", "1", &t20, "i1", "true", "0.5"],
        ["", "007", "", &t5, "i1", "false", "-3"],
        ["plain", "8", "12", &t20, "i2", "", "1e3"],
    ];
    let rows: Vec<&[&str]> = text.iter().map(|r| r.as_slice()).collect();
    let from_text = from_text(s, &headers, &rows).unwrap();

    // What the CLI made of these cells before: an object per row, an empty
    // cell null, numbers and booleans in their JSON spelling, keys strings.
    let objects = vec![
        json!({"tag": "he said \"hi\", ok", "user_id": "007", "label": 1, "event_timestamp": t20, "item_id": "i1", "flag": true, "weight": 0.5}),
        json!({"tag": null, "user_id": "007", "label": null, "event_timestamp": t5, "item_id": "i1", "flag": false, "weight": -3}),
        json!({"tag": "plain", "user_id": "8", "label": 12, "event_timestamp": t20, "item_id": "i2", "flag": null, "weight": 1000.0}),
    ];
    let from_json = s
        .create_snapshot(&spec(), objects.into_iter().map(Ok))
        .unwrap();

    assert_eq!(from_text.columns, from_json.columns);
    let rows = rows_of(s, &from_text.id);
    assert_eq!(rows, rows_of(s, &from_json.id));
    assert_eq!(rows[0]["user_id"], json!("007"), "keys stay strings");
    assert_eq!(rows[0]["tag"], json!("he said \"hi\", ok"));
    assert_eq!(rows[0]["ui__plays"], json!(3));
    assert_eq!(rows[0]["a__x"], json!(4));
    assert_eq!(rows[1]["ui__plays"], Json::Null, "before the write");
    assert_eq!(
        parquet_of(s, &from_text.id),
        parquet_of(s, &from_json.id),
        "the same column types"
    );
}

#[test]
fn a_bad_header_or_cell_is_refused_naming_it_and_leaves_no_snapshot() {
    let t = store(Kind::Memory, 1_000);
    let s = &t.store;
    let t1 = ts(1);
    let good: &[&str] = &["u1", "i1", &t1];
    let no_key: &[&str] = &["", "i1", &t1];
    let extra: &[&str] = &["u1", "i1", &t1, "extra"];
    // (header, rows, the field the error names)
    type Case<'a> = (Vec<&'a str>, Vec<&'a [&'a str]>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["item_id", "event_timestamp"],
            vec![],
            "columns.user_id",
        ),
        (
            vec!["user_id", "item_id"],
            vec![],
            "columns.event_timestamp",
        ),
        (
            vec!["user_id", "item_id", "event_timestamp", "user_id"],
            vec![],
            "columns.user_id",
        ),
        (
            vec!["user_id", "item_id", "event_timestamp", "a__x"],
            vec![],
            "columns.a__x",
        ),
        (
            vec!["user_id", "item_id", "event_timestamp"],
            vec![good, &["u1", "i1", "yesterday"]],
            "entity_rows[1].event_timestamp",
        ),
        (
            vec!["user_id", "item_id", "event_timestamp"],
            vec![good, good, no_key],
            "entity_rows[2].user_id",
        ),
        (
            vec!["user_id", "item_id", "event_timestamp"],
            vec![extra],
            "entity_rows[0]",
        ),
        (
            vec!["user_id", "item_id", "event_timestamp"],
            vec![&["u1", "i1"]],
            "entity_rows[0].event_timestamp",
        ),
        (
            vec!["user_id", "item_id", "event_timestamp"],
            vec![],
            "entity_rows",
        ),
    ];
    for (headers, rows, want) in cases {
        let err = from_text(s, &headers, &rows).unwrap_err();
        assert_eq!(err.field(), Some(want), "{headers:?} {rows:?}: {err}");
    }
    let headers: Vec<String> = ["user_id", "item_id", "event_timestamp"]
        .map(String::from)
        .to_vec();
    let unreadable: Vec<Result<Vec<String>, String>> = vec![Err("CSV record 1: bad".into())];
    let err = s
        .create_snapshot_from_text::<_, Vec<String>>(&spec(), &headers, unreadable)
        .unwrap_err();
    assert_eq!(err.field(), Some("entity_rows[0]"), "{err}");
    assert!(s.snapshot_ids().unwrap().is_empty());
}
