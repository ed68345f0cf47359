//! A blocking face of the async [`crate::Client`] for scripts, tests and
//! tools without an async runtime: each call runs on a private one-thread
//! runtime (safe to call from many threads at once).

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::types::*;
use crate::ClientBuilder;

#[derive(Clone)]
pub struct Client {
    inner: crate::Client,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Client {
    /// A client with the default settings.
    pub fn new(base_url: &str) -> Result<Client> {
        Client::from_builder(crate::Client::builder(base_url))
    }

    pub fn from_builder(builder: ClientBuilder) -> Result<Client> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("reprise-sdk")
            .enable_all()
            .build()
            .map_err(Error::Io)?;
        // reqwest's pool must be created inside a runtime.
        let inner = runtime.block_on(async { builder.build() })?;
        Ok(Client {
            inner,
            runtime: Arc::new(runtime),
        })
    }

    /// The async client this one drives.
    pub fn inner(&self) -> &crate::Client {
        &self.inner
    }

    /// GET any path; the status and body as they came.
    pub fn get(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        self.runtime
            .block_on(self.inner.raw(Method::GET, path, None))
    }

    /// POST raw JSON bytes to any path; the status and body as they came.
    pub fn post_bytes(&self, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        self.runtime
            .block_on(self.inner.raw(Method::POST, path, Some(body)))
    }

    pub fn push(&self, view: &str, rows: &[Json], backfill: bool) -> Result<PushResponse> {
        self.runtime.block_on(self.inner.push(view, rows, backfill))
    }

    pub fn online_features(&self, features: &[&str], entities: &[Json]) -> Result<OnlineResponse> {
        self.runtime
            .block_on(self.inner.online_features(features, entities))
    }

    pub fn create_snapshot(&self, request: &SnapshotRequest) -> Result<SnapshotInfo> {
        self.runtime.block_on(self.inner.create_snapshot(request))
    }

    pub fn snapshot(&self, id: &str) -> Result<SnapshotInfo> {
        self.runtime.block_on(self.inner.snapshot(id))
    }

    pub fn snapshot_rows(&self, id: &str) -> Result<Vec<Json>> {
        self.runtime.block_on(self.inner.snapshot_rows(id))
    }

    /// The snapshot's rows as a Parquet file's bytes.
    pub fn snapshot_parquet(&self, id: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.runtime.block_on(self.inner.download_snapshot(
            id,
            SnapshotFormat::Parquet,
            &mut bytes,
        ))?;
        Ok(bytes)
    }

    pub fn recommendations(&self, request: &RecommendRequest) -> Result<Recommendations> {
        self.runtime.block_on(self.inner.recommendations(request))
    }

    pub fn events(&self, events: &[Event]) -> Result<u64> {
        self.runtime.block_on(self.inner.events(events))
    }
}
