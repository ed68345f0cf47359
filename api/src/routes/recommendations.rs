//! `POST /v1/recommendations` and `POST /v1/rank`.

use actix_web::{web, HttpRequest, HttpResponse};
use reprise_actors::recommend::{RankRequest, Ranked, RecommendRequest, Recommendation};
use serde_json::{Map, Value as Json};

use crate::body::{json_object, JsonObject};
use crate::error::ApiError;
use crate::schema::{
    self, ErrorResponse, Explanation, ItemProbability, ModelInput, RankResponse,
    RecommendationResponse, RecommendedItem,
};
use crate::state::AppState;

/// Items per response when the request does not say.
const DEFAULT_K: u64 = 10;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/recommendations", web::post().to(recommendations))
        .route("/v1/rank", web::post().to(rank));
}

fn context(body: &mut JsonObject) -> Result<Map<String, Json>, ApiError> {
    match body.take("context") {
        Some(Json::Object(map)) => Ok(map),
        Some(_) => Err(ApiError::bad_field(
            "context",
            "`context` must be an object",
        )),
        None => Ok(Map::new()),
    }
}

fn explanation(e: reprise_actors::recommend::explain::Explanation) -> Explanation {
    Explanation {
        raw: e.raw.into_iter().map(super::served::raw_input).collect(),
        inputs: e
            .inputs
            .into_iter()
            .map(|i| ModelInput {
                name: i.name,
                value: i.value,
                contribution: i.contribution,
            })
            .collect(),
        bias: e.bias,
    }
}

/// The best `k` items for a user: candidates from history, ANN over
/// embeddings and popularity, ranked by the serving model; cold-start
/// items for users with no history and no embedding.
#[utoipa::path(post, path = "/v1/recommendations", operation_id = "recommend", tag = "recommendations",
    request_body = schema::RecommendationRequest,
    responses((status = 200, body = RecommendationResponse),
              (status = 400, description = "Bad field", body = ErrorResponse),
              (status = 422, description = "Missing mandatory context (an anomaly is recorded)", body = ErrorResponse),
              (status = 503, description = "No model is serving, or overloaded", body = ErrorResponse)))]
pub(crate) async fn recommendations(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = json_object(&req, payload, &state.limits).await?;
    let result = state
        .recommender
        .recommend(recommend_request(body)?)
        .await?;
    Ok(HttpResponse::Ok().json(recommendation_response(result)))
}

/// The recommendation request a body asks for.
pub(crate) fn recommend_request(mut body: JsonObject) -> Result<RecommendRequest, ApiError> {
    let user_id = body.string("user_id")?;
    let context = context(&mut body)?;
    let k = body.optional_u64("k")?.unwrap_or(DEFAULT_K) as usize;
    let explain = body.optional_bool("explain")?.unwrap_or(false);
    Ok(RecommendRequest {
        user_id,
        context,
        k,
        explain,
    })
}

/// The answer to a recommendation request.
pub(crate) fn recommendation_response(result: Recommendation) -> RecommendationResponse {
    let mut explanations = result.explanations.into_iter();
    RecommendationResponse {
        request_id: result.request_id,
        model_version: result.model_version,
        arm: result.arm,
        cold_start: result.cold_start,
        items: result
            .items
            .into_iter()
            .map(|i| RecommendedItem {
                item_id: i.item_id,
                score: i.score,
                source: i.source.to_owned(),
                explanation: explanations.next().map(explanation),
            })
            .collect(),
    }
}

/// Engagement probabilities of the given items for a user, from the
/// serving model.
#[utoipa::path(post, path = "/v1/rank", operation_id = "rank", tag = "recommendations",
    request_body = schema::RankRequest,
    responses((status = 200, body = RankResponse),
              (status = 400, description = "Bad field or unknown item", body = ErrorResponse),
              (status = 422, description = "Missing mandatory context", body = ErrorResponse),
              (status = 503, description = "No model is serving, or overloaded", body = ErrorResponse)))]
pub(crate) async fn rank(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = json_object(&req, payload, &state.limits).await?;
    let result = state.recommender.rank(rank_request(body)?).await?;
    Ok(HttpResponse::Ok().json(rank_response(result)))
}

/// The rank request a body asks for.
pub(crate) fn rank_request(mut body: JsonObject) -> Result<RankRequest, ApiError> {
    let user_id = body.string("user_id")?;
    let context = context(&mut body)?;
    let item_ids = body.strings("item_ids")?;
    Ok(RankRequest {
        user_id,
        context,
        item_ids,
    })
}

/// The answer to a rank request.
pub(crate) fn rank_response(result: Ranked) -> RankResponse {
    RankResponse {
        request_id: result.request_id,
        model_version: result.model_version,
        scores: result
            .scores
            .into_iter()
            .map(|(item_id, probability)| ItemProbability {
                item_id,
                probability,
            })
            .collect(),
    }
}
