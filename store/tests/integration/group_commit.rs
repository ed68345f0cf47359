//! Concurrent pushes are group-committed, yet every batch keeps its own
//! store version and its own point in time.

use std::collections::BTreeSet;
use std::sync::Arc;

use reprise_store::{SnapshotSpec, Value};
use serde_json::json;

use crate::common::{object, store, ts, Kind};

#[test]
fn concurrent_batches_get_their_own_versions() {
    let t = store(Kind::Rocks, 10_000);
    let s = Arc::new(t.store);
    let base = s.version();
    let (threads, batches) = (8, 30);
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                (0..batches)
                    .map(|i| {
                        let row = json!({"user_id": format!("t{thread}"), "event_timestamp": ts(i), "x": i});
                        let outcome = s.push("a", &[row], true).unwrap();
                        (outcome.store_version, thread, i)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let written: Vec<(u64, usize, i64)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let versions: BTreeSet<u64> = written.iter().map(|w| w.0).collect();
    assert_eq!(
        versions.len(),
        threads * batches as usize,
        "every batch has its own version"
    );
    assert_eq!(*versions.iter().next().unwrap(), base + 1);
    assert_eq!(
        *versions.iter().next_back().unwrap(),
        base + (threads * batches as usize) as u64
    );
    assert_eq!(s.version(), base + (threads * batches as usize) as u64);

    let users: Vec<_> = (0..threads)
        .map(|t| object(json!({"user_id": format!("t{t}")})))
        .collect();
    let online = s.online_features(&["a:x".to_owned()], &users).unwrap();
    for row in &online.rows {
        assert_eq!(row.values[0], Some(Value::Int64(batches - 1)));
    }

    // Pinned to any batch's version, a snapshot sees exactly the batches up to it.
    for &(version, thread, _) in written.iter().step_by(17) {
        let expected = written
            .iter()
            .filter(|w| w.1 == thread && w.0 <= version)
            .map(|w| w.2)
            .max()
            .unwrap();
        let spec = SnapshotSpec {
            features: vec!["a:x".into()],
            as_of_version: Some(version),
            ..Default::default()
        };
        let rows = vec![Ok(
            json!({"user_id": format!("t{thread}"), "event_timestamp": ts(1_000)}),
        )];
        let info = s.create_snapshot(&spec, rows).unwrap();
        let mut got = Vec::new();
        s.read_snapshot(&info.id, |_, rows| {
            got.extend(rows);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            got[0].values[0],
            Some(Value::Int64(expected)),
            "thread {thread} at version {version}"
        );
    }
}

#[test]
fn push_all_writes_every_batch_or_none() {
    let t = store(Kind::Rocks, 10_000);
    let s = &t.store;
    let base = s.version();
    let a = [json!({"user_id": "u1", "event_timestamp": ts(1), "x": 1})];
    // View b has a 100 s TTL and the clock is at 10,000 s.
    let b = [json!({"user_id": "u1", "event_timestamp": ts(9_990), "y": 2})];
    let bad = [json!({"user_id": "u1", "event_timestamp": ts(9_990), "y": "two"})];
    // A rejected batch writes none of the others.
    assert!(s.push_all(&[("a", &a[..]), ("b", &bad[..])], true).is_err());
    assert_eq!(s.version(), base);
    let u1 = [object(json!({"user_id": "u1"}))];
    let none = s.online_features(&["a:x".into()], &u1).unwrap();
    assert_eq!(none.rows[0].values, vec![None]);
    // Accepted: each batch has its own version, both are readable.
    let outcomes = s.push_all(&[("a", &a[..]), ("b", &b[..])], true).unwrap();
    let versions: Vec<u64> = outcomes.iter().map(|o| o.store_version).collect();
    assert_eq!(versions, [base + 1, base + 2]);
    let read = s
        .online_features(&["a:x".into(), "b:y".into()], &u1)
        .unwrap();
    assert_eq!(
        read.rows[0].values,
        vec![Some(Value::Int64(1)), Some(Value::Int64(2))]
    );
}

/// Parses `rows` (user, event seconds, x) for view `a` from text cells.
fn parsed(
    s: &reprise_store::FeatureStore,
    rows: &[(&str, i64, i64)],
) -> (
    reprise_store::text_rows::TextColumns,
    Vec<reprise_store::push::ParsedRow>,
) {
    let headers = ["user_id", "event_timestamp", "x"].map(String::from);
    let columns = s.text_columns("a", &headers).unwrap();
    let parsed = rows
        .iter()
        .enumerate()
        .map(|(i, (user, seconds, x))| {
            let cells = [user.to_string(), ts(*seconds), x.to_string()];
            columns.parse(i, cells.iter().map(String::as_str)).unwrap()
        })
        .collect();
    (columns, parsed)
}

/// Waits until `s` has `n` push groups in flight.
fn wait_for_in_flight(s: &reprise_store::FeatureStore, n: u64) {
    let start = std::time::Instant::now();
    while s.writes_in_flight() < n {
        assert!(start.elapsed().as_secs() < 30, "no {n} writes in flight");
        std::thread::yield_now();
    }
}

fn online_x(s: &reprise_store::FeatureStore, user: &str) -> Option<Value> {
    let users = [object(json!({ "user_id": user }))];
    s.online_features(&["a:x".to_owned()], &users).unwrap().rows[0].values[0].clone()
}

#[test]
fn a_push_prepared_while_the_one_before_is_written_reads_its_online_rows() {
    let t = store(Kind::Rocks, 10_000);
    let s = &t.store;
    let base = s.version();
    let (columns, first) = parsed(s, &[("u", 100, 1), ("v", 50, 1)]);
    let first = s.prepare_parsed(&columns, first, true).unwrap();
    // Older than the first push's row for `u`, newer for `v`.
    let (_, second) = parsed(s, &[("u", 90, 2), ("v", 60, 2), ("w", 10, 2)]);
    std::thread::scope(|scope| {
        let second = scope.spawn(|| s.prepare_parsed(&columns, second, true).unwrap());
        // The second push has read the online rows and waits for its turn:
        // the first one is not written yet.
        wait_for_in_flight(s, 2);
        assert_eq!(s.version(), base);
        let written = first.write().unwrap();
        assert_eq!(written.store_version, base + 1);
        let written = second.join().unwrap().write().unwrap();
        assert_eq!((written.written, written.store_version), (3, base + 2));
    });
    assert_eq!(
        online_x(s, "u"),
        Some(Value::Int64(1)),
        "the newer row stays"
    );
    assert_eq!(online_x(s, "v"), Some(Value::Int64(2)));
    assert_eq!(online_x(s, "w"), Some(Value::Int64(2)));
    assert_eq!(s.writes_in_flight(), 0);
}

#[test]
fn a_push_prepared_on_a_write_that_never_came_is_refused_and_the_next_one_writes() {
    let t = store(Kind::Rocks, 10_000);
    let s = &t.store;
    let base = s.version();
    let (columns, first) = parsed(s, &[("u", 100, 1)]);
    let first = s.prepare_parsed(&columns, first, true).unwrap();
    let (_, second) = parsed(s, &[("v", 100, 2)]);
    std::thread::scope(|scope| {
        let second = scope.spawn(|| s.prepare_parsed(&columns, second, true));
        wait_for_in_flight(s, 2);
        drop(first);
        let refused = second
            .join()
            .unwrap()
            .err()
            .expect("built on the dropped push");
        assert!(
            matches!(refused, reprise_store::StoreError::NotWritten(_)),
            "{refused}"
        );
        assert!(refused.to_string().contains("push again"), "{refused}");
    });
    assert_eq!(s.version(), base);
    assert_eq!(online_x(s, "u"), None);
    assert_eq!(online_x(s, "v"), None);
    let (_, third) = parsed(s, &[("v", 100, 3)]);
    let written = s
        .prepare_parsed(&columns, third, true)
        .unwrap()
        .write()
        .unwrap();
    assert_eq!(written.store_version, base + 1);
    assert_eq!(online_x(s, "v"), Some(Value::Int64(3)));
}

#[test]
fn other_writers_wait_for_the_push_in_flight() {
    let t = store(Kind::Rocks, 10_000);
    let s = &t.store;
    let base = s.version();
    let (columns, rows) = parsed(s, &[("u", 100, 1)]);
    let prepared = s.prepare_parsed(&columns, rows, true).unwrap();
    std::thread::scope(|scope| {
        // A model-registry write takes the writer lock exclusively.
        let other = scope.spawn(|| {
            s.register_definitions(
                "later",
                "[[entity]]\nname = \"later\"\njoin_key = \"later_id\"\n",
            )
            .unwrap()
        });
        // Time for the other writer to try before the push is written.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(s.version(), base, "nothing written before the push");
        assert_eq!(prepared.write().unwrap().store_version, base + 1);
        assert_eq!(other.join().unwrap(), base + 2, "written after the push");
    });
}
