//! `POST /v1/push`.

use actix_web::{web, HttpRequest, HttpResponse};
use reprise_actors::Push;
use serde_json::json;

use crate::body::json_object;
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/push", web::post().to(push));
}

async fn push(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body = json_object(&req, payload, state.max_body_bytes).await?;
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
    Ok(HttpResponse::Ok().json(json!({
        "written": outcome.written,
        "store_version": outcome.store_version,
    })))
}
