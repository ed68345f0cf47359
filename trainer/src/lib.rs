//! `reprise-trainer`: training runs over the feature store.
//!
//! Rules of this crate: it reads and writes only through
//! [`reprise_store::FeatureStore`] (no HTTP, no actors); every run is pinned
//! to one store version, so it can be repeated exactly; features reach the
//! models only through [`features::RankerInputs::vectorize`], the one
//! function that turns the stored values of the declared ranker features
//! (`[recommender] ranker_features`) into the ranker's inputs (snapshots
//! when training, online reads when serving).
//!
//! A run: the interaction log of a view's history → per-user chronological
//! 75/25 split → the two-stage model (ALS, item-kNN, popularity, then a
//! logistic-regression ranker over their scores and point-in-time context
//! features) → evaluation on the held-out part → the model registry
//! (`embeddings-N`, `ranker-N`) and the ALS factors written back as a new
//! version of the embedding views.

pub mod context;
pub mod data;
pub mod embeddings_view;
pub mod error;
pub mod evaluate;
pub mod features;
pub mod model_io;
pub mod movielens;
pub mod remap;
pub mod retrain;
pub mod runs;
pub mod served_log;
pub mod served_training;
pub mod serving;
pub mod synthetic;
pub mod train;

pub use error::{Result, TrainError};
pub use evaluate::{evaluate, Evaluation, PipelineMetrics};
pub use train::{train, TrainOptions, TrainOutcome, TrainingSource};
