//! `reprise-sdk`: a typed Rust client for the Reprise HTTP API
//! (see CONTRACT.md). Blocking, built on `ureq`; errors carry the server's
//! error code and field.

use std::io::Read;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The server answered with an error body.
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
    },
    /// The request did not get an answer.
    #[error("transport error: {0}")]
    Transport(String),
    /// The answer was not what the contract says.
    #[error("unexpected response: {0}")]
    Decode(String),
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PushResponse {
    pub written: u64,
    pub store_version: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct OnlineRow {
    pub values: Vec<Json>,
    pub statuses: Vec<String>,
    pub event_timestamps: Vec<Option<String>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct OnlineResponse {
    pub store_version: u64,
    pub features: Vec<String>,
    pub rows: Vec<OnlineRow>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SnapshotRequest {
    pub features: Vec<String>,
    pub entity_rows: Vec<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of_version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cutoff: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SnapshotInfo {
    pub snapshot_id: String,
    pub store_version: u64,
    pub rows: u64,
    #[serde(default)]
    pub columns: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
    field: Option<String>,
}

/// A client for one Reprise server.
#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// `base_url` like `http://127.0.0.1:8080`.
    pub fn new(base_url: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Client {
            base: base_url.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    pub fn push(&self, view: &str, rows: &[Json], backfill: bool) -> Result<PushResponse> {
        self.post_json(
            "/v1/push",
            &json!({"view": view, "rows": rows, "backfill": backfill}),
        )
    }

    pub fn online_features(&self, features: &[&str], entities: &[Json]) -> Result<OnlineResponse> {
        self.post_json(
            "/v1/online-features",
            &json!({"features": features, "entities": entities}),
        )
    }

    pub fn create_snapshot(&self, request: &SnapshotRequest) -> Result<SnapshotInfo> {
        self.post_json("/v1/snapshots", request)
    }

    pub fn snapshot(&self, id: &str) -> Result<SnapshotInfo> {
        let (status, body) = self.get(&format!("/v1/snapshots/{id}"))?;
        decode(status, &body)
    }

    /// The snapshot's rows as JSON objects (reads the JSONL download).
    pub fn snapshot_rows(&self, id: &str) -> Result<Vec<Json>> {
        let (status, body) = self.get(&format!("/v1/snapshots/{id}/rows?format=jsonl"))?;
        if status >= 400 {
            return Err(api_error(status, &body));
        }
        body.split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).map_err(|e| Error::Decode(e.to_string())))
            .collect()
    }

    /// The snapshot's rows as a Parquet file's bytes.
    pub fn snapshot_parquet(&self, id: &str) -> Result<Vec<u8>> {
        let (status, body) = self.get(&format!("/v1/snapshots/{id}/rows?format=parquet"))?;
        if status >= 400 {
            return Err(api_error(status, &body));
        }
        Ok(body)
    }

    /// GET any path; returns status and body.
    pub fn get(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        let response = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .map_err(|e| Error::Transport(e.to_string()))?;
        read(response)
    }

    /// POST raw bytes to any path; returns status and body.
    pub fn post_bytes(&self, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body)
            .map_err(|e| Error::Transport(e.to_string()))?;
        read(response)
    }

    fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Decode(e.to_string()))?;
        let (status, body) = self.post_bytes(path, &bytes)?;
        decode(status, &body)
    }
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> Result<(u16, Vec<u8>)> {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    response
        .body_mut()
        .as_reader()
        .read_to_end(&mut body)
        .map_err(|e| Error::Transport(e.to_string()))?;
    Ok((status, body))
}

fn decode<T: serde::de::DeserializeOwned>(status: u16, body: &[u8]) -> Result<T> {
    if status >= 400 {
        return Err(api_error(status, body));
    }
    serde_json::from_slice(body)
        .map_err(|e| Error::Decode(format!("{e}: {}", String::from_utf8_lossy(body))))
}

fn api_error(status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => Error::Api {
            status,
            code: b.error.code,
            message: b.error.message,
            field: b.error.field,
        },
        Err(_) => Error::Decode(format!(
            "status {status} without an error body: {}",
            String::from_utf8_lossy(body)
        )),
    }
}
