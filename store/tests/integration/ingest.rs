//! Backfills by bulk ingestion store exactly what a backfill push stores:
//! two stores fed the same batches, one pushing and one ingesting the
//! backfill, hold the same bytes in every keyspace rows live in.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reprise_store::cf::Cf;
use reprise_store::engine::{Engine, RocksEngine};
use reprise_store::time::Clock;
use reprise_store::{FeatureStore, PushOutcome, StoreConfig, Value};
use serde_json::{json, Value as Json};

use crate::aggregations::EVENTS;
use crate::common::{object, seconds, store_with, ts, Kind, DEFINITIONS};

struct Fresh {
    store: FeatureStore,
    clock: Clock,
    data: tempfile::TempDir,
    _migrations: tempfile::TempDir,
}

/// A migrated RocksDB store whose directory the test keeps.
fn fresh(definitions: &str, start_seconds: i64) -> Fresh {
    let data = tempfile::tempdir().unwrap();
    let migrations = tempfile::tempdir().unwrap();
    std::fs::write(migrations.path().join("0001_test.toml"), definitions).unwrap();
    let clock = Clock::manual(seconds(start_seconds));
    let store = FeatureStore::with_engine(
        Box::new(RocksEngine::open(data.path()).unwrap()),
        StoreConfig {
            clock: clock.clone(),
            ..StoreConfig::default()
        },
    )
    .unwrap();
    store.migrate(migrations.path()).unwrap();
    Fresh {
        store,
        clock,
        data,
        _migrations: migrations,
    }
}

/// Every entry of the keyspaces rows live in, and the store version.
fn dump(fresh: Fresh) -> Vec<String> {
    let mut out = vec![format!("version {}", fresh.store.version())];
    drop(fresh.store);
    let engine = RocksEngine::open(fresh.data.path()).unwrap();
    for cf in [Cf::History, Cf::AggIndex, Cf::Online] {
        out.extend(
            engine
                .scan_prefix(cf, b"")
                .unwrap()
                .into_iter()
                .map(|(k, v)| format!("{} {k:?} {v:?}", cf.name())),
        );
    }
    out
}

fn play(rng: &mut StdRng) -> Json {
    json!({
        "user_id": format!("u{}", rng.random_range(0..20)),
        "item_id": format!("i{}", rng.random_range(0..8)),
        // Repeated and out-of-order times, some later than the live rows.
        "event_timestamp": ts(rng.random_range(0..400)),
        "seconds": rng.random_range(0..100),
        "device": if rng.random_bool(0.5) { "tv" } else { "phone" },
        "tags": ["a"],
    })
}

fn user_row(rng: &mut StdRng) -> Json {
    json!({"user_id": format!("u{}", rng.random_range(0..30)),
           "event_timestamp": ts(rng.random_range(0..400)),
           "x": rng.random_range(0..1000)})
}

/// Feeds both stores: live pushes, a backfill (pushed to one, ingested by
/// the other), more live pushes; then compares their contents.
fn ingested_equals_pushed(definitions: &str, view: &str, row: fn(&mut StdRng) -> Json) {
    for seed in 0..5u64 {
        ingested_equals_pushed_with(definitions, view, row, seed, 500);
    }
}

fn ingested_equals_pushed_with(
    definitions: &str,
    view: &str,
    row: fn(&mut StdRng) -> Json,
    seed: u64,
    backfill_rows: usize,
) {
    compare_with_push(
        definitions,
        view,
        row,
        seed,
        backfill_rows,
        |store, rows| store.ingest_backfill(view, rows).unwrap(),
    );
}

/// [`ingested_equals_pushed_with`] for a backfill spilled in chunks of
/// `chunk` rows, ingested in files of `file_entries` entries and online
/// rows in batches of `online_batch` entities, against one push of all its
/// rows (both one store version).
fn spilled_equals_pushed_with(
    (definitions, view, row): (&str, &str, fn(&mut StdRng) -> Json),
    seed: u64,
    backfill_rows: usize,
    chunk: usize,
    (file_entries, online_batch): (usize, usize),
) {
    compare_with_push(
        definitions,
        view,
        row,
        seed,
        backfill_rows,
        |store, rows| {
            let mut backfill = store
                .begin_backfill(view)
                .unwrap()
                .with_file_entries(file_entries)
                .with_online_batch(online_batch);
            for part in rows.chunks(chunk) {
                backfill.add_json(part).unwrap();
            }
            let outcome = backfill.finish().unwrap();
            assert_eq!(runs_left(store), 0);
            outcome
        },
    );
}

fn compare_with_push(
    definitions: &str,
    view: &str,
    row: fn(&mut StdRng) -> Json,
    seed: u64,
    backfill_rows: usize,
    ingest: impl Fn(&FeatureStore, &[Json]) -> PushOutcome,
) {
    {
        let mut rng = StdRng::seed_from_u64(seed);
        let (pushed, ingested) = (fresh(definitions, 200), fresh(definitions, 200));
        let live: Vec<Json> = (0..50).map(|_| row(&mut rng)).collect();
        let backfill: Vec<Json> = (0..backfill_rows).map(|_| row(&mut rng)).collect();
        let later: Vec<Json> = (0..50).map(|_| row(&mut rng)).collect();
        for t in [&pushed, &ingested] {
            t.store.push(view, &live, false).unwrap();
        }
        let expected = pushed.store.push(view, &backfill, true).unwrap();
        let outcome = ingest(&ingested.store, &backfill);
        assert_eq!(outcome, expected);
        for t in [&pushed, &ingested] {
            t.clock.set(seconds(300));
            t.store.push(view, &later, false).unwrap();
        }
        let (a, b) = (dump(pushed), dump(ingested));
        assert!(a.len() > 600, "{}", a.len());
        assert_eq!(a, b, "seed {seed}");
    }
}

#[test]
fn an_ingested_events_backfill_equals_a_pushed_one_with_its_indexes() {
    ingested_equals_pushed(EVENTS, "play", play);
}

#[test]
fn an_ingested_state_backfill_equals_a_pushed_one_and_online_moves_forward_only() {
    ingested_equals_pushed(DEFINITIONS, "a", user_row);
}

/// A backfill large enough to be encoded in parts side by side: ties on
/// event time between rows of different parts still go to the later row.
#[test]
fn a_large_ingestion_encoded_in_parts_equals_a_push() {
    ingested_equals_pushed_with(DEFINITIONS, "a", user_row, 7, 150_000);
}

/// Parts merged per key range, in the history and the aggregation index
/// both, each range written to its own files.
#[test]
fn a_large_events_ingestion_in_parts_and_key_ranges_equals_a_push() {
    ingested_equals_pushed_with(EVENTS, "play", play, 11, 140_000);
}

/// 100 rows of view `a` for users `u{from}`.. at times `from`.., `x` = `i`.
fn numbered_rows(from: i64) -> Vec<Json> {
    (from..from + 100)
        .map(|i| json!({"user_id": format!("u{i}"), "event_timestamp": ts(i), "x": i}))
        .collect()
}

/// Files in the backfills' spill directories of `store`'s scratch directory.
fn runs_left(store: &FeatureStore) -> usize {
    let Ok(spills) = std::fs::read_dir(store.scratch_dir()) else {
        return 0;
    };
    spills
        .map(|spill| std::fs::read_dir(spill.unwrap().path()).unwrap().count())
        .sum()
}

/// Many small runs (one mark each), one key range per core.
#[test]
fn a_spilled_state_backfill_equals_one_push_and_online_moves_forward_only() {
    for seed in 0..4u64 {
        let batches = if seed % 2 == 0 {
            (1 << 20, 1 << 20)
        } else {
            (1 << 20, 4)
        };
        spilled_equals_pushed_with((DEFINITIONS, "a", user_row), seed, 500, 70, batches);
    }
}

/// Runs of many marks, encoded in parts, history and indexes merged per key
/// range into many files each.
#[test]
fn a_large_spilled_events_backfill_equals_one_push_with_its_indexes() {
    spilled_equals_pushed_with((EVENTS, "play", play), 11, 140_000, 40_000, (15_000, 3));
}

#[test]
fn a_backfill_of_one_chunk_is_ingested_from_memory_without_spilling() {
    spilled_equals_pushed_with(
        (DEFINITIONS, "a", user_row),
        3,
        500,
        500,
        (1 << 20, 1 << 20),
    );
    let t = fresh(DEFINITIONS, 200);
    let before = t.store.version();
    let backfill = t.store.begin_backfill("a").unwrap();
    let outcome = backfill.finish().unwrap();
    assert_eq!((outcome.written, outcome.store_version), (0, before));
    let mut backfill = t.store.begin_backfill("a").unwrap();
    backfill
        .add_json(&[json!({"user_id": "u1", "event_timestamp": ts(1), "x": 1})])
        .unwrap();
    assert_eq!(backfill.finish().unwrap().store_version, before + 1);
    assert!(!t.data.path().join("scratch").exists(), "nothing spilled");
}

#[test]
fn a_backfill_that_failed_to_spill_refuses_more_rows_and_finishes_nothing() {
    let t = fresh(DEFINITIONS, 200);
    let before = t.store.version();
    let mut backfill = t.store.begin_backfill("a").unwrap();
    backfill.add_json(&numbered_rows(0)).unwrap();
    backfill.add_json(&numbered_rows(100)).unwrap();
    // The spill directory goes behind the backfill's back (a full or
    // failing disk): the next run cannot be written.
    for spill in std::fs::read_dir(t.store.scratch_dir()).unwrap() {
        std::fs::remove_dir_all(spill.unwrap().path()).unwrap();
    }
    backfill.add_json(&numbered_rows(200)).unwrap_err();
    let err = backfill.add_json(&numbered_rows(300)).unwrap_err();
    assert!(err.to_string().contains("start it again"), "{err}");
    let err = backfill.finish().unwrap_err();
    assert!(err.to_string().contains("start it again"), "{err}");
    assert_eq!(t.store.version(), before);
    assert!(t.store.view_history("a", before + 1).unwrap().is_empty());
}

#[test]
fn a_spilled_backfill_lists_the_keys_it_wrote_in_the_outbox_as_one_push_does() {
    let mut rng = StdRng::seed_from_u64(5);
    let (pushed, spilled) = (fresh(EVENTS, 200), fresh(EVENTS, 200));
    for t in [&pushed, &spilled] {
        t.store.enable_outbox(None).unwrap();
    }
    let rows: Vec<Json> = (0..3_000).map(|_| play(&mut rng)).collect();
    let pushed_version = pushed
        .store
        .push("play", &rows, true)
        .unwrap()
        .store_version;
    let mut backfill = spilled.store.begin_backfill("play").unwrap();
    for part in rows.chunks(700) {
        backfill.add_json(part).unwrap();
    }
    let spilled_version = backfill.finish().unwrap().store_version;
    let keys = |t: &Fresh, version: u64| {
        let entry = t
            .store
            .outbox_entries(100)
            .unwrap()
            .into_iter()
            .find(|pending| pending.version == version)
            .expect("an outbox entry for the version")
            .entry;
        let (mut online, mut events) = (entry.online_keys, entry.event_keys);
        online.sort();
        events.sort();
        (entry.resync, online, events)
    };
    let (resync, online, events) = keys(&spilled, spilled_version);
    assert!(!resync && !online.is_empty() && !events.is_empty());
    assert_eq!((resync, online, events), keys(&pushed, pushed_version));
}

#[test]
fn a_bad_row_in_a_later_chunk_of_a_backfill_writes_nothing_and_leaves_no_runs() {
    let t = fresh(DEFINITIONS, 200);
    let before = t.store.version();
    let mut backfill = t.store.begin_backfill("a").unwrap();
    backfill.add_json(&numbered_rows(0)).unwrap();
    backfill.add_json(&numbered_rows(100)).unwrap();
    let mut bad = numbered_rows(200);
    bad[42]["x"] = json!("many");
    let err = backfill.add_json(&bad).unwrap_err();
    assert_eq!(err.field(), Some("rows[42].x"), "{err}");
    assert!(runs_left(&t.store) > 0);
    drop(backfill);
    assert_eq!(runs_left(&t.store), 0);
    assert_eq!(t.store.version(), before);
    assert!(t.store.view_history("a", before + 1).unwrap().is_empty());
    // The writer is free again.
    let version = t
        .store
        .push("a", &numbered_rows(0)[..1], false)
        .unwrap()
        .store_version;
    assert_eq!(version, before + 1);
}

#[test]
fn a_rejected_ingestion_writes_nothing() {
    let t = store_with(Kind::Rocks, DEFINITIONS, 200);
    let mut rows: Vec<Json> = (0..100)
        .map(|i| json!({"user_id": format!("u{i}"), "event_timestamp": ts(i), "x": i}))
        .collect();
    rows[57] = json!({"user_id": "u57", "event_timestamp": ts(1), "x": "many"});
    let before = t.store.version();
    let err = t.store.ingest_backfill("a", &rows).unwrap_err();
    assert_eq!(err.field(), Some("rows[57].x"), "{err}");
    assert_eq!(t.store.version(), before);
    assert!(t.store.view_history("a", before + 1).unwrap().is_empty());
    let err = t.store.ingest_backfill("nope", &rows[..1]).unwrap_err();
    assert_eq!(err.field(), Some("view"));
    let err = t.store.ingest_backfill("a", &[]).unwrap_err();
    assert_eq!(err.field(), Some("rows"));
}

#[test]
fn an_ingestion_is_durable_and_read_like_a_push() {
    let t = fresh(DEFINITIONS, 1_000);
    let online_x = |store: &FeatureStore, user: &str| {
        let result = store
            .online_features(&["a:x".to_owned()], &[object(json!({"user_id": user}))])
            .unwrap();
        result.rows[0].values[0].clone()
    };
    t.store
        .push(
            "a",
            &[json!({"user_id": "u1", "event_timestamp": ts(995), "x": 5})],
            false,
        )
        .unwrap();
    t.store
        .push(
            "a",
            &[json!({"user_id": "u2", "event_timestamp": ts(1), "x": 6})],
            false,
        )
        .unwrap();
    // Both rows now in the online cache.
    assert_eq!(online_x(&t.store, "u1"), Some(Value::Int64(5)));
    assert_eq!(online_x(&t.store, "u2"), Some(Value::Int64(6)));
    let rows: Vec<Json> = (0..1_000)
        .map(|i| json!({"user_id": format!("u{}", i % 10), "event_timestamp": ts(i), "x": i}))
        .collect();
    let version = t.store.ingest_backfill("a", &rows).unwrap().store_version;
    assert_eq!(version, t.store.version());
    // u1's live row (time 995) is newer than its newest backfilled one
    // (991); u2's is older than 992, which replaces it in the cache too.
    assert_eq!(online_x(&t.store, "u1"), Some(Value::Int64(5)));
    assert_eq!(online_x(&t.store, "u2"), Some(Value::Int64(992)));
    let Fresh {
        store,
        data,
        _migrations,
        ..
    } = t;
    drop(store);
    let store = FeatureStore::with_engine(
        Box::new(RocksEngine::open(data.path()).unwrap()),
        StoreConfig::default(),
    )
    .unwrap();
    assert_eq!(store.version(), version);
    assert_eq!(store.view_history("a", version).unwrap().len(), 1_002);
    assert_eq!(store.view_history("a", version - 1).unwrap().len(), 2);
    assert_eq!(online_x(&store, "u2"), Some(Value::Int64(992)));
}
