//! The one place where errors become HTTP responses: every error of every
//! layer maps, by an exhaustive match, to a status and a stable `code`, in
//! the body shape CONTRACT.md fixes:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use reprise_actors::ActorError;
use reprise_store::StoreError;
use reprise_trainer::TrainError;
use thiserror::Error;

use crate::schema::{ErrorDetail, ErrorResponse};

#[derive(Debug, Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] StoreError),

    #[error(transparent)]
    Actor(#[from] ActorError),

    /// The body is not JSON at all.
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),

    /// A top-level request field is missing or of the wrong kind.
    #[error("{message}")]
    BadField { field: String, message: String },

    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },

    #[error("no {what} `{id}`")]
    NotFound { what: &'static str, id: String },

    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },

    #[error("the request could not be read: {0}")]
    Transport(String),

    /// The server has an API key and the request's `x-api-key` is missing
    /// or wrong.
    #[error("missing or wrong API key (header `x-api-key`)")]
    Unauthorized,
    /// The handler did not answer within the request timeout.
    #[error("no answer within {seconds} s (--request-timeout); the work may still complete, retry later")]
    Timeout { seconds: f64 },
    /// The bodies being read would exceed the in-flight budget.
    #[error("request bodies being read already take the {limit}-byte budget (--max-body-bytes-in-flight); retry later")]
    BodyBudget { limit: usize },
    /// A request is over one of its bounds.
    #[error(
        "`{field}` is over the limit: {got} where at most {limit} are allowed (set with {flag})"
    )]
    LimitExceeded {
        field: String,
        got: usize,
        limit: usize,
        flag: &'static str,
    },
    /// A replica could not reach its leader for a request only the leader
    /// answers (writes, history, models).
    #[error("the leader at {leader} does not answer ({reason}); retry later")]
    LeaderUnavailable { leader: String, reason: String },
    /// The request reached the leader, but its answer did not come back:
    /// it may have been applied.
    #[error("the leader at {leader} received the request but its answer was lost ({reason}); it may have been applied: check before sending it again")]
    LeaderFailed { leader: String, reason: String },
    /// The key is valid but lacks the route's scope.
    #[error("the key `{key}` lacks the `{scope}` scope this route needs")]
    Forbidden { key: String, scope: &'static str },
}

impl ApiError {
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Store(e) => store_status(e),
            ApiError::Actor(ActorError::Store(e)) => store_status(e),
            ApiError::Actor(ActorError::Overloaded { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
            }
            ApiError::Actor(ActorError::Stopped(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "shutting_down")
            }
            ApiError::Actor(ActorError::Model(e)) => train_status(e),
            ApiError::Actor(ActorError::NoServingModel) => {
                (StatusCode::SERVICE_UNAVAILABLE, "no_model")
            }
            ApiError::Actor(ActorError::Index(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "index_error")
            }
            ApiError::Actor(ActorError::Panicked { .. }) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            ApiError::Actor(ActorError::MissingContext { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "missing_context")
            }
            ApiError::Actor(ActorError::Invalid { .. }) => {
                (StatusCode::BAD_REQUEST, "invalid_value")
            }
            ApiError::Actor(ActorError::UnknownRequest(_)) => {
                (StatusCode::NOT_FOUND, "request_not_found")
            }
            ApiError::Actor(ActorError::UnknownAlert(_)) => {
                (StatusCode::NOT_FOUND, "alert_not_found")
            }
            ApiError::Actor(ActorError::UnknownExperiment(_)) => {
                (StatusCode::NOT_FOUND, "experiment_not_found")
            }
            ApiError::Actor(ActorError::PromotionBlocked { .. }) => {
                (StatusCode::CONFLICT, "promotion_blocked")
            }
            ApiError::Actor(ActorError::ExperimentRunning(_)) => {
                (StatusCode::CONFLICT, "experiment_running")
            }
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::BadField { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::NoRoute { .. } => (StatusCode::NOT_FOUND, "no_route"),
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Transport(_) => (StatusCode::BAD_REQUEST, "unreadable_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::LimitExceeded { .. } => (StatusCode::BAD_REQUEST, "limit_exceeded"),
            ApiError::BodyBudget { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Timeout { .. } => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::LeaderUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "leader_unavailable")
            }
            ApiError::LeaderFailed { .. } => (StatusCode::BAD_GATEWAY, "leader_error"),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::Store(e) | ApiError::Actor(ActorError::Store(e)) => e.field(),
            ApiError::BadField { field, .. } | ApiError::LimitExceeded { field, .. } => Some(field),
            ApiError::Unauthorized | ApiError::Forbidden { .. } => {
                Some(crate::auth::API_KEY_HEADER)
            }
            ApiError::Actor(ActorError::Model(TrainError::Store(e))) => e.field(),
            ApiError::Actor(
                ActorError::MissingContext { field } | ActorError::Invalid { field, .. },
            ) => Some(field),
            ApiError::Actor(
                ActorError::Overloaded { .. }
                | ActorError::Stopped(_)
                | ActorError::Model(_)
                | ActorError::NoServingModel
                | ActorError::Index(_)
                | ActorError::Panicked { .. }
                | ActorError::UnknownAlert(_)
                | ActorError::UnknownRequest(_)
                | ActorError::UnknownExperiment(_)
                | ActorError::PromotionBlocked { .. }
                | ActorError::ExperimentRunning(_),
            )
            | ApiError::MalformedJson(_)
            | ApiError::BodyBudget { .. }
            | ApiError::Timeout { .. }
            | ApiError::PayloadTooLarge { .. }
            | ApiError::NoRoute { .. }
            | ApiError::NotFound { .. }
            | ApiError::LeaderUnavailable { .. }
            | ApiError::LeaderFailed { .. }
            | ApiError::Transport(_) => None,
        }
    }
}

fn train_status(e: &TrainError) -> (StatusCode, &'static str) {
    match e {
        TrainError::Store(e) => store_status(e),
        TrainError::NoModel { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_model"),
        TrainError::NoInteractions { .. } => (StatusCode::CONFLICT, "no_training_data"),
        TrainError::NoDeclaration => (StatusCode::CONFLICT, "no_recommender_declared"),
        TrainError::InvalidTrainingData(_) => (StatusCode::CONFLICT, "invalid_training_data"),
        TrainError::NotEnoughServedLog(_) => (StatusCode::CONFLICT, "not_enough_served_log"),
        TrainError::Config(_) => (StatusCode::BAD_REQUEST, "invalid_value"),
        TrainError::BadModel { .. }
        | TrainError::Data { .. }
        | TrainError::Context(_)
        | TrainError::Promotion(_) => (StatusCode::INTERNAL_SERVER_ERROR, "model_error"),
    }
}

fn store_status(e: &StoreError) -> (StatusCode, &'static str) {
    match e {
        StoreError::UnknownView { .. } => (StatusCode::BAD_REQUEST, "unknown_view"),
        StoreError::UnknownFeature { .. } => (StatusCode::BAD_REQUEST, "unknown_feature"),
        StoreError::WrongType { .. } => (StatusCode::BAD_REQUEST, "wrong_type"),
        StoreError::MissingField { .. } => (StatusCode::BAD_REQUEST, "missing_field"),
        StoreError::InvalidValue { .. } => (StatusCode::BAD_REQUEST, "invalid_value"),
        StoreError::DerivedFeature { .. } => (StatusCode::BAD_REQUEST, "derived_feature"),
        StoreError::UnknownSnapshot(_) => (StatusCode::NOT_FOUND, "snapshot_not_found"),
        StoreError::UnknownModel(_) => (StatusCode::NOT_FOUND, "model_not_found"),
        StoreError::Expired { .. } => (StatusCode::GONE, "expired"),
        StoreError::Definition { .. } | StoreError::MigrationEdited { .. } => {
            (StatusCode::INTERNAL_SERVER_ERROR, "definition_error")
        }
        StoreError::Locked { .. } | StoreError::Engine(_) | StoreError::Io(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "storage_error")
        }
        StoreError::Corrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt_data"),
        StoreError::SharedStoreUnavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "shared_store_unavailable")
        }
        // Nothing stored; the next attempt writes.
        StoreError::NotWritten(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_written"),
    }
}

/// The `Retry-After` of a 503, in seconds.
pub const RETRY_AFTER_SECONDS: &str = "1";

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            // Within the request's span: the log line carries its trace id.
            tracing::error!(error = %self, code, "request failed");
        }
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 (a full queue, no model yet, shutting down, a push
            // refused after the write before it failed) says when to come
            // back.
            response.insert_header((actix_web::http::header::RETRY_AFTER, RETRY_AFTER_SECONDS));
        }
        response.json(ErrorResponse {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
                field: self.field().map(str::to_owned),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_refused_after_a_failed_write_is_a_retryable_503() {
        let error = ApiError::from(StoreError::NotWritten("the write before it failed".into()));
        assert_eq!(
            error.status_and_code(),
            (StatusCode::SERVICE_UNAVAILABLE, "not_written")
        );
        let response = error.error_response();
        assert_eq!(
            response
                .headers()
                .get(actix_web::http::header::RETRY_AFTER)
                .unwrap(),
            RETRY_AFTER_SECONDS
        );
    }
}
