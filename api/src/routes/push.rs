//! `POST /v1/push`.

use actix_web::{web, HttpRequest, HttpResponse};
use reprise_actors::Push;

use crate::body::json_object;
use crate::error::ApiError;
use crate::schema::{ErrorResponse, PushRequest, PushResponse};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/push", web::post().to(push));
}

/// Write a batch of rows to a feature view, atomically, as one new store version.
#[utoipa::path(post, path = "/v1/push", operation_id = "push", tag = "features", request_body = PushRequest,
    responses((status = 200, body = PushResponse),
              (status = 400, description = "Unknown view or feature, wrong type, missing key or timestamp; nothing written", body = ErrorResponse),
              (status = 413, body = ErrorResponse), (status = 503, description = "Write queue full", body = ErrorResponse)))]
pub(crate) async fn push(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body = json_object(&req, payload, &state.limits).await?;
    let view = body.string("view")?;
    let rows = body.array("rows")?;
    let backfill = body.optional_bool("backfill")?.unwrap_or(false);
    let start = std::time::Instant::now();
    let outcome = state
        .workers
        .send(Push {
            view,
            rows,
            backfill,
        })
        .await?;
    state
        .metrics
        .store_latency
        .with_label_values(&["push"])
        .observe(start.elapsed().as_secs_f64());
    Ok(HttpResponse::Ok().json(PushResponse {
        written: outcome.written,
        store_version: outcome.store_version,
    }))
}
