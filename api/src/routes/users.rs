//! `GET /v1/users/{user_id}/plays`: a user's newest rows of the declared
//! interactions view (what they played, when, with the event's features).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::ApiError;
use crate::schema::{ErrorResponse, Play, UserPlays};
use crate::state::AppState;

/// Plays returned when the request does not say.
const DEFAULT_LIMIT: usize = 20;
/// The most a request may ask for.
const MAX_LIMIT: usize = 1_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/users/{user_id}/plays", web::get().to(plays));
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PlaysQuery {
    /// Plays wanted, newest first (1–1000, default 20).
    limit: Option<String>,
}

/// The user's newest plays in the declared `[recommender]` interactions
/// view, newest first.
#[utoipa::path(get, path = "/v1/users/{user_id}/plays", operation_id = "get_user_plays", tag = "recommendations",
    params(("user_id" = String, Path, description = "The user (the interactions view's first entity)"), PlaysQuery),
    responses((status = 200, body = UserPlays),
              (status = 400, description = "Bad limit", body = ErrorResponse),
              (status = 404, description = "No recommender is declared", body = ErrorResponse)))]
pub(crate) async fn plays(
    state: web::Data<AppState>,
    user_id: web::Path<String>,
    query: web::Query<PlaysQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_field("limit", format!("must be between 1 and {MAX_LIMIT}"))
            })?,
    };
    let user_id = user_id.into_inner();
    let store = std::sync::Arc::clone(&state.store);
    let plays = super::blocking(move || {
        let registry = store.registry();
        let spec = registry.recommender().ok_or(ApiError::NotFound {
            what: "recommender declaration",
            id: "[recommender]".to_owned(),
        })?;
        let view = &spec.interactions;
        let rows = store.recent_rows(&view.label(), &[user_id.as_str()], limit)?;
        let plays = rows
            .into_iter()
            .map(|row| {
                let features = view.values_by_name(row.values);
                Play {
                    item_id: row.keys.get(1).cloned().unwrap_or_default(),
                    event_timestamp: reprise_store::time::format_rfc3339(row.event_ts),
                    store_version: row.store_version,
                    features: Json::Object(features),
                }
            })
            .collect();
        Ok::<_, ApiError>(UserPlays {
            user_id,
            view: view.label(),
            plays,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(plays))
}
