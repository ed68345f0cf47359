//! The async client: one method per endpoint of the contract, bounded
//! retries with backoff on what is safe to repeat, timeouts, an optional
//! API key, and errors that carry the server's code.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::retry::{retryable_status, RetryPolicy};
use crate::types::*;

/// The header the API key goes in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
}

impl ClientBuilder {
    /// Sends `x-api-key: KEY` with every request.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The whole request, answer included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Establishing the connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    pub fn build(self) -> Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|e| Error::Transport(e.to_string()))?;
        Ok(Client {
            base: self.base_url.trim_end_matches('/').to_owned(),
            api_key: self.api_key,
            timeout: self.timeout,
            retry: self.retry,
            http,
        })
    }
}

/// A client of one Reprise server. Cheap to clone (the connection pool is
/// shared).
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    api_key: Option<String>,
    timeout: Duration,
    retry: RetryPolicy,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
    field: Option<String>,
}

#[derive(Deserialize)]
struct ModelList {
    models: Vec<ModelSummary>,
}

#[derive(Deserialize)]
struct Serving {
    serving: String,
}

#[derive(Deserialize)]
struct Accepted {
    accepted: u64,
}

#[derive(Deserialize)]
struct AlertList {
    alerts: Vec<Alert>,
}

#[derive(Deserialize)]
struct RunList {
    runs: Vec<RetrainRun>,
}

#[derive(Deserialize)]
struct ExperimentList {
    experiments: Vec<Json>,
}

impl Client {
    /// Settings for a client of `base_url` (`http://127.0.0.1:8080`).
    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.to_owned(),
            api_key: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }

    /// A client with the default settings.
    pub fn new(base_url: &str) -> Result<Client> {
        Client::builder(base_url).build()
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    // --- features -------------------------------------------------------

    /// `POST /v1/push`: rows of one view, atomically (all or none).
    pub async fn push(&self, view: &str, rows: &[Json], backfill: bool) -> Result<PushResponse> {
        self.post(
            "/v1/push",
            &json!({"view": view, "rows": rows, "backfill": backfill}),
        )
        .await
    }

    /// `POST /v1/online-features`: the newest values, rows in request order.
    pub async fn online_features(
        &self,
        features: &[&str],
        entities: &[Json],
    ) -> Result<OnlineResponse> {
        self.post(
            "/v1/online-features",
            &json!({"features": features, "entities": entities}),
        )
        .await
    }

    /// `POST /v1/snapshots`: a point-in-time snapshot, pinned to a store
    /// version.
    pub async fn create_snapshot(&self, request: &SnapshotRequest) -> Result<SnapshotInfo> {
        self.post("/v1/snapshots", request).await
    }

    /// `GET /v1/snapshots/{id}`.
    pub async fn snapshot(&self, id: &str) -> Result<SnapshotInfo> {
        self.get(&format!("/v1/snapshots/{id}")).await
    }

    /// Streams a snapshot's rows into `sink` chunk by chunk (the whole file
    /// is never held in memory); returns the bytes written.
    pub async fn download_snapshot<W: AsyncWrite + Unpin>(
        &self,
        id: &str,
        format: SnapshotFormat,
        sink: &mut W,
    ) -> Result<u64> {
        let path = format!("/v1/snapshots/{id}/rows?format={}", format.as_str());
        let response = self.send(Method::GET, &path, None).await?;
        let mut stream = response.bytes_stream();
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.transport(e))?;
            sink.write_all(&chunk).await?;
            written += chunk.len() as u64;
        }
        sink.flush().await?;
        Ok(written)
    }

    /// A snapshot's rows as JSON objects (from the JSONL download).
    pub async fn snapshot_rows(&self, id: &str) -> Result<Vec<Json>> {
        let mut bytes = Vec::new();
        self.download_snapshot(id, SnapshotFormat::Jsonl, &mut bytes)
            .await?;
        bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).map_err(|e| Error::Decode(e.to_string())))
            .collect()
    }

    // --- serving --------------------------------------------------------

    /// `POST /v1/recommendations`.
    pub async fn recommendations(&self, request: &RecommendRequest) -> Result<Recommendations> {
        self.post("/v1/recommendations", request).await
    }

    /// `POST /v1/rank`: engagement probabilities of given items.
    pub async fn rank(&self, request: &RankRequest) -> Result<Ranked> {
        self.post("/v1/rank", request).await
    }

    /// `POST /v1/events`: feedback; returns how many were accepted.
    pub async fn events(&self, events: &[Event]) -> Result<u64> {
        let accepted: Accepted = self.post("/v1/events", &json!({"events": events})).await?;
        Ok(accepted.accepted)
    }

    // --- models and retraining ------------------------------------------

    /// `GET /v1/models`.
    pub async fn models(&self) -> Result<Vec<ModelSummary>> {
        Ok(self.get::<ModelList>("/v1/models").await?.models)
    }

    /// `POST /v1/models/{version}/promote`; returns the serving version.
    pub async fn promote(&self, version: &str) -> Result<String> {
        let path = format!("/v1/models/{version}/promote");
        Ok(self.post::<Serving>(&path, &json!({})).await?.serving)
    }

    /// `POST /v1/models/rollback`; returns the version serving again.
    pub async fn rollback(&self) -> Result<String> {
        Ok(self
            .post::<Serving>("/v1/models/rollback", &json!({}))
            .await?
            .serving)
    }

    /// `POST /v1/retrain` (or joins the run going).
    pub async fn retrain(&self, request: &RetrainRequest) -> Result<RetrainStarted> {
        self.post("/v1/retrain", request).await
    }

    /// `GET /v1/retrain/runs/{id}`.
    pub async fn retrain_run(&self, id: &str) -> Result<RetrainRun> {
        self.get(&format!("/v1/retrain/runs/{id}")).await
    }

    /// `GET /v1/retrain/runs`.
    pub async fn retrain_runs(&self) -> Result<Vec<RetrainRun>> {
        Ok(self.get::<RunList>("/v1/retrain/runs").await?.runs)
    }

    /// Polls a run every `every` until it ends.
    pub async fn wait_for_run(&self, id: &str, every: Duration) -> Result<RetrainRun> {
        loop {
            let run = self.retrain_run(id).await?;
            if !run.is_running() {
                return Ok(run);
            }
            tokio::time::sleep(every).await;
        }
    }

    // --- experiments, validation ------------------------------------------

    /// `GET /v1/experiments`.
    pub async fn experiments(&self) -> Result<Vec<Json>> {
        Ok(self
            .get::<ExperimentList>("/v1/experiments")
            .await?
            .experiments)
    }

    /// `PUT /v1/experiments/{name}`: arms by model version and traffic.
    pub async fn put_experiment(&self, name: &str, arms: &[Arm]) -> Result<Json> {
        let path = format!("/v1/experiments/{name}");
        let response = self
            .send(Method::PUT, &path, Some(&json!({"arms": arms})))
            .await?;
        self.decode(response).await
    }

    /// `GET /v1/experiments/{name}`: the definition and per-arm metrics.
    pub async fn experiment(&self, name: &str) -> Result<Json> {
        self.get(&format!("/v1/experiments/{name}")).await
    }

    /// `GET /v1/alerts`.
    pub async fn alerts(&self) -> Result<Vec<Alert>> {
        Ok(self.get::<AlertList>("/v1/alerts").await?.alerts)
    }

    /// `POST /v1/alerts/{id}/ack`.
    pub async fn acknowledge_alert(&self, id: &str) -> Result<Alert> {
        self.post(&format!("/v1/alerts/{id}/ack"), &json!({})).await
    }

    /// `GET /v1/validation/reports`.
    pub async fn validation_reports(&self) -> Result<Json> {
        self.get("/v1/validation/reports").await
    }

    /// `GET /readyz`: the store version when ready.
    pub async fn ready(&self) -> Result<u64> {
        let ready: Json = self.get("/readyz").await?;
        ready["store_version"]
            .as_u64()
            .ok_or_else(|| Error::Decode(format!("readyz without store_version: {ready}")))
    }

    // --- plumbing ---------------------------------------------------------

    /// Any request; the status and body as they came (no error mapping).
    /// Retries like every call.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(u16, Vec<u8>)> {
        let response = self
            .attempts(|| {
                let mut request = self.request(method.clone(), path);
                if let Some(body) = body {
                    request = request
                        .header("content-type", "application/json")
                        .body(body.to_vec());
                }
                request
            })
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        Ok((status, bytes.to_vec()))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = self.send(Method::GET, path, None).await?;
        self.decode(response).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let body = serde_json::to_value(body).map_err(|e| Error::Decode(e.to_string()))?;
        let response = self.send(Method::POST, path, Some(&body)).await?;
        self.decode(response).await
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.api_key {
            request = request.header(API_KEY_HEADER, key);
        }
        request
    }

    /// Sends with retries; an error status becomes [`Error::Api`].
    async fn send(&self, method: Method, path: &str, body: Option<&Json>) -> Result<Response> {
        let response = self
            .attempts(|| {
                let request = self.request(method.clone(), path);
                match body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await?;
        if response.status().is_client_error() || response.status().is_server_error() {
            return Err(api_error(response).await);
        }
        Ok(response)
    }

    /// Runs `build()`'s request until it gets an answer that is not
    /// retryable, or the retries run out.
    async fn attempts(&self, build: impl Fn() -> RequestBuilder) -> Result<Response> {
        let mut attempt = 0;
        loop {
            let retry_after = match build().send().await {
                Ok(response) if retryable_status(response.status().as_u16()) => {
                    if attempt >= self.retry.max_retries {
                        return Ok(response);
                    }
                    retry_after(&response)
                }
                Ok(response) => return Ok(response),
                // Only a connection that was never made is safe to repeat.
                Err(e) if e.is_connect() && attempt < self.retry.max_retries => None,
                Err(e) => return Err(self.transport(e)),
            };
            tokio::time::sleep(self.retry.backoff(attempt, retry_after)).await;
            attempt += 1;
        }
    }

    async fn decode<T: DeserializeOwned>(&self, response: Response) -> Result<T> {
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Decode(format!("{e}: {}", String::from_utf8_lossy(&bytes))))
    }

    fn transport(&self, e: reqwest::Error) -> Error {
        if e.is_timeout() {
            Error::Timeout(self.timeout)
        } else {
            Error::Transport(e.to_string())
        }
    }
}

fn retry_after(response: &Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

async fn api_error(response: Response) -> Error {
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(b) => Error::Api {
            status: status.as_u16(),
            code: b.error.code,
            message: b.error.message,
            field: b.error.field,
        },
        Err(_) => Error::Api {
            status: status.as_u16(),
            code: default_code(status).to_owned(),
            message: String::from_utf8_lossy(&bytes).into_owned(),
            field: None,
        },
    }
}

/// A code for error answers without the contract's body (a proxy's).
fn default_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "unauthorized",
        404 => "not_found",
        429 => "too_many_requests",
        503 => "unavailable",
        _ => "http_error",
    }
}
