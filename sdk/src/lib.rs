//! `reprise-sdk`: a typed async Rust client for the Reprise HTTP API
//! (CONTRACT.md) — push, online features, snapshots with streaming
//! download, recommendations, rank, events, models, retraining,
//! experiments, alerts — with bounded retries and backoff on what is safe
//! to repeat, timeouts, an API-key header, and errors that carry the
//! server's error code and field. [`blocking::Client`] drives it without an
//! async runtime.
//!
//! ```no_run
//! # async fn demo() -> reprise_sdk::Result<()> {
//! use reprise_sdk::{Client, RecommendRequest};
//! let client = Client::builder("http://127.0.0.1:8080").api_key("secret").build()?;
//! let recs = client
//!     .recommendations(&RecommendRequest {
//!         user_id: "196".into(),
//!         context: serde_json::json!({"device": "mobile", "country": "SE"}),
//!         k: Some(10),
//!     })
//!     .await?;
//! println!("{} from {:?}", recs.items.len(), recs.model_version);
//! # Ok(()) }
//! ```

pub mod blocking;
mod client;
mod error;
mod retry;
mod types;

pub use client::{Client, ClientBuilder, API_KEY_HEADER};
pub use error::{Error, Result};
pub use retry::RetryPolicy;
pub use types::*;
