//! `POST /v1/retrain` and `GET /v1/retrain/runs/{id}`.

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::schema::{ErrorResponse, RetrainRunStatus, RetrainStarted};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/retrain", web::post().to(start))
        .route("/v1/retrain/runs/{id}", web::get().to(run));
}

/// Starts a retraining run (or joins the one running): train a candidate on
/// the current data, compare with the serving ranker, promote only if it is
/// better by the margin and no blocking alert is open.
#[utoipa::path(post, path = "/v1/retrain", tag = "models",
    responses((status = 202, body = RetrainStarted),
              (status = 400, description = "Nothing to train on", body = ErrorResponse)))]
pub(crate) async fn start(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let retrainer = state.retrainer.clone();
    let run_id = web::block(move || retrainer.trigger("api"))
        .await
        .map_err(|e| ApiError::Transport(e.to_string()))??;
    Ok(HttpResponse::Accepted().json(RetrainStarted { run_id }))
}

/// A run: status, decision and reason, steps with timings, metrics of the
/// candidate and of the ranker that was serving.
#[utoipa::path(get, path = "/v1/retrain/runs/{id}", tag = "models",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = RetrainRunStatus), (status = 404, body = ErrorResponse)))]
pub(crate) async fn run(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let run = state.retrainer.run(&id).ok_or_else(|| ApiError::NotFound {
        what: "retrain run",
        id: id.into_inner(),
    })?;
    Ok(HttpResponse::Ok().json(serde_json::to_value(run).unwrap_or_default()))
}
