//! Documents stored with a snapshot (its inferred schema, statistics): one
//! value per name, beside the snapshot's rows, never changing its rows.

use crate::cf::Cf;
use crate::codec;
use crate::engine::WriteBatch;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;

impl FeatureStore {
    /// Stores `bytes` as attachment `name` of snapshot `id` (replacing one
    /// of that name). The snapshot must exist.
    pub fn put_snapshot_attachment(&self, id: &str, name: &str, bytes: Vec<u8>) -> Result<()> {
        self.snapshot_meta(id)?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StoreError::invalid(
                "name",
                format!("attachment name `{name}` must be [A-Za-z0-9_]+"),
            ));
        }
        let mut batch = WriteBatch::default();
        batch.put(
            Cf::Snapshots,
            codec::snapshot_attachment_key(id, name),
            bytes,
        );
        self.engine.write(batch)
    }

    /// Attachment `name` of snapshot `id`, if stored.
    pub fn snapshot_attachment(&self, id: &str, name: &str) -> Result<Option<Vec<u8>>> {
        self.engine
            .get(Cf::Snapshots, &codec::snapshot_attachment_key(id, name))
    }
}
