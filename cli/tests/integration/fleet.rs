//! A serving fleet on a real Redis Cluster (3 masters + 3 replicas, started
//! by `scripts/redis-cluster`): one leader serving the demo catalogue, two
//! stateless replicas. Once caught up, replicas answer the leader's
//! answers; a Redis master killed under load fails over, replicas answer
//! only right values or 503s meanwhile, and the leader's outbox (which
//! waits for a Redis replica of every master) drains once the dead node is
//! back; with the leader killed, replicas keep serving reads, writes
//! get 503 with `Retry-After`, and after its restart nothing acknowledged
//! is missing.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::{an_hour_ago, migrations_dir, Server};

/// Users the load writes, `fleet-0` ... ; user `k` only ever gets values
/// `v` with `v % USERS == k`.
const USERS: u64 = 8;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Redis Cluster of 3 masters and 3 replicas from the repository's
/// script, stopped on drop.
struct RedisCluster {
    dir: tempfile::TempDir,
    first: u16,
    seeds: String,
}

impl RedisCluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let first = free_port_run(6);
        let seeds = script_start(dir.path(), first);
        RedisCluster { dir, first, seeds }
    }

    /// Starts the nodes that are down again (a killed master rejoins as
    /// the replica of the one that replaced it); returns once every master
    /// has its replica.
    fn restart_stopped(&self) {
        script_start(self.dir.path(), self.first);
    }

    /// Kills (SIGKILL) the master serving `key`'s slot; returns its port.
    fn kill_master_of(&self, key: &str) -> u16 {
        let cli = |args: &[&str]| {
            let out = Command::new("redis-cli")
                .args(["-p", &self.first.to_string()])
                .args(args)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let slot: u16 = cli(&["cluster", "keyslot", key]).trim().parse().unwrap();
        let nodes = cli(&["cluster", "nodes"]);
        let port = nodes
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .find_map(|line| {
                let serves = line.split(' ').skip(8).any(|range| {
                    let mut ends = range.split('-').map(|n| n.parse::<u16>().ok());
                    match (ends.next().flatten(), ends.next().flatten()) {
                        (Some(a), Some(b)) => (a..=b).contains(&slot),
                        (Some(a), None) => a == slot,
                        _ => false,
                    }
                });
                let address = line.split(' ').nth(1)?;
                let port = address.split([':', '@']).nth(1)?.parse::<u16>().ok()?;
                serves.then_some(port)
            })
            .expect("a master serves the slot");
        let pid =
            std::fs::read_to_string(self.dir.path().join(format!("redis-{port}.pid"))).unwrap();
        let status = Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap();
        assert!(status.success());
        port
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/redis-cluster"))
            .arg("stop")
            .arg(self.dir.path())
            .arg(self.first.to_string())
            .output();
    }
}

/// `scripts/redis-cluster start`: the seed list.
fn script_start(dir: &Path, first: u16) -> String {
    let out = Command::new(repo().join("scripts/redis-cluster"))
        .arg("start")
        .arg(dir)
        .arg(first.to_string())
        .output()
        .expect("scripts/redis-cluster runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The first of `n` consecutive free ports whose cluster-bus ports (+10000)
/// are free too, all below Linux's ephemeral range (32768 and up), where
/// the TIME_WAIT sockets of earlier client connections do not sit.
fn free_port_run(n: u16) -> u16 {
    const LOW: u16 = 10_000;
    const HIGH: u16 = 22_000;
    let start = LOW + (std::process::id() % 900) as u16 * 12;
    let mut candidate = start;
    loop {
        let free = (candidate..candidate + n).all(|p| {
            TcpListener::bind(("127.0.0.1", p)).is_ok()
                && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
        });
        if free {
            return candidate;
        }
        candidate += n;
        if candidate + n > HIGH {
            candidate = LOW;
        }
        assert!(
            candidate != start,
            "no run of {n} free ports in {LOW}..{HIGH}"
        );
    }
}

fn readyz(server: &Server) -> (u16, Value) {
    server.get("/readyz")
}

/// Waits until `replica` has published everything `leader` committed.
fn caught_up(leader: &Server, replica: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let version = leader.store_version();
        let (_, ready) = readyz(replica);
        if ready["store_version"].as_u64().unwrap_or(0) >= version {
            return;
        }
        assert!(Instant::now() < deadline, "replica not caught up: {ready}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An online read of the demo catalogue for several users: stored views,
/// derived features, an embedding, TTL'd rows and aggregations.
fn demo_read() -> Value {
    json!({
        "features": [
            "user_profile:country", "user_profile:country_bucket",
            "user_stats:plays_7d", "user_stats:plays_7d_log",
            "user_plays:plays_7d", "user_plays:plays_30d",
            "user_embedding:vector", "user_item_stats:plays", "item_plays:plays_30d"
        ],
        "entities": (1..=12).map(|u| json!({"user_id": format!("u{u}"), "item_id": format!("i{u}")}))
            .chain([json!({"user_id": "nobody", "item_id": "nothing"})]).collect::<Vec<_>>()
    })
}

/// Values and statuses of an online answer (event times of aggregations
/// are the read's own time).
fn values(answer: &Value) -> Value {
    let rows = answer["rows"].as_array().expect("rows");
    json!(rows
        .iter()
        .map(|r| json!([r["values"], r["statuses"]]))
        .collect::<Vec<_>>())
}

fn fleet_read() -> Value {
    json!({
        "features": ["user_stats:plays_7d"],
        "entities": (0..USERS).map(|k| json!({"user_id": format!("fleet-{k}")})).collect::<Vec<_>>()
    })
}

/// The fleet users' values as `server` reads them (None: not found).
fn fleet_values(server: &Server) -> Vec<Option<u64>> {
    let (status, body) = server.post("/v1/online-features", &fleet_read());
    assert_eq!(status, 200, "{body}");
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["values"][0].as_u64())
        .collect()
}

fn push_body(i: u64) -> Value {
    json!({"view": "user_stats", "rows": [{
        "user_id": format!("fleet-{}", i % USERS),
        "event_timestamp": an_hour_ago(),
        "plays_7d": i
    }]})
}

/// A POST with its status, `Retry-After` and JSON body.
/// Requests answered by `replica` itself (its `/metrics`).
fn ranked_here(replica: &Server) -> u64 {
    let (_, text) = replica.get_text("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("reprise_replica_ranked_total{answered_by=\"replica\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The items of a recommendation (not its request id).
fn items(answer: &Value) -> Value {
    json!([
        answer["model_version"],
        answer["cold_start"],
        answer["items"]
    ])
}

/// Recommendations and rank from replicas: a user with a published history
/// is ranked by the replica itself with the leader's model and history,
/// exactly as the leader ranks them, and the leader holds its served log; a
/// play sent through a replica reaches the history both rank with; a user
/// without a history gets the leader's cold start.
fn recommendations_from_replicas(leader: &Server, replicas: &[Server]) {
    let context = json!({"country": "SE", "device": "tv"});
    let rank = json!({"user_id": "u1", "item_ids": ["i1", "i2", "i3"], "context": context});
    let recommend = json!({"user_id": "u1", "k": 5, "context": context});
    let (status, expected_rank) = leader.post("/v1/rank", &rank);
    assert_eq!(status, 200, "{expected_rank}");
    let (_, expected) = leader.post("/v1/recommendations", &recommend);
    for replica in replicas {
        // The replica loads the published model within a second or so.
        let deadline = Instant::now() + Duration::from_secs(20);
        let answer = loop {
            let before = ranked_here(replica);
            let (status, answer) = replica.post("/v1/rank", &rank);
            assert_eq!(status, 200, "{answer}");
            if ranked_here(replica) > before {
                break answer;
            }
            assert!(Instant::now() < deadline, "the replica never ranked itself");
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(answer["scores"], expected_rank["scores"]);
        assert_eq!(answer["model_version"], expected_rank["model_version"]);
        let before = ranked_here(replica);
        let (status, answer) = replica.post("/v1/recommendations", &recommend);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(ranked_here(replica), before + 1, "answered by the replica");
        assert_eq!(items(&answer), items(&expected));
        let id = answer["request_id"].as_str().unwrap();
        let (status, served) = leader.get(&format!("/v1/served/{id}"));
        assert_eq!(status, 200, "the leader holds the replica's log: {served}");
        assert_eq!(served["items"].as_array().unwrap().len(), 5);
    }

    // A like through a replica: both rank with the longer history.
    let (status, _) = replicas[0].post(
        "/v1/events",
        &json!({"events": [{"user_id": "u1", "item_id": "i7", "type": "like",
                            "timestamp": an_hour_ago()}]}),
    );
    assert_eq!(status, 200);
    let (_, expected) = leader.post("/v1/recommendations", &recommend);
    for replica in replicas {
        caught_up(leader, replica);
        let (_, answer) = replica.post("/v1/recommendations", &recommend);
        assert_eq!(items(&answer), items(&expected));
    }

    // No history: the leader's cold start, through the replica.
    let cold = json!({"user_id": "nobody-yet", "k": 3, "context": context});
    let (_, expected) = leader.post("/v1/recommendations", &cold);
    assert_eq!(expected["cold_start"], true, "{expected}");
    let before = ranked_here(&replicas[1]);
    let (_, answer) = replicas[1].post("/v1/recommendations", &cold);
    assert_eq!(items(&answer), items(&expected));
    assert_eq!(ranked_here(&replicas[1]), before, "sent to the leader");
}

fn post_raw(url: &str, path: &str, body: &Value) -> (u16, Option<String>, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut response = agent.post(format!("{url}{path}")).send_json(body).unwrap();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (
        response.status().as_u16(),
        retry,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

#[test]
fn a_fleet_answers_as_its_leader_through_a_redis_failover_and_a_leader_crash() {
    let cluster = RedisCluster::start();
    let data = tempfile::tempdir().unwrap();
    let leader_port = crate::server::free_port();
    let leader_args = [
        "--demo",
        "--role",
        "leader",
        "--online-store",
        &cluster.seeds,
    ];
    let leader = Server::start_with(&migrations_dir(), data.path(), leader_port, &leader_args);
    let leader_url = leader.url.clone();
    let replica_args = [
        "--role",
        "replica",
        "--online-store",
        &cluster.seeds,
        "--leader",
        &leader_url,
    ];
    let empty = tempfile::tempdir().unwrap();
    let replicas: Vec<Server> = (0..2)
        .map(|_| Server::start(empty.path(), &replica_args))
        .collect();

    // Caught up, every process answers the same.
    for replica in &replicas {
        caught_up(&leader, replica);
        let (_, ready) = readyz(replica);
        assert_eq!(ready["role"], "replica", "{ready}");
        assert_eq!(ready["lag_versions"], 0, "{ready}");
        assert_eq!(ready["replication"]["lag_versions"], 0, "{ready}");
    }
    let (status, expected) = leader.post("/v1/online-features", &demo_read());
    assert_eq!(status, 200, "{expected}");
    assert!(expected["rows"][0]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "PRESENT"));
    for replica in &replicas {
        let (status, answer) = replica.post("/v1/online-features", &demo_read());
        assert_eq!(status, 200, "{answer}");
        assert_eq!(values(&answer), values(&expected));
        assert_eq!(answer["store_version"], expected["store_version"]);
        // A forwarded route answers as the leader.
        assert_eq!(replica.get("/v1/models"), leader.get("/v1/models"));
    }
    recommendations_from_replicas(&leader, &replicas);

    // Load: pushes through replica 0 (forwarded to the leader), reads from
    // replica 1; a Redis master dies after a second and a half.
    let stop = Arc::new(AtomicBool::new(false));
    let attempted = Arc::new(AtomicU64::new(0));
    let acked: Arc<Mutex<BTreeMap<u64, u64>>> = Arc::default();
    let writer = {
        let (stop, attempted, acked) = (stop.clone(), attempted.clone(), acked.clone());
        let url = replicas[0].url.clone();
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut i = USERS;
            while !stop.load(Ordering::SeqCst) {
                attempted.store(i, Ordering::SeqCst);
                let (status, _, body) = post_raw(&url, "/v1/push", &push_body(i));
                if status == 200 {
                    acked.lock().unwrap().insert(i % USERS, i);
                } else {
                    failures.push(format!("{status} {body}"));
                }
                i += 1;
            }
            failures
        })
    };
    let reader = {
        let (stop, attempted) = (stop.clone(), attempted.clone());
        let url = replicas[1].url.clone();
        std::thread::spawn(move || {
            let (mut ok, mut unavailable, mut wrong) = (Vec::new(), 0u64, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let (status, _, body) = post_raw(&url, "/v1/online-features", &fleet_read());
                // Read after the answer: the writer marks a value attempted
                // before sending it, so nothing served can be above this.
                let ceiling = attempted.load(Ordering::SeqCst);
                match status {
                    200 => {
                        for (k, row) in body["rows"].as_array().unwrap().iter().enumerate() {
                            if let Some(v) = row["values"][0].as_u64() {
                                if v % USERS != k as u64 || v > ceiling {
                                    wrong.push(format!("fleet-{k} = {v} (ceiling {ceiling})"));
                                }
                            }
                        }
                        ok.push(Instant::now());
                    }
                    503 if body["error"]["code"] == "shared_store_unavailable" => unavailable += 1,
                    other => wrong.push(format!("{other} {body}")),
                }
            }
            (ok, unavailable, wrong)
        })
    };
    std::thread::sleep(Duration::from_millis(1_500));
    // The master holding the published version: every read needs it.
    cluster.kill_master_of("reprise:published");
    let killed = Instant::now();
    std::thread::sleep(Duration::from_secs(9));
    stop.store(true, Ordering::SeqCst);
    let write_failures = writer.join().unwrap();
    let (reads_ok, unavailable, wrong) = reader.join().unwrap();
    assert!(
        write_failures.is_empty(),
        "the leader takes writes while Redis fails over: {write_failures:?}"
    );
    assert!(wrong.is_empty(), "wrong answers: {wrong:?}");
    assert!(unavailable > 0, "the failover was seen");
    let after = reads_ok
        .iter()
        .filter(|t| **t > killed + Duration::from_secs(1))
        .count();
    assert!(after > 0, "replicas answer again after the failover");
    assert!(replicas[1].metric("reprise_replication_errors_total") > 0.0);

    // A publication waits for a Redis replica of every master, and the
    // promoted one has none: the outbox holds until the dead node is back
    // (as its replica), then drains, and everything acknowledged reaches
    // every Reprise replica.
    let (_, ready) = readyz(&leader);
    assert!(
        ready["lag_versions"].as_u64().unwrap() > 0,
        "publications wait for a Redis replica: {ready}"
    );
    cluster.restart_stopped();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, ready) = readyz(&leader);
        if ready["replication"]["lag_versions"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "outbox not drained: {ready}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len() as u64, USERS);
    let expected: Vec<Option<u64>> = (0..USERS).map(|k| acked.get(&k).copied()).collect();
    assert_eq!(fleet_values(&leader), expected);
    for replica in &replicas {
        caught_up(&leader, replica);
        assert_eq!(fleet_values(replica), expected);
    }

    // The leader dies: reads go on, writes get 503 with Retry-After.
    leader.kill();
    for replica in &replicas {
        assert_eq!(fleet_values(replica), expected);
        let (status, retry, body) = post_raw(&replica.url, "/v1/push", &push_body(1_000_000));
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "leader_unavailable", "{body}");
        assert_eq!(retry.as_deref(), Some("1"));
    }
    // Back on its data: nothing acknowledged is missing, and writes
    // through a replica work again.
    let leader = Server::start_with(&migrations_dir(), data.path(), leader_port, &leader_args);
    assert_eq!(fleet_values(&leader), expected);
    let next = 1_000_000 * USERS;
    let (status, _, body) = post_raw(&replicas[1].url, "/v1/push", &push_body(next));
    assert_eq!(status, 200, "{body}");
    for replica in &replicas {
        caught_up(&leader, replica);
        assert_eq!(fleet_values(replica)[0], Some(next));
    }
}
