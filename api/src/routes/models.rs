//! `GET /v1/models` (the model registry; the serving ranker and its
//! embeddings are `serving`, every other model a `candidate`) and
//! `POST /v1/models/{version}/promote`.

use actix_web::{web, HttpResponse};
use reprise_store::time::format_rfc3339;

use crate::error::ApiError;
use crate::schema::{ModelList, ModelSummary, Promoted};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/models", web::get().to(list))
        .route("/v1/models/{version}/promote", web::post().to(promote))
        .route("/v1/models/rollback", web::post().to(rollback));
}

fn status(serving: &[String], version: &str) -> &'static str {
    if serving.iter().any(|v| v == version) {
        "serving"
    } else {
        "candidate"
    }
}

/// Every stored model version, oldest first.
#[utoipa::path(get, path = "/v1/models", operation_id = "list_models", tag = "models", responses((status = 200, body = ModelList)))]
pub(crate) async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let serving = state.recommender.serving_versions();
    // Reading the registry decodes every model record: off the HTTP workers.
    let store = std::sync::Arc::clone(&state.store);
    let records = super::blocking(move || store.models()).await?;
    let models = records
        .into_iter()
        .map(|m| ModelSummary {
            status: status(&serving, &m.version).into(),
            version: m.version,
            kind: m.kind,
            created_at: format_rfc3339(m.created_at_micros),
            training_snapshot_id: m.training_snapshot_id,
            store_version: m.store_version,
            metrics: m.metrics.into_iter().collect(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(ModelList { models }))
}

/// Serves ranker `version` from the next request on (its ANN index is built
/// first; in-flight requests finish on the previous model) and records it,
/// so a restart serves it too.
#[utoipa::path(post, path = "/v1/models/{version}/promote", operation_id = "promote_model", tag = "models",
    params(("version" = String, Path, description = "A ranker version, e.g. `ranker-3`")),
    responses((status = 200, body = Promoted),
              (status = 400, description = "Not a ranker", body = crate::schema::ErrorResponse),
              (status = 404, description = "No such model", body = crate::schema::ErrorResponse)))]
pub(crate) async fn promote(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let version = version.into_inner();
    let recommender = state.recommender.clone();
    let promoted = version.clone();
    super::blocking(move || recommender.promote(&promoted)).await?;
    Ok(HttpResponse::Ok().json(Promoted { serving: version }))
}

/// Returns to the ranker that served before the current one, in one call
/// (no alert gate: it served already). Caches are dropped.
#[utoipa::path(post, path = "/v1/models/rollback", operation_id = "rollback_model", tag = "models",
    responses((status = 200, body = Promoted),
              (status = 400, description = "No earlier ranker has served", body = crate::schema::ErrorResponse)))]
pub(crate) async fn rollback(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let recommender = state.recommender.clone();
    let serving = super::blocking(move || recommender.rollback()).await?;
    Ok(HttpResponse::Ok().json(Promoted { serving }))
}
