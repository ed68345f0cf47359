//! Errors of training and evaluation runs.

use reprise_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no interactions in view `{view}` at store version {version}: import data first (`reprise import movielens DIR`)")]
    NoInteractions { view: String, version: u64 },
    #[error("no `{kind}` model is stored: run `reprise train` first")]
    NoModel { kind: String },
    #[error(
        "the migrations declare no [recommender] (interactions view, ranker features): add one"
    )]
    NoDeclaration,
    #[error("model {version} cannot be loaded: {message}")]
    BadModel { version: String, message: String },
    #[error("{file}: {message}")]
    Data { file: String, message: String },
    #[error("reading context features: {0}")]
    Context(String),
    #[error("the training data breaks the serving model's schema: {0}")]
    InvalidTrainingData(String),
    #[error("{0}")]
    Config(String),
    #[error("promotion failed: {0}")]
    Promotion(String),
    #[error("not enough served-feature log to train on: {0}")]
    NotEnoughServedLog(String),
}

pub type Result<T> = std::result::Result<T, TrainError>;

impl TrainError {
    pub(crate) fn data(file: &std::path::Path, message: impl Into<String>) -> Self {
        TrainError::Data {
            file: file.display().to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn bad_model(version: &str, message: impl Into<String>) -> Self {
        TrainError::BadModel {
            version: version.to_owned(),
            message: message.into(),
        }
    }
}
