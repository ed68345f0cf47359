//! `GET /v1/experiments`, `PUT /v1/experiments/{name}`,
//! `GET /v1/experiments/{name}`.

use actix_web::{web, HttpRequest, HttpResponse};
use reprise_actors::experiments::{Arm, Experiment};
use serde_json::Value as Json;

use crate::body::json_object;
use crate::error::ApiError;
use crate::schema::{self, ErrorResponse};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/experiments", web::get().to(list))
        .route("/v1/experiments/{name}", web::put().to(put))
        .route("/v1/experiments/{name}", web::get().to(get));
}

/// Every experiment with its arms.
#[utoipa::path(get, path = "/v1/experiments", operation_id = "list_experiments", tag = "experiments",
    responses((status = 200, body = schema::ExperimentList)))]
pub(crate) async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let recommender = state.recommender.clone();
    let experiments = super::blocking(move || recommender.experiments()).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "experiments": experiments })))
}

/// Defines an experiment: arms (model version, traffic share; shares sum
/// to 1). Users go to arms by a salted hash of their id into 1000 buckets;
/// the newest active experiment routes traffic from the next request on.
#[utoipa::path(put, path = "/v1/experiments/{name}", operation_id = "put_experiment", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name")),
    request_body = schema::ExperimentRequest,
    responses((status = 200, body = schema::ExperimentList),
              (status = 400, description = "Bad arms (the field is named)", body = ErrorResponse)))]
pub(crate) async fn put(
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let mut body = json_object(&req, payload, &state.limits).await?;
    let arms: Vec<Arm> = body
        .array("arms")?
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            serde_json::from_value(a)
                .map_err(|e| ApiError::bad_field(format!("arms[{i}]"), format!("`arms[{i}]`: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let salt = body
        .optional_string("salt")?
        .unwrap_or_else(|| name.clone());
    let active = match body.take("active") {
        None => true,
        Some(Json::Bool(b)) => b,
        Some(_) => return Err(ApiError::bad_field("active", "`active` must be a boolean")),
    };
    let experiment = Experiment {
        name,
        arms,
        salt,
        active,
        defined_at: String::new(),
    };
    let recommender = state.recommender.clone();
    let stored = experiment.clone();
    super::blocking(move || recommender.put_experiment(stored)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "experiments": [experiment] })))
}

/// An experiment and each arm's online metrics since it was defined:
/// impressions, plays, skips, play rate, and a two-proportion z-test with
/// the 95% confidence interval of the difference to the first arm.
#[utoipa::path(get, path = "/v1/experiments/{name}", operation_id = "get_experiment", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name")),
    responses((status = 200, body = schema::ExperimentReport),
              (status = 404, body = ErrorResponse)))]
pub(crate) async fn get(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let recommender = state.recommender.clone();
    let name = name.into_inner();
    let (experiment, arms) = super::blocking(move || recommender.experiment_metrics(&name)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "experiment": experiment, "arms": arms })))
}
