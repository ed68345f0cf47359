//! Online reads: statuses, TTL at read time, order, cache coherence, and
//! rejected batches.

use reprise_store::{FeatureStatus, StoreError, Value};
use serde_json::json;

use crate::common::{object, seconds, store, ts, Kind};

#[test]
fn statuses_follow_the_contract_and_rows_keep_request_order() {
    for kind in [Kind::Memory, Kind::Rocks] {
        let t = store(kind, 1_000);
        let s = &t.store;
        s.push(
            "a",
            &[
                json!({"user_id": "u1", "event_timestamp": ts(900), "x": 3}),
                json!({"user_id": "u2", "event_timestamp": ts(900), "x": null}),
            ],
            false,
        )
        .unwrap();
        s.push(
            "b",
            &[json!({"user_id": "u1", "event_timestamp": ts(950), "y": 5})],
            false,
        )
        .unwrap();
        let features = ["a:x".to_owned(), "b:y".to_owned(), "a:x_log".to_owned()];
        let entities = [
            object(json!({"user_id": "u2"})),
            object(json!({"user_id": "u1"})),
            object(json!({"user_id": "u9"})),
        ];
        let result = s.online_features(&features, &entities).unwrap();
        assert_eq!(result.store_version, s.version());
        let u2 = &result.rows[0];
        assert_eq!(
            u2.statuses,
            [
                FeatureStatus::NullValue,
                FeatureStatus::NotFound,
                FeatureStatus::NullValue
            ]
        );
        let u1 = &result.rows[1];
        assert_eq!(
            u1.values,
            [
                Some(Value::Int64(3)),
                Some(Value::Int64(5)),
                Some(Value::Float64(4f64.ln()))
            ]
        );
        assert_eq!(
            u1.event_timestamps,
            [Some(seconds(900)), Some(seconds(950)), Some(seconds(900))]
        );
        assert_eq!(result.rows[2].statuses, [FeatureStatus::NotFound; 3]);
    }
}

#[test]
fn a_value_older_than_its_ttl_reads_outside_max_age() {
    let t = store(Kind::Rocks, 1_000);
    let s = &t.store;
    s.push(
        "b",
        &[json!({"user_id": "u1", "event_timestamp": ts(950), "y": 1})],
        false,
    )
    .unwrap();
    let read = || {
        s.online_features(&["b:y".to_owned()], &[object(json!({"user_id": "u1"}))])
            .unwrap()
    };
    assert_eq!(read().rows[0].statuses[0], FeatureStatus::Present);
    // ttl is 100s: at 1050s the row (event time 950s) is exactly too old.
    t.clock.set(seconds(1_050));
    let row = read().rows.remove(0);
    assert_eq!(row.statuses[0], FeatureStatus::OutsideMaxAge);
    assert_eq!(row.values[0], None);
}

#[test]
fn the_online_row_is_the_latest_by_event_time_and_the_cache_follows_writes() {
    let t = store(Kind::Rocks, 1_000);
    let s = &t.store;
    let read = || {
        s.online_features(&["a:x".to_owned()], &[object(json!({"user_id": "u1"}))])
            .unwrap()
            .rows[0]
            .values[0]
            .clone()
    };
    s.push(
        "a",
        &[json!({"user_id": "u1", "event_timestamp": ts(500), "x": 1})],
        false,
    )
    .unwrap();
    assert_eq!(read(), Some(Value::Int64(1)));
    assert_eq!(read(), Some(Value::Int64(1)), "served from the cache");
    assert!(s.cache_stats().hits >= 1);
    // A late write (older event time) does not replace the online value...
    s.push(
        "a",
        &[json!({"user_id": "u1", "event_timestamp": ts(400), "x": 2})],
        false,
    )
    .unwrap();
    assert_eq!(read(), Some(Value::Int64(1)));
    // ...a newer one does, and the cached value is not served stale.
    s.push(
        "a",
        &[
            json!({"user_id": "u1", "event_timestamp": ts(600), "x": 3}),
            json!({"user_id": "u1", "event_timestamp": ts(600), "x": 4}),
        ],
        false,
    )
    .unwrap();
    assert_eq!(
        read(),
        Some(Value::Int64(4)),
        "within a batch, the later row wins a tie"
    );
}

#[test]
fn a_rejected_batch_writes_nothing() {
    let t = store(Kind::Rocks, 1_000);
    let s = &t.store;
    let version = s.version();
    let good = json!({"user_id": "u1", "event_timestamp": ts(1), "x": 1});
    let cases = [
        ("nope", vec![good.clone()], "view"),
        (
            "a",
            vec![
                good.clone(),
                json!({"user_id": "u2", "event_timestamp": ts(1), "x": "three"}),
            ],
            "rows[1].x",
        ),
        (
            "a",
            vec![
                good.clone(),
                json!({"user_id": "u2", "event_timestamp": ts(1), "z": 1}),
            ],
            "rows[1].z",
        ),
        (
            "a",
            vec![good.clone(), json!({"event_timestamp": ts(1), "x": 1})],
            "rows[1].user_id",
        ),
        (
            "a",
            vec![good.clone(), json!({"user_id": "u2", "x": 1})],
            "rows[1].event_timestamp",
        ),
        (
            "a",
            vec![
                good.clone(),
                json!({"user_id": "u2", "event_timestamp": "yesterday", "x": 1}),
            ],
            "rows[1].event_timestamp",
        ),
        (
            "a",
            vec![
                good.clone(),
                json!({"user_id": "u2", "event_timestamp": ts(1), "x_log": 1.0}),
            ],
            "rows[1].x_log",
        ),
        ("a", vec![good.clone(), json!([1, 2])], "rows[1]"),
        ("a", vec![], "rows"),
    ];
    for (view, rows, field) in cases {
        let err = s.push(view, &rows, false).unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
    }
    assert_eq!(
        s.version(),
        version,
        "no rejected batch advanced the store version"
    );
    let read = s
        .online_features(&["a:x".to_owned()], &[object(json!({"user_id": "u1"}))])
        .unwrap();
    assert_eq!(read.rows[0].statuses[0], FeatureStatus::NotFound);
    let err = s
        .online_features(&["a:x".to_owned()], &[object(json!({"item_id": "i1"}))])
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::MissingField { field } if field == "entities[0].user_id"),
        "{err}"
    );
}

/// A row further ahead of the clock than the allowed lead is refused (it
/// would stay the key's latest value until then), naming the field; the
/// batch writes nothing.
#[test]
fn rows_too_far_in_the_future_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_test.toml"),
        crate::common::DEFINITIONS,
    )
    .unwrap();
    let clock = reprise_store::time::Clock::manual(seconds(1_000));
    let store = reprise_store::FeatureStore::in_memory(reprise_store::StoreConfig {
        clock,
        max_future: Some(seconds(3_600)),
        ..Default::default()
    })
    .unwrap();
    store.migrate(dir.path()).unwrap();
    let version = store.version();
    let err = store
        .push(
            "a",
            &[
                json!({"user_id": "u1", "event_timestamp": ts(4_600), "x": 1}),
                json!({"user_id": "u2", "event_timestamp": ts(4_601), "x": 2}),
            ],
            false,
        )
        .unwrap_err();
    assert_eq!(err.field(), Some("rows[1].event_timestamp"), "{err}");
    assert_eq!(store.version(), version, "nothing written");
    // Exactly the lead is accepted.
    store
        .push(
            "a",
            &[json!({"user_id": "u1", "event_timestamp": ts(4_600), "x": 1})],
            false,
        )
        .unwrap();
}

/// Once a push is acknowledged, no later read returns an older value,
/// with writers and readers hammering the same keys through the cache.
#[test]
fn no_read_after_an_acknowledged_push_returns_an_older_value() {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    use std::sync::Arc;
    for kind in [Kind::Memory, Kind::Rocks] {
        let t = store(kind, 1_000);
        let store = &t.store;
        const KEYS: usize = 4;
        let acked: Arc<Vec<AtomicI64>> = Arc::new((0..KEYS).map(|_| AtomicI64::new(0)).collect());
        let done = AtomicBool::new(false);
        let stale = AtomicI64::new(0);
        std::thread::scope(|scope| {
            let mut writers = Vec::new();
            for writer in 0..2 {
                let acked = Arc::clone(&acked);
                writers.push(scope.spawn(move || {
                    for x in 1..=1_500i64 {
                        let key = (x as usize + writer) % KEYS;
                        // Each key's value grows: writers take turns by parity.
                        let value = x * 2 + writer as i64;
                        store
                            .push(
                                "a",
                                &[json!({"user_id": format!("u{key}"), "event_timestamp": ts(900 + x), "x": value})],
                                false,
                            )
                            .unwrap();
                        acked[key].fetch_max(value, Ordering::SeqCst);
                    }
                }));
            }
            for _ in 0..3 {
                let acked = Arc::clone(&acked);
                let (done, stale) = (&done, &stale);
                scope.spawn(move || {
                    while !done.load(Ordering::SeqCst) {
                        for key in 0..KEYS {
                            let floor = acked[key].load(Ordering::SeqCst);
                            let rows = store
                                .online_features(
                                    &["a:x".to_owned()],
                                    &[object(json!({"user_id": format!("u{key}")}))],
                                )
                                .unwrap()
                                .rows;
                            let read = match &rows[0].values[0] {
                                Some(Value::Int64(v)) => *v,
                                _ => 0,
                            };
                            // Values of one key are written in event-time
                            // order, so the latest acknowledged is the
                            // greatest.
                            if read < floor {
                                stale.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                });
            }
            let done = &done;
            scope.spawn(move || {
                let finished = writers.into_iter().map(|w| w.join()).collect::<Vec<_>>();
                done.store(true, Ordering::SeqCst);
                assert!(finished.iter().all(Result::is_ok), "a writer failed");
            });
        });
        assert_eq!(
            stale.load(Ordering::SeqCst),
            0,
            "{kind:?}: a read returned an older value than an acknowledged push"
        );
    }
}
