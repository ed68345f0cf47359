//! Declared aggregations: random event streams (several entities,
//! out-of-order and duplicate timestamps, backfills, filters, buckets) give
//! the same aggregates as a naive recomputation from the raw events, in
//! snapshots (both cutoffs, pinned versions) and online; lookups; backfill
//! of a grouping added by a later migration.

use proptest::prelude::*;
use reprise_store::time::Micros;
use reprise_store::{Cutoff, SnapshotSpec};
use serde_json::{json, Value as Json};

use crate::common::{object, seconds, snapshot_rows, store_with, ts, Kind, TestStore};

pub const EVENTS: &str = r#"
[[entity]]
name = "user"
join_key = "user_id"

[[entity]]
name = "item"
join_key = "item_id"

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
name = "device"
type = "string"

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
windows = ["10s", "50s", "0"]

[[aggregation.feature]]
name = "long_plays"
op = "count"
windows = ["50s"]
filter = { feature = "seconds", op = ">=", value = 30 }

[[aggregation.feature]]
name = "seconds"
op = "sum"
input = "seconds"
windows = ["50s", "0"]

[[aggregation.feature]]
name = "seconds"
op = "mean"
input = "seconds"
windows = ["20s", "0"]

[[aggregation.feature]]
name = "seconds"
op = "min"
input = "seconds"
windows = ["50s"]

[[aggregation.feature]]
name = "seconds"
op = "max"
input = "seconds"
windows = ["50s"]

[[aggregation.feature]]
name = "device"
op = "last"
input = "device"
windows = ["0"]

[[aggregation.feature]]
name = "device"
op = "distinct_count"
input = "device"
windows = ["50s"]

[[aggregation.feature]]
name = "tag_plays"
op = "count"
bucket_by = "tags"
vocabulary = ["a", "b", "c"]
windows = ["50s"]

[[aggregation.derived]]
name = "plays_all_log"
type = "float64"
transform = { kind = "log1p", input = "plays_all" }

[[aggregation]]
name = "item_plays"
version = 1
source = "play"
entities = ["item"]

[[aggregation.feature]]
name = "plays"
op = "count"
windows = ["30s"]

[[aggregation.feature]]
name = "seconds"
op = "sum"
input = "seconds"
windows = ["0"]
filter = { feature = "device", op = "==", value = "tv" }
"#;

/// Every aggregate feature the test reads, with the reference that computes it.
const USER_FEATURES: [&str; 14] = [
    "plays_10s",
    "plays_50s",
    "plays_all",
    "long_plays_50s",
    "seconds_sum_50s",
    "seconds_sum_all",
    "seconds_mean_20s",
    "seconds_mean_all",
    "seconds_min_50s",
    "seconds_max_50s",
    "device_last_all",
    "device_distinct_count_50s",
    "tag_plays_50s",
    "plays_all_log",
];
const ITEM_FEATURES: [&str; 2] = ["plays_30s", "seconds_sum_all"];
const DEVICES: [&str; 3] = ["mobile", "tv", "web"];
const TAGS: [&str; 4] = ["a", "b", "c", "z"];

#[derive(Debug, Clone)]
struct Event {
    user: usize,
    item: usize,
    event_ts: Micros,
    created_ts: Micros,
    version: u64,
    seq: usize,
    seconds: i64,
    device: usize,
    tags: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Batch {
    backfill: bool,
    clock_step: i64,
    rows: Vec<(usize, usize, i64, i64, usize, Vec<usize>)>,
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        any::<bool>(),
        0..20i64,
        prop::collection::vec(
            (
                0..3usize,
                0..3usize,
                0..120i64,
                0..60i64,
                0..3usize,
                prop::collection::vec(0..4usize, 0..3),
            ),
            1..6,
        ),
    )
        .prop_map(|(backfill, clock_step, rows)| Batch {
            backfill,
            clock_step,
            rows,
        })
}

/// The events a read at `at`, version `max_version` and `cutoff` sees for
/// a window (0 = all time), newest first.
fn window<'a>(
    events: &'a [Event],
    pick: &dyn Fn(&Event) -> bool,
    at: Micros,
    window_s: i64,
    max_version: u64,
    cutoff: Cutoff,
) -> Vec<&'a Event> {
    let mut out: Vec<&Event> = events
        .iter()
        .filter(|e| pick(e) && e.event_ts <= at)
        .filter(|e| window_s == 0 || e.event_ts > at - seconds(window_s))
        .filter(|e| e.version <= max_version)
        .filter(|e| cutoff == Cutoff::Event || e.created_ts <= at)
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse((e.event_ts, e.version, e.seq)));
    out
}

fn mean(values: &[i64]) -> Json {
    if values.is_empty() {
        Json::Null
    } else {
        json!(values.iter().sum::<i64>() as f64 / values.len() as f64)
    }
}

/// The naive recomputation of a user feature.
fn user_reference(
    events: &[Event],
    user: usize,
    at: Micros,
    v: u64,
    cutoff: Cutoff,
    feature: &str,
) -> Json {
    let pick = |e: &Event| e.user == user;
    let w = |s: i64| window(events, &pick, at, s, v, cutoff);
    let secs = |s: i64| w(s).iter().map(|e| e.seconds).collect::<Vec<_>>();
    match feature {
        "plays_10s" => json!(w(10).len()),
        "plays_50s" => json!(w(50).len()),
        "plays_all" => json!(w(0).len()),
        "long_plays_50s" => json!(w(50).iter().filter(|e| e.seconds >= 30).count()),
        "seconds_sum_50s" => json!(secs(50).iter().sum::<i64>() as f64),
        "seconds_sum_all" => json!(secs(0).iter().sum::<i64>() as f64),
        "seconds_mean_20s" => mean(&secs(20)),
        "seconds_mean_all" => mean(&secs(0)),
        "seconds_min_50s" => secs(50)
            .iter()
            .min()
            .map_or(Json::Null, |m| json!(*m as f64)),
        "seconds_max_50s" => secs(50)
            .iter()
            .max()
            .map_or(Json::Null, |m| json!(*m as f64)),
        "device_last_all" => w(0)
            .first()
            .map_or(Json::Null, |e| json!(DEVICES[e.device])),
        "device_distinct_count_50s" => {
            let distinct: std::collections::BTreeSet<usize> =
                w(50).iter().map(|e| e.device).collect();
            if distinct.is_empty() {
                Json::Null
            } else {
                json!(distinct.len())
            }
        }
        "tag_plays_50s" => {
            let mut counts = [0f64; 3];
            for e in w(50) {
                for &t in &e.tags {
                    if t < 3 {
                        counts[t] += 1.0;
                    }
                }
            }
            json!(counts)
        }
        "plays_all_log" => json!((w(0).len() as f64).ln_1p()),
        other => panic!("no reference for {other}"),
    }
}

fn item_reference(
    events: &[Event],
    item: usize,
    at: Micros,
    v: u64,
    cutoff: Cutoff,
    feature: &str,
) -> Json {
    let pick = |e: &Event| e.item == item;
    match feature {
        "plays_30s" => json!(window(events, &pick, at, 30, v, cutoff).len()),
        "seconds_sum_all" => json!(window(events, &pick, at, 0, v, cutoff)
            .iter()
            .filter(|e| DEVICES[e.device] == "tv")
            .map(|e| e.seconds)
            .sum::<i64>() as f64),
        other => panic!("no reference for {other}"),
    }
}

fn json_of(value: &Option<reprise_store::Value>) -> Json {
    serde_json::to_value(value).unwrap()
}

/// JSON equality with numbers compared as f64 (vectors are stored as f32).
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => {
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-9
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        _ => a == b,
    }
}

fn push_all(store: &TestStore, batches: &[Batch]) -> Vec<Event> {
    let mut events = Vec::new();
    let mut now = 0;
    for batch in batches {
        now += batch.clock_step;
        store.clock.set(seconds(now));
        let rows: Vec<Json> = batch
            .rows
            .iter()
            .map(|(user, item, t, secs, device, tags)| {
                json!({"user_id": format!("u{user}"), "item_id": format!("i{item}"),
                       "event_timestamp": ts(*t), "seconds": secs, "device": DEVICES[*device],
                       "tags": tags.iter().map(|t| TAGS[*t]).collect::<Vec<_>>()})
            })
            .collect();
        let outcome = store.store.push("play", &rows, batch.backfill).unwrap();
        for (seq, (user, item, t, secs, device, tags)) in batch.rows.iter().enumerate() {
            events.push(Event {
                user: *user,
                item: *item,
                event_ts: seconds(*t),
                created_ts: if batch.backfill {
                    seconds(*t)
                } else {
                    seconds(now)
                },
                version: outcome.store_version,
                seq,
                seconds: *secs,
                device: *device,
                tags: tags.clone(),
            });
        }
    }
    events
}

fn refs() -> Vec<String> {
    USER_FEATURES
        .iter()
        .map(|f| format!("user_plays:{f}"))
        .chain(ITEM_FEATURES.iter().map(|f| format!("item_plays:{f}")))
        .collect()
}

fn run(
    kind: Kind,
    batches: &[Batch],
    queries: &[(usize, usize, i64)],
    pin: u64,
    cutoff: Cutoff,
) -> Result<(), TestCaseError> {
    let store = store_with(kind, EVENTS, 0);
    let base_version = store.store.version();
    let events = push_all(&store, batches);
    let pinned = base_version + pin % (batches.len() as u64 + 1);
    let entity_rows: Vec<Json> = queries
        .iter()
        .map(|(user, item, t)| json!({"user_id": format!("u{user}"), "item_id": format!("i{item}"), "event_timestamp": ts(*t)}))
        .collect();
    let spec = SnapshotSpec {
        features: refs(),
        as_of_version: Some(pinned),
        cutoff,
        owner: String::new(),
    };
    let info = store
        .store
        .create_snapshot(&spec, entity_rows.into_iter().map(Ok))
        .unwrap();
    let rows = snapshot_rows(&store.store, &info.id);
    prop_assert_eq!(rows.len(), queries.len());
    for ((user, item, t), row) in queries.iter().zip(&rows) {
        let at = seconds(*t);
        for f in USER_FEATURES {
            let expected = user_reference(&events, *user, at, pinned, cutoff, f);
            let got = &row[format!("user_plays__{f}")];
            prop_assert!(
                same(got, &expected),
                "{} of u{} at {}s pinned {}: {} != {}",
                f,
                user,
                t,
                pinned,
                got,
                expected
            );
        }
        for f in ITEM_FEATURES {
            let expected = item_reference(&events, *item, at, pinned, cutoff, f);
            let got = &row[format!("item_plays__{f}")];
            prop_assert!(
                same(got, &expected),
                "{} of i{} at {}s: {} != {}",
                f,
                item,
                t,
                got,
                expected
            );
        }
    }

    // Online: t = now, the current version.
    let now = store.clock.now();
    let version = store.store.version();
    let entities: Vec<_> = (0..4)
        .map(|u| object(json!({"user_id": format!("u{u}"), "item_id": format!("i{u}")})))
        .collect();
    let online = store.store.online_features(&refs(), &entities).unwrap();
    for (u, row) in online.rows.iter().enumerate() {
        let values: Vec<Json> = row.values.iter().map(json_of).collect();
        for (i, f) in USER_FEATURES.iter().enumerate() {
            let expected = user_reference(&events, u, now, version, Cutoff::Created, f);
            prop_assert!(
                same(&values[i], &expected),
                "online {} of u{}: {} != {}",
                f,
                u,
                values[i],
                expected
            );
        }
        for (i, f) in ITEM_FEATURES.iter().enumerate() {
            let expected = item_reference(&events, u, now, version, Cutoff::Created, f);
            let got = &values[USER_FEATURES.len() + i];
            prop_assert!(
                same(got, &expected),
                "online {} of i{}: {} != {}",
                f,
                u,
                got,
                expected
            );
        }
    }
    Ok(())
}

fn cutoff() -> impl Strategy<Value = Cutoff> {
    prop_oneof![Just(Cutoff::Created), Just(Cutoff::Event)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn aggregates_match_a_naive_recomputation_in_memory(
        batches in prop::collection::vec(batch(), 1..8),
        queries in prop::collection::vec((0..4usize, 0..4usize, 0..160i64), 1..10),
        pin in any::<u64>(),
        cutoff in cutoff(),
    ) {
        run(Kind::Memory, &batches, &queries, pin, cutoff)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn aggregates_match_a_naive_recomputation_on_rocksdb(
        batches in prop::collection::vec(batch(), 1..8),
        queries in prop::collection::vec((0..4usize, 0..4usize, 0..160i64), 1..10),
        pin in any::<u64>(),
        cutoff in cutoff(),
    ) {
        run(Kind::Rocks, &batches, &queries, pin, cutoff)?;
    }
}

#[test]
fn an_online_read_right_after_a_push_equals_a_snapshot_row_at_that_instant() {
    let store = store_with(Kind::Memory, EVENTS, 100);
    let rows = [
        json!({"user_id": "u1", "item_id": "i1", "event_timestamp": ts(90), "seconds": 40, "device": "tv", "tags": ["a"]}),
        json!({"user_id": "u1", "item_id": "i2", "event_timestamp": ts(99), "seconds": 10, "device": "web", "tags": []}),
    ];
    store.store.push("play", &rows, false).unwrap();
    let entity = object(json!({"user_id": "u1", "item_id": "i1"}));
    let online = store.store.online_features(&refs(), &[entity]).unwrap();
    let spec = SnapshotSpec {
        features: refs(),
        as_of_version: None,
        cutoff: Cutoff::Created,
        owner: String::new(),
    };
    let info = store
        .store
        .create_snapshot(
            &spec,
            [Ok(
                json!({"user_id": "u1", "item_id": "i1", "event_timestamp": ts(100)}),
            )],
        )
        .unwrap();
    let mut out = Vec::new();
    store
        .store
        .write_snapshot_jsonl(&info.id, &mut out)
        .unwrap();
    let row: Json = serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).unwrap();
    for (i, r) in refs().iter().enumerate() {
        let column = r.replace(':', "__");
        let online_value = json_of(&online.rows[0].values[i]);
        assert!(
            same(&online_value, &row[&column]),
            "{r}: online {online_value}, snapshot {}",
            row[&column]
        );
    }
    assert_eq!(json_of(&online.rows[0].values[1]), json!(2), "plays_50s");
}

#[test]
fn lookups_store_the_attribute_valid_at_the_event_time() {
    let definitions = format!(
        "{}\n{}",
        r#"
[[entity]]
name = "user"
join_key = "user_id"

[[entity]]
name = "item"
join_key = "item_id"

[[feature_view]]
name = "catalog"
version = 1
entities = ["item"]
ttl = "0"

[[feature_view.feature]]
name = "genre"
type = "string"

[[feature_view]]
name = "listen"
version = 1
kind = "events"
entities = ["user", "item"]
ttl = "0"

[[feature_view.feature]]
name = "seconds"
type = "int64"

[[feature_view.lookup]]
name = "genre"
ref = "catalog:genre"
"#,
        r#"
[[aggregation]]
name = "taste"
version = 1
source = "listen"
entities = ["user"]

[[aggregation.feature]]
name = "genre_plays"
op = "count"
bucket_by = "genre"
vocabulary = ["rock", "jazz"]
windows = ["0"]
"#
    );
    let store = store_with(Kind::Memory, &definitions, 1000);
    let catalog = [
        json!({"item_id": "i1", "event_timestamp": ts(0), "genre": "rock"}),
        json!({"item_id": "i1", "event_timestamp": ts(50), "genre": "jazz"}),
    ];
    store.store.push("catalog", &catalog, true).unwrap();
    let listens = [
        json!({"user_id": "u1", "item_id": "i1", "event_timestamp": ts(10), "seconds": 1}),
        json!({"user_id": "u1", "item_id": "i1", "event_timestamp": ts(60), "seconds": 1}),
        json!({"user_id": "u1", "item_id": "i1", "event_timestamp": ts(70), "seconds": 1}),
    ];
    store.store.push("listen", &listens, false).unwrap();
    let history = store
        .store
        .view_history("listen", store.store.version())
        .unwrap();
    let genres: Vec<_> = history.iter().map(|r| json_of(&r.values[1])).collect();
    assert_eq!(genres, vec![json!("rock"), json!("jazz"), json!("jazz")]);
    let online = store
        .store
        .online_features(
            &["taste:genre_plays_all".into()],
            &[object(json!({"user_id": "u1"}))],
        )
        .unwrap();
    assert_eq!(json_of(&online.rows[0].values[0]), json!([1.0, 2.0]));
    // A lookup is never pushed.
    let err = store
        .store
        .push("listen", &[json!({"user_id": "u1", "item_id": "i1", "event_timestamp": ts(80), "genre": "rock"})], false)
        .unwrap_err();
    assert_eq!(err.field(), Some("rows[0].genre"), "{err}");
    // Nor is an aggregation.
    let err = store
        .store
        .push(
            "taste",
            &[json!({"user_id": "u1", "event_timestamp": ts(80)})],
            false,
        )
        .unwrap_err();
    assert_eq!(err.field(), Some("view"), "{err}");
}

#[test]
fn a_new_grouping_is_backfilled_and_the_old_version_keeps_answering() {
    let kinds = [Kind::Memory, Kind::Rocks];
    for kind in kinds {
        let store = store_with(kind, EVENTS, 150);
        let rows: Vec<Json> = (0..50)
            .map(|i| json!({"user_id": format!("u{}", i % 3), "item_id": format!("i{}", i % 5),
                            "event_timestamp": ts(100 + i), "seconds": i, "device": "tv", "tags": []}))
            .collect();
        store.store.push("play", &rows, true).unwrap();
        let before = store
            .store
            .online_features(
                &["user_plays:plays_50s".into()],
                &[object(json!({"user_id": "u0"}))],
            )
            .unwrap();
        // Version 2 adds a window, and a grouping by (user, item) nobody
        // indexed before: its values come from the stored events.
        let migrations = tempfile::tempdir().unwrap();
        std::fs::write(migrations.path().join("0001_test.toml"), EVENTS).unwrap();
        std::fs::write(
            migrations.path().join("0002_v2.toml"),
            r#"
[[aggregation]]
name = "user_plays"
version = 2
source = "play"
entities = ["user"]

[[aggregation.feature]]
name = "plays"
op = "count"
windows = ["50s", "100s"]

[[aggregation]]
name = "pair_plays"
version = 1
source = "play"
entities = ["user", "item"]

[[aggregation.feature]]
name = "plays"
op = "count"
windows = ["0"]

# The same grouping declared in the other order.
[[aggregation]]
name = "item_user_plays"
version = 1
source = "play"
entities = ["item", "user"]

[[aggregation.feature]]
name = "plays"
op = "count"
windows = ["0"]
"#,
        )
        .unwrap();
        assert_eq!(
            store.store.migrate(migrations.path()).unwrap(),
            vec!["0002_v2.toml".to_owned()]
        );
        let read = |refs: &[&str], entity: Json| {
            let refs: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
            store
                .store
                .online_features(&refs, &[object(entity)])
                .unwrap()
                .rows[0]
                .values
                .iter()
                .map(json_of)
                .collect::<Vec<_>>()
        };
        assert_eq!(json_of(&before.rows[0].values[0]), json!(16));
        assert_eq!(
            read(
                &[
                    "user_plays@1:plays_50s",
                    "user_plays:plays_50s",
                    "user_plays:plays_100s"
                ],
                json!({"user_id": "u0"})
            ),
            vec![json!(16), json!(16), json!(17)]
        );
        assert_eq!(
            read(
                &["pair_plays:plays_all"],
                json!({"user_id": "u0", "item_id": "i0"})
            ),
            vec![json!(4)]
        );
        assert_eq!(
            read(
                &["item_user_plays:plays_all"],
                json!({"user_id": "u0", "item_id": "i0"})
            ),
            vec![json!(4)],
            "a grouping listed in another order reads the same index"
        );
        // New events reach the new grouping through the push path.
        store.store.push("play", &[json!({"user_id": "u0", "item_id": "i0", "event_timestamp": ts(149), "seconds": 1, "device": "tv", "tags": []})], false).unwrap();
        assert_eq!(
            read(
                &["pair_plays:plays_all"],
                json!({"user_id": "u0", "item_id": "i0"})
            ),
            vec![json!(5)]
        );
    }
}

#[test]
fn bad_aggregation_definitions_are_explained() {
    let cases = [
        (
            EVENTS.replace(
                "source = \"play\"\nentities = [\"user\"]",
                "source = \"nope\"\nentities = [\"user\"]",
            ),
            "unknown source view `nope`",
        ),
        (
            EVENTS.replace(
                "windows = [\"10s\", \"50s\", \"0\"]",
                "windows = [\"10 s\"]",
            ),
            "window `10 s`",
        ),
        (
            EVENTS.replace("op = \"last\"", "op = \"median\""),
            "op `median`",
        ),
        (
            EVENTS.replace("value = 30 }", "value = \"x\" }"),
            "cannot compare",
        ),
        (
            EVENTS.replace("kind = \"events\"\n", ""),
            "aggregations read kind = \"events\" views",
        ),
    ];
    for (definitions, message) in cases {
        let (engine, _dir) = crate::common::engine(Kind::Memory);
        let store = reprise_store::FeatureStore::with_engine(engine, Default::default()).unwrap();
        let migrations = tempfile::tempdir().unwrap();
        std::fs::write(migrations.path().join("0001_test.toml"), definitions).unwrap();
        let err = store.migrate(migrations.path()).unwrap_err().to_string();
        assert!(err.contains(message), "{err} lacks {message}");
    }
}
