//! The OpenAPI document matches the routes that are served.

use std::collections::BTreeSet;

use actix_web::test;
use reprise_api::openapi::ApiDoc;
use reprise_api::routes::ROUTES;
use utoipa::OpenApi;

use crate::common::state;

#[actix_rt::test]
async fn the_openapi_document_lists_exactly_the_served_routes() {
    let app = test::init_service(reprise_api::app(state())).await;
    let response = test::call_service(
        &app,
        test::TestRequest::get().uri("/openapi.json").to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let served: serde_json::Value = test::read_body_json(response).await;
    assert_eq!(served, serde_json::to_value(ApiDoc::openapi()).unwrap());

    let mut documented = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in served["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            documented.insert((method.clone(), path.clone()));
            // Client generators need one unique id per operation.
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(
                operation_ids.insert(id.to_owned()),
                "operationId `{id}` twice"
            );
        }
    }
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, table,
        "OpenAPI paths and the route table differ"
    );

    for (method, path) in &table {
        let uri = path.replace("{id}", "no-such-snapshot");
        let request = match method.as_str() {
            "get" => test::TestRequest::get(),
            "post" => test::TestRequest::post(),
            "put" => test::TestRequest::put(),
            other => panic!("method {other}"),
        }
        .uri(&uri)
        .set_payload("{}")
        .insert_header(("content-type", "application/json"))
        .to_request();
        let response = test::call_service(&app, request).await;
        let status = response.status().as_u16();
        let body = test::read_body(response).await;
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|b| b["error"]["code"].as_str().map(str::to_owned));
        assert_ne!(
            code.as_deref(),
            Some("no_route"),
            "{method} {path} is documented but not served"
        );
        assert_ne!(status, 405, "{method} {path}");
    }
}
