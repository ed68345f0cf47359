//! The server's typed push (the served-feature log's path) stores what the
//! same rows pushed as JSON store, and refuses what a JSON push refuses
//! (a typed value of another type than declared too), naming the field.

use reprise_store::time::Micros;
use reprise_store::typed_push::TypedRow;
use reprise_store::{FeatureStore, StoreError, Value};
use serde_json::json;

use crate::common::{object, seconds, store_with, ts, Kind};

const DEFINITIONS: &str = r#"
[[entity]]
name = "request"
join_key = "request_id"

[[entity]]
name = "item"
join_key = "item_id"

[[feature_view]]
name = "served"
version = 1
entities = ["request", "item"]
ttl = "0"

[[feature_view.feature]]
name = "user_id"
type = "string"

[[feature_view.feature]]
name = "position"
type = "int64"

[[feature_view.feature]]
name = "score"
type = "float64"

[[feature_view.feature]]
name = "inputs"
type = "float_vector"
dim = 3

[[feature_view.feature]]
name = "position_log"
type = "float64"
transform = { kind = "log1p", input = "position" }
"#;

const FEATURES: [&str; 5] = [
    "served:user_id",
    "served:position",
    "served:score",
    "served:inputs",
    "served:position_log",
];

fn typed(request: &str, item: &str, at: Micros, position: i64) -> TypedRow<'static> {
    TypedRow {
        keys: vec![request.into(), item.into()],
        event_ts: at,
        values: vec![
            ("user_id", Value::String("u7".into())),
            ("position", Value::Int64(position)),
            ("score", Value::Float64(0.25 * position as f64)),
            (
                "inputs",
                Value::FloatVector(vec![1.5, -2.0, position as f32]),
            ),
        ],
    }
}

fn read(store: &FeatureStore) -> reprise_store::OnlineResult {
    let features: Vec<String> = FEATURES.iter().map(|f| f.to_string()).collect();
    let entities: Vec<_> = [("r1", "i1"), ("r1", "i2"), ("r2", "i1")]
        .iter()
        .map(|(r, i)| object(json!({"request_id": r, "item_id": i})))
        .collect();
    store.online_features(&features, &entities).unwrap()
}

#[test]
fn a_typed_push_stores_what_the_same_json_push_stores() {
    let by_type = store_with(Kind::Memory, DEFINITIONS, 1_000);
    let by_json = store_with(Kind::Memory, DEFINITIONS, 1_000);
    let at = seconds(990);
    by_type
        .store
        .push_typed_counting(
            vec![(
                "served",
                vec![typed("r1", "i1", at, 0), typed("r1", "i2", at, 1)],
            )],
            &[("impressions".to_string(), 2)],
        )
        .unwrap();
    let json_rows: Vec<_> = [("i1", 0), ("i2", 1)]
        .iter()
        .map(|(item, position)| {
            json!({"request_id": "r1", "item_id": item, "event_timestamp": ts(990),
                   "user_id": "u7", "position": position, "score": 0.25 * *position as f64,
                   "inputs": [1.5, -2.0, *position as f64]})
        })
        .collect();
    by_json
        .store
        .push_all_counting(
            &[("served", &json_rows)],
            false,
            &[("impressions".to_string(), 2)],
        )
        .unwrap();
    let answer = read(&by_type.store);
    assert_eq!(answer, read(&by_json.store));
    assert_eq!(
        answer.rows[1].values[4],
        Some(Value::Float64(2f64.ln())),
        "derived"
    );
    assert_eq!(
        by_type.store.counter("impressions").unwrap(),
        by_json.store.counter("impressions").unwrap()
    );
}

#[test]
fn a_typed_push_refuses_what_json_would_and_writes_nothing() {
    let t = store_with(Kind::Memory, DEFINITIONS, 1_000);
    let at = seconds(990);
    let version = t.store.version();
    let refused = |mutate: &dyn Fn(&mut TypedRow<'static>)| {
        let mut bad = typed("r2", "i1", at, 3);
        mutate(&mut bad);
        t.store
            .push_typed_counting(vec![("served", vec![typed("r1", "i1", at, 0), bad])], &[])
            .unwrap_err()
    };
    let field = |e: StoreError| e.field().unwrap_or_default().to_owned();
    assert_eq!(
        field(refused(&|r| r.values.push(("nope", Value::Int64(1))))),
        "rows[1].nope"
    );
    assert_eq!(
        field(refused(&|r| r.values[1] = ("position", Value::Float64(1.0)))),
        "rows[1].position"
    );
    assert_eq!(
        field(refused(
            &|r| r.values[2] = ("score", Value::Float64(f64::NAN))
        )),
        "rows[1].score"
    );
    let short = refused(&|r| r.values[3] = ("inputs", Value::FloatVector(vec![1.0])));
    assert!(
        short.to_string().contains("dimension 1 (declared 3)"),
        "{short}"
    );
    assert_eq!(field(short), "rows[1].inputs");
    assert_eq!(
        field(refused(&|r| r
            .values
            .push(("position_log", Value::Float64(1.0))))),
        "rows[1].position_log"
    );
    assert_eq!(
        field(refused(&|r| {
            r.keys.pop();
        })),
        "rows[1]"
    );
    assert_eq!(
        field(refused(&|r| r.keys[0] = String::new())),
        "rows[1].request_id"
    );
    assert_eq!(t.store.version(), version, "nothing written");
    assert!(read(&t.store).rows.iter().all(|r| r.values[0].is_none()));
}
