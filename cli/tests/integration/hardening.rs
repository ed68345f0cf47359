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

/// Sends the head and the first half of a push: the request is admitted
/// and stays in flight until the rest of the body follows.
fn hold_push(addr: &str, body: &str) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let head = format!(
        "POST /v1/push HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        body.len(),
        &body[..body.len() / 2]
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

#[test]
fn a_full_route_class_answers_503_with_retry_after_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-writes-in-flight", "1"]);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let body = json!({"view": "user_stats", "rows": [row("held")]}).to_string();
    let mut held = hold_push(&addr, &body);
    // The held push is in flight: the next write is turned away at once,
    // before its body is read; reads still pass.
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let mut other = std::net::TcpStream::connect(&addr).unwrap();
        let other_body = json!({"view": "user_stats", "rows": [row("other")]}).to_string();
        write!(
            other,
            "POST /v1/push HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{other_body}",
            other_body.len()
        )
        .unwrap();
        let mut answer = String::new();
        other.read_to_string(&mut answer).unwrap();
        if answer.starts_with("HTTP/1.1 503") || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("overloaded"), "{answer}");
    assert_eq!(server.get("/v1/models").0, 200);
    // The admitted push completes and is readable.
    held.write_all(&body.as_bytes()[body.len() / 2..]).unwrap();
    let mut reply = String::new();
    held.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let (_, online) = server.post(
        "/v1/online-features",
        &json!({"features": ["user_stats:plays_7d"], "entities": [{"user_id": "held"}]}),
    );
    assert_eq!(online["rows"][0]["values"][0], 1, "{online}");
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
