//! `GET /v1/models` lists the registry.

use actix_web::test;
use reprise_store::proto::ModelRecord;

use crate::common::state;

#[actix_rt::test]
async fn models_list_the_registry_with_metrics() {
    let state = state();
    let record = ModelRecord {
        kind: "als".into(),
        training_snapshot_id: "snap-1".into(),
        store_version: 2,
        metrics: [("ndcg@10".to_owned(), 0.19)].into_iter().collect(),
        ..Default::default()
    };
    assert_eq!(state.store.save_model(record).unwrap(), "als-1");
    let app = test::init_service(reprise_api::app(state)).await;
    let response = test::call_service(
        &app,
        test::TestRequest::get().uri("/v1/models").to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = test::read_body_json(response).await;
    let model = &body["models"][0];
    assert_eq!(model["version"], "als-1");
    assert_eq!(model["kind"], "als");
    assert_eq!(model["status"], "candidate");
    assert_eq!(model["metrics"]["ndcg@10"], 0.19);
    assert_eq!(body["models"].as_array().unwrap().len(), 1);
}
