//! Property test: random histories (late writes, equal timestamps, TTLs,
//! backfills, several views) give snapshots equal to a naive reference.

use proptest::prelude::*;
use reprise_store::time::Micros;
use reprise_store::{Cutoff, SnapshotSpec};
use serde_json::{json, Value as Json};

use crate::common::{seconds, snapshot_rows, store, ts, Kind};

/// One written row, as the reference remembers it.
#[derive(Debug, Clone)]
struct Written {
    view: usize,
    user: usize,
    event_ts: Micros,
    created_ts: Micros,
    version: u64,
    seq: usize,
    value: i64,
}

#[derive(Debug, Clone)]
struct Batch {
    view: usize,
    backfill: bool,
    clock_step: i64,
    rows: Vec<(usize, i64, i64)>,
}

const VIEWS: [(&str, &str, i64); 2] = [("a", "x", 0), ("b", "y", 100)];

fn batch() -> impl Strategy<Value = Batch> {
    (
        0..2usize,
        any::<bool>(),
        0..30i64,
        prop::collection::vec((0..3usize, 0..120i64, -50..50i64), 1..5),
    )
        .prop_map(|(view, backfill, clock_step, rows)| Batch {
            view,
            backfill,
            clock_step,
            rows,
        })
}

/// The reference: a linear scan over everything written.
fn reference(
    history: &[Written],
    view: usize,
    user: usize,
    at: Micros,
    max_version: u64,
    cutoff: Cutoff,
) -> Json {
    let ttl = seconds(VIEWS[view].2);
    history
        .iter()
        .filter(|w| w.view == view && w.user == user && w.event_ts <= at)
        .filter(|w| ttl == 0 || w.event_ts > at - ttl)
        .filter(|w| w.version <= max_version)
        .filter(|w| cutoff == Cutoff::Event || w.created_ts <= at)
        .max_by_key(|w| (w.event_ts, w.version, w.seq))
        .map_or(Json::Null, |w| json!(w.value))
}

fn run(
    kind: Kind,
    batches: &[Batch],
    queries: &[(usize, i64)],
    pin: u64,
    cutoff: Cutoff,
) -> Result<(), TestCaseError> {
    // Held to the end: its temporary directory goes with it.
    let test_store = store(kind, 0);
    let (store, clock) = (&test_store.store, &test_store.clock);
    let base_version = store.version();
    let mut history = Vec::new();
    let mut now = 0;
    for batch in batches {
        now += batch.clock_step;
        clock.set(seconds(now));
        let (view, feature, _) = VIEWS[batch.view];
        let rows: Vec<Json> = batch
            .rows
            .iter()
            .map(|(user, t, v)| json!({"user_id": format!("u{user}"), "event_timestamp": ts(*t), feature: v}))
            .collect();
        let outcome = store.push(view, &rows, batch.backfill).unwrap();
        for (seq, (user, t, v)) in batch.rows.iter().enumerate() {
            history.push(Written {
                view: batch.view,
                user: *user,
                event_ts: seconds(*t),
                created_ts: if batch.backfill {
                    seconds(*t)
                } else {
                    seconds(now)
                },
                version: outcome.store_version,
                seq,
                value: *v,
            });
        }
    }
    let pinned = base_version + pin % (batches.len() as u64 + 1);
    let entity_rows: Vec<Json> = queries
        .iter()
        .enumerate()
        .map(|(i, (user, t))| json!({"user_id": format!("u{user}"), "event_timestamp": ts(*t), "row": i}))
        .collect();
    let spec = SnapshotSpec {
        features: vec!["a:x".into(), "b:y".into()],
        as_of_version: Some(pinned),
        cutoff,
        owner: String::new(),
    };
    let info = store
        .create_snapshot(&spec, entity_rows.into_iter().map(Ok))
        .unwrap();
    let rows = snapshot_rows(store, &info.id);
    prop_assert_eq!(rows.len(), queries.len());
    for (i, ((user, t), row)) in queries.iter().zip(&rows).enumerate() {
        prop_assert_eq!(&row["row"], &json!(i), "rows come back in input order");
        for (view, (name, feature, _)) in VIEWS.iter().enumerate() {
            let expected = reference(&history, view, *user, seconds(*t), pinned, cutoff);
            prop_assert_eq!(
                &row[format!("{name}__{feature}")],
                &expected,
                "view {} user u{} at {}s pinned {}",
                name,
                user,
                t,
                pinned
            );
        }
    }
    Ok(())
}

fn cutoff() -> impl Strategy<Value = Cutoff> {
    prop_oneof![Just(Cutoff::Created), Just(Cutoff::Event)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn snapshots_match_the_reference_in_memory(
        batches in prop::collection::vec(batch(), 1..8),
        queries in prop::collection::vec((0..4usize, 0..160i64), 1..12),
        pin in any::<u64>(),
        cutoff in cutoff(),
    ) {
        run(Kind::Memory, &batches, &queries, pin, cutoff)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn snapshots_match_the_reference_on_rocksdb(
        batches in prop::collection::vec(batch(), 1..8),
        queries in prop::collection::vec((0..4usize, 0..160i64), 1..12),
        pin in any::<u64>(),
        cutoff in cutoff(),
    ) {
        run(Kind::Rocks, &batches, &queries, pin, cutoff)?;
    }
}
