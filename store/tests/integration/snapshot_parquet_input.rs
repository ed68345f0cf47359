//! Entity rows read from a Parquet file: the same snapshot as the JSON
//! objects its rows stand for, and bad columns or cells refused naming
//! them.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch,
    StringArray, TimestampMillisecondArray,
};
use parquet::arrow::ArrowWriter;
use reprise_store::{FeatureStore, SnapshotInfo, SnapshotSpec, StoreError};
use serde_json::json;

use crate::common::{seconds, snapshot_rows as rows_of, store, ts, Kind};

fn spec() -> SnapshotSpec {
    SnapshotSpec {
        features: vec!["ui:plays".into(), "a:x".into()],
        ..SnapshotSpec::default()
    }
}

/// A snapshot of the entity rows `columns` hold, through a Parquet file.
fn from_parquet(
    store: &FeatureStore,
    columns: Vec<(&str, ArrayRef)>,
) -> Result<SnapshotInfo, StoreError> {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = tempfile::tempfile().unwrap();
    let mut writer = ArrowWriter::try_new(file.try_clone().unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    store.create_snapshot_from_parquet(&spec(), file)
}

fn millis(s: i64) -> Option<i64> {
    Some(seconds(s) / 1_000)
}

fn timestamps(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
}

#[test]
fn parquet_columns_make_the_snapshot_their_json_objects_make() {
    let t = store(Kind::Rocks, 1_000);
    let s = &t.store;
    s.push(
        "ui",
        &[json!({"user_id": "8", "item_id": "i1", "event_timestamp": ts(10), "plays": 3})],
        true,
    )
    .unwrap();
    s.push(
        "a",
        &[json!({"user_id": "8", "event_timestamp": ts(10), "x": 4})],
        true,
    )
    .unwrap();
    // Typed columns in a file's order, passthrough ones among the keys; an
    // integer join key, milliseconds since the epoch, nulls.
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "tag",
            Arc::new(StringArray::from(vec![
                Some("he said \"hi\", ok"),
                None,
                Some("plain"),
            ])),
        ),
        ("user_id", Arc::new(Int32Array::from(vec![8, 8, 9]))),
        (
            "label",
            Arc::new(Int64Array::from(vec![Some(1), None, Some(12)])),
        ),
        (
            "event_timestamp",
            timestamps(vec![millis(20), millis(5), millis(20)]),
        ),
        (
            "item_id",
            Arc::new(StringArray::from(vec!["i1", "i1", "i2"])),
        ),
        (
            "flag",
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        ),
        (
            "weight",
            Arc::new(Float64Array::from(vec![0.5, -3.0, 1000.0])),
        ),
    ];
    let from_parquet = from_parquet(s, columns).unwrap();

    let (t20, t5) = (ts(20), ts(5));
    let objects = vec![
        json!({"tag": "he said \"hi\", ok", "user_id": "8", "label": 1, "event_timestamp": t20, "item_id": "i1", "flag": true, "weight": 0.5}),
        json!({"tag": null, "user_id": "8", "label": null, "event_timestamp": t5, "item_id": "i1", "flag": false, "weight": -3.0}),
        json!({"tag": "plain", "user_id": "9", "label": 12, "event_timestamp": t20, "item_id": "i2", "flag": null, "weight": 1000.0}),
    ];
    let from_json = s
        .create_snapshot(&spec(), objects.into_iter().map(Ok))
        .unwrap();

    assert_eq!(from_parquet.columns, from_json.columns);
    let rows = rows_of(s, &from_parquet.id);
    assert_eq!(rows, rows_of(s, &from_json.id));
    assert_eq!(
        rows[0]["user_id"],
        json!("8"),
        "an integer key reads as its text"
    );
    assert_eq!(rows[0]["ui__plays"], json!(3));
    assert_eq!(rows[0]["a__x"], json!(4));
    assert_eq!(rows[1]["ui__plays"], json!(null), "before the write");
    let parquet_of = |id: &str| {
        let mut out = Vec::new();
        s.write_snapshot_parquet(id, &mut out).unwrap();
        out
    };
    assert_eq!(
        parquet_of(&from_parquet.id),
        parquet_of(&from_json.id),
        "the same column types"
    );
}

#[test]
fn a_bad_parquet_column_or_cell_is_refused_naming_it_and_leaves_no_snapshot() {
    let t = store(Kind::Memory, 1_000);
    let s = &t.store;
    let users = || -> ArrayRef { Arc::new(StringArray::from(vec!["u1", "u2"])) };
    let items = || -> ArrayRef { Arc::new(StringArray::from(vec!["i1", "i2"])) };
    let times = || timestamps(vec![millis(1), millis(2)]);
    let tags: ArrayRef = Arc::new(ListArray::from_iter_primitive::<
        arrow_array::types::Int32Type,
        _,
        _,
    >(vec![Some(vec![Some(1)]), None]));
    // (columns, the field the error names)
    let cases: Vec<(Vec<(&str, ArrayRef)>, &str)> = vec![
        (
            vec![("item_id", items()), ("event_timestamp", times())],
            "columns.user_id",
        ),
        (
            vec![
                ("user_id", Arc::new(Float64Array::from(vec![1.5, 2.5]))),
                ("item_id", items()),
                ("event_timestamp", times()),
            ],
            "entity_rows[0].user_id",
        ),
        (
            vec![
                ("user_id", users()),
                ("item_id", items()),
                ("event_timestamp", timestamps(vec![millis(1), None])),
            ],
            "entity_rows[1].event_timestamp",
        ),
        (
            vec![
                ("user_id", users()),
                ("item_id", items()),
                (
                    "event_timestamp",
                    Arc::new(StringArray::from(vec!["2026-01-01T00:00:00Z", "yesterday"])),
                ),
            ],
            "entity_rows[1].event_timestamp",
        ),
        (
            vec![
                ("user_id", users()),
                ("item_id", items()),
                ("event_timestamp", Arc::new(Int64Array::from(vec![1, 2]))),
            ],
            "entity_rows[0].event_timestamp",
        ),
        (
            vec![
                ("user_id", users()),
                ("item_id", items()),
                ("event_timestamp", times()),
                ("tags", tags),
            ],
            "entity_rows[0].tags",
        ),
    ];
    for (columns, want) in cases {
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        let err = from_parquet(s, columns).unwrap_err();
        assert_eq!(err.field(), Some(want), "{names:?}: {err}");
    }
    let mut not_parquet = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut not_parquet, b"user_id,event_timestamp\n").unwrap();
    let err = s
        .create_snapshot_from_parquet(&spec(), not_parquet)
        .unwrap_err();
    assert_eq!(err.field(), Some("entity_rows"), "{err}");
    assert!(err.to_string().contains("Parquet"), "{err}");
    assert!(s.snapshot_ids().unwrap().is_empty());
}

#[test]
fn dictionaries_null_columns_float32_and_many_batches_read_as_their_values() {
    use arrow_array::types::Int32Type;
    use arrow_array::{
        DictionaryArray, Float32Array, Int32Array, NullArray, TimestampNanosecondArray,
    };
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;

    let t = store(Kind::Rocks, 1_000);
    let s = &t.store;
    s.push(
        "a",
        &[json!({"user_id": "8", "event_timestamp": ts(10), "x": 4})],
        true,
    )
    .unwrap();
    // More rows than one batch (4,096) holds.
    let n = 5_000;
    let users = |empty_at: Option<usize>| -> ArrayRef {
        let keys: Vec<i32> = (0..n)
            .map(|i| {
                if Some(i) == empty_at {
                    2
                } else {
                    (i % 2) as i32
                }
            })
            .collect();
        Arc::new(
            DictionaryArray::<Int32Type>::try_new(
                Int32Array::from(keys),
                Arc::new(StringArray::from(vec!["8", "9", ""])),
            )
            .unwrap(),
        )
    };
    let nanos: Vec<i64> = (0..n).map(|i| seconds(20 + i as i64) * 1_000).collect();
    let columns = |users: ArrayRef| -> Vec<(&str, ArrayRef)> {
        vec![
            ("user_id", users),
            ("item_id", Arc::new(StringArray::from(vec!["i1"; n]))),
            (
                "event_timestamp",
                Arc::new(TimestampNanosecondArray::from(nanos.clone()).with_timezone("UTC")),
            ),
            ("tag", Arc::new(NullArray::new(n))),
            ("score", Arc::new(Float32Array::from(vec![0.1f32; n]))),
        ]
    };
    // Written with zstd, as Polars does by default.
    let write = |columns: Vec<(&str, ArrayRef)>| {
        let nullable = columns.into_iter().map(|(name, array)| (name, array, true));
        let batch = RecordBatch::try_from_iter_with_nullable(nullable).unwrap();
        let file = tempfile::tempfile().unwrap();
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let mut writer =
            ArrowWriter::try_new(file.try_clone().unwrap(), batch.schema(), Some(properties))
                .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        file
    };
    let info = s
        .create_snapshot_from_parquet(&spec(), write(columns(users(None))))
        .unwrap();
    let objects = (0..n).map(|i| {
        Ok(
            json!({"user_id": if i % 2 == 0 { "8" } else { "9" }, "item_id": "i1",
                  "event_timestamp": ts(20 + i as i64), "tag": null, "score": 0.1}),
        )
    });
    let from_json = s.create_snapshot(&spec(), objects).unwrap();
    assert_eq!(info.columns, from_json.columns);
    let rows = rows_of(s, &info.id);
    assert_eq!(rows, rows_of(s, &from_json.id));
    assert_eq!(
        rows[0]["score"],
        json!(0.1),
        "an f32 as the decimal it prints as"
    );
    assert_eq!(rows[4_999]["a__x"], json!(null), "user 9 has no row");
    assert_eq!(rows[4_998]["a__x"], json!(4));

    // An empty join key in the second batch, named by its row in the file.
    let err = s
        .create_snapshot_from_parquet(&spec(), write(columns(users(Some(4_500)))))
        .unwrap_err();
    assert_eq!(err.field(), Some("entity_rows[4500].user_id"), "{err}");
}
