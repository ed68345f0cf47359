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
    /// Every request's bounds.
    pub limits: crate::limits::Limits,
    /// Requests in flight per route class.
    pub admission: Arc<crate::limits::Admission>,
    /// The accepted keys (`None`: no access control).
    pub keys: Option<Arc<crate::auth::KeyRing>>,
    pub metrics_open: bool,
    /// The secret replicas sign their served-feature logs with
    /// (`fleet.rs`).
    pub fleet_secret: Option<[u8; 32]>,
    /// A fleet's leader: the publisher of the online view to the shared
    /// online store.
    pub publisher: Option<reprise_actors::replication::Publisher>,
}
