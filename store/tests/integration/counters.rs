//! Counters added with a push are exact under concurrency, survive a
//! reopen, and are untouched by a rejected push.

use std::sync::Arc;

use reprise_store::engine::RocksEngine;
use reprise_store::{FeatureStore, StoreConfig};
use serde_json::json;

use crate::common::{store, ts, Kind, DEFINITIONS};

#[test]
fn concurrent_pushes_add_their_counters_exactly() {
    for kind in [Kind::Memory, Kind::Rocks] {
        let t = store(kind, 10_000);
        let s = Arc::new(t.store);
        let (threads, pushes) = (6, 40);
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for i in 0..pushes {
                        let row = json!({"user_id": format!("t{thread}"), "event_timestamp": ts(i), "x": i});
                        let counters = [
                            ("exp/a/impressions".to_owned(), 2),
                            (format!("exp/a/thread{thread}"), 1),
                        ];
                        s.push_all_counting(&[("a", &[row])], true, &counters)
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(
            s.counter("exp/a/impressions").unwrap(),
            Some(2 * threads * pushes)
        );
        let all = s.counters("exp/a/").unwrap();
        assert_eq!(all.len(), 1 + threads as usize);
        assert_eq!(all["exp/a/thread3"], pushes);
        assert_eq!(s.counter("exp/b/impressions").unwrap(), None);
        assert!(s.counters("exp/b/").unwrap().is_empty());
    }
}

#[test]
fn a_rejected_push_adds_nothing_and_counters_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let engine = RocksEngine::open(dir.path()).unwrap();
        FeatureStore::with_engine(Box::new(engine), StoreConfig::default()).unwrap()
    };
    let s = open();
    let migrations = tempfile::tempdir().unwrap();
    std::fs::write(migrations.path().join("0001_test.toml"), DEFINITIONS).unwrap();
    s.migrate(migrations.path()).unwrap();
    let good = json!({"user_id": "u", "event_timestamp": ts(1), "x": 1});
    let bad = json!({"user_id": "u", "event_timestamp": ts(1), "x": "not a number"});
    s.push_all_counting(
        &[("a", std::slice::from_ref(&good))],
        false,
        &[("c".into(), 5)],
    )
    .unwrap();
    assert!(s
        .push_all_counting(&[("a", &[good]), ("a", &[bad])], false, &[("c".into(), 7)])
        .is_err());
    // Counters need rows to ride on.
    assert!(s.push_all_counting(&[], false, &[("c".into(), 1)]).is_err());
    // A negative delta subtracts.
    let row = json!({"user_id": "v", "event_timestamp": ts(2), "x": 2});
    s.push_all_counting(&[("a", &[row])], false, &[("c".into(), -2)])
        .unwrap();
    assert_eq!(s.counter("c").unwrap(), Some(3));
    drop(s);
    let reopened = open();
    assert_eq!(reopened.counter("c").unwrap(), Some(3));
}
