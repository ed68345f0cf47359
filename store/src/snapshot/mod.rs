//! Point-in-time snapshots (CONTRACT.md `POST /v1/snapshots`).
//!
//! A snapshot stores its *definition*: resolved feature refs, cutoff, pinned
//! store version and the entity rows (in chunks). Its rows are computed when
//! read, chunk by chunk, so reading is constant-memory and, because history is
//! append-only and filtered by the pinned version, always gives the same rows.

mod attachment;
mod create;
mod entity_columns;
mod entity_parquet;
mod jsonl;
mod output;
mod parquet;
mod pit;
mod read;

pub use create::{SnapshotSpec, ENTITY_ROW_CHUNK, TRAINING_OWNER};
pub use output::OutputRow;
pub use pit::point_in_time;

use crate::proto::SnapshotMeta;
use crate::time::Micros;

/// Which rows count as known at an entity row's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cutoff {
    /// Only rows written (created) at or before the entity row's time.
    #[default]
    Created,
    /// Any row whose event time qualifies, however late it was written.
    Event,
}

impl Cutoff {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "created" => Some(Cutoff::Created),
            "event" => Some(Cutoff::Event),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cutoff::Created => "created",
            Cutoff::Event => "event",
        }
    }
}

/// What callers learn about a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotInfo {
    pub id: String,
    pub store_version: u64,
    pub rows: u64,
    pub created_at: Micros,
    pub cutoff: String,
    /// Output columns, in order: join keys, `event_timestamp`, passthrough, features.
    pub columns: Vec<String>,
    /// The feature refs, as resolved (`view@N:feature`).
    pub features: Vec<String>,
}

impl From<&SnapshotMeta> for SnapshotInfo {
    fn from(meta: &SnapshotMeta) -> Self {
        let mut columns: Vec<String> = meta.join_keys.clone();
        columns.push(crate::transform::EVENT_TIMESTAMP.to_owned());
        columns.extend(meta.passthrough.iter().map(|p| p.name.clone()));
        columns.extend(meta.features.iter().map(|f| f.column.clone()));
        SnapshotInfo {
            id: meta.id.clone(),
            store_version: meta.store_version,
            rows: meta.rows,
            created_at: meta.created_at_micros,
            cutoff: meta.cutoff.clone(),
            columns,
            features: meta
                .features
                .iter()
                .map(|f| format!("{}@{}:{}", f.view, f.view_version, f.feature))
                .collect(),
        }
    }
}
