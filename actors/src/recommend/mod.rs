//! The recommendation path: candidates (ANN over item embeddings, item-kNN
//! over the user's history, popularity, recent history), cold start, the
//! candidate cache, ranking with the stored two-stage model, the
//! served-feature log, and feedback events.

pub mod ann;
pub mod candidate_cache;
pub mod catalog;
pub mod cold_start;
pub mod explain;
pub mod forwarded;
pub mod histories;
pub mod interactions;
pub mod ranking;
pub mod request;
pub mod served;
pub mod service;
pub mod stats;

pub use request::{RankRequest, Ranked, RecommendRequest, Recommendation, ScoredItem};
pub use service::{Event, FeedbackHook, Recommender, RecommenderConfig, EVENT_TYPES};
