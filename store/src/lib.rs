//! `reprise-store`: the versioned feature store.
//!
//! Rules of this crate:
//! - it knows nothing of actix, HTTP or any transport: callers hand it parsed
//!   JSON values and get typed results and [`StoreError`]s back;
//! - every derived feature is computed by [`transform`], through
//!   [`registry::FeatureView::compute`], for online reads and snapshots alike;
//! - storage goes through the [`engine::Engine`] trait; keys are built only in
//!   [`codec`], column families named only in [`cf`].

pub mod aggregation;
pub mod backfill;
pub mod backup;
pub mod catalog;
pub mod cf;
pub mod codec;
pub mod counters;
pub mod definitions;
pub mod engine;
pub mod entity_history;
pub mod error;
pub mod export;
pub mod feature_store;
pub mod history;
pub mod ingest;
pub mod lookup;
pub mod migrations;
pub mod model_registry;
pub mod online;
pub mod online_cache;
pub mod online_scan;
pub mod online_store;
pub mod outbox;
mod parquet_columns;
pub mod push;
pub mod recommender;
pub mod registry;
pub mod retention;
pub mod retire;
pub mod row;
pub mod service_state;
pub mod snapshot;
mod sorted_runs;
mod spill;
mod sync;
pub mod text_rows;
mod threads;
pub mod time;
pub mod transform;
pub mod typed_push;
pub mod types;
mod write_pipeline;

/// prost types of `proto/reprise.proto`.
#[allow(clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/reprise.store.v1.rs"));
}

pub use backup::{restore, BackupInfo};
pub use error::{Result, StoreError};
pub use feature_store::{FeatureStore, StoreConfig};
pub use history::HistoryRow;
pub use online::{FeatureStatus, OnlineResult, OnlineRow};
pub use push::PushOutcome;
pub use snapshot::{Cutoff, OutputRow, SnapshotInfo, SnapshotSpec};
pub use types::{FeatureType, Value};
