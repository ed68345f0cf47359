//! What every handler shares.

use std::sync::Arc;

use reprise_actors::recommend::Recommender;
use reprise_actors::retrain::Retrainer;
use reprise_actors::validation::Validation;
use reprise_actors::StoreWorkers;
use reprise_store::FeatureStore;

use crate::metrics::Metrics;

pub struct AppState {
    pub store: Arc<FeatureStore>,
    pub workers: StoreWorkers,
    pub recommender: Recommender,
    pub validation: Validation,
    pub retrainer: Retrainer,
    pub metrics: Arc<Metrics>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// When set, `/v1/…` requests must carry it (`auth.rs`).
    pub api_key: Option<String>,
}
