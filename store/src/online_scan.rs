//! Online rows found by the leading values of their entity key: every row
//! of a multi-entity view under one first key (e.g. every item logged for
//! one served request), without knowing the other keys.

use crate::cf::Cf;
use crate::codec;
use crate::error::Result;
use crate::feature_store::FeatureStore;
use crate::row::RawRow;
use crate::time::Micros;
use crate::types::Value;

/// One online row with its full entity key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedOnlineRow {
    /// The join-key values, in the view's join-key order.
    pub keys: Vec<String>,
    pub event_ts: Micros,
    pub store_version: u64,
    /// Every feature of the view (derived ones computed), in view order.
    pub values: Vec<Option<Value>>,
}

impl FeatureStore {
    /// The online rows of `view_spec` whose entity key starts with the
    /// join-key values `leading`, in key order, at most `limit` of them;
    /// values are computed as an online read computes them, and as there,
    /// rows not yet committed or past the view's retention are left out.
    pub fn online_rows_by_prefix(
        &self,
        view_spec: &str,
        leading: &[&str],
        limit: usize,
    ) -> Result<Vec<KeyedOnlineRow>> {
        let registry = self.registry();
        let view = registry.require_view(view_spec, "view")?;
        let committed = self.version();
        let now = self.clock().now();
        let retention = view.retention_micros;
        let prefix = codec::view_entity_prefix(view.id, &codec::entity_key(leading));
        let entries = self
            .engine
            .scan_prefix_page(Cf::Online, &prefix, None, limit)?;
        let mut rows = Vec::with_capacity(entries.len());
        for (key, bytes) in entries {
            let row = RawRow::decode(&bytes, view.features.len())?;
            if row.store_version > committed
                || (retention > 0 && row.event_ts <= now.saturating_sub(retention))
            {
                continue;
            }
            rows.push(KeyedOnlineRow {
                keys: codec::decode_entity_key(&key[4..])?,
                event_ts: row.event_ts,
                store_version: row.store_version,
                values: view.compute(&row),
            });
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;
    use serde_json::json;

    const DEFINITIONS: &str = r#"
[[entity]]
name = "request"
join_key = "request_id"

[[entity]]
name = "item"
join_key = "item_id"

[[feature_view]]
name = "served"
version = 1
entities = ["request", "item"]
ttl = "0"

[[feature_view.feature]]
name = "score"
type = "float64"

[[feature_view.feature]]
name = "score_log"
type = "float64"
transform = { kind = "log1p", input = "score" }
"#;

    #[test]
    fn rows_under_one_leading_key_and_no_other() {
        let store = FeatureStore::in_memory(StoreConfig::default()).unwrap();
        store.register_definitions("test", DEFINITIONS).unwrap();
        let row = |r: &str, i: &str, s: f64| json!({"request_id": r, "item_id": i, "event_timestamp": "2026-01-01T00:00:00Z", "score": s});
        // `r1` is a byte prefix of `r10`: the length-prefixed key keeps them apart.
        store
            .push(
                "served",
                &[
                    row("r1", "b", 1.0),
                    row("r1", "a", 2.0),
                    row("r10", "a", 3.0),
                ],
                true,
            )
            .unwrap();
        let rows = store.online_rows_by_prefix("served", &["r1"], 100).unwrap();
        let keys: Vec<_> = rows.iter().map(|r| r.keys.clone()).collect();
        assert_eq!(keys, [["r1", "a"], ["r1", "b"]]);
        assert_eq!(
            rows[0].values,
            [
                Some(Value::Float64(2.0)),
                Some(Value::Float64(2f64.ln_1p()))
            ]
        );
        assert_eq!(
            store
                .online_rows_by_prefix("served", &["r1"], 1)
                .unwrap()
                .len(),
            1
        );
        assert!(store
            .online_rows_by_prefix("served", &["r2"], 100)
            .unwrap()
            .is_empty());
        assert!(store.online_rows_by_prefix("nope", &["r1"], 100).is_err());
    }
}
