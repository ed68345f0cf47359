//! `GET /healthz`, `GET /readyz`, `GET /metrics`, and the JSON 404.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

/// Liveness: the process answers.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: the store is open, migrated and readable.
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let registry = state.store.registry();
    Ok(HttpResponse::Ok().json(json!({
        "status": "ready",
        "store_version": state.store.version(),
        "feature_views": registry.views().len(),
    })))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(&state.store, &state.workers))
}

/// Every unknown route gets the contract's error body.
pub async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}
