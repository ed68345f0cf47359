//! `POST /v1/online-features`.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use reprise_store::time::format_rfc3339;
use reprise_store::FeatureStore;

use crate::body::json_object;
use crate::error::ApiError;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::routes::blocking;
use crate::schema::{ErrorResponse, OnlineRequest, OnlineResponse, OnlineRow};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/online-features", web::post().to(online_features));
}

/// Latest feature values per entity; rows in request order, values in `features` order.
#[utoipa::path(post, path = "/v1/online-features", operation_id = "get_online_features", tag = "features", request_body = OnlineRequest,
    responses((status = 200, body = OnlineResponse),
              (status = 400, description = "Unknown view or feature, missing join key", body = ErrorResponse)))]
pub(crate) async fn online_features(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    read_online(&state.store, &state.metrics, &state.limits, &req, payload).await
}

/// Reads the online features a request asks `store` for (a leader's or a
/// replica's) and renders them.
pub(crate) async fn read_online(
    store: &Arc<FeatureStore>,
    metrics: &Arc<Metrics>,
    limits: &Limits,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body = json_object(req, payload, limits).await?;
    let features = body.strings("features")?;
    let entities = body.objects("entities")?;
    // Cache hits are answered on the HTTP worker; a miss (or an
    // aggregation, computed from its index, or a replica's read of the
    // shared store) runs on the blocking pool, so a slow read never holds a
    // worker.
    let cached = metrics.time_store("online_read_cached", || {
        store.online_features_cached(&features, &entities)
    })?;
    let result = match cached {
        Some(result) => result,
        None => {
            let (store, metrics) = (Arc::clone(store), Arc::clone(metrics));
            let features = features.clone();
            blocking(move || {
                metrics.time_store("online_read", || {
                    store.online_features(&features, &entities)
                })
            })
            .await?
        }
    };
    let rows = result
        .rows
        .into_iter()
        .map(|row| OnlineRow {
            values: row.values,
            statuses: row.statuses.iter().map(|s| s.as_str().to_owned()).collect(),
            event_timestamps: row
                .event_timestamps
                .iter()
                .map(|t| t.map(format_rfc3339))
                .collect(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(OnlineResponse {
        store_version: result.store_version,
        features,
        rows,
    }))
}
