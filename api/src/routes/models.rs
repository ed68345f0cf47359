//! `GET /v1/models`: the model registry. Until serving lands (the
//! recommendations issue), every model is a `candidate`.

use actix_web::{web, HttpResponse};
use reprise_store::time::format_rfc3339;

use crate::error::ApiError;
use crate::schema::{ModelList, ModelSummary};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/models", web::get().to(list));
}

/// Every stored model version, oldest first.
#[utoipa::path(get, path = "/v1/models", tag = "models", responses((status = 200, body = ModelList)))]
pub(crate) async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let models = state
        .store
        .models()?
        .into_iter()
        .map(|m| ModelSummary {
            version: m.version,
            kind: m.kind,
            status: "candidate".into(),
            created_at: format_rfc3339(m.created_at_micros),
            training_snapshot_id: m.training_snapshot_id,
            store_version: m.store_version,
            metrics: m.metrics.into_iter().collect(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(ModelList { models }))
}
