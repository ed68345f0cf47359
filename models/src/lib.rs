//! `reprise-models`: recommendation models and their offline evaluation.
//!
//! Rules of this crate: pure computation over in-memory data (no storage,
//! no HTTP); deterministic for a given input and seed.
//!
//! Today: the interaction data set and its per-user chronological split,
//! ranking metrics, the most-popular and item-kNN baselines, and implicit
//! ALS embeddings. The ranker and the two-stage pipeline build on these.

pub mod als;
pub mod baselines;
pub mod dataset;
pub mod metrics;
