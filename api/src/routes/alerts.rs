//! `GET /v1/alerts`, `POST /v1/alerts/{id}/ack` and `POST /v1/validation/run`.

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::schema::{AlertList, AlertSummary, ErrorResponse, ValidationRun};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/alerts", web::get().to(list))
        .route("/v1/alerts/{id}/ack", web::post().to(ack))
        .route("/v1/validation/run", web::post().to(run))
        .route("/v1/validation/reports", web::get().to(reports));
}

fn summary(a: reprise_actors::validation::Alert) -> AlertSummary {
    AlertSummary {
        detail: serde_json::from_str(&a.detail).unwrap_or(serde_json::Value::Null),
        id: a.id,
        check: a.check,
        view: a.view,
        feature: a.feature,
        metric: a.metric,
        value: a.value,
        threshold: a.threshold,
        blocking: a.blocking,
        status: a.status,
        raised_at: a.raised_at,
        updated_at: a.updated_at,
    }
}

/// Every alert (its latest state), oldest first.
#[utoipa::path(get, path = "/v1/alerts", operation_id = "list_alerts", tag = "validation", responses((status = 200, body = AlertList)))]
pub(crate) async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let validation = state.validation.clone();
    let alerts = super::blocking(move || validation.alerts()).await?;
    Ok(HttpResponse::Ok().json(AlertList {
        alerts: alerts.into_iter().map(summary).collect(),
    }))
}

/// Acknowledges an alert; a blocking one stops blocking promotion.
#[utoipa::path(post, path = "/v1/alerts/{id}/ack", operation_id = "acknowledge_alert", tag = "validation",
    params(("id" = String, Path, description = "Alert id")),
    responses((status = 200, body = AlertSummary), (status = 404, body = ErrorResponse)))]
pub(crate) async fn ack(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let validation = state.validation.clone();
    let id = id.into_inner();
    let alert = super::blocking(move || validation.acknowledge(&id)).await?;
    Ok(HttpResponse::Ok().json(summary(alert)))
}

/// Runs the drift check now (it also runs every window): the latest window
/// of every monitored view against the one before, per feature.
#[utoipa::path(post, path = "/v1/validation/run", operation_id = "run_validation", tag = "validation",
    responses((status = 200, body = ValidationRun)))]
pub(crate) async fn run(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let run = state.validation.run_now().await?;
    Ok(HttpResponse::Ok().json(ValidationRun {
        comparisons: serde_json::to_value(&run.comparisons).unwrap_or_default(),
        anomalies: serde_json::to_value(&run.anomalies).unwrap_or_default(),
        raised: run.raised.into_iter().map(summary).collect(),
        history: serde_json::to_value(state.validation.distance_history()).unwrap_or_default(),
    }))
}

/// The latest validation run: per feature, statistics of the reference
/// (previous window, or training) and current data side by side, with all
/// distances. Runs the checks first when none has run yet.
#[utoipa::path(get, path = "/v1/validation/reports", operation_id = "get_validation_report", tag = "validation",
    responses((status = 200, body = ValidationRun)))]
pub(crate) async fn reports(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let run = match state.validation.last_run() {
        Some(run) => run,
        None => state.validation.run_now().await?,
    };
    Ok(HttpResponse::Ok().json(ValidationRun {
        comparisons: serde_json::to_value(&run.comparisons).unwrap_or_default(),
        anomalies: serde_json::to_value(&run.anomalies).unwrap_or_default(),
        raised: run.raised.into_iter().map(summary).collect(),
        history: serde_json::to_value(state.validation.distance_history()).unwrap_or_default(),
    }))
}
