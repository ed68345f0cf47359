//! The OpenAPI document, generated from the handlers' annotations and the
//! wire types in `schema.rs`. A test checks it against the served routes.

use utoipa::OpenApi;

use crate::routes::{
    admin, alerts, events, experiments, models, online, ops, push, recommendations, retrain,
    served, snapshots,
};
use crate::schema;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Reprise",
        description = "Versioned feature store and recommendation server"
    ),
    paths(
        push::push,
        online::online_features,
        snapshots::create,
        snapshots::info,
        snapshots::rows,
        models::list,
        models::promote,
        models::rollback,
        retrain::start,
        retrain::list,
        retrain::run,
        recommendations::recommendations,
        recommendations::rank,
        served::served,
        events::events,
        experiments::list,
        experiments::put,
        experiments::get,
        alerts::list,
        alerts::ack,
        alerts::run,
        alerts::reports,
        admin::backup,
        admin::compact,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi,
    ),
    components(schemas(
        schema::PushRequest,
        schema::PushResponse,
        schema::OnlineRequest,
        schema::OnlineResponse,
        schema::OnlineRow,
        schema::SnapshotRequest,
        schema::SnapshotDescription,
        schema::ErrorResponse,
        schema::ErrorDetail,
        schema::Health,
        schema::Ready,
        schema::BackupRequest,
        schema::BackupResponse,
        schema::Compacted,
        schema::ModelSummary,
        schema::Promoted,
        schema::RetrainStarted,
        schema::RetrainRunStatus,
        schema::RetrainRequest,
        schema::RecommendationRequest,
        schema::RecommendationResponse,
        schema::RecommendedItem,
        schema::Explanation,
        schema::RawInput,
        schema::ModelInput,
        schema::ServedResponse,
        schema::ServedItem,
        schema::ServedInput,
        schema::ReplaySummary,
        schema::RankRequest,
        schema::RankResponse,
        schema::ItemProbability,
        schema::EventsRequest,
        schema::EventsResponse,
        schema::FeedbackEvent,
        schema::ExperimentArm,
        schema::ExperimentRequest,
        schema::ExperimentList,
        schema::ExperimentReport,
        schema::AlertSummary,
        schema::AlertList,
        schema::ValidationRun,
        schema::ModelList,
    ))
)]
pub struct ApiDoc;
