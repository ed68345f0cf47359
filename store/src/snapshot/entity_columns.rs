//! A snapshot's entity rows under named columns (a CSV or a Parquet file):
//! checked and split as stored without a JSON object per row.

use serde_json::Value as Json;

use super::create::{is_feature_column, PassthroughColumns};
use crate::error::{Result, StoreError};
use crate::proto::{EntityRow, SnapshotMeta};
use crate::text_rows::{header_roles, infer_cell, split_cells, CellRole};

/// The snapshot's columns in a file's order: splits its rows.
pub(super) struct EntityColumns {
    names: Vec<String>,
    /// `Other(i)`: the passthrough column at `passthrough[i]`.
    columns: Vec<CellRole>,
    key_count: usize,
    /// Passthrough columns by name (the order of a JSON object's keys):
    /// the name, its `"name":` prefix in JSON, and its cell's column.
    passthrough: Vec<(String, String, usize)>,
}

impl EntityColumns {
    /// Resolves `headers`: every join key and `event_timestamp` are there,
    /// no column appears twice, no passthrough column is named like a
    /// feature column.
    pub(super) fn new(meta: &SnapshotMeta, headers: &[String]) -> Result<Self> {
        let mut passthrough = Vec::new();
        let mut columns = header_roles(headers, &meta.join_keys, |column, name, field| {
            if is_feature_column(meta, name) {
                return Err(StoreError::invalid(
                    field,
                    "a passthrough column clashes with a feature column",
                ));
            }
            let prefix = format!("{}:", Json::String(name.to_owned()));
            passthrough.push((name.to_owned(), prefix, column));
            // Its position once the passthrough columns are sorted, below.
            Ok(0)
        })?;
        passthrough.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (at, (_, _, column)) in passthrough.iter().enumerate() {
            columns[*column] = CellRole::Other(at);
        }
        Ok(EntityColumns {
            names: headers.to_vec(),
            columns,
            key_count: meta.join_keys.len(),
            passthrough,
        })
    }

    /// Splits row `index` (for error fields) from its text cells, in the
    /// headers' order, noting its passthrough values' types in `observed`.
    pub(super) fn row(
        &self,
        observed: &mut PassthroughColumns,
        index: usize,
        cells: impl IntoIterator<Item: AsRef<str>>,
    ) -> Result<EntityRow> {
        let mut values: Vec<Json> = vec![Json::Null; self.passthrough.len()];
        let (keys, event_ts) = split_cells(
            "entity_rows",
            index,
            &self.names,
            &self.columns,
            self.key_count,
            cells,
            |at, _, text| {
                values[at] = infer_cell(text);
                Ok(())
            },
        )?;
        Ok(self.entity_row(observed, keys, event_ts, &values))
    }

    /// The stored entity row of join `keys` (in the snapshot's order),
    /// `event_ts` and the passthrough `values` (by their position), noting
    /// the values' types in `observed`.
    pub(super) fn entity_row(
        &self,
        observed: &mut PassthroughColumns,
        keys: Vec<String>,
        event_ts: crate::time::Micros,
        values: &[Json],
    ) -> EntityRow {
        // The JSON object of the passthrough values, keys in order.
        let mut json = Vec::with_capacity(2 + 16 * values.len());
        json.push(b'{');
        for (at, ((name, prefix, _), value)) in self.passthrough.iter().zip(values).enumerate() {
            observed.observe(name, value);
            if at > 0 {
                json.push(b',');
            }
            json.extend_from_slice(prefix.as_bytes());
            serde_json::to_writer(&mut json, value).expect("a JSON value writes to a vector");
        }
        json.push(b'}');
        EntityRow {
            keys,
            event_ts_micros: event_ts,
            passthrough_json: String::from_utf8(json).expect("serde_json writes UTF-8"),
        }
    }

    /// Each column's role, in the file's order.
    pub(super) fn roles(&self) -> &[CellRole] {
        &self.columns
    }

    /// The column names, in the file's order.
    pub(super) fn names(&self) -> &[String] {
        &self.names
    }

    pub(super) fn key_count(&self) -> usize {
        self.key_count
    }

    pub(super) fn passthrough_count(&self) -> usize {
        self.passthrough.len()
    }
}
