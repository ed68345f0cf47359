//! The snapshot's forward merge at sizes the property test does not reach:
//! thousands of entities (the merge steps between near ones and seeks to far
//! ones), entity rows over many computing passes, and one entity whose
//! history overflows the merge's buffer (its lookups fall back to one
//! backwards seek each). Every value is compared with a linear scan.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reprise_store::snapshot::ENTITY_ROW_CHUNK;
use reprise_store::time::Micros;
use reprise_store::{Cutoff, SnapshotSpec, StoreConfig};
use serde_json::{json, Value as Json};

use crate::common::{
    seconds, snapshot_rows, store, store_configured, ts, Kind, TestStore, DEFINITIONS,
};

/// (event time, created time, value) per user, in write order.
type Written = HashMap<String, Vec<(Micros, Micros, i64)>>;

fn push_rows(
    t: &TestStore,
    written: &mut Written,
    view: &str,
    rows: &[(String, i64, i64)],
    now: i64,
) {
    t.clock.set(seconds(now));
    let feature = if view == "a" { "x" } else { "y" };
    for batch in rows.chunks(20_000) {
        let body: Vec<Json> = batch
            .iter()
            .map(|(user, at, v)| json!({"user_id": user, "event_timestamp": ts(*at), feature: v}))
            .collect();
        t.store.push(view, &body, false).unwrap();
    }
    for (user, at, v) in rows {
        written
            .entry(user.clone())
            .or_default()
            .push((seconds(*at), seconds(now), *v));
    }
}

/// The newest visible write by a linear scan (later writes win ties).
fn expected(
    rows: Option<&Vec<(Micros, Micros, i64)>>,
    at: Micros,
    ttl: Micros,
    cutoff: Cutoff,
) -> Json {
    let Some(rows) = rows else {
        return Json::Null;
    };
    rows.iter()
        .enumerate()
        .filter(|(_, (event, created, _))| {
            *event <= at
                && (ttl == 0 || *event > at - ttl)
                && (cutoff == Cutoff::Event || *created <= at)
        })
        .max_by_key(|(i, (event, _, _))| (*event, *i))
        .map_or(Json::Null, |(_, (_, _, v))| json!(v))
}

fn snapshot(t: &TestStore, queries: &[(String, i64)], cutoff: Cutoff) -> Vec<Json> {
    let spec = SnapshotSpec {
        features: vec!["a:x".into(), "b:y".into()],
        as_of_version: None,
        cutoff,
        owner: String::new(),
    };
    let rows = queries
        .iter()
        .map(|(user, at)| Ok(json!({"user_id": user, "event_timestamp": ts(*at)})));
    let info = t.store.create_snapshot(&spec, rows).unwrap();
    snapshot_rows(&t.store, &info.id)
}

#[test]
fn merge_matches_a_linear_scan_over_many_entities_and_passes() {
    // Passes of 3 stored chunks (12,288 entity rows): the 300,000 below
    // take 25, the last one partial.
    let config = StoreConfig {
        snapshot_pass_rows: 3 * ENTITY_ROW_CHUNK,
        ..StoreConfig::default()
    };
    let t = store_configured(Kind::Rocks, DEFINITIONS, 0, config);
    let mut rng = StdRng::seed_from_u64(5);
    let (mut a, mut b) = (Written::new(), Written::new());
    // 5,000 users; some with no rows, some with many, ties on event time.
    let rows: Vec<(String, i64, i64)> = (0..20_000)
        .map(|_| {
            let user = rng.random_range(0..5_000u32) * rng.random_range(1..3u32);
            (
                format!("u{user}"),
                rng.random_range(0..1_000),
                rng.random_range(-99..99),
            )
        })
        .collect();
    push_rows(&t, &mut a, "a", &rows, 500);
    let late: Vec<(String, i64, i64)> = rows
        .iter()
        .step_by(3)
        .map(|(user, at, v)| (user.clone(), *at, v + 1000))
        .collect();
    push_rows(&t, &mut a, "a", &late, 800);
    let b_rows: Vec<(String, i64, i64)> = rows
        .iter()
        .step_by(2)
        .map(|(user, at, v)| (user.clone(), *at, -v))
        .collect();
    push_rows(&t, &mut b, "b", &b_rows, 900);

    // Users drawn from a wider range than was written.
    let queries: Vec<(String, i64)> = (0..300_000)
        .map(|_| {
            (
                format!("u{}", rng.random_range(0..11_000u32)),
                rng.random_range(0..1_100),
            )
        })
        .collect();
    for cutoff in [Cutoff::Created, Cutoff::Event] {
        let got = snapshot(&t, &queries, cutoff);
        assert_eq!(got.len(), queries.len());
        let mut found = 0;
        for ((user, at), row) in queries.iter().zip(&got) {
            assert_eq!(row["user_id"], json!(user), "input order kept");
            let want_a = expected(a.get(user), seconds(*at), 0, cutoff);
            let want_b = expected(b.get(user), seconds(*at), seconds(100), cutoff);
            assert_eq!(row["a__x"], want_a, "a:x of {user} at {at}s ({cutoff:?})");
            assert_eq!(row["b__y"], want_b, "b:y of {user} at {at}s ({cutoff:?})");
            found += usize::from(!want_a.is_null());
        }
        assert!(
            found > 50_000 && found < 250_000,
            "a mix of hits and misses: {found}"
        );
    }
}

#[test]
fn an_entity_with_a_longer_history_than_the_merge_buffers_falls_back_to_seeks() {
    let t = store(Kind::Rocks, 0);
    let mut a = Written::new();
    let rows: Vec<(String, i64, i64)> = (0..70_000)
        .map(|i| ("hot".to_owned(), i / 2, i))
        .chain((0..50).map(|i| (format!("cold{i}"), i, i)))
        .collect();
    push_rows(&t, &mut a, "a", &rows, 40_000);
    let queries: Vec<(String, i64)> = [0, 17, 20_000, 34_999, 35_000, 39_999, 50_000]
        .iter()
        .map(|at| ("hot".to_owned(), *at))
        .chain((0..50).map(|i| (format!("cold{i}"), 45_000)))
        .collect();
    for cutoff in [Cutoff::Created, Cutoff::Event] {
        let got = snapshot(&t, &queries, cutoff);
        for ((user, at), row) in queries.iter().zip(&got) {
            let want = expected(a.get(user), seconds(*at), 0, cutoff);
            assert_eq!(row["a__x"], want, "{user} at {at}s ({cutoff:?})");
        }
    }
}
