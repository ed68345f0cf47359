//! With keys configured, nothing but the open routes answers without a key,
//! and each route needs its scope, whatever spelling of its path the client
//! sends: the check is made on the route the router matches.

use actix_web::http::Method;
use actix_web::test;
use reprise_api::auth::{sha256_hex, KeyRing, OPEN_ROUTES};
use reprise_api::routes::ROUTES;
use reprise_api::ServerConfig;

use crate::common::state_with;

/// Spellings of `path` that a router could take for it: percent-encoded
/// letters, doubled slashes, dot segments, upper case, a trailing slash.
fn variants(path: &str) -> Vec<String> {
    let concrete = path
        .replace("{id}", "x1")
        .replace("{version}", "ranker-1")
        .replace("{name}", "e1");
    let mut out = vec![concrete.clone()];
    // Every unreserved letter percent-encoded, one at a time and all at once.
    let encode = |c: char| format!("%{:02X}", c as u32);
    let mut all = String::new();
    for (i, c) in concrete.char_indices() {
        if c.is_ascii_alphanumeric() {
            out.push(format!(
                "{}{}{}",
                &concrete[..i],
                encode(c),
                &concrete[i + 1..]
            ));
            all.push_str(&encode(c));
        } else {
            all.push(c);
        }
    }
    out.push(all);
    // (A leading `//` is taken for an authority by the test request
    // builder; the raw-socket test against the binary sends it.)
    out.push(concrete.replacen("/v1/", "/v1//", 1));
    out.push(format!("/x/..{concrete}"));
    out.push(format!("/.{concrete}"));
    out.push(concrete.to_uppercase());
    out.push(format!("{concrete}/"));
    out.push(format!("/{}", concrete[1..].replace('/', "%2F")));
    out
}

/// The scope each route needs: the table the access rules are checked
/// against (CONTRACT.md "Access control").
const EXPECTED: &[(&str, &str, Option<&str>)] = &[
    ("post", "/v1/push", Some("write")),
    ("post", "/v1/online-features", Some("read")),
    ("get", "/v1/catalog", Some("read")),
    ("get", "/v1/whoami", Some("any")),
    ("post", "/v1/snapshots", Some("read")),
    ("get", "/v1/snapshots/{id}", Some("read")),
    ("get", "/v1/snapshots/{id}/rows", Some("read")),
    ("get", "/v1/models", Some("read")),
    ("post", "/v1/models/{version}/promote", Some("admin")),
    ("post", "/v1/models/rollback", Some("admin")),
    ("post", "/v1/retrain", Some("admin")),
    ("get", "/v1/retrain/runs", Some("read")),
    ("get", "/v1/retrain/runs/{id}", Some("read")),
    ("post", "/v1/recommendations", Some("read")),
    ("post", "/v1/rank", Some("read")),
    ("get", "/v1/served/{request_id}", Some("read")),
    ("get", "/v1/users/{user_id}/plays", Some("read")),
    ("post", "/v1/events", Some("write")),
    ("get", "/v1/experiments", Some("read")),
    ("put", "/v1/experiments/{name}", Some("admin")),
    ("get", "/v1/experiments/{name}", Some("read")),
    ("get", "/v1/alerts", Some("read")),
    ("post", "/v1/alerts/{id}/ack", Some("admin")),
    ("post", "/v1/validation/run", Some("admin")),
    ("get", "/v1/validation/reports", Some("read")),
    ("post", "/v1/admin/backup", Some("admin")),
    ("post", "/v1/admin/compact", Some("admin")),
    ("get", "/healthz", None),
    ("get", "/readyz", None),
    ("get", "/metrics", None),
    ("get", "/openapi.json", None),
];

/// One key per scope, named after it (the key is `{scope}-key`).
fn keys() -> KeyRing {
    let text: String = ["read", "write", "admin"]
        .iter()
        .map(|s| {
            format!(
                "[[key]]\nname = \"{s}\"\nsha256 = \"{}\"\nscopes = [\"{s}\"]\n\n",
                sha256_hex(&format!("{s}-key"))
            )
        })
        .collect();
    KeyRing::parse(&text).unwrap()
}

fn request(method: &Method, uri: &str, key: Option<&str>) -> test::TestRequest {
    let body = r#"{"view": "user_stats", "rows": [{"user_id": "u9", "event_timestamp": "2026-01-01T00:00:00Z", "plays": 1}]}"#;
    let mut request = test::TestRequest::default()
        .method(method.clone())
        .uri(uri)
        .insert_header(("content-type", "application/json"))
        .set_payload(body);
    if let Some(key) = key {
        request = request.insert_header(("x-api-key", key));
    }
    request
}

#[actix_rt::test]
async fn every_route_in_every_spelling_needs_its_scope() {
    assert_eq!(EXPECTED.len(), ROUTES.len(), "every route is in the table");
    let state = state_with(&ServerConfig {
        keys: Some(keys()),
        ..ServerConfig::default()
    });
    let store = std::sync::Arc::clone(&state.store);
    let app = test::init_service(reprise_api::app(state)).await;
    let version_before = store.version();
    let mut checked = 0;
    let mut unrouted = Vec::new();
    for (method, path) in ROUTES {
        let (_, _, scope) = EXPECTED
            .iter()
            .find(|(m, p, _)| m == method && p == path)
            .unwrap_or_else(|| panic!("{method} {path} is not in the table"));
        let Some(scope) = scope else {
            continue;
        };
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        for uri in variants(path) {
            for (key, expected) in [(None, 401), (Some("guess"), 401)] {
                let response =
                    test::call_service(&app, request(&method, &uri, key).to_request()).await;
                assert_eq!(response.status(), expected, "{method} {uri} with {key:?}");
            }
            // Any valid key may ask who it is.
            let others: &[&str] = if *scope == "any" {
                &[]
            } else {
                &["read", "write", "admin"]
            };
            for other in others.iter().filter(|s| *s != scope) {
                let key = format!("{other}-key");
                let response =
                    test::call_service(&app, request(&method, &uri, Some(&key)).to_request()).await;
                let status = response.status().as_u16();
                let body: serde_json::Value = test::read_body_json(response).await;
                // 403, or 404 for a spelling no route matches (checked below
                // to be 404 with the right key too: no handler is reached).
                match status {
                    403 => assert_eq!(body["error"]["code"], "forbidden", "{body}"),
                    404 => unrouted.push((method.clone(), uri.clone())),
                    other_status => panic!("{method} {uri} with the {other} key: {other_status}"),
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked}");
    assert_eq!(store.version(), version_before, "a refused request wrote");
    // The key with the scope reaches the handler (whatever it answers).
    for (method, path, scope) in EXPECTED {
        let Some(scope) = scope else { continue };
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let keys: Vec<String> = if *scope == "any" {
            ["read", "write", "admin"]
                .map(|s| format!("{s}-key"))
                .to_vec()
        } else {
            vec![format!("{scope}-key")]
        };
        for key in keys {
            for uri in variants(path) {
                let response =
                    test::call_service(&app, request(&method, &uri, Some(&key)).to_request()).await;
                let status = response.status().as_u16();
                assert!(
                    ![401, 403].contains(&status),
                    "{method} {uri} with the {scope} key: {status}"
                );
                if unrouted.contains(&(method.clone(), uri.clone())) {
                    assert_eq!(
                        status, 404,
                        "{method} {uri} routes, yet a key without the scope got 404"
                    );
                }
            }
        }
    }
}

#[actix_rt::test]
async fn the_open_routes_pass_and_metrics_can_be_closed() {
    for metrics_open in [true, false] {
        let state = state_with(&ServerConfig {
            keys: Some(keys()),
            metrics_open,
            ..ServerConfig::default()
        });
        let app = test::init_service(reprise_api::app(state)).await;
        for pattern in OPEN_ROUTES {
            if *pattern == reprise_api::fleet::SERVED_LOG_PATH {
                // A POST, signed (the next test).
                continue;
            }
            // The console's files by name; `/ui` redirects to `/ui/`.
            let path = pattern.replace("{asset}", "app.js");
            let response =
                test::call_service(&app, test::TestRequest::get().uri(&path).to_request()).await;
            let expected = match path.as_str() {
                "/metrics" if !metrics_open => 401,
                "/ui" => 308,
                _ => 200,
            };
            assert_eq!(response.status(), expected, "{path}");
            if path.starts_with("/ui/") {
                let csp = response.headers().get("content-security-policy").unwrap();
                assert!(csp.to_str().unwrap().contains("frame-ancestors 'none'"));
            }
        }
    }
}

/// A replica's served-feature log is taken only with the fleet's signature
/// (its own secret, which no client holds), signed within the last minute:
/// no client key, whatever its scopes, writes one; without a fleet secret
/// and with access control on, nothing is taken.
#[actix_rt::test]
async fn a_served_log_is_taken_only_signed_by_the_fleet() {
    use reprise_actors::recommend::forwarded::{ForwardedItem, ForwardedLog};
    use reprise_api::fleet::{
        now_seconds, sign, SERVED_LOG_PATH, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    };

    let secret = [42u8; 32];
    let state_with_secret = |fleet_secret: Option<[u8; 32]>| {
        let store = reprise_store::FeatureStore::in_memory(Default::default()).unwrap();
        reprise_actors::system_views::ensure(&store).unwrap();
        reprise_api::state(
            std::sync::Arc::new(store),
            &ServerConfig {
                keys: Some(keys()),
                fleet_secret,
                ..ServerConfig::default()
            },
        )
        .unwrap()
    };
    let state = state_with_secret(Some(secret));
    let app = test::init_service(reprise_api::app(state.clone())).await;
    let log = ForwardedLog {
        request_id: "r-fleet-1".into(),
        user_id: "u1".into(),
        country: "SE".into(),
        device: "tv".into(),
        hour: 9,
        context: Default::default(),
        model_version: "ranker-1".into(),
        arm: "control".into(),
        items: vec![ForwardedItem {
            item_id: "i1".into(),
            score: Some(0.5),
            source: "ann".into(),
        }],
        features: vec![vec![Some(1.0), Some(-2.5)]],
        at: state.store.clock().now(),
    };
    let body = serde_json::to_vec(&log).unwrap();
    let now = now_seconds();
    let post = |signature: Option<(i64, String)>, key: Option<&str>| {
        let mut request = test::TestRequest::post()
            .uri(SERVED_LOG_PATH)
            .insert_header(("content-type", "application/json"))
            .set_payload(body.clone());
        if let Some((timestamp, signature)) = signature {
            request = request
                .insert_header((TIMESTAMP_HEADER, timestamp.to_string()))
                .insert_header((SIGNATURE_HEADER, signature));
        }
        if let Some(key) = key {
            request = request.insert_header(("x-api-key", key));
        }
        request.to_request()
    };
    let refused = [
        (None, None),
        (None, Some("admin-key")),
        (None, Some("write-key")),
        (Some((now, sign(&[0u8; 32], now, &body))), None),
        (
            Some((now, sign(&secret, now, b"another body"))),
            Some("admin-key"),
        ),
        // Signed, but long ago (a replay), or with another time than sent.
        (Some((now - 600, sign(&secret, now - 600, &body))), None),
        (Some((now, sign(&secret, now - 1, &body))), None),
    ];
    for (signature, key) in refused {
        let response = test::call_service(&app, post(signature.clone(), key)).await;
        assert_eq!(response.status(), 401, "{signature:?} {key:?}");
    }
    assert!(
        state.recommender.served("r-fleet-1", None).is_err(),
        "nothing written"
    );
    let response =
        test::call_service(&app, post(Some((now, sign(&secret, now, &body))), None)).await;
    let status = response.status();
    let text = test::read_body(response).await;
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&text));
    let served = state.recommender.served("r-fleet-1", None).unwrap();
    assert_eq!(served.items.len(), 1);
    assert_eq!(served.items[0].item_id, "i1");

    // Access control on and no fleet secret: nothing is taken.
    let unset = state_with_secret(None);
    let app = test::init_service(reprise_api::app(unset)).await;
    let response =
        test::call_service(&app, post(Some((now, sign(&secret, now, &body))), None)).await;
    assert_eq!(response.status(), 401);
}
