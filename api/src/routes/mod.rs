//! One file per resource, each with a `configure` function.

pub mod alerts;
pub mod events;
pub mod experiments;
pub mod models;
pub mod online;
pub mod ops;
pub mod push;
pub mod recommendations;
pub mod retrain;
pub mod snapshots;

use actix_web::web;

/// Every served route, `(method, path)`; the OpenAPI test checks that the
/// document and this table agree and that each entry is really served.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/push"),
    ("post", "/v1/online-features"),
    ("post", "/v1/snapshots"),
    ("get", "/v1/snapshots/{id}"),
    ("get", "/v1/snapshots/{id}/rows"),
    ("get", "/v1/models"),
    ("post", "/v1/models/{version}/promote"),
    ("post", "/v1/models/rollback"),
    ("post", "/v1/retrain"),
    ("get", "/v1/retrain/runs"),
    ("get", "/v1/retrain/runs/{id}"),
    ("post", "/v1/recommendations"),
    ("post", "/v1/rank"),
    ("post", "/v1/events"),
    ("get", "/v1/experiments"),
    ("put", "/v1/experiments/{name}"),
    ("get", "/v1/experiments/{name}"),
    ("get", "/v1/alerts"),
    ("post", "/v1/alerts/{id}/ack"),
    ("post", "/v1/validation/run"),
    ("get", "/v1/validation/reports"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    push::configure(cfg);
    online::configure(cfg);
    snapshots::configure(cfg);
    models::configure(cfg);
    recommendations::configure(cfg);
    events::configure(cfg);
    alerts::configure(cfg);
    experiments::configure(cfg);
    retrain::configure(cfg);
    ops::configure(cfg);
}
