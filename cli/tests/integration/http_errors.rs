//! Bad input gets a 4xx with the contract's error body, and writes nothing.

use serde_json::{json, Value as Json};

use crate::server::Server;

fn error_of(body: &[u8]) -> Json {
    let body: Json = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("JSON error body: {}", String::from_utf8_lossy(body)));
    body["error"].clone()
}

#[test]
fn bad_input_is_rejected_with_the_field_named_and_nothing_written() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--max-body-bytes", "65536"]);
    let c = &server.client;
    let version = server.store_version();
    let ok = json!({"user_id": "u1", "event_timestamp": "2026-01-01T00:00:00Z", "plays_7d": 1});
    let push = |rows: Json| json!({"view": "user_stats", "rows": rows}).to_string();
    let cases: Vec<(&str, String, u16, &str, Option<&str>)> = vec![
        (
            "/v1/push",
            json!({"view": "nope", "rows": [ok]}).to_string(),
            400,
            "unknown_view",
            Some("view"),
        ),
        (
            "/v1/push",
            push(
                json!([ok, {"user_id": "u2", "event_timestamp": "2026-01-01T00:00:00Z", "bogus": 1}]),
            ),
            400,
            "unknown_feature",
            Some("rows[1].bogus"),
        ),
        (
            "/v1/push",
            push(
                json!([ok, {"user_id": "u2", "event_timestamp": "2026-01-01T00:00:00Z", "plays_7d": "many"}]),
            ),
            400,
            "wrong_type",
            Some("rows[1].plays_7d"),
        ),
        (
            "/v1/push",
            push(json!([ok, {"event_timestamp": "2026-01-01T00:00:00Z", "plays_7d": 1}])),
            400,
            "missing_field",
            Some("rows[1].user_id"),
        ),
        (
            "/v1/push",
            push(json!([ok, {"user_id": "u2", "plays_7d": 1}])),
            400,
            "missing_field",
            Some("rows[1].event_timestamp"),
        ),
        (
            "/v1/push",
            push(
                json!([ok, {"user_id": "u2", "event_timestamp": "2026-01-01T00:00:00Z", "plays_7d_log": 1.0}]),
            ),
            400,
            "derived_feature",
            Some("rows[1].plays_7d_log"),
        ),
        (
            "/v1/push",
            json!({"rows": [ok]}).to_string(),
            400,
            "invalid_request",
            Some("view"),
        ),
        (
            "/v1/push",
            "{\"view\": \"user_stats\", \"rows\": [".to_owned(),
            400,
            "malformed_json",
            None,
        ),
        (
            "/v1/push",
            push(json!(vec![ok.clone(); 2000])),
            413,
            "payload_too_large",
            None,
        ),
        (
            "/v1/online-features",
            json!({"features": ["user_stats:nope"], "entities": [{"user_id": "u1"}]}).to_string(),
            400,
            "unknown_feature",
            Some("features[0]"),
        ),
        (
            "/v1/online-features",
            json!({"features": ["user_stats:plays_7d"], "entities": [{"item_id": "i1"}]})
                .to_string(),
            400,
            "missing_field",
            Some("entities[0].user_id"),
        ),
        (
            "/v1/snapshots",
            json!({"features": ["user_stats:plays_7d"], "entity_rows": [{"user_id": "u1"}]})
                .to_string(),
            400,
            "missing_field",
            Some("entity_rows[0].event_timestamp"),
        ),
        (
            "/v1/snapshots",
            json!({"features": ["user_stats:plays_7d"], "cutoff": "later", "entity_rows": []})
                .to_string(),
            400,
            "invalid_request",
            Some("cutoff"),
        ),
        ("/v1/nope", "{}".to_owned(), 404, "no_route", None),
    ];
    for (path, body, status, code, field) in cases {
        let (got_status, got_body) = c.post_bytes(path, body.as_bytes()).unwrap();
        let error = error_of(&got_body);
        assert_eq!(
            (got_status, error["code"].as_str().unwrap()),
            (status, code),
            "{path} {error}"
        );
        assert_eq!(error["field"].as_str(), field, "{path} {error}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        server.store_version(),
        version,
        "no rejected request advanced the store version"
    );
    let read = c
        .online_features(&["user_stats:plays_7d"], &[json!({"user_id": "u1"})])
        .unwrap();
    assert_eq!(read.rows[0].statuses, ["NOT_FOUND"]);
    let (status, body) = c.get("/v1/snapshots/does-not-exist/rows").unwrap();
    assert_eq!(
        (status, error_of(&body)["code"].clone()),
        (404, json!("snapshot_not_found"))
    );
}
