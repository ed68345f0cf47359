//! Reading a view's whole history (every pushed row, not only the latest per
//! entity) as of a pinned store version: the event log a trainer learns from.

use crate::cf::Cf;
use crate::codec::{self, HistoryPosition};
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::row::RawRow;
use crate::time::Micros;
use crate::types::Value;

/// One stored row of a view, with its derived features computed.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    /// Join-key values, in the view's `join_keys` order.
    pub keys: Vec<String>,
    pub event_ts: Micros,
    pub created_ts: Micros,
    pub store_version: u64,
    /// One value per feature of the view, in declaration order.
    pub values: Vec<Option<Value>>,
}

impl FeatureStore {
    /// Every row of `view_spec` (`name` or `name@N`) written at store version
    /// `<= as_of_version`, ordered by entity, then event time, then write
    /// order. Pinned to a version, the answer never changes.
    pub fn view_history(&self, view_spec: &str, as_of_version: u64) -> Result<Vec<HistoryRow>> {
        let _span = tracing::info_span!("store.view_history", view = view_spec).entered();
        let registry = self.registry();
        let view = registry
            .view(view_spec)
            .ok_or_else(|| StoreError::UnknownView {
                field: "view".into(),
                view: view_spec.to_owned(),
            })?;
        let prefix = view.id.to_be_bytes();
        let mut rows = Vec::new();
        for (key, value) in self.engine.scan_prefix(Cf::History, &prefix)? {
            let split = key
                .len()
                .checked_sub(HistoryPosition::LEN)
                .filter(|&at| at >= prefix.len())
                .ok_or_else(|| StoreError::Corrupt("short history key".into()))?;
            let entity_prefix = &key[..split];
            let position = codec::history_position(entity_prefix, &key)
                .ok_or_else(|| StoreError::Corrupt("history key".into()))?;
            if position.store_version > as_of_version {
                continue;
            }
            let raw = RawRow::decode(&value, view.features.len())?;
            rows.push(HistoryRow {
                keys: codec::decode_entity_key(&entity_prefix[prefix.len()..])?,
                event_ts: raw.event_ts,
                created_ts: raw.created_ts,
                store_version: raw.store_version,
                values: view.compute(&raw),
            });
        }
        Ok(rows)
    }
}
