//! One entity's newest history rows, found by the leading values of the
//! entity key: e.g. a user's latest plays in an events view keyed by user
//! and item (what the console's "debug a user" page lists). History under
//! such a prefix is ordered by the other keys first, so the newest are
//! chosen over the whole range (up to a bound), keeping only `limit` rows.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::cf::Cf;
use crate::codec::{self, HistoryPosition};
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::row::RawRow;
use crate::time::Micros;
use crate::types::Value;

/// Rows read from one key range at most: a debugging read stays bounded
/// however long an entity's history.
pub const MAX_SCANNED: usize = 200_000;
const PAGE: usize = 10_000;

/// One history row with its full entity key.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityRow {
    pub keys: Vec<String>,
    pub event_ts: Micros,
    pub store_version: u64,
    /// Every feature of the view (derived ones computed), in view order.
    pub values: Vec<Option<Value>>,
}

/// A kept row, ordered by its history position.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Newest {
    /// (event time, store version, sequence in batch): compared first.
    order: (Micros, u64, u32),
    entity: Vec<u8>,
    bytes: Vec<u8>,
}

impl FeatureStore {
    /// The newest `limit` committed history rows of `view_spec` whose entity
    /// key starts with `leading`, newest first, within the view's retention
    /// (of the first [`MAX_SCANNED`] rows of that key range; memory holds
    /// `limit` rows and one page).
    pub fn recent_rows(
        &self,
        view_spec: &str,
        leading: &[&str],
        limit: usize,
    ) -> Result<Vec<EntityRow>> {
        let registry = self.registry();
        let view = registry.require_view(view_spec, "view")?;
        let committed = self.version();
        let oldest = match view.retention_micros {
            0 => Micros::MIN,
            r => self.clock().now().saturating_sub(r),
        };
        let prefix = codec::view_entity_prefix(view.id, &codec::entity_key(leading));
        // The newest `limit` so far; the heap's top is the oldest kept.
        let mut found: BinaryHeap<Reverse<Newest>> = BinaryHeap::with_capacity(limit + 1);
        let mut after: Option<Vec<u8>> = None;
        let mut scanned = 0;
        while scanned < MAX_SCANNED {
            let page =
                self.engine
                    .scan_prefix_page(Cf::History, &prefix, after.as_deref(), PAGE)?;
            let full = page.len() == PAGE;
            scanned += page.len();
            after = page.last().map(|(k, _)| k.clone());
            for (key, value) in page {
                let split = key
                    .len()
                    .checked_sub(HistoryPosition::LEN)
                    .filter(|s| *s >= 4)
                    .ok_or_else(|| StoreError::Corrupt("short history key".into()))?;
                let position = codec::history_position(&key[..split], &key)
                    .ok_or_else(|| StoreError::Corrupt("bad history key".into()))?;
                if position.store_version > committed || position.event_ts <= oldest {
                    continue;
                }
                let order = (position.event_ts, position.store_version, position.seq);
                if found.len() == limit && found.peek().is_some_and(|Reverse(n)| n.order >= order) {
                    continue;
                }
                found.push(Reverse(Newest {
                    order,
                    entity: key[4..split].to_vec(),
                    bytes: value,
                }));
                if found.len() > limit {
                    found.pop();
                }
            }
            if !full {
                break;
            }
        }
        // `into_sorted_vec` of `Reverse` is newest first.
        found
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(n)| {
                let row = RawRow::decode(&n.bytes, view.features.len())?;
                Ok(EntityRow {
                    keys: codec::decode_entity_key(&n.entity)?,
                    event_ts: n.order.0,
                    store_version: n.order.1,
                    values: view.compute(&row),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;
    use serde_json::json;

    #[test]
    fn newest_rows_of_one_leading_key_first() {
        let store = FeatureStore::in_memory(StoreConfig::default()).unwrap();
        store
            .register_definitions(
                "t",
                r#"
[[entity]]
name = "user"
join_key = "user_id"

[[entity]]
name = "item"
join_key = "item_id"

[[feature_view]]
name = "plays"
version = 1
kind = "events"
entities = ["user", "item"]
ttl = "0"

[[feature_view.feature]]
name = "seconds"
type = "int64"
"#,
            )
            .unwrap();
        let play = |u: &str, i: &str, t: &str, s: i64| json!({"user_id": u, "item_id": i, "event_timestamp": t, "seconds": s});
        store
            .push(
                "plays",
                &[
                    play("u1", "b", "2026-01-01T00:00:03Z", 3),
                    play("u1", "a", "2026-01-01T00:00:01Z", 1),
                    play("u1", "a", "2026-01-01T00:00:05Z", 5),
                    play("u10", "a", "2026-01-01T00:00:09Z", 9),
                ],
                true,
            )
            .unwrap();
        let rows = store.recent_rows("plays", &["u1"], 2).unwrap();
        let got: Vec<(Vec<String>, Option<Value>)> = rows
            .into_iter()
            .map(|r| (r.keys, r.values[0].clone()))
            .collect();
        assert_eq!(
            got,
            [
                (vec!["u1".to_owned(), "a".to_owned()], Some(Value::Int64(5))),
                (vec!["u1".to_owned(), "b".to_owned()], Some(Value::Int64(3))),
            ]
        );
        assert!(store.recent_rows("plays", &["u2"], 5).unwrap().is_empty());
    }
}
