//! Retention: expired history leaves the disk at compaction, the latest
//! online value stays until its TTL, rows inside retention are all kept,
//! and a snapshot that would reach dropped history is refused.

use reprise_store::{Cutoff, SnapshotSpec, StoreError};
use serde_json::{json, Value as Json};

use crate::common::{seconds, snapshot_rows, store_with, ts, Kind};

const DAY: i64 = 86_400;

const DEFINITIONS: &str = r#"
[[entity]]
name = "user"
join_key = "user_id"

[[feature_view]]
name = "profile"
version = 1
entities = ["user"]
ttl = "2d"
retention = "7d"

[[feature_view.feature]]
name = "level"
type = "int64"

[[feature_view]]
name = "play"
version = 1
kind = "events"
entities = ["user"]
ttl = "0"
retention = "7d"

[[feature_view.feature]]
name = "seconds"
type = "int64"

[[aggregation]]
name = "user_plays"
version = 1
source = "play"
entities = ["user"]

[[aggregation.feature]]
name = "plays"
op = "count"
windows = ["1d"]

[[feature_view]]
name = "kept"
version = 1
entities = ["user"]
ttl = "0"

[[feature_view.feature]]
name = "x"
type = "int64"
"#;

fn history_days(t: &reprise_store::FeatureStore, view: &str) -> Vec<i64> {
    t.view_history(view, t.version())
        .unwrap()
        .iter()
        .map(|r| r.event_ts / seconds(DAY))
        .collect()
}

#[test]
fn expired_rows_leave_at_compaction_and_what_is_inside_retention_stays() {
    let t = store_with(Kind::Rocks, DEFINITIONS, 0);
    // One row a day for 20 days, in each view.
    for day in 0..20 {
        t.clock.set(seconds(day * DAY));
        let row =
            |f: &str| vec![json!({"user_id": "u1", "event_timestamp": ts(day * DAY), f: day})];
        t.store.push("profile", &row("level"), false).unwrap();
        t.store.push("play", &row("seconds"), false).unwrap();
        t.store.push("kept", &row("x"), false).unwrap();
    }
    // A key written once, on day 1, and never again.
    t.clock.set(seconds(DAY));
    t.store
        .push(
            "play",
            &[json!({"user_id": "u2", "event_timestamp": ts(DAY), "seconds": 5})],
            false,
        )
        .unwrap();
    let now = 20 * DAY;
    t.clock.set(seconds(now));
    let u2_play = |store: &reprise_store::FeatureStore| {
        store
            .online_features(
                &["play:seconds".into()],
                &[json!({"user_id": "u2"}).as_object().unwrap().clone()],
            )
            .unwrap()
            .rows[0]
            .statuses[0]
    };
    // Day 20: u2's only row (day 1) is older than the 7-day retention, so
    // it is forgotten online at once (judged at read time, like a TTL), and
    // the compaction below reclaims it.
    assert_eq!(u2_play(&t.store), reprise_store::FeatureStatus::NotFound);
    t.clock.set(seconds(5 * DAY));
    assert_eq!(u2_play(&t.store), reprise_store::FeatureStatus::Present);
    t.clock.set(seconds(now));
    assert_eq!(
        history_days(&t.store, "profile").len(),
        20,
        "nothing dropped before a compaction"
    );
    t.store.compact_history().unwrap();

    // The online row is gone from disk too: read with the clock set back to
    // a day when it would still be visible, it is not found.
    t.clock.set(seconds(5 * DAY));
    assert_eq!(u2_play(&t.store), reprise_store::FeatureStatus::NotFound);
    t.clock.set(seconds(now));

    // The horizon is day 13: rows at or before it are gone, later ones kept.
    assert_eq!(
        history_days(&t.store, "profile"),
        (14..20).collect::<Vec<_>>()
    );
    assert_eq!(history_days(&t.store, "play"), (14..20).collect::<Vec<_>>());
    assert_eq!(
        history_days(&t.store, "kept").len(),
        20,
        "no retention, nothing dropped"
    );

    // Online: the latest profile row is still there (inside its TTL), and
    // the 1-day count still counts the last day's event.
    let online = t
        .store
        .online_features_at(
            &["profile:level".into(), "user_plays:plays_1d".into()],
            &[json!({"user_id": "u1"}).as_object().unwrap().clone()],
            seconds(19 * DAY + 600),
        )
        .unwrap();
    assert_eq!(
        online.rows[0].values[0],
        Some(reprise_store::Value::Int64(19))
    );
    assert_eq!(
        online.rows[0].values[1],
        Some(reprise_store::Value::Int64(1))
    );

    // A snapshot inside retention answers in full.
    let spec = SnapshotSpec {
        features: vec!["profile:level".into(), "user_plays:plays_1d".into()],
        as_of_version: None,
        cutoff: Cutoff::Created,
        owner: String::new(),
    };
    let rows = |days: &[i64]| {
        days.iter()
            .map(|d| Ok(json!({"user_id": "u1", "event_timestamp": ts(d * DAY + 60)})))
            .collect::<Vec<Result<Json, String>>>()
    };
    let info = t.store.create_snapshot(&spec, rows(&[16, 19])).unwrap();
    let got = snapshot_rows(&t.store, &info.id);
    assert_eq!(got[0]["profile__level"], json!(16));
    assert_eq!(got[1]["profile__level"], json!(19));
    assert_eq!(got[1]["user_plays__plays_1d"], json!(1));

    // Entity rows whose lookups reach before the horizon (day 13; the
    // profile's TTL is 2 days, so day 14 already does) are refused.
    let err = t.store.create_snapshot(&spec, rows(&[19, 14])).unwrap_err();
    match &err {
        StoreError::Expired { field, message } => {
            assert_eq!(field, "entity_rows[1].event_timestamp");
            assert!(message.contains("profile@1"), "{message}");
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    // And a snapshot taken in time is refused when read after the horizon
    // passed its entity rows.
    t.clock.set(seconds(now + 3 * DAY));
    let err = t
        .store
        .write_snapshot_jsonl(&info.id, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, StoreError::Expired { .. }), "{err:?}");
}

fn declare(definitions: &str) -> Result<(), StoreError> {
    let store = reprise_store::FeatureStore::in_memory(Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0001_test.toml"), definitions).unwrap();
    store.migrate(dir.path()).map(|_| ())
}

#[test]
fn retention_is_checked_against_ttls_and_windows() {
    declare(DEFINITIONS).unwrap();
    let err = declare(&DEFINITIONS.replace("ttl = \"2d\"", "ttl = \"9d\"")).unwrap_err();
    assert!(err.to_string().contains("longer than retention"), "{err}");
    let err =
        declare(&DEFINITIONS.replace("windows = [\"1d\"]", "windows = [\"30d\"]")).unwrap_err();
    assert!(
        err.to_string()
            .contains("longer than the source's retention"),
        "{err}"
    );
    let err = declare(&DEFINITIONS.replace("windows = [\"1d\"]", "windows = [\"0\"]")).unwrap_err();
    assert!(err.to_string().contains("all-time window"), "{err}");
    let err =
        declare(&DEFINITIONS.replace("retention = \"7d\"", "retention = \"a week\"")).unwrap_err();
    assert!(err.to_string().contains("retention `a week`"), "{err}");
}
