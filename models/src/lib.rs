//! `reprise-models`: recommendation models and their offline evaluation.
//!
//! Rules of this crate: pure computation over in-memory data (no storage,
//! no HTTP); deterministic for a given input and seed.
//!
//! The interaction data set and its per-user chronological split, ranking
//! metrics, the most-popular and item-kNN baselines, implicit ALS
//! embeddings, a ranker (logistic regression or gradient-boosted trees), and the two-stage pipeline
//! (candidates from ALS, item-kNN and popularity, ranked by the ranker).

pub mod als;
pub mod baselines;
pub mod context;
pub mod dataset;
pub mod metrics;
pub mod pipeline;
pub mod ranker;
