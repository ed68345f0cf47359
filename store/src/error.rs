//! The store's typed errors. The HTTP layer maps each variant to a status and a
//! stable code in exactly one place (`reprise-api`'s `error.rs`).

use thiserror::Error;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum StoreError {
    /// A request names a feature view the registry does not know.
    #[error("unknown feature view `{view}`")]
    UnknownView { field: String, view: String },

    /// A request names a feature the view does not define.
    #[error("unknown feature `{feature}`")]
    UnknownFeature { field: String, feature: String },

    /// A value does not have the feature's declared type.
    #[error("expected {expected}, got {got}")]
    WrongType {
        field: String,
        expected: String,
        got: String,
    },

    /// A required input field (join key, timestamp, ...) is absent.
    #[error("missing required field `{field}`")]
    MissingField { field: String },

    /// A field is present and typed right but its value is not acceptable.
    #[error("{message}")]
    InvalidValue { field: String, message: String },

    /// A derived feature was pushed; derived values are computed, never stored.
    #[error("feature `{feature}` is derived by a `{transform}` transform and cannot be pushed")]
    DerivedFeature {
        field: String,
        feature: String,
        transform: String,
    },

    #[error("snapshot `{0}` not found")]
    UnknownSnapshot(String),

    #[error("model `{0}` not found")]
    UnknownModel(String),

    /// A definition file is malformed or inconsistent with the registry.
    #[error("{file}: {message}")]
    Definition { file: String, message: String },

    /// An applied migration file was edited afterwards.
    #[error(
        "migration {file} was edited after it was applied (recorded sha256 {recorded}, file now {actual}); \
         restore it and put the change in a new numbered file"
    )]
    MigrationEdited {
        file: String,
        recorded: String,
        actual: String,
    },

    /// The data directory is held by another process.
    #[error("data directory {path} is in use by another process (is `reprise serve` running?)")]
    Locked { path: String },

    /// A read needs history that the view's retention has dropped (or may
    /// drop): answering would silently miss rows.
    #[error("{message}")]
    Expired { field: String, message: String },

    #[error("storage engine error: {0}")]
    Engine(String),

    /// Stored bytes could not be decoded: corruption or a bug, never bad input.
    #[error("corrupt stored record: {0}")]
    Corrupt(String),

    /// A write not attempted because the one before it failed (it was
    /// prepared on that one's store version): nothing of it is stored, and
    /// trying again writes it.
    #[error("not written: {0}; push again")]
    NotWritten(String),

    /// The shared online store (a replica's source) does not answer.
    #[error("the shared online store does not answer: {0}")]
    SharedStoreUnavailable(String),

    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// The request field at fault, when one is (`rows[3].plays_7d`).
    pub fn field(&self) -> Option<&str> {
        match self {
            StoreError::UnknownView { field, .. }
            | StoreError::UnknownFeature { field, .. }
            | StoreError::WrongType { field, .. }
            | StoreError::MissingField { field }
            | StoreError::InvalidValue { field, .. }
            | StoreError::DerivedFeature { field, .. }
            | StoreError::Expired { field, .. } => Some(field),
            StoreError::UnknownSnapshot(_)
            | StoreError::UnknownModel(_)
            | StoreError::Definition { .. }
            | StoreError::MigrationEdited { .. }
            | StoreError::Locked { .. }
            | StoreError::Engine(_)
            | StoreError::Corrupt(_)
            | StoreError::SharedStoreUnavailable(_)
            | StoreError::NotWritten(_)
            | StoreError::Io(_) => None,
        }
    }

    /// The error each batch of a group that failed as one gets: a refusal
    /// to retry stays one, anything else becomes an engine error with the
    /// same message.
    pub(crate) fn shared(&self) -> Self {
        match self {
            StoreError::NotWritten(why) => StoreError::NotWritten(why.clone()),
            other => StoreError::Engine(other.to_string()),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::InvalidValue {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn missing(field: impl Into<String>) -> Self {
        StoreError::MissingField {
            field: field.into(),
        }
    }

    pub(crate) fn definition(file: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::Definition {
            file: file.into(),
            message: message.into(),
        }
    }
}

impl From<prost::DecodeError> for StoreError {
    fn from(e: prost::DecodeError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
