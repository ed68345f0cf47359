//! A request with a W3C `traceparent` produces spans in that trace.
//!
//! A test binary of its own: it installs a thread-local tracing subscriber,
//! and tracing's per-callsite interest cache is shared by the whole process,
//! so other tests' threads must not touch the same callsites meanwhile.

use actix_web::test;

#[path = "integration/tracing_capture.rs"]
mod tracing_capture;

use tracing_capture::Capture;

#[path = "integration/common.rs"]
mod common;

use common::state;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[actix_rt::test]
async fn a_traceparent_request_yields_spans_in_that_trace() {
    let state = state();
    let capture = Capture::start();

    let app = test::init_service(reprise_api::app(state)).await;
    let request = test::TestRequest::post()
        .uri("/v1/online-features")
        .insert_header(("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01")))
        .set_json(serde_json::json!({"features": ["user_stats:plays", "user_stats:plays_log"], "entities": [{"user_id": "u1"}]}))
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-trace-id").unwrap(), TRACE_ID);

    let spans = capture.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    for expected in [
        "POST /v1/online-features",
        "store.online_read",
        "cache",
        "store",
        "transform",
    ] {
        assert!(
            names.contains(&expected),
            "no `{expected}` span in {names:?}"
        );
    }
    for span in &spans {
        assert_eq!(
            span.span_context.trace_id().to_string(),
            TRACE_ID,
            "span {}",
            span.name
        );
    }
    let root = spans
        .iter()
        .find(|s| s.name == "POST /v1/online-features")
        .unwrap();
    assert_eq!(
        root.parent_span_id.to_string(),
        "00f067aa0ba902b7",
        "the request span is the caller's child"
    );

    // Without a traceparent a new trace starts, and its id is returned too.
    let request = test::TestRequest::get().uri("/healthz").to_request();
    let response = test::call_service(&app, request).await;
    let id = response
        .headers()
        .get("x-trace-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(id.len(), 32);
    assert_ne!(id, TRACE_ID);
}
