//! `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /openapi.json`, and
//! the JSON 404.

use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::openapi::ApiDoc;
use crate::schema::{Health, Ready, ReplicationState};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/openapi.json", web::get().to(openapi));
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations", responses((status = 200, body = Health)))]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the store is open and migrated.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations", responses((status = 200, body = Ready)))]
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store_version = state.store.version();
    // A leader stays ready while the shared store is down: it takes writes,
    // and its outbox keeps them for the replicas.
    let replication = state.publisher.as_ref().map(|publisher| {
        use std::sync::atomic::Ordering;
        let status = &publisher.status;
        let published = status.published_version.load(Ordering::Acquire);
        let oldest = status.oldest_pending_at.load(Ordering::Acquire);
        ReplicationState {
            published_version: published,
            leader_version: store_version,
            lag_versions: store_version.saturating_sub(published),
            lag_seconds: if oldest == 0 {
                0.0
            } else {
                (state.store.clock().now() - oldest as i64).max(0) as f64 / 1e6
            },
            problem: status
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    });
    HttpResponse::Ok().json(Ready {
        status: "ready".into(),
        store_version,
        feature_views: state.store.registry().views().len(),
        role: replication.as_ref().map(|_| "leader".to_owned()),
        lag_versions: replication.as_ref().map(|r| r.lag_versions),
        replication,
    })
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(crate) async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Sampling reads the store (alerts, experiment tallies): off the workers.
    let text = super::blocking(move || {
        if let Some(publisher) = &state.publisher {
            state
                .metrics
                .sample_publisher(&state.store, &publisher.status);
        }
        Ok::<_, ApiError>(state.metrics.render(
            &state.store,
            &state.workers,
            &state.recommender,
            &state.validation,
            &state.retrainer,
        ))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// Every unknown route gets the contract's error body.
pub async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}
