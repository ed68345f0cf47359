//! Errors of the actor layer.

use reprise_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ActorError {
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The actor's queue is full; the caller should retry later.
    #[error("the {actor} queue is full ({capacity} requests waiting); retry later")]
    Overloaded {
        actor: &'static str,
        capacity: usize,
    },

    /// The actor stopped (shutdown in progress).
    #[error("the {0} actor is not running")]
    Stopped(&'static str),

    /// A model could not be loaded.
    #[error(transparent)]
    Model(#[from] reprise_trainer::TrainError),

    /// No model is serving yet (train one: `reprise train`).
    #[error("no ranker is serving: train one first (`reprise train`)")]
    NoServingModel,

    /// The ANN index failed.
    #[error("ANN index: {0}")]
    Index(String),

    /// A mandatory request-context field is missing.
    #[error("the request context lacks the mandatory field `{field}`")]
    MissingContext { field: String },

    /// No experiment has this name.
    #[error("no experiment `{0}`")]
    UnknownExperiment(String),

    /// No served request has this id (never served, or past the served
    /// log's retention).
    #[error("no served request `{0}`")]
    UnknownRequest(String),

    /// No alert has this id.
    #[error("no alert `{0}`")]
    UnknownAlert(String),

    /// Promotion refused while a blocking alert is open.
    #[error("promotion blocked by open alert {alert_id} ({check} on {view}:{feature}); acknowledge it first")]
    PromotionBlocked {
        alert_id: String,
        check: String,
        view: String,
        feature: String,
    },

    /// A replica ranked a request while an experiment was starting: the
    /// leader keeps its tallies, so it answers such requests itself.
    #[error("experiment `{0}` routes traffic: the leader answers its requests")]
    ExperimentRunning(String),

    /// A worker panicked on this message (it keeps serving others).
    #[error("internal error in the {worker} worker: {message}")]
    Panicked {
        worker: &'static str,
        message: String,
    },

    /// A request field has a value the serving path cannot use.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl ActorError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ActorError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
