//! Limits, overload and supervision against the real server
//! (CONTRACT.md, "Limits and overload"): every bound answers 400
//! `limit_exceeded` naming the field and writes nothing; far-future and
//! non-finite values are refused; a full route class answers 503 with
//! `Retry-After` before reading the body, and the request it let in still
//! lands; a panic in a worker fails that request with 500 `internal` and the
//! worker keeps serving; a panicked retraining run ends `failed`.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::server::{free_port, migrations_dir, Server};

fn push(server: &Server, rows: Json) -> (u16, Json) {
    server.post("/v1/push", &json!({"view": "user_stats", "rows": rows}))
}

/// A `user_stats` row of now (inside the view's TTL).
fn row(user: &str) -> Json {
    let now = reprise_store::time::format_rfc3339(reprise_store::time::now_micros());
    json!({"user_id": user, "event_timestamp": now, "plays_7d": 1})
}

#[test]
fn every_bound_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--max-rows",
            "10",
            "--max-string-bytes",
            "64",
            "--max-array-items",
            "16",
        ],
    );
    let version = server.store_version();
    let refused = |(status, body): (u16, Json), field: &str| {
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "limit_exceeded", "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--max-"),
            "the message names the flag: {body}"
        );
    };
    refused(
        push(
            &server,
            Json::Array((0..11).map(|i| row(&format!("u{i}"))).collect()),
        ),
        "rows",
    );
    refused(
        push(&server, json!([row(&"x".repeat(65))])),
        "rows[0].user_id",
    );
    refused(
        server.post(
            "/v1/online-features",
            &json!({"features": ["user_stats:plays_7d"], "entities": [{"user_id": "u1", "tags": (0..17).collect::<Vec<_>>()}]}),
        ),
        "entities[0].tags",
    );
    // A year-9999 row would stay the latest value forever; 1e39 is no
    // 32-bit float.
    let (status, body) = push(
        &server,
        json!([{"user_id": "u1", "event_timestamp": "9999-01-01T00:00:00Z", "plays_7d": 1}]),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("rows[0].event_timestamp")),
        "{body}"
    );
    let (status, body) = server.post(
        "/v1/push",
        &serde_json::from_str::<Json>(
            r#"{"view": "item_embedding", "rows": [{"item_id": "i1", "event_timestamp": "2026-01-01T00:00:00Z", "vector": [1e39, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}]}"#,
        )
        .unwrap(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("non-finite"), "{body}");
    assert_eq!(server.store_version(), version, "a refused request wrote");
    assert_eq!(push(&server, json!([row("u1")])).0, 200);
}

/// POSTs `body` to `/v1/push` over a raw socket: the status line and the
/// whole answer (headers included).
fn raw_push(addr: &str, body: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/push HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// A burst above the write bound: the excess is answered 503 with
/// `Retry-After` at once, every acknowledged push is stored, and reads
/// still pass.
#[test]
fn a_burst_over_the_bound_gets_503_with_retry_after_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-writes-in-flight", "1"]);
    let addr = server.url.trim_start_matches("http://").to_owned();
    // Pushes big enough (5,000 rows) to overlap.
    let body = |client: usize| {
        let rows: Vec<Json> = (0..5_000).map(|r| row(&format!("c{client}r{r}"))).collect();
        json!({"view": "user_stats", "rows": rows}).to_string()
    };
    let answers: Vec<(usize, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|client| {
                let (addr, body) = (&addr, body(client));
                scope.spawn(move || (client, raw_push(addr, &body)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut accepted = Vec::new();
    let mut refused = 0;
    for (client, answer) in &answers {
        if answer.starts_with("HTTP/1.1 200") {
            accepted.push(*client);
        } else {
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
            assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
            assert!(answer.contains("overloaded"), "{answer}");
            refused += 1;
        }
    }
    eprintln!(
        "burst of 16 pushes with one write in flight: {} stored, {refused} answered 503",
        accepted.len()
    );
    assert!(refused > 0 && !accepted.is_empty(), "{refused} refused");
    assert_eq!(server.get("/v1/models").0, 200, "reads pass");
    // Every acknowledged push is stored, whole.
    let entities: Vec<Json> = accepted
        .iter()
        .flat_map(|c| {
            [
                json!({"user_id": format!("c{c}r0")}),
                json!({"user_id": format!("c{c}r4999")}),
            ]
        })
        .collect();
    let (_, online) = server.post(
        "/v1/online-features",
        &json!({"features": ["user_stats:plays_7d"], "entities": entities}),
    );
    for row in online["rows"].as_array().unwrap() {
        assert_eq!(row["values"][0], 1, "{online}");
    }
}

#[test]
fn a_panicking_worker_fails_one_request_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_env(
        &migrations_dir(),
        dir.path(),
        free_port(),
        &[],
        &[("REPRISE_TEST_FAULTS", "push,recommend,retrain")],
    );
    // More panics than there are workers of each pool.
    for _ in 0..6 {
        let (status, body) = server.post(
            "/v1/push",
            &json!({"view": "__fault__", "rows": [row("u1")]}),
        );
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (500, Some("internal")),
            "{body}"
        );
        let (status, body) = server.post(
            "/v1/recommendations",
            &json!({"user_id": "__fault__", "context": {"device": "tv", "country": "SE"}}),
        );
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (500, Some("internal")),
            "{body}"
        );
    }
    assert_eq!(
        push(&server, json!([row("u1")])).0,
        200,
        "the store workers live on"
    );
    // Plays to retrain on.
    let now = reprise_store::time::format_rfc3339(reprise_store::time::now_micros() - 60_000_000);
    let plays: Vec<Json> = (0..6)
        .map(|i| json!({"user_id": format!("u{}", i % 2), "item_id": format!("i{i}"), "type": "play", "timestamp": now, "played_seconds": 120}))
        .collect();
    let (status, body) = server.post("/v1/events", &json!({"events": plays}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.post(
        "/v1/recommendations",
        &json!({"user_id": "u1", "context": {"device": "tv", "country": "SE"}}),
    );
    // No model is trained: the ranker workers answer that, they are alive.
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("no_model")),
        "{body}"
    );

    // A panicked retraining run ends `failed`; the next trigger starts a
    // new run instead of joining a run stuck "running".
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (status, started) = server.post("/v1/retrain", &json!({}));
        assert!(status == 202 || status == 200, "{status} {started}");
        let id = started["run_id"].as_str().unwrap().to_owned();
        let deadline = Instant::now() + Duration::from_secs(30);
        let run = loop {
            let (_, run) = server.get(&format!("/v1/retrain/runs/{id}"));
            if run["status"] != "running" || Instant::now() > deadline {
                break run;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(run["status"], "failed", "{run}");
        assert!(
            run["reason"].as_str().unwrap().contains("injected fault"),
            "{run}"
        );
        runs.push(id);
    }
    assert_ne!(runs[0], runs[1]);
}

/// Peak resident memory of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Clients sending maximal bodies at full speed: the bodies being read
/// share one budget (two stalled bodies exhaust it: a third is refused), so
/// the server's memory stays bounded; each answer is a 4xx or a 503, none
/// is dropped. (How many of the burst meet a full budget depends on the
/// machine's speed, so the burst asserts memory, not a count of 503s.)
#[test]
fn maximal_bodies_at_full_speed_keep_memory_bounded() {
    const BODY: usize = 8 << 20;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--max-body-bytes",
            &BODY.to_string(),
            "--max-body-bytes-in-flight",
            &(2 * BODY).to_string(),
            "--max-reads-in-flight",
            "64",
            "--max-writes-in-flight",
            "64",
        ],
    );
    let before = peak_rss_kib(server.child.id());
    // A maximal body: a push whose one string is as long as the body allows.
    let padding = BODY - 200;
    let body = format!(
        r#"{{"view": "user_stats", "rows": [{{"user_id": "{}", "event_timestamp": "2026-01-01T00:00:00Z"}}]}}"#,
        "x".repeat(padding)
    );
    // The budget, deterministically: two bodies stalled one byte short of
    // their end hold almost all of it, so a third is refused with 503.
    let address = server.url.trim_start_matches("http://").to_owned();
    let stalled: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            let head = format!(
                "POST /v1/push HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body.as_bytes()[..body.len() - 1]).unwrap();
            stream
        })
        .collect();
    // Until the server has read what they sent, a third may still fit.
    let refused = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        let (status, _) = server
            .client
            .post_bytes("/v1/push", body.as_bytes())
            .unwrap();
        status == 503
    });
    assert!(
        refused,
        "two stalled bodies and a third never exceeded the budget"
    );
    drop(stalled);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|_| {
                scope.spawn(|| {
                    let mut seen = Vec::new();
                    for _ in 0..3 {
                        let (status, _) = server
                            .client
                            .post_bytes("/v1/push", body.as_bytes())
                            .unwrap();
                        seen.push(status);
                    }
                    seen
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let after = peak_rss_kib(server.child.id());
    let overloaded = statuses.iter().filter(|s| **s == 503).count();
    eprintln!(
        "{} maximal bodies: {overloaded} answered 503; peak RSS {} MiB -> {} MiB",
        statuses.len(),
        before / 1024,
        after / 1024
    );
    assert!(
        statuses.iter().all(|s| [400, 503].contains(s)),
        "{statuses:?}"
    );
    // 72 bodies of 8 MiB (576 MiB) went in; at most two at a time are held.
    assert!(
        after - before < 200 * 1024,
        "peak RSS grew by {} MiB",
        (after - before) / 1024
    );
}

/// A handler that does not answer in time gets 503 `timeout` (with
/// `Retry-After`); the server goes on serving.
#[test]
fn a_slow_handler_is_answered_503_at_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_env(
        &migrations_dir(),
        dir.path(),
        free_port(),
        &["--request-timeout", "1s"],
        &[("REPRISE_TEST_FAULTS", "slow_push")],
    );
    // (The test client retries a 503 a few times; each try times out.)
    let (status, body) = server.post(
        "/v1/push",
        &json!({"view": "__fault__", "rows": [row("u1")]}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("timeout")),
        "{body}"
    );
    assert_eq!(push(&server, json!([row("u2")])).0, 200);
}
