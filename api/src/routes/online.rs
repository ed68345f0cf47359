//! `POST /v1/online-features`.

use actix_web::{web, HttpRequest, HttpResponse};
use reprise_store::time::format_rfc3339;
use reprise_store::Value;
use serde::Serialize;

use crate::body::json_object;
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/online-features", web::post().to(online_features));
}

#[derive(Serialize)]
struct Response<'a> {
    store_version: u64,
    features: &'a [String],
    rows: Vec<Row<'a>>,
}

#[derive(Serialize)]
struct Row<'a> {
    values: &'a [Option<Value>],
    statuses: Vec<&'static str>,
    event_timestamps: Vec<Option<String>>,
}

async fn online_features(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body = json_object(&req, payload, state.max_body_bytes).await?;
    let features = body.strings("features")?;
    let entities = body.objects("entities")?;
    let result = state.metrics.time_store("online_read", || {
        state.store.online_features(&features, &entities)
    })?;
    let rows = result
        .rows
        .iter()
        .map(|row| Row {
            values: &row.values,
            statuses: row.statuses.iter().map(|s| s.as_str()).collect(),
            event_timestamps: row
                .event_timestamps
                .iter()
                .map(|t| t.map(format_rfc3339))
                .collect(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Response {
        store_version: result.store_version,
        features: &features,
        rows,
    }))
}
