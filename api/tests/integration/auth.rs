//! With an API key configured, nothing but the open routes answers without
//! it, whatever spelling of a protected path the client sends: the check is
//! made on the path the router matches.

use actix_web::http::Method;
use actix_web::test;
use reprise_api::auth::OPEN_ROUTES;
use reprise_api::routes::ROUTES;
use reprise_api::ServerConfig;

use crate::common::state_with;

const KEY: &str = "s3cret";

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

#[actix_rt::test]
async fn every_protected_route_in_every_spelling_needs_the_key() {
    let state = state_with(&ServerConfig {
        api_key: Some(KEY.to_owned()),
        ..ServerConfig::default()
    });
    let store = std::sync::Arc::clone(&state.store);
    let app = test::init_service(reprise_api::app(state)).await;
    let version_before = store.version();
    let mut checked = 0;
    for (method, path) in ROUTES {
        if OPEN_ROUTES.contains(path) {
            continue;
        }
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        for uri in variants(path) {
            let body = r#"{"view": "user_stats", "rows": [{"user_id": "u9", "event_timestamp": "2026-01-01T00:00:00Z", "plays": 1}]}"#;
            let request = test::TestRequest::default()
                .method(method.clone())
                .uri(&uri)
                .insert_header(("content-type", "application/json"))
                .set_payload(body)
                .to_request();
            let response = test::call_service(&app, request).await;
            assert_eq!(response.status(), 401, "{method} {uri} without a key");
            let wrong = test::TestRequest::default()
                .method(method.clone())
                .uri(&uri)
                .insert_header(("x-api-key", "guess"))
                .insert_header(("content-type", "application/json"))
                .set_payload(body)
                .to_request();
            let response = test::call_service(&app, wrong).await;
            assert_eq!(response.status(), 401, "{method} {uri} with a wrong key");
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked}");
    assert_eq!(store.version(), version_before, "a refused request wrote");
}

#[actix_rt::test]
async fn the_open_routes_and_the_right_key_pass() {
    let state = state_with(&ServerConfig {
        api_key: Some(KEY.to_owned()),
        ..ServerConfig::default()
    });
    let app = test::init_service(reprise_api::app(state)).await;
    for path in OPEN_ROUTES {
        let response =
            test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    // The percent-encoded spelling with the key reaches the same handler.
    for uri in ["/v1/models", "/%761/models"] {
        let request = test::TestRequest::get()
            .uri(uri)
            .insert_header(("x-api-key", KEY))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), 200, "{uri}");
    }
}
