//! `POST /v1/retrain`, `GET /v1/retrain/runs` and `GET /v1/retrain/runs/{id}`.

use actix_web::{web, HttpResponse};
use reprise_actors::retrain::{RunOverrides, Triggered};

use serde_json::Value as Json;

use crate::error::ApiError;
use crate::schema::{ErrorResponse, RetrainRequest, RetrainRunStatus, RetrainStarted};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/retrain", web::post().to(start))
        .route("/v1/retrain/runs", web::get().to(list))
        .route("/v1/retrain/runs/{id}", web::get().to(run));
}

/// Starts a retraining run (or joins the one running): train a candidate,
/// score it and the serving ranker on the same held-out data, promote only
/// if it is better by the margin and no blocking alert is open. The body is
/// optional; its fields override the server's settings for this run.
#[utoipa::path(post, path = "/v1/retrain", operation_id = "start_retrain", tag = "models", request_body(content = Option<RetrainRequest>),
    responses((status = 202, body = RetrainStarted),
              (status = 400, description = "Nothing to train on, or a bad override", body = ErrorResponse)))]
pub(crate) async fn start(
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let overrides = overrides(&body)?;
    let retrainer = state.retrainer.clone();
    let triggered = super::blocking(move || retrainer.trigger("manual", &overrides)).await?;
    let (run_id, joined) = match triggered {
        Triggered::Started(id) => (id, false),
        Triggered::Joined(id) => (id, true),
        Triggered::Debounced => unreachable!("manual triggers are not debounced"),
    };
    Ok(HttpResponse::Accepted().json(RetrainStarted { run_id, joined }))
}

/// The optional body: each field is read on its own so a bad one is named.
fn overrides(body: &[u8]) -> Result<RunOverrides, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RunOverrides::default());
    }
    let Json::Object(map) =
        serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))?
    else {
        return Err(ApiError::MalformedJson(
            "the body must be a JSON object".into(),
        ));
    };
    for (field, value) in &map {
        let one = Json::Object([(field.clone(), value.clone())].into_iter().collect());
        serde_json::from_value::<RunOverrides>(one)
            .map_err(|e| ApiError::bad_field(field.as_str(), format!("`{field}`: {e}")))?;
    }
    serde_json::from_value(Json::Object(map)).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// Every run (newest state each), oldest first.
#[utoipa::path(get, path = "/v1/retrain/runs", operation_id = "list_retrain_runs", tag = "models",
    responses((status = 200, body = Vec<RetrainRunStatus>)))]
pub(crate) async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let retrainer = state.retrainer.clone();
    let runs = super::blocking(move || retrainer.runs()).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "runs": runs })))
}

/// A run: status, decision and reason, trigger, steps with timings, both
/// models' metrics on the same held-out data.
#[utoipa::path(get, path = "/v1/retrain/runs/{id}", operation_id = "get_retrain_run", tag = "models",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = RetrainRunStatus), (status = 404, body = ErrorResponse)))]
pub(crate) async fn run(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let retrainer = state.retrainer.clone();
    let wanted = id.clone();
    let run = super::blocking(move || retrainer.run(&wanted))
        .await?
        .ok_or_else(|| ApiError::NotFound {
            what: "retrain run",
            id: id.into_inner(),
        })?;
    Ok(HttpResponse::Ok().json(run))
}
