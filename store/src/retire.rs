//! Retiring an old version of a view: its rows (history, online, index) are
//! deleted with range tombstones and every later feature ref to it is
//! refused with `expired`, so a snapshot that named it fails clearly
//! instead of answering nulls. The newest version of a name cannot be
//! retired, nor a version an aggregation or a lookup reads. The record is
//! written first (pending), the rows deleted, then the record marked done;
//! an open finishes a pending one, so a crash leaves no rows behind. A push
//! to a retired version is refused, also one validated just before.

use crate::cf::Cf;
use crate::engine::{Engine, WriteBatch};
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::registry::Registry;

/// `crate::outbox::RETIRED_PREFIX`: these records are definitions.
const PREFIX: &str = "retired_view/";

fn key(view_id: u32) -> Vec<u8> {
    let mut key = PREFIX.as_bytes().to_vec();
    key.extend_from_slice(&view_id.to_be_bytes());
    key
}

/// Deletes every row of view `view_id`.
fn delete_rows(engine: &dyn Engine, view_id: u32) -> Result<()> {
    for cf in [Cf::History, Cf::Online, Cf::AggIndex] {
        engine.delete_prefix(cf, &view_id.to_be_bytes())?;
    }
    Ok(())
}

/// A record's value: the rows are still to be deleted, or are gone.
const PENDING: &[u8] = b"pending";
const DONE: &[u8] = b"done";

/// Deletes the rows of retired view `view_id`, then marks its record done.
fn finish(engine: &dyn Engine, view_id: u32) -> Result<()> {
    delete_rows(engine, view_id)?;
    let mut batch = WriteBatch::default();
    batch.put(Cf::Meta, key(view_id), DONE.to_vec());
    engine.write(batch)
}

/// Marks the retired versions in `registry` (at open) and deletes the rows
/// of those a crash interrupted.
pub(crate) fn load(engine: &dyn Engine, registry: &mut Registry) -> Result<()> {
    for (key, value) in engine.scan_prefix(Cf::Meta, PREFIX.as_bytes())? {
        let id = <[u8; 4]>::try_from(&key[PREFIX.len()..])
            .map(u32::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("retired view record".into()))?;
        registry.retired.insert(id);
        if value != DONE {
            finish(engine, id)?;
        }
    }
    Ok(())
}

impl FeatureStore {
    /// Retires `view_spec` (`name@N`, not the newest version of `name`):
    /// deletes its rows and refuses reads of it from now on. Returns whether
    /// it was retired now (false: it already was).
    pub fn retire_view_version(&self, view_spec: &str) -> Result<bool> {
        let _writer = self.lock_writer();
        let registry = self.registry();
        let view = registry.require_view(view_spec, "view")?;
        let newest = registry.view(&view.name).map(|v| v.id);
        if !view_spec.contains('@') || newest == Some(view.id) {
            return Err(StoreError::invalid(
                "view",
                format!(
                    "`{view_spec}` is the newest version of `{}`: only older versions can be retired",
                    view.name
                ),
            ));
        }
        if let Some(reader) = registry
            .views()
            .iter()
            .find(|v| v.aggregation().is_some_and(|a| a.source.id == view.id))
        {
            return Err(StoreError::invalid(
                "view",
                format!(
                    "`{view_spec}` is the source of aggregation `{}`",
                    reader.label()
                ),
            ));
        }
        if let Some(reader) = registry.views().iter().find(|v| {
            v.features
                .iter()
                .any(|f| f.lookup.as_ref().is_some_and(|l| l.view.id == view.id))
        }) {
            return Err(StoreError::invalid(
                "view",
                format!("`{view_spec}` is read by a lookup of `{}`", reader.label()),
            ));
        }
        if registry.is_retired(view.id) {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        batch.put(Cf::Meta, key(view.id), PENDING.to_vec());
        // Its own store version, so that replicas learn of it in order.
        self.commit(batch, self.version() + 1, &[])?;
        let mut next = (*registry).clone();
        next.retired.insert(view.id);
        self.publish_registry(next);
        finish(self.engine.as_ref(), view.id)?;
        // Its cached online rows go too.
        self.cache.clear();
        tracing::info!(view = view_spec, "view version retired");
        Ok(true)
    }
}
