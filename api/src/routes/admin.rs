//! `POST /v1/admin/backup` (CONTRACT.md "Backup") and
//! `POST /v1/admin/compact`.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::body::json_object;
use crate::error::ApiError;
use crate::routes::blocking;
use crate::schema::{BackupRequest, BackupResponse, Compacted, ErrorResponse};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/admin/backup", web::post().to(backup))
        .route("/v1/admin/compact", web::post().to(compact));
}

/// Writes a consistent copy of the store, at the version returned, to a new
/// directory on the server's machine while it serves.
#[utoipa::path(post, path = "/v1/admin/backup", operation_id = "backup", tag = "operations", request_body = BackupRequest,
    responses((status = 200, body = BackupResponse),
              (status = 400, description = "`dir` not absolute, already there, or its parent missing", body = ErrorResponse)))]
pub(crate) async fn backup(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body = json_object(&req, payload, &state.limits).await?;
    let dir = body.string("dir")?;
    let store = std::sync::Arc::clone(&state.store);
    let target = std::path::PathBuf::from(&dir);
    let info = blocking(move || store.backup(&target)).await?;
    Ok(HttpResponse::Ok().json(BackupResponse {
        dir,
        store_version: info.store_version,
    }))
}

/// Compacts history now: rows older than their view's retention leave the
/// disk (compactions also do this on their own as data is written).
#[utoipa::path(post, path = "/v1/admin/compact", operation_id = "compact", tag = "operations",
    responses((status = 200, body = Compacted)))]
pub(crate) async fn compact(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = std::sync::Arc::clone(&state.store);
    let started = std::time::Instant::now();
    blocking(move || store.compact_history()).await?;
    Ok(HttpResponse::Ok().json(Compacted {
        seconds: started.elapsed().as_secs_f64(),
    }))
}
