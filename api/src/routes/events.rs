//! `POST /v1/events`: feedback on served items.

use actix_web::{web, HttpRequest, HttpResponse};
use reprise_actors::recommend::Event;
use serde_json::Value as Json;

use crate::body::json_object;
use crate::error::ApiError;
use crate::schema::{self, ErrorResponse, EventsResponse};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/events", web::post().to(events));
}

fn text(event: &serde_json::Map<String, Json>, i: usize, name: &str) -> Result<String, ApiError> {
    match event.get(name) {
        Some(Json::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::bad_field(
            format!("events[{i}].{name}"),
            format!("`events[{i}].{name}` must be a string"),
        )),
        None => Err(ApiError::bad_field(
            format!("events[{i}].{name}"),
            format!("`events[{i}].{name}` is required"),
        )),
    }
}

/// Stores play/skip/click/like/impression events (joined to the
/// served-feature log by request id and item); plays also become rows of
/// the declared interactions view (their `features` object holds its raw
/// features), in the same atomic write, so aggregations move at once, and
/// update the user's history, the candidate cache and the cold-start
/// counts. A batch with a bad event writes nothing.
#[utoipa::path(post, path = "/v1/events", operation_id = "post_events", tag = "recommendations",
    request_body = schema::EventsRequest,
    responses((status = 200, body = EventsResponse),
              (status = 400, description = "Bad event (the field is named)", body = ErrorResponse)))]
pub(crate) async fn events(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body = json_object(&req, payload, &state.limits).await?;
    let events = body.objects("events")?;
    let mut parsed = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let played_seconds = match e.get("played_seconds") {
            None | Some(Json::Null) => None,
            Some(v) => Some(v.as_f64().ok_or_else(|| {
                ApiError::bad_field(
                    format!("events[{i}].played_seconds"),
                    "must be a number of seconds",
                )
            })?),
        };
        let request_id = match e.get("request_id") {
            None | Some(Json::Null) => None,
            Some(_) => Some(text(e, i, "request_id")?),
        };
        let features = match e.get("features") {
            None | Some(Json::Null) => serde_json::Map::new(),
            Some(Json::Object(map)) => map.clone(),
            Some(_) => {
                return Err(ApiError::bad_field(
                    format!("events[{i}].features"),
                    "must be an object of the interactions view's features",
                ))
            }
        };
        let context = match e.get("context") {
            None | Some(Json::Null) => serde_json::Map::new(),
            Some(Json::Object(map)) => map.clone(),
            Some(_) => {
                return Err(ApiError::bad_field(
                    format!("events[{i}].context"),
                    "must be an object (the request context: device, country, hour, …)",
                ))
            }
        };
        parsed.push(Event {
            features,
            context,
            request_id,
            user_id: text(e, i, "user_id")?,
            item_id: text(e, i, "item_id")?,
            kind: text(e, i, "type")?,
            timestamp: text(e, i, "timestamp")?,
            played_seconds,
        });
    }
    let recommender = state.recommender.clone();
    let accepted = super::blocking(move || recommender.record_events(&parsed)).await?;
    Ok(HttpResponse::Ok().json(EventsResponse { accepted }))
}
