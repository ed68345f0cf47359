//! One feature path: online reads and snapshots give bit-identical derived
//! values for the same raw rows.

use reprise_store::{SnapshotSpec, Value};
use serde_json::{json, Value as Json};

use crate::common::{object, store_with, ts, Kind};

const ALL_TRANSFORMS: &str = r#"
[[entity]]
name = "user"
join_key = "user_id"

[[feature_view]]
name = "t"
version = 1
entities = ["user"]
ttl = "0"

[[feature_view.feature]]
name = "n"
type = "float64"
[[feature_view.feature]]
name = "k"
type = "int64"
[[feature_view.feature]]
name = "s"
type = "string"
[[feature_view.feature]]
name = "scaled"
type = "float64"
transform = { kind = "scale", input = "n", factor = 0.1, offset = -3.3 }
[[feature_view.feature]]
name = "logged"
type = "float64"
transform = { kind = "log1p", input = "n" }
[[feature_view.feature]]
name = "clipped"
type = "float64"
transform = { kind = "clip", input = "n", min = 0.0, max = 10.0 }
[[feature_view.feature]]
name = "bucket"
type = "int64"
transform = { kind = "bucketize", input = "n", boundaries = [0.0, 1.0, 10.0] }
[[feature_view.feature]]
name = "hour"
type = "int64"
transform = { kind = "hour_of_day", input = "event_timestamp" }
[[feature_view.feature]]
name = "day"
type = "int64"
transform = { kind = "day_of_week", input = "k" }
[[feature_view.feature]]
name = "hashed"
type = "int64"
transform = { kind = "hash_bucket", input = "s", buckets = 1000 }
[[feature_view.feature]]
name = "onehot"
type = "float_vector"
transform = { kind = "one_hot", input = "s", vocabulary = ["a", "b", "c"] }
[[feature_view.feature]]
name = "filled"
type = "int64"
transform = { kind = "default", input = "k", value = -1 }
[[feature_view.feature]]
name = "logged_scaled"
type = "float64"
transform = { kind = "scale", input = "logged", factor = 3.0 }
"#;

/// Bit-level identity of a value (f64 compared by bits, not by `==`).
fn bits(value: &Option<Value>) -> String {
    match value {
        Some(Value::Float64(f)) => format!("f64:{:016x}", f.to_bits()),
        Some(Value::FloatVector(v)) => v
            .iter()
            .map(|f| format!("{:08x}", f.to_bits()))
            .collect::<Vec<_>>()
            .join(","),
        other => format!("{other:?}"),
    }
}

fn json_bits(json: &Json, like: &Option<Value>) -> String {
    let value = like
        .as_ref()
        .and_then(|v| Value::from_json(json, v.feature_type(), None).unwrap());
    bits(&value)
}

#[test]
fn online_and_offline_values_are_bit_identical() {
    let t = store_with(Kind::Memory, ALL_TRANSFORMS, 10_000_000);
    let s = &t.store;
    let users: Vec<Json> = [
        (2.5, 1_767_225_600, "a"),
        (-0.999, -86_400, "c"),
        (12345.6789, 0, "zz"),
        (0.1, 1_800_000_000, "b"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (n, k, s))| json!({"user_id": format!("u{i}"), "event_timestamp": ts(1_000 + 3_607 * i as i64), "n": n, "k": k, "s": s}))
    .chain([json!({"user_id": "u_nulls", "event_timestamp": ts(5), "n": null, "k": null, "s": null})])
    .collect();
    s.push("t", &users, true).unwrap();

    let registry = s.registry();
    let view = registry.view("t").unwrap();
    let features: Vec<String> = view
        .features
        .iter()
        .map(|f| format!("t:{}", f.name))
        .collect();
    // And an entity without rows: no derived value either (not the hour of
    // an empty row's time).
    let ids: Vec<String> = users
        .iter()
        .map(|u| u["user_id"].as_str().unwrap().to_owned())
        .chain(["u_missing".to_owned()])
        .collect();
    let entities: Vec<_> = ids
        .iter()
        .map(|id| object(json!({"user_id": id})))
        .collect();
    let online = s.online_features(&features, &entities).unwrap();

    let spec = SnapshotSpec {
        features: features.clone(),
        ..Default::default()
    };
    let rows = ids
        .iter()
        .map(|id| Ok(json!({"user_id": id, "event_timestamp": ts(9_000_000)})));
    let info = s.create_snapshot(&spec, rows).unwrap();
    let mut offline = Vec::new();
    s.read_snapshot(&info.id, |_, rows| {
        offline.extend(rows);
        Ok(())
    })
    .unwrap();
    let mut jsonl = Vec::new();
    s.write_snapshot_jsonl(&info.id, &mut jsonl).unwrap();
    let jsonl: Vec<Json> = jsonl
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();

    let mut compared = 0;
    for (i, online_row) in online.rows.iter().enumerate() {
        for (f, feature) in view.features.iter().enumerate() {
            assert_eq!(
                bits(&online_row.values[f]),
                bits(&offline[i].values[f]),
                "{} of {}",
                feature.name,
                ids[i]
            );
            let column = &jsonl[i][format!("t__{}", feature.name)];
            assert_eq!(
                json_bits(column, &online_row.values[f]),
                bits(&online_row.values[f]),
                "JSONL {} of {}",
                feature.name,
                ids[i]
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 6 * 13);
    assert!(offline[5].values.iter().all(Option::is_none));
    // The derived values are really computed (not all null).
    assert_eq!(online.rows[0].values[6], Some(Value::Int64(2)));
    assert_eq!(online.rows[4].values[11], Some(Value::Int64(-1)));
}
