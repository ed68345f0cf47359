//! Small named checkpoints of the services' in-memory state (a monitor's
//! counters, say), so a restart resumes from them instead of re-reading the
//! logs they were computed from. Kept in the metadata column family, outside
//! the store-version sequence: saving one is not a feature write.

use crate::cf::Cf;
use crate::engine::WriteBatch;
use crate::error::Result;
use crate::feature_store::FeatureStore;

fn key(name: &str) -> Vec<u8> {
    format!("service_state/{name}").into_bytes()
}

impl FeatureStore {
    /// Replaces the checkpoint `name` (durable when this returns).
    pub fn save_service_state(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put(Cf::Meta, key(name), bytes);
        self.engine.write(batch)
    }

    /// The last saved checkpoint `name`, if any.
    pub fn service_state(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.engine.get(Cf::Meta, &key(name))
    }
}
