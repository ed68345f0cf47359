//! One conformance suite for the online stores (`store/src/online_store/`):
//! the engine's (memory and RocksDB) and Redis Cluster's (a 3-master
//! cluster of Debian's `redis-server` started by the test). Latest rows,
//! version visibility, aggregation events by window and version, idempotent
//! re-publishing; on Redis also a version applied but never published
//! (a publisher that died) staying invisible.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reprise_store::codec::{self, HistoryPosition};
use reprise_store::engine::{MemoryEngine, RocksEngine};
use reprise_store::online_store::{
    EngineOnlineStore, OnlineChanges, OnlineStore, RedisClusterOnlineStore,
};
use reprise_store::row::RawRow;

/// A local Redis Cluster of `masters` nodes, no replicas, removed on drop.
struct RedisCluster {
    _dir: tempfile::TempDir,
    nodes: Vec<Child>,
    seeds: Vec<String>,
}

/// `n` distinct ports free now, each with its cluster-bus port (+10000)
/// free too; all held until every one is chosen.
fn free_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if port >= 55_000 || ports.contains(&port) {
            continue;
        }
        if let Ok(bus) = TcpListener::bind(("127.0.0.1", port + 10_000)) {
            ports.push(port);
            held.push((listener, bus));
        }
    }
    ports
}

fn redis_cli(args: &[&str]) -> std::process::Output {
    Command::new("redis-cli").args(args).output().expect(
        "redis-cli runs: install Debian's `redis-server` (./scripts/system-packages --tests does)",
    )
}

impl RedisCluster {
    fn start(masters: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(masters);
        let nodes: Vec<Child> = ports
            .iter()
            .map(|port| {
                Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                    .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                    .args(["--save", "", "--appendonly", "no"])
                    .arg("--dir")
                    .arg(dir.path())
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("redis-server runs: install Debian's `redis-server` (./scripts/system-packages --tests does)")
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in &ports {
            while !redis_cli(&["-p", &port.to_string(), "ping"])
                .stdout
                .starts_with(b"PONG")
            {
                assert!(Instant::now() < deadline, "redis-server on {port} not up");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addresses.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = redis_cli(&create);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        for port in &ports {
            loop {
                let info = redis_cli(&["-p", &port.to_string(), "cluster", "info"]);
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster is not ok on {port}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        RedisCluster {
            _dir: dir,
            nodes,
            seeds: ports
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect(),
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

fn row(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn group() -> Vec<u8> {
    codec::agg_index_prefix(7, 1, &codec::entity_key(&["u1"]))
}

fn event(event_ts: i64, store_version: u64, seq: u32) -> Vec<u8> {
    codec::history_key(
        &group(),
        HistoryPosition {
            event_ts,
            store_version,
            seq,
        },
    )
}

fn keys() -> Vec<Vec<u8>> {
    vec![
        b"\0\0\0\x01k1".to_vec(),
        b"\0\0\0\x01k2".to_vec(),
        b"\0\0\0\x02k1".to_vec(),
    ]
}

fn latest(store: &dyn OnlineStore) -> Vec<Option<String>> {
    store
        .latest(&keys())
        .unwrap()
        .into_iter()
        .map(|r| r.map(|b| String::from_utf8(b).unwrap()))
        .collect()
}

fn event_times(store: &dyn OnlineStore, from: i64, to: i64) -> Vec<(i64, u64, String)> {
    store
        .group_events(&group(), from, to)
        .unwrap()
        .into_iter()
        .map(|(key, value)| {
            let p = codec::history_position(&group(), &key).unwrap();
            (
                p.event_ts,
                p.store_version,
                String::from_utf8(value).unwrap(),
            )
        })
        .collect()
}

fn version_1() -> OnlineChanges {
    let k = keys();
    OnlineChanges {
        version: 1,
        rows: vec![(k[0].clone(), row("a1")), (k[1].clone(), row("b1"))],
        events: vec![(event(10, 1, 0), row("e10")), (event(20, 1, 1), row("e20"))],
        ..OnlineChanges::default()
    }
}

fn version_2() -> OnlineChanges {
    OnlineChanges {
        version: 2,
        rows: vec![(keys()[0].clone(), row("a2"))],
        events: vec![
            (event(15, 2, 0), row("e15")),
            (event(20, 2, 0), row("e20b")),
        ],
        ..OnlineChanges::default()
    }
}

/// What every online store must do.
fn conformance(store: &dyn OnlineStore) {
    assert_eq!(store.published_version().unwrap(), 0);
    assert_eq!(latest(store), [None, None, None]);
    assert!(event_times(store, i64::MIN, i64::MAX).is_empty());

    store.publish(&version_1()).unwrap();
    assert_eq!(store.published_version().unwrap(), 1);
    assert_eq!(latest(store), [Some("a1".into()), Some("b1".into()), None]);
    assert_eq!(
        event_times(store, 0, 100),
        [(10, 1, "e10".into()), (20, 1, "e20".into())]
    );
    // The window is (from, to].
    assert_eq!(event_times(store, 10, 20), [(20, 1, "e20".into())]);
    assert!(event_times(store, 20, 100).is_empty());

    store.publish(&version_2()).unwrap();
    assert_eq!(latest(store), [Some("a2".into()), Some("b1".into()), None]);
    // Index order: event time, then store version, then sequence.
    assert_eq!(
        event_times(store, 0, 100),
        [
            (10, 1, "e10".into()),
            (15, 2, "e15".into()),
            (20, 1, "e20".into()),
            (20, 2, "e20b".into())
        ]
    );

    // Publishing a version again, or an older one, changes nothing.
    store.publish(&version_2()).unwrap();
    store.publish(&version_1()).unwrap();
    assert_eq!(store.published_version().unwrap(), 2);
    assert_eq!(latest(store), [Some("a2".into()), Some("b1".into()), None]);
    assert_eq!(event_times(store, 0, 100).len(), 4);
    change_records(store);
}

/// The change feed replicas' caches follow: records in version order,
/// each naming the one before; a version recorded again adds nothing;
/// only the newest `CHANGE_RECORDS_KEPT` stay.
fn change_records(store: &dyn OnlineStore) {
    let k = keys();
    assert_eq!(store.newest_change().unwrap(), 0);
    assert!(store.changes_after(0, 10).unwrap().is_empty());
    store.record_changes(3, &k[..2], false).unwrap();
    store.record_changes(5, &[], true).unwrap();
    store.record_changes(5, &k[2..], false).unwrap();
    store.record_changes(4, &k[2..], false).unwrap();
    store.record_changes(9, &k[2..], false).unwrap();
    assert_eq!(store.newest_change().unwrap(), 9);
    let all = store.changes_after(0, 10).unwrap();
    let summary: Vec<(u64, u64, usize, bool)> = all
        .iter()
        .map(|r| (r.version, r.previous, r.keys.len(), r.everything))
        .collect();
    assert_eq!(
        summary,
        [(3, 0, 2, false), (5, 3, 0, true), (9, 5, 1, false)]
    );
    assert_eq!(all[0].keys, k[..2]);
    assert_eq!(all[2].keys, k[2..]);
    assert_eq!(store.changes_after(3, 10).unwrap(), all[1..]);
    assert_eq!(store.changes_after(4, 1).unwrap(), all[1..2]);
    assert!(store.changes_after(9, 10).unwrap().is_empty());

    let kept = reprise_store::online_store::CHANGE_RECORDS_KEPT as u64;
    for version in 10..10 + kept + 300 {
        store.record_changes(version, &k[..1], false).unwrap();
    }
    let first = store.changes_after(0, 1).unwrap();
    assert!(
        first[0].version > 9 && first[0].version <= 310,
        "older records trimmed (Redis trims approximately): {:?}",
        first[0].version
    );
}

#[test]
fn the_engine_online_store_conforms_in_memory_and_on_rocksdb() {
    conformance(&EngineOnlineStore::new(Box::new(MemoryEngine::new())));
    let dir = tempfile::tempdir().unwrap();
    conformance(&EngineOnlineStore::new(Box::new(
        RocksEngine::open(dir.path()).unwrap(),
    )));
}

#[test]
fn the_redis_cluster_online_store_conforms_and_hides_unpublished_versions() {
    let cluster = RedisCluster::start(3);
    let store = RedisClusterOnlineStore::connect(&cluster.seeds, "conformance").unwrap();
    conformance(&store);

    // A publisher that applied version 3 and died before publishing it:
    // readers still see version 2 everywhere.
    let k = keys();
    let version_3 = OnlineChanges {
        version: 3,
        rows: vec![(k[0].clone(), row("a3")), (k[2].clone(), row("c3"))],
        events: vec![(event(5, 3, 0), row("e5"))],
        ..OnlineChanges::default()
    };
    store.apply(&version_3).unwrap();
    assert_eq!(store.published_version().unwrap(), 2);
    assert_eq!(latest(&store), [Some("a2".into()), Some("b1".into()), None]);
    assert_eq!(event_times(&store, 0, 100).len(), 4);
    // Its successor publishes it (applying again is harmless).
    store.publish(&version_3).unwrap();
    assert_eq!(
        latest(&store),
        [Some("a3".into()), Some("b1".into()), Some("c3".into())]
    );
    assert_eq!(event_times(&store, 0, 100)[0], (5, 3, "e5".into()));

    // Retention: a row and events readers would ignore expire in Redis; a
    // fresh row stays, with an expiry. (Views 1 and 7 keep an hour.)
    let hour = 3_600_000_000;
    let now = reprise_store::time::now_micros();
    let stored = |event_ts| {
        RawRow {
            event_ts,
            created_ts: event_ts,
            store_version: 4,
            values: Vec::new(),
        }
        .encode()
    };
    store
        .publish(&OnlineChanges {
            version: 4,
            rows: vec![
                (k[0].clone(), stored(now - 2 * hour)),
                (k[1].clone(), stored(now)),
            ],
            events: vec![(event(30, 4, 0), row("e30"))],
            retention: vec![(1, hour)],
            event_horizon: vec![(7, 1, hour)],
        })
        .unwrap();
    let found = store.latest(&k).unwrap();
    assert!(found[0].is_none(), "a row past its retention expired");
    assert!(found[1].is_some());
    assert!(event_times(&store, i64::MIN, i64::MAX).is_empty());
    let ttl = |name: String| {
        let out = redis_cli(&["-c", "-p", &cluster.seeds[0][18..], "pttl", &name]).stdout;
        String::from_utf8(out)
            .unwrap()
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let hex = |key: &[u8]| key.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let fresh = ttl(format!("conformance:r:{}", hex(&k[1])));
    assert!(fresh > 3_500_000 && fresh <= 3_600_000, "{fresh}");
    assert_eq!(
        ttl(format!("conformance:r:{}", hex(&k[2]))),
        -1,
        "no retention, no expiry"
    );

    // A second namespace on the same cluster is a separate store, and a
    // second client sees what the first published.
    let other = RedisClusterOnlineStore::connect(&cluster.seeds, "other").unwrap();
    assert_eq!(other.published_version().unwrap(), 0);
    let again = RedisClusterOnlineStore::connect(&cluster.seeds, "conformance").unwrap();
    assert_eq!(again.published_version().unwrap(), 4);

    // The keys of the rows were spread over the masters (slots differ).
    let spread: Vec<String> = k
        .iter()
        .map(|key| {
            let name = format!(
                "conformance:r:{}",
                key.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            String::from_utf8(
                redis_cli(&["-p", &cluster.seeds[0][18..], "cluster", "keyslot", &name]).stdout,
            )
            .unwrap()
        })
        .collect();
    assert!(
        spread
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1,
        "{spread:?}"
    );
}
