//! Reading a view's whole history (every pushed row, not only the latest per
//! entity) as of a pinned store version: the event log a trainer learns from.

use std::sync::Arc;

use crate::cf::Cf;
use crate::codec::{self, HistoryPosition};
use crate::engine::Cursor;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::registry::FeatureView;
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
    /// The row's position in its push batch (the history key's sequence):
    /// among rows of equal event time and store version, the later wins.
    pub sequence: u32,
    /// One value per feature of the view, in declaration order.
    pub values: Vec<Option<Value>>,
}

/// A retired view version's history is gone: reading it is refused, not
/// answered with no rows.
fn refuse_retired(registry: &crate::registry::Registry, view: &FeatureView) -> Result<()> {
    if registry.is_retired(view.id) {
        return Err(StoreError::Expired {
            field: "view".into(),
            message: format!(
                "view `{}` was retired: its rows have been deleted",
                view.label()
            ),
        });
    }
    Ok(())
}

impl FeatureStore {
    /// The events of events view `view_spec` with event time in
    /// `(from, to]`, written at store version `<= as_of_version`, in event
    /// time order, as `(event time, values with derived features)`: one key
    /// range of its time index, so the cost follows the window, not the
    /// history. `Ok(false)`, nothing visited, for a view that is not an
    /// events view (state views have no time index).
    pub fn for_each_event_between(
        &self,
        view_spec: &str,
        as_of_version: u64,
        from: Micros,
        to: Micros,
        mut visit: impl FnMut(Micros, Vec<Option<Value>>) -> Result<()>,
    ) -> Result<bool> {
        let registry = self.registry();
        let view = registry.require_view(view_spec, "view")?;
        refuse_retired(&registry, view)?;
        if !view.is_events() {
            return Ok(false);
        }
        let _span = tracing::info_span!("store.events_between", view = view_spec).entered();
        let prefix = codec::agg_index_prefix(
            view.id,
            crate::aggregation::index::TIME_INDEX_MASK,
            &codec::entity_key::<&str>(&[]),
        );
        let mut cursor = self.engine.cursor(Cf::AggIndex)?;
        let first = HistoryPosition {
            event_ts: from.saturating_add(1),
            store_version: 0,
            seq: 0,
        };
        cursor.seek(&codec::history_key(&prefix, first));
        while let Some((key, value)) = cursor.entry() {
            let Some(position) = codec::history_position(&prefix, key) else {
                break;
            };
            if position.event_ts > to {
                break;
            }
            if position.store_version <= as_of_version {
                let raw = RawRow::decode(value, view.features.len())?;
                visit(position.event_ts, view.compute(&raw))?;
            }
            cursor.next();
        }
        cursor.status()?;
        Ok(true)
    }

    /// Every row of `view_spec` (`name` or `name@N`) written at store version
    /// `<= as_of_version`, ordered by entity, then event time, then write
    /// order. Pinned to a version, the answer never changes. Holds the whole
    /// view in memory: for views that grow with traffic use
    /// [`for_each_history_row`](Self::for_each_history_row).
    pub fn view_history(&self, view_spec: &str, as_of_version: u64) -> Result<Vec<HistoryRow>> {
        let mut rows = Vec::new();
        self.for_each_history_row(view_spec, as_of_version, |row| {
            rows.push(row);
            Ok(())
        })?;
        Ok(rows)
    }

    /// [`view_history`](Self::view_history) one row at a time, in the same
    /// order, through one cursor: memory stays flat however long the view.
    pub fn for_each_history_row(
        &self,
        view_spec: &str,
        as_of_version: u64,
        mut visit: impl FnMut(HistoryRow) -> Result<()>,
    ) -> Result<()> {
        let _span = tracing::info_span!("store.view_history", view = view_spec).entered();
        for row in self.history_rows(view_spec, as_of_version, &[])? {
            visit(row?)?;
        }
        Ok(())
    }

    /// The rows of `view_spec` at store version `<= as_of_version` whose
    /// entity is at or after the one `from` names (its leading join-key
    /// values; none: from the start), in key order (entity, then event
    /// time, then write order), read lazily through one cursor. A view
    /// keyed by time-ordered ids (the served log's request ids are UUIDv7)
    /// is read from a point in time this way.
    pub fn history_rows(
        &self,
        view_spec: &str,
        as_of_version: u64,
        from: &[&str],
    ) -> Result<HistoryRows<'_>> {
        let registry = self.registry();
        let view = Arc::clone(registry.require_view(view_spec, "view")?);
        refuse_retired(&registry, &view)?;
        let prefix = view.id.to_be_bytes();
        let mut cursor = self.engine.cursor(Cf::History)?;
        let mut start = prefix.to_vec();
        start.extend_from_slice(&codec::entity_key(from));
        cursor.seek(&start);
        Ok(HistoryRows {
            cursor,
            view,
            prefix,
            as_of_version,
            done: false,
        })
    }
}

/// Lazily read history rows of one view (see
/// [`FeatureStore::history_rows`]).
pub struct HistoryRows<'a> {
    cursor: Box<dyn Cursor + 'a>,
    view: Arc<FeatureView>,
    prefix: [u8; 4],
    as_of_version: u64,
    done: bool,
}

impl HistoryRows<'_> {
    /// Moves to the first row whose entity is at or after the one `from`
    /// names, as [`FeatureStore::history_rows`] starts (one cursor serves
    /// many jumps: a sample of a key range by seeks).
    pub fn seek(&mut self, from: &[&str]) {
        let mut start = self.prefix.to_vec();
        start.extend_from_slice(&codec::entity_key(from));
        self.cursor.seek(&start);
        self.done = false;
    }

    fn decode(&self, key: &[u8], value: &[u8]) -> Result<Option<HistoryRow>> {
        let split = key
            .len()
            .checked_sub(HistoryPosition::LEN)
            .filter(|&at| at >= self.prefix.len())
            .ok_or_else(|| StoreError::Corrupt("short history key".into()))?;
        let entity_prefix = &key[..split];
        let position = codec::history_position(entity_prefix, key)
            .ok_or_else(|| StoreError::Corrupt("history key".into()))?;
        if position.store_version > self.as_of_version {
            return Ok(None);
        }
        let raw = RawRow::decode(value, self.view.features.len())?;
        Ok(Some(HistoryRow {
            keys: codec::decode_entity_key(&entity_prefix[self.prefix.len()..])?,
            event_ts: raw.event_ts,
            created_ts: raw.created_ts,
            store_version: raw.store_version,
            sequence: position.seq,
            values: self.view.compute(&raw),
        }))
    }
}

impl Iterator for HistoryRows<'_> {
    type Item = Result<HistoryRow>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let Some((key, value)) = self.cursor.entry() else {
                self.done = true;
                return self.cursor.status().err().map(Err);
            };
            if !key.starts_with(&self.prefix) {
                self.done = true;
                return None;
            }
            let decoded = self.decode(key, value);
            self.cursor.next();
            match decoded {
                Ok(None) => continue,
                Ok(Some(row)) => return Some(Ok(row)),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}
