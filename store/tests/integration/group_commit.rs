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
