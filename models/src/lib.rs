//! `reprise-models`: recommendation models and their offline evaluation.
//!
//! Rules of this crate: pure computation over in-memory data (no storage,
//! no HTTP); deterministic for a given input and seed.
//!
//! Today: the interaction data set and its per-user chronological split,
//! ranking metrics, and the most-popular and item-kNN baselines. The
//! embedding model, the ranker and the two-stage pipeline build on these.

pub mod baselines;
pub mod dataset;
pub mod metrics;
