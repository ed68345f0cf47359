//! `GET /v1/served/{request_id}`: a served request's logged features, and
//! with `?replay=true` the same features recomputed from the store as of
//! the request's time, side by side.

use actix_web::{web, HttpResponse};
use reprise_actors::recommend::explain::RawInput;
use reprise_actors::recommend::served::ServedRequest;
use reprise_store::Cutoff;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::ApiError;
use crate::schema::{self, ErrorResponse, ReplaySummary, ServedInput, ServedItem, ServedResponse};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/served/{request_id}", web::get().to(served));
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ServedQuery {
    /// `true` to recompute the logged features from the store.
    replay: Option<String>,
    /// The replay's point-in-time rule: `event` (default: every row whose
    /// event time is at or before the request, however late it was
    /// written) or `created` (only what the store held then).
    cutoff: Option<String>,
}

fn replay_of(query: &ServedQuery) -> Result<Option<Cutoff>, ApiError> {
    let replay = match query.replay.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_field(
                "replay",
                format!("`{other}` is not `true` or `false`"),
            ))
        }
    };
    let cutoff = match query.cutoff.as_deref() {
        None => Cutoff::Event,
        Some(text) => Cutoff::parse(text).ok_or_else(|| {
            ApiError::bad_field("cutoff", format!("`{text}` is not `event` or `created`"))
        })?,
    };
    Ok(replay.then_some(cutoff))
}

/// A raw value on the wire.
pub(crate) fn raw_input(raw: RawInput) -> schema::RawInput {
    schema::RawInput {
        reference: raw.reference,
        value: raw.value.unwrap_or(Json::Null),
        status: raw.status.to_owned(),
        event_timestamp: raw.event_timestamp,
        store_version: raw.store_version,
    }
}

fn response(served: ServedRequest) -> ServedResponse {
    ServedResponse {
        request_id: served.request_id,
        user_id: served.user_id,
        timestamp: served.timestamp,
        model_version: served.model_version,
        arm: served.arm,
        context: Json::Object(served.context),
        items: served
            .items
            .into_iter()
            .map(|item| ServedItem {
                item_id: item.item_id,
                position: item.position,
                score: item.score,
                source: item.source,
                inputs: item
                    .inputs
                    .into_iter()
                    .map(|i| ServedInput {
                        name: i.name,
                        logged: i.logged,
                        replayed: i.replayed,
                        differs: i.differs,
                    })
                    .collect(),
                replayed_raw: item.replayed_raw.into_iter().map(raw_input).collect(),
            })
            .collect(),
        replay: served.replay.map(|r| ReplaySummary {
            store_version: r.store_version,
            cutoff: r.cutoff.as_str().to_owned(),
            differences: r.differences,
        }),
    }
}

/// What the served-feature log holds for a request (context, items,
/// the model inputs each item was scored on); with `replay=true` the inputs
/// recomputed point-in-time from the store beside the logged ones.
#[utoipa::path(get, path = "/v1/served/{request_id}", operation_id = "get_served_request", tag = "recommendations",
    params(("request_id" = String, Path, description = "A recommendation's request id"), ServedQuery),
    responses((status = 200, body = ServedResponse),
              (status = 400, description = "Bad query parameter", body = ErrorResponse),
              (status = 404, description = "No such served request (or past the log's retention)", body = ErrorResponse)))]
pub(crate) async fn served(
    state: web::Data<AppState>,
    request_id: web::Path<String>,
    query: web::Query<ServedQuery>,
) -> Result<HttpResponse, ApiError> {
    let replay = replay_of(&query)?;
    let recommender = state.recommender.clone();
    let request_id = request_id.into_inner();
    let served = super::blocking(move || recommender.served(&request_id, replay)).await?;
    Ok(HttpResponse::Ok().json(response(served)))
}
