//! What a call can fail with: the server's error (its code, message and
//! the field at fault), no answer, or an answer the contract does not
//! describe.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The server answered with an error body (`{"error": {...}}`).
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        /// The snake_case code, e.g. `unknown_feature`, `missing_context`.
        code: String,
        message: String,
        /// The input field at fault, e.g. `rows[3].plays_7d`.
        field: Option<String>,
    },
    /// No answer: connection refused or reset, DNS, …
    #[error("transport error: {0}")]
    Transport(String),
    /// No answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The answer was not what the contract says.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// Writing a download failed.
    #[error("writing the download: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The server's error code, if the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
