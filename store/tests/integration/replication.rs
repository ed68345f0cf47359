//! Leader → shared online store → replica, in process (the shared store is
//! the engine's, in memory): the outbox lists every commit's changes, the
//! publisher drains it in version order, and a replica answers online reads
//! (rows, TTL statuses, derived features, aggregations) exactly as the
//! leader does once it has caught up; a failing shared store delays the
//! replica but loses nothing; definitions (a later migration, a retired
//! version) reach it too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use reprise_store::codec;
use reprise_store::engine::MemoryEngine;
use reprise_store::online_store::{
    check_target, publish_pending, ChangeRecord, EngineOnlineStore, LeaderState, OnlineChanges,
    OnlineStore,
};
use reprise_store::proto::Definitions;
use reprise_store::time::Micros;
use reprise_store::{FeatureStore, OnlineResult, StoreConfig, StoreError};
use serde_json::json;

use crate::common::{object, seconds, store_with, ts, Kind, TestStore, DEFINITIONS};

const EVENTS: &str = r#"
[[feature_view]]
name = "play"
version = 1
kind = "events"
entities = ["user", "item"]
ttl = "0"

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
windows = ["50s", "0"]

[[aggregation.feature]]
name = "seconds"
op = "sum"
input = "seconds"
windows = ["50s"]
"#;

const FEATURES: [&str; 7] = [
    "a:x",
    "a:x_log",
    "b:y",
    "ui:plays",
    "user_plays:plays_50s",
    "user_plays:plays_all",
    "user_plays:seconds_sum_50s",
];

fn features() -> Vec<String> {
    FEATURES.iter().map(|f| f.to_string()).collect()
}

fn entities() -> Vec<serde_json::Map<String, serde_json::Value>> {
    ["u1", "u2", "u3"]
        .iter()
        .map(|u| object(json!({"user_id": u, "item_id": "i1"})))
        .collect()
}

fn read(store: &FeatureStore) -> OnlineResult {
    store.online_features(&features(), &entities()).unwrap()
}

/// A batch of writes to every view, at `at` seconds.
fn write(store: &FeatureStore, at: i64, n: i64) {
    for u in ["u1", "u2"] {
        store
            .push(
                "a",
                &[json!({"user_id": u, "event_timestamp": ts(at), "x": n})],
                false,
            )
            .unwrap();
        store
            .push(
                "ui",
                &[json!({"user_id": u, "item_id": "i1", "event_timestamp": ts(at), "plays": n})],
                false,
            )
            .unwrap();
        store
            .push(
                "play",
                &[
                    json!({"user_id": u, "item_id": "i1", "event_timestamp": ts(at - 1), "seconds": n}),
                    json!({"user_id": u, "item_id": "i2", "event_timestamp": ts(at), "seconds": 2 * n}),
                ],
                false,
            )
            .unwrap();
    }
    store
        .push(
            "b",
            &[json!({"user_id": "u1", "event_timestamp": ts(at), "y": n})],
            false,
        )
        .unwrap();
}

/// A shared store that fails while told to (a Redis outage).
#[derive(Debug)]
struct Flaky {
    inner: EngineOnlineStore,
    down: AtomicBool,
    /// Publishing a version fails (a leader that dies between recording a
    /// round's changes and publishing it).
    refuse_publish: AtomicBool,
    /// Aggregation groups read.
    group_reads: std::sync::atomic::AtomicU64,
}

impl Flaky {
    fn check(&self) -> reprise_store::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Engine("shared store unreachable".into()));
        }
        Ok(())
    }
}

impl OnlineStore for Flaky {
    fn apply(&self, changes: &OnlineChanges) -> reprise_store::Result<()> {
        self.check()?;
        self.inner.apply(changes)
    }
    fn publish_version(&self, version: u64) -> reprise_store::Result<()> {
        self.check()?;
        if self.refuse_publish.load(Ordering::SeqCst) {
            return Err(StoreError::Engine(
                "the leader died before publishing".into(),
            ));
        }
        self.inner.publish_version(version)
    }
    fn published_version(&self) -> reprise_store::Result<u64> {
        self.inner.published_version()
    }
    fn latest(&self, keys: &[Vec<u8>]) -> reprise_store::Result<Vec<Option<Vec<u8>>>> {
        self.inner.latest(keys)
    }
    fn group_events(
        &self,
        prefix: &[u8],
        from: Micros,
        to: Micros,
    ) -> reprise_store::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.group_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.group_events(prefix, from, to)
    }
    fn publish_definitions(&self, definitions: &Definitions) -> reprise_store::Result<()> {
        self.check()?;
        self.inner.publish_definitions(definitions)
    }
    fn definitions(&self) -> reprise_store::Result<Option<Definitions>> {
        self.inner.definitions()
    }
    fn set_leader_state(&self, state: &LeaderState) -> reprise_store::Result<()> {
        self.check()?;
        self.inner.set_leader_state(state)
    }
    fn leader_state(&self) -> reprise_store::Result<Option<LeaderState>> {
        self.inner.leader_state()
    }
    fn record_changes(
        &self,
        version: u64,
        keys: &[Vec<u8>],
        everything: bool,
    ) -> reprise_store::Result<()> {
        self.check()?;
        self.inner.record_changes(version, keys, everything)
    }
    fn changes_after(&self, after: u64, limit: usize) -> reprise_store::Result<Vec<ChangeRecord>> {
        self.check()?;
        self.inner.changes_after(after, limit)
    }
    fn newest_change(&self) -> reprise_store::Result<u64> {
        self.check()?;
        self.inner.newest_change()
    }
}

/// A replica of what `shared` published, on `t`'s clock.
fn replica_of(shared: &Arc<Flaky>, t: &TestStore) -> FeatureStore {
    let definitions = shared
        .definitions()
        .unwrap()
        .expect("definitions published");
    let config = StoreConfig {
        clock: t.clock.clone(),
        ..StoreConfig::default()
    };
    FeatureStore::replica(shared.clone(), &definitions, config).unwrap()
}

fn shared() -> Arc<Flaky> {
    Arc::new(Flaky {
        inner: EngineOnlineStore::new(Box::new(MemoryEngine::new())),
        down: AtomicBool::new(false),
        refuse_publish: AtomicBool::new(false),
        group_reads: std::sync::atomic::AtomicU64::new(0),
    })
}

#[test]
fn a_caught_up_replica_answers_as_the_leader_and_an_outage_loses_nothing() {
    for kind in [Kind::Memory, Kind::Rocks] {
        let definitions = format!("{DEFINITIONS}\n{EVENTS}");
        let t = store_with(kind, &definitions, 1_000);
        let leader = &t.store;
        // Written before the outbox is on: the first publication carries it.
        write(leader, 900, 1);
        assert!(leader.outbox_entries(10).unwrap().is_empty());
        assert!(
            leader.enable_outbox(Some(0)).unwrap(),
            "off before: everything"
        );
        write(leader, 950, 2);

        let shared = shared();
        let round = publish_pending(leader, shared.as_ref()).unwrap();
        assert_eq!(round.published_version, Some(leader.version()));
        assert!(leader.outbox_entries(10).unwrap().is_empty());
        let replica = replica_of(&shared, &t);
        assert!(replica.is_replica());
        let caught_up = read(leader);
        assert_eq!(read(&replica), caught_up, "{kind:?}");
        // Not trivially equal: values, a TTL status and aggregates differ
        // between entities.
        assert_ne!(caught_up.rows[0], caught_up.rows[2]);

        // Later writes stay invisible to the replica until published, also
        // through an outage of the shared store.
        write(leader, 980, 3);
        shared.down.store(true, Ordering::SeqCst);
        assert!(publish_pending(leader, shared.as_ref()).is_err());
        assert!(!leader.outbox_entries(100).unwrap().is_empty());
        replica.follow(shared.published_version().unwrap());
        assert_eq!(read(&replica), caught_up);
        shared.down.store(false, Ordering::SeqCst);
        publish_pending(leader, shared.as_ref()).unwrap();
        assert!(leader.outbox_entries(100).unwrap().is_empty());
        replica.follow(shared.published_version().unwrap());
        assert_eq!(read(&replica), read(leader));

        // Time passes: TTLs and windows are judged at read time on both.
        t.clock.set(seconds(1_070));
        assert_eq!(read(&replica), read(leader));
        let lag = reprise_store::online_store::ReplicaLag::of(
            shared.published_version().unwrap(),
            shared.leader_state().unwrap(),
            t.clock.now(),
        );
        assert_eq!(lag.versions, 0);
        assert_eq!(lag.leader_version, leader.version());

        // Only the groupings aggregations read are published: the events
        // view's time index stays on the leader.
        let registry = leader.registry();
        let play = registry.view("play").unwrap().id;
        let time_index = codec::agg_index_prefix(play, 0, &codec::entity_key::<&str>(&[]));
        assert!(shared
            .group_events(&time_index, i64::MIN, i64::MAX)
            .unwrap()
            .is_empty());
        let by_user = codec::agg_index_prefix(play, 1, &codec::entity_key(&["u1"]));
        assert!(!shared
            .group_events(&by_user, i64::MIN, i64::MAX)
            .unwrap()
            .is_empty());

        // A leader restarting on the shared store it left, with a commit
        // made meanwhile (a command-line push while it was down): only that
        // commit's row and the definitions go out, not the whole view.
        leader
            .push(
                "a",
                &[json!({"user_id": "u1", "event_timestamp": ts(1_060), "x": 40})],
                false,
            )
            .unwrap();
        let published = shared.published_version().unwrap();
        assert!(
            !leader.enable_outbox(Some(published)).unwrap(),
            "the shared store is where this store left it"
        );
        let round = publish_pending(leader, shared.as_ref()).unwrap();
        assert_eq!(round.rows, 1, "{round:?}");
        replica.follow(shared.published_version().unwrap());
        assert_eq!(read(&replica), read(leader));
        // Asked to (`--online-store-republish`), it publishes it all.
        assert!(leader.enable_outbox(None).unwrap());
        let round = publish_pending(leader, shared.as_ref()).unwrap();
        assert!(round.rows > 1, "{round:?}");
        replica.follow(shared.published_version().unwrap());
        assert_eq!(read(&replica), read(leader));

        // A leader restarting on an emptied shared store publishes it all
        // again; a shared store ahead of the leader is refused.
        let emptied = self::shared();
        assert!(
            leader
                .enable_outbox(Some(emptied.published_version().unwrap()))
                .unwrap(),
            "on, but the shared store lost what this store published: everything again"
        );
        publish_pending(leader, emptied.as_ref()).unwrap();
        let again = replica_of(&emptied, &t);
        assert_eq!(read(&again), read(leader));
        let ahead = self::shared();
        ahead.publish_version(leader.version() + 5).unwrap();
        assert!(check_target(leader, ahead.as_ref()).is_err());
        assert!(check_target(leader, emptied.as_ref()).is_ok());
    }
}

#[test]
fn definitions_reach_replicas_and_the_outbox_stays_empty_when_off() {
    let t = store_with(Kind::Memory, DEFINITIONS, 1_000);
    let leader = &t.store;
    leader.enable_outbox(Some(0)).unwrap();
    let shared = shared();
    publish_pending(leader, shared.as_ref()).unwrap();
    let replica = replica_of(&shared, &t);

    // A new version of `a`, then the old one retired.
    let a2 = r#"
[[feature_view]]
name = "a"
version = 2
entities = ["user"]
ttl = "0"

[[feature_view.feature]]
name = "z"
type = "int64"
"#;
    leader.register_definitions("a_v2", a2).unwrap();
    leader
        .push(
            "a@2",
            &[json!({"user_id": "u1", "event_timestamp": ts(990), "z": 7})],
            false,
        )
        .unwrap();
    assert!(leader.retire_view_version("a@1").unwrap());
    publish_pending(leader, shared.as_ref()).unwrap();
    replica
        .load_definitions(&shared.definitions().unwrap().unwrap())
        .unwrap();
    replica.follow(shared.published_version().unwrap());
    let z = ["a@2:z".to_owned()];
    let u1 = [object(json!({"user_id": "u1"}))];
    assert_eq!(
        replica.online_features(&z, &u1).unwrap(),
        leader.online_features(&z, &u1).unwrap()
    );
    let old = ["a@1:x".to_owned()];
    assert!(leader.online_features(&old, &u1).is_err());
    assert!(replica.online_features(&old, &u1).is_err());

    // Off: entries dropped, none written.
    assert!(leader.disable_outbox().unwrap());
    leader
        .push(
            "b",
            &[json!({"user_id": "u1", "event_timestamp": ts(995), "y": 1})],
            false,
        )
        .unwrap();
    assert!(leader.outbox_entries(10).unwrap().is_empty());
}

/// `a:x` (and its derived `a:x_log`) only: rows a replica caches.
fn read_x(store: &FeatureStore) -> OnlineResult {
    let features = vec!["a:x".to_string(), "b:y".to_string()];
    store.online_features(&features, &entities()).unwrap()
}

#[test]
fn a_replica_caches_rows_until_a_change_record_names_them() {
    let t = store_with(Kind::Memory, &format!("{DEFINITIONS}\n{EVENTS}"), 1_000);
    let leader = &t.store;
    leader.enable_outbox(Some(0)).unwrap();
    write(leader, 950, 1);
    let shared = shared();
    publish_pending(leader, shared.as_ref()).unwrap();
    let replica = replica_of(&shared, &t);
    // Before the follower's first round, nothing is cached.
    assert_eq!(read_x(&replica), read_x(leader));
    assert_eq!(replica.cache_stats().hits + replica.cache_stats().misses, 0);

    replica
        .follow_changes(shared.published_version().unwrap())
        .unwrap();
    let first = read_x(&replica);
    assert_eq!(first, read_x(leader));
    let hits = replica.cache_stats().hits;
    assert_eq!(read_x(&replica), first);
    assert_eq!(replica.cache_stats().hits, hits + 6, "3 entities x 2 views");

    // The leader changes the rows: published, but not yet followed, the
    // cached rows answer, named with the replica's (older) version.
    write(leader, 980, 2);
    publish_pending(leader, shared.as_ref()).unwrap();
    assert_eq!(read_x(&replica), first, "served from the cache");
    assert_ne!(read_x(leader).rows, first.rows);
    let round = replica
        .follow_changes(shared.published_version().unwrap())
        .unwrap();
    assert!(round.keys_dropped >= 3 && !round.dropped_all, "{round:?}");
    assert_eq!(
        read_x(&replica),
        read_x(leader),
        "the changed keys were dropped"
    );

    // A round recorded but not yet published is not applied: a row read
    // meanwhile (the published, older one) is cached, and dropped when the
    // version is published.
    let before = read_x(leader);
    write(leader, 985, 3);
    shared.refuse_publish.store(true, Ordering::SeqCst);
    assert!(publish_pending(leader, shared.as_ref()).is_err());
    let published = shared.published_version().unwrap();
    assert!(shared.newest_change().unwrap() > published);
    let round = replica.follow_changes(published).unwrap();
    assert_eq!(round.records, 0, "{round:?}");
    assert_eq!(read_x(&replica), before);
    shared.refuse_publish.store(false, Ordering::SeqCst);
    publish_pending(leader, shared.as_ref()).unwrap();
    replica
        .follow_changes(shared.published_version().unwrap())
        .unwrap();
    assert_eq!(read_x(&replica), read_x(leader));
    assert_ne!(read_x(leader), before);

    // The feed unreadable: the cache is dropped and not used; the version
    // still moves.
    let ahead = shared.published_version().unwrap() + 3;
    shared.down.store(true, Ordering::SeqCst);
    assert!(replica.follow_changes(ahead).is_err());
    assert_eq!(replica.version(), ahead);
    shared.down.store(false, Ordering::SeqCst);
    let lookups = |s: reprise_store::online_cache::CacheStats| s.hits + s.misses;
    let before = lookups(replica.cache_stats());
    assert_eq!(read_x(&replica).rows, read_x(leader).rows);
    assert_eq!(
        lookups(replica.cache_stats()),
        before,
        "the cache is not read"
    );
    replica
        .follow_changes(shared.published_version().unwrap())
        .unwrap();

    // A record of "everything" (a whole publication) drops it all.
    assert_eq!(read_x(&replica).rows, read_x(leader).rows);
    leader
        .push(
            "b",
            &[json!({"user_id": "u1", "event_timestamp": ts(990), "y": 7})],
            false,
        )
        .unwrap();
    assert!(leader.enable_outbox(None).unwrap());
    publish_pending(leader, shared.as_ref()).unwrap();
    let drops = replica.replica_cache_drops();
    let round = replica
        .follow_changes(shared.published_version().unwrap())
        .unwrap();
    assert!(round.dropped_all, "{round:?}");
    assert_eq!(replica.replica_cache_drops(), drops + 1);
    assert_eq!(read_x(&replica).rows, read_x(leader).rows);

    // Records the replica never saw (trimmed while it was away: the chain
    // does not continue from its last one) drop it all too.
    let kept = reprise_store::online_store::CHANGE_RECORDS_KEPT as u64;
    let next = shared.newest_change().unwrap() + 1;
    for version in next..next + kept + 200 {
        shared
            .record_changes(version, &[b"gone".to_vec()], false)
            .unwrap();
    }
    shared.publish_version(next + kept + 199).unwrap();
    let round = replica
        .follow_changes(shared.published_version().unwrap())
        .unwrap();
    assert!(round.dropped_all, "{round:?}");
    assert_eq!(read_x(&replica).rows, read_x(leader).rows);
}

/// The model registry reaches replicas with the definitions: records,
/// serving pointers and promotion histories, saved, promoted, rolled back
/// and deleted without a store version of their own.
#[test]
fn the_model_registry_reaches_replicas_without_a_store_version() {
    use reprise_store::online_store::definitions_digest;
    use reprise_store::proto::ModelRecord;
    let t = store_with(Kind::Memory, DEFINITIONS, 1_000);
    let leader = &t.store;
    leader.enable_outbox(Some(0)).unwrap();
    let shared = shared();
    publish_pending(leader, shared.as_ref()).unwrap();
    let replica = replica_of(&shared, &t);
    let sync = |replica: &FeatureStore| {
        let round = publish_pending(leader, shared.as_ref()).unwrap();
        replica
            .load_definitions(&shared.definitions().unwrap().unwrap())
            .unwrap();
        round
    };
    let ranker = |payload: &[u8]| ModelRecord {
        kind: "ranker".into(),
        payload: payload.to_vec(),
        ..Default::default()
    };
    let version = leader.version();
    let first = leader.save_model(ranker(b"one")).unwrap();
    let second = leader.save_model(ranker(b"two")).unwrap();
    leader.set_serving_model(&first).unwrap();
    leader.set_serving_model(&second).unwrap();
    assert_eq!(
        leader.version(),
        version,
        "the registry takes no store version"
    );
    let before = definitions_digest(&shared.definitions().unwrap().unwrap());
    assert!(
        sync(&replica).definitions,
        "published for the registry change"
    );
    assert_ne!(
        definitions_digest(&shared.definitions().unwrap().unwrap()),
        before
    );
    assert_eq!(
        replica.load_model(&second).unwrap(),
        leader.load_model(&second).unwrap()
    );
    assert_eq!(
        replica.serving_model("ranker").unwrap(),
        Some(second.clone())
    );
    assert!(
        !sync(&replica).definitions,
        "nothing changed: not published again"
    );

    // A rollback and a deletion reach it too.
    assert_eq!(leader.rollback_serving_model("ranker").unwrap(), first);
    leader.trim_serving_history("ranker", 1).unwrap();
    leader.delete_model(&second).unwrap();
    sync(&replica);
    assert_eq!(
        replica.serving_model("ranker").unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        replica.serving_history("ranker").unwrap(),
        vec![first.clone()]
    );
    assert!(matches!(
        replica.load_model(&second),
        Err(StoreError::UnknownModel(_))
    ));
    assert_eq!(replica.load_model(&first).unwrap().payload, b"one".to_vec());
}

/// A replica caches an aggregation group's events (every one after the
/// window's start) until a change record names the group: later reads,
/// at later clock times too, are computed from the cache and equal the
/// leader's; an event published for the group drops it.
#[test]
fn a_replica_caches_aggregation_events_until_a_change_record_names_their_group() {
    let t = store_with(Kind::Memory, &format!("{DEFINITIONS}\n{EVENTS}"), 1_000);
    let leader = &t.store;
    leader.enable_outbox(Some(0)).unwrap();
    write(leader, 950, 1);
    let shared = shared();
    publish_pending(leader, shared.as_ref()).unwrap();
    let replica = replica_of(&shared, &t);
    replica
        .follow_changes(shared.published_version().unwrap())
        .unwrap();
    let features: Vec<String> = [
        "user_plays:plays_50s",
        "user_plays:plays_all",
        "user_plays:seconds_sum_50s",
    ]
    .map(String::from)
    .to_vec();
    let read = |store: &FeatureStore| store.online_features(&features, &entities()).unwrap().rows;
    let reads = || shared.group_reads.load(Ordering::SeqCst);
    assert_eq!(read(&replica), read(leader));
    let after_first = reads();
    assert!(after_first > 0);
    assert_eq!(read(&replica), read(leader));
    assert_eq!(reads(), after_first, "answered from the cache");

    // The clock moves: the 50 s window drops the old plays, from the cache.
    t.clock.set(seconds(1_030));
    assert_eq!(read(&replica), read(leader));
    assert_eq!(reads(), after_first, "a later window, from the cache");

    // New plays: published, not yet followed, the cache answers; once the
    // record is applied, the group is read again and equals the leader's.
    let before = read(leader);
    write(leader, 1_020, 5);
    publish_pending(leader, shared.as_ref()).unwrap();
    assert_ne!(read(leader), before);
    assert_eq!(read(&replica), before, "served from the cache");
    let round = replica
        .follow_changes(shared.published_version().unwrap())
        .unwrap();
    assert!(!round.dropped_all, "{round:?}");
    assert_eq!(read(&replica), read(leader), "the groups were dropped");
    assert!(reads() > after_first);
}
