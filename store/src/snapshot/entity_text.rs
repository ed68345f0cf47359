//! A snapshot's entity rows given as text cells under named columns (a CSV
//! file): checked and split as stored without a JSON object per row.

use serde_json::Value as Json;

use super::create::{is_feature_column, PassthroughColumns};
use crate::error::{Result, StoreError};
use crate::proto::{EntityRow, SnapshotMeta};
use crate::text_rows::infer_cell;
use crate::time::parse_rfc3339;
use crate::transform::EVENT_TIMESTAMP;

/// What one column holds.
#[derive(Debug, Clone, Copy)]
enum Column {
    /// The join key at this position of the snapshot's keys.
    Key(usize),
    Time,
    /// The passthrough column at this position of `passthrough`.
    Passthrough(usize),
}

/// The snapshot's columns in a file's order: splits its rows.
pub(super) struct EntityTextColumns {
    names: Vec<String>,
    columns: Vec<Column>,
    key_count: usize,
    /// Passthrough columns by name (the order of a JSON object's keys):
    /// the name, its `"name":` prefix in JSON, and its cell's column.
    passthrough: Vec<(String, String, usize)>,
}

impl EntityTextColumns {
    /// Resolves `headers`: every join key and `event_timestamp` are there,
    /// no column appears twice, no passthrough column is named like a
    /// feature column.
    pub(super) fn new(meta: &SnapshotMeta, headers: &[String]) -> Result<Self> {
        let mut columns = Vec::with_capacity(headers.len());
        let mut passthrough = Vec::new();
        for (i, name) in headers.iter().enumerate() {
            let field = format!("columns.{name}");
            if headers[..i].contains(name) {
                return Err(StoreError::invalid(field, "the column appears twice"));
            }
            let column = if name == EVENT_TIMESTAMP {
                Column::Time
            } else if let Some(key) = meta.join_keys.iter().position(|k| k == name) {
                Column::Key(key)
            } else if is_feature_column(meta, name) {
                return Err(StoreError::invalid(
                    field,
                    "a passthrough column clashes with a feature column",
                ));
            } else {
                let prefix = format!("{}:", Json::String(name.clone()));
                passthrough.push((name.clone(), prefix, i));
                Column::Passthrough(0)
            };
            columns.push(column);
        }
        for key in &meta.join_keys {
            if !headers.contains(key) {
                return Err(StoreError::missing(format!("columns.{key}")));
            }
        }
        if !headers.iter().any(|h| h == EVENT_TIMESTAMP) {
            return Err(StoreError::missing(format!("columns.{EVENT_TIMESTAMP}")));
        }
        passthrough.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (at, (_, _, column)) in passthrough.iter().enumerate() {
            columns[*column] = Column::Passthrough(at);
        }
        Ok(EntityTextColumns {
            names: headers.to_vec(),
            columns,
            key_count: meta.join_keys.len(),
            passthrough,
        })
    }

    /// Splits row `index` (for error fields) from its cells, in the
    /// headers' order, noting its passthrough values' types in `observed`.
    pub(super) fn row(
        &self,
        observed: &mut PassthroughColumns,
        index: usize,
        cells: impl IntoIterator<Item: AsRef<str>>,
    ) -> Result<EntityRow> {
        let field = |column: usize| format!("entity_rows[{index}].{}", self.names[column]);
        let mut keys = vec![String::new(); self.key_count];
        let mut event_ts = None;
        let mut values: Vec<Json> = vec![Json::Null; self.passthrough.len()];
        let mut count = 0;
        for (column, text) in cells.into_iter().enumerate() {
            let text = text.as_ref();
            count += 1;
            let Some(role) = self.columns.get(column) else {
                return Err(StoreError::invalid(
                    format!("entity_rows[{index}]"),
                    format!(
                        "has more than the {} columns of the header",
                        self.columns.len()
                    ),
                ));
            };
            match *role {
                Column::Key(_) | Column::Time if text.is_empty() => {
                    return Err(StoreError::missing(field(column)))
                }
                Column::Key(key) => keys[key] = text.to_owned(),
                Column::Time => {
                    event_ts = Some(parse_rfc3339(text).ok_or_else(|| {
                        StoreError::invalid(
                            field(column),
                            format!(
                                "`{text}` is not an RFC 3339 timestamp like 2026-01-01T00:00:00Z"
                            ),
                        )
                    })?)
                }
                Column::Passthrough(_) if text.is_empty() => {}
                Column::Passthrough(at) => values[at] = infer_cell(text),
            }
        }
        if count < self.columns.len() {
            return Err(StoreError::missing(field(count)));
        }
        // The JSON object of the passthrough values, keys in order.
        let mut json = Vec::with_capacity(2 + 16 * values.len());
        json.push(b'{');
        for (at, ((name, prefix, _), value)) in self.passthrough.iter().zip(&values).enumerate() {
            observed.observe(name, value);
            if at > 0 {
                json.push(b',');
            }
            json.extend_from_slice(prefix.as_bytes());
            serde_json::to_writer(&mut json, value).expect("a JSON value writes to a vector");
        }
        json.push(b'}');
        Ok(EntityRow {
            keys,
            event_ts_micros: event_ts.expect("the header has an event_timestamp column"),
            passthrough_json: String::from_utf8(json).expect("serde_json writes UTF-8"),
        })
    }
}
