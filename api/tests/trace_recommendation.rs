//! One recommendation is one trace: the request span is the parent of the
//! ranker worker's spans across the actor hop (candidate generation, the
//! ANN search, the feature read, transforms, scoring, the log write).
//!
//! A test binary of its own for the reason `trace_propagation.rs` gives.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::test;

#[path = "integration/tracing_capture.rs"]
mod tracing_capture;

use reprise_api::ServerConfig;
use reprise_store::{FeatureStore, StoreConfig};
use reprise_trainer::TrainOptions;
use tracing_capture::Capture;

const TRACE_ID: &str = "5cf92f3577b34da6a3ce929d0e0e4736";

/// A store with a ranker trained on generated MovieLens-format data.
fn trained_store() -> Arc<FeatureStore> {
    let store = FeatureStore::in_memory(StoreConfig::default()).unwrap();
    let catalogue =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalogs/movielens/migrations");
    store.migrate(&catalogue).unwrap();
    let ml = tempfile::tempdir().unwrap();
    reprise_trainer::synthetic::write_movielens(ml.path(), 40, 10).unwrap();
    reprise_trainer::movielens::import(&store, ml.path(), &mut |_, _| {}).unwrap();
    let mut options = TrainOptions::default();
    options.params.als.factors = 8;
    options.params.als.iterations = 3;
    reprise_trainer::train(&store, &options, &mut |_| {}).unwrap();
    Arc::new(store)
}

#[actix_rt::test]
async fn a_recommendation_is_one_trace_across_the_actor_hop() {
    let mut config = ServerConfig::default();
    // No warm-up: the request computes its own candidates (and searches ANN).
    config.recommender.warm_users = 0;
    let state = reprise_api::state(trained_store(), &config).unwrap();
    let capture = Capture::start();

    let app = test::init_service(reprise_api::app(state)).await;
    let request = test::TestRequest::post()
        .uri("/v1/recommendations")
        .insert_header(("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01")))
        .set_json(serde_json::json!({"user_id": "3", "context": {"device": "web", "country": "SE"}, "k": 5}))
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = test::read_body_json(response).await;
    assert_eq!(body["cold_start"], false, "{body}");

    let spans: Vec<_> = capture
        .spans()
        .into_iter()
        .filter(|s| s.span_context.trace_id().to_string() == TRACE_ID)
        .collect();
    let by_id: HashMap<_, _> = spans
        .iter()
        .map(|s| (s.span_context.span_id(), s))
        .collect();
    let root = spans
        .iter()
        .find(|s| s.name == "POST /v1/recommendations")
        .expect("the request span");
    // Each expected span is in the trace and descends from the request span.
    let descends = |span: &opentelemetry_sdk::trace::SpanData| {
        let mut parent = span.parent_span_id;
        while let Some(p) = by_id.get(&parent) {
            if p.span_context.span_id() == root.span_context.span_id() {
                return true;
            }
            parent = p.parent_span_id;
        }
        false
    };
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    for expected in [
        "recommend.worker",
        "recommend.candidates",
        "recommend.ann",
        "recommend.features",
        "store.online_read",
        "recommend.transform",
        "recommend.score",
        "recommend.log",
    ] {
        let span = spans
            .iter()
            .find(|s| s.name == expected)
            .unwrap_or_else(|| panic!("no `{expected}` span in the trace: {names:?}"));
        assert!(descends(span), "`{expected}` is not under the request span");
    }
}
