//! `GET /v1/catalog` (entities, views, features, transforms, aggregations,
//! TTL, retention, freshness) and `GET /v1/whoami` (the calling key's
//! scopes).

use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::{Scope, API_KEY_HEADER};
use crate::error::ApiError;
use crate::schema::{CatalogResponse, Identity};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/catalog", web::get().to(catalog))
        .route("/v1/whoami", web::get().to(whoami));
}

/// The catalogue: every entity and view version with its kind, features,
/// types, transforms, lookups, aggregation (ops, windows), TTL, retention,
/// drift thresholds and the store version of its newest write.
#[utoipa::path(get, path = "/v1/catalog", operation_id = "get_catalog", tag = "features",
    responses((status = 200, body = CatalogResponse)))]
pub(crate) async fn catalog(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = std::sync::Arc::clone(&state.store);
    let catalog = super::blocking(move || Ok::<_, ApiError>(store.catalog())).await?;
    Ok(HttpResponse::Ok().json(catalog))
}

/// The calling key's name and scopes (all scopes, no name, when the server
/// runs without a keys file).
#[utoipa::path(get, path = "/v1/whoami", operation_id = "whoami", tag = "operations",
    responses((status = 200, body = Identity)))]
pub(crate) async fn whoami(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let all = [Scope::Read, Scope::Write, Scope::Admin];
    let identity = match (&state.keys, req.headers().get(API_KEY_HEADER)) {
        (None, _) => Identity {
            key: None,
            scopes: all.iter().map(|s| s.name().to_owned()).collect(),
            keys_required: false,
        },
        (Some(ring), Some(given)) => {
            let entry = ring
                .identify(given.as_bytes())
                .ok_or(ApiError::Unauthorized)?;
            Identity {
                key: Some(entry.name.clone()),
                scopes: entry.scopes.iter().map(|s| s.name().to_owned()).collect(),
                keys_required: true,
            }
        }
        (Some(_), None) => return Err(ApiError::Unauthorized),
    };
    Ok(HttpResponse::Ok().json(identity))
}
