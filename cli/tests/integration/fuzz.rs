//! Fuzzing the request bodies of the real server: ≥ 10,000 generated
//! malformed or hostile bodies (mutated valid bodies, wrong types, huge
//! arrays, deep nesting, long strings, NaN/Infinity literals, invalid
//! UTF-8, truncations) across push, online features, snapshots, events,
//! recommendations and rank. Every answer is a 2xx or a 4xx with the error
//! body, never a 5xx or a dropped connection, and a refused write leaves the
//! store version where it was.
//!
//! The seed is fixed here; a longer run: `REPRISE_FUZZ_CASES=200000
//! REPRISE_FUZZ_SEED=7 cargo test --workspace fuzz` (the README's security
//! section).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};

use crate::server::{trained_data, Server};

/// Valid bodies of each route, from which mutations start.
fn seeds() -> Vec<(&'static str, Json)> {
    vec![
        (
            "/v1/push",
            json!({"view": "ml_user", "rows": [{"user_id": "1", "event_timestamp": "2026-01-01T00:00:00Z", "age": 30, "gender": "F", "occupation": "writer"}]}),
        ),
        (
            "/v1/online-features",
            json!({"features": ["ml_user:age", "ml_item_ratings:plays_all"], "entities": [{"user_id": "1", "item_id": "2"}]}),
        ),
        (
            "/v1/snapshots",
            json!({"features": ["ml_user:age"], "entity_rows": [{"user_id": "1", "event_timestamp": "2026-01-01T00:00:00Z", "label": 1}]}),
        ),
        (
            "/v1/events",
            json!({"events": [{"user_id": "1", "item_id": "2", "type": "play", "timestamp": "2026-01-01T00:00:00Z", "features": {"rating": 4}}]}),
        ),
        (
            "/v1/recommendations",
            json!({"user_id": "1", "context": {"device": "tv", "country": "SE", "hour": 3}, "k": 5}),
        ),
        (
            "/v1/rank",
            json!({"user_id": "1", "context": {"device": "tv", "country": "SE"}, "item_ids": ["1", "2"]}),
        ),
    ]
}

/// Hostile replacement values.
fn hostile(rng: &mut StdRng) -> Json {
    match rng.random_range(0..14) {
        0 => Json::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(i64::MAX),
        4 => json!(1e300),
        5 => json!(""),
        6 => json!("x".repeat(rng.random_range(1..200_000))),
        7 => Json::Array(vec![json!(0); rng.random_range(0..100_000)]),
        8 => json!({}),
        9 => json!([[[[[[[[]]]]]]]]),
        10 => json!("9999-12-31T23:59:59Z"),
        11 => json!("\u{0}\u{202e}'; DROP TABLE"),
        12 => json!(["a", 1, null, {"b": []}]),
        _ => json!(0.5),
    }
}

/// Replaces a random node of `value` by a hostile one.
fn mutate_value(value: &mut Json, rng: &mut StdRng) {
    let descend = rng.random_bool(0.7);
    match value {
        Json::Object(map) if descend && !map.is_empty() => {
            let key = map
                .keys()
                .nth(rng.random_range(0..map.len()))
                .unwrap()
                .clone();
            if rng.random_bool(0.15) {
                map.remove(&key);
            } else {
                mutate_value(map.get_mut(&key).unwrap(), rng);
            }
        }
        Json::Array(items) if descend && !items.is_empty() => {
            let i = rng.random_range(0..items.len());
            mutate_value(&mut items[i], rng);
        }
        other => *other = hostile(rng),
    }
}

/// One generated body for `seed`.
fn body(seed: &Json, rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..10) {
        // A structurally mutated valid body (most cases).
        0..=4 => {
            let mut value = seed.clone();
            for _ in 0..rng.random_range(1..4) {
                mutate_value(&mut value, rng);
            }
            value.to_string().into_bytes()
        }
        // Byte-level damage: flips, cuts, insertions.
        5 | 6 => {
            let mut bytes = seed.to_string().into_bytes();
            for _ in 0..rng.random_range(1..6) {
                if bytes.is_empty() {
                    break;
                }
                let i = rng.random_range(0..bytes.len());
                match rng.random_range(0..3) {
                    0 => bytes[i] = rng.random(),
                    1 => bytes.truncate(i),
                    _ => bytes.insert(i, rng.random()),
                }
            }
            bytes
        }
        // Literals JSON does not have, invalid UTF-8.
        7 => {
            let text = seed.to_string();
            let literal =
                ["NaN", "Infinity", "-Infinity", "1e999", "0x10", "'x'"][rng.random_range(0..6)];
            text.replacen("1", literal, 1).into_bytes()
        }
        8 => {
            let mut bytes = seed.to_string().into_bytes();
            let at = rng.random_range(0..bytes.len());
            bytes.splice(at..at, [0xff, 0xfe, 0xc3, 0x28]);
            bytes
        }
        // Deep nesting.
        _ => {
            let depth = rng.random_range(10..5_000);
            let mut text = "[".repeat(depth);
            text.push_str(&"]".repeat(depth));
            format!("{{\"rows\": {text}, \"view\": \"ml_user\"}}").into_bytes()
        }
    }
}

#[test]
fn hostile_bodies_get_4xx_never_5xx_and_refused_writes_write_nothing() {
    let cases: usize = std::env::var("REPRISE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_200);
    let seed: u64 = std::env::var("REPRISE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261130);
    let (_dir, data) = trained_data(60, 10, &["--factors", "4", "--iterations", "3"]);
    let server = Server::start_ml(&data, &["--max-future", "1h"]);
    let routes = seeds();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut by_status: std::collections::BTreeMap<u16, usize> = Default::default();
    for case in 0..cases {
        let (path, valid) = &routes[case % routes.len()];
        let bytes = body(valid, &mut rng);
        let before = server.store_version();
        let (status, answer) = server
            .client
            .post_bytes(path, &bytes)
            .unwrap_or_else(|e| panic!("case {case} {path}: connection failed: {e}"));
        *by_status.entry(status).or_default() += 1;
        assert!(
            status < 500,
            "case {case} {path} answered {status}: {}\nbody: {}",
            String::from_utf8_lossy(&answer),
            String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
        );
        if status >= 400 {
            let error: Json = serde_json::from_slice(&answer).unwrap_or_else(|_| {
                panic!("case {case} {path}: {status} without a JSON error body")
            });
            assert!(error["error"]["code"].is_string(), "case {case}: {error}");
            if *path == "/v1/push" || *path == "/v1/events" {
                assert_eq!(
                    server.store_version(),
                    before,
                    "case {case} {path}: a refused write wrote"
                );
            }
        }
    }
    eprintln!("{cases} hostile bodies (seed {seed}), answers by status: {by_status:?}");
    assert!(by_status.keys().any(|s| *s >= 400), "{by_status:?}");
}
