//! What a snapshot pass builds for each stored chunk of entity rows: output
//! rows ([`RowsSink`]) or, for Parquet, Arrow record batches
//! (`parquet::BatchSink`), in input order.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value as Json;

use crate::error::{Result, StoreError};
use crate::proto::{EntityRow, SnapshotMeta};
use crate::time::Micros;
use crate::types::Value;

/// One output row: join keys (in `meta.join_keys` order), event time,
/// passthrough values (in `meta.passthrough` order) and one value per
/// feature (in `meta.features` order).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRow {
    pub keys: Vec<String>,
    pub event_ts: Micros,
    pub passthrough: Vec<Json>,
    pub values: Vec<Option<Value>>,
}

/// Where each output column's value comes from, worked out once per
/// snapshot read.
pub(crate) struct OutputLayout<'a> {
    pub meta: &'a SnapshotMeta,
    /// Per feature column (in `meta.features` order): the view it is read
    /// from (its index among the read's views) and the feature's index there.
    pub slots: &'a [(usize, usize)],
    /// Per feature column: whether no later column reads the same value (it
    /// can be moved out rather than cloned: `v:f` and `v@N:f` name one
    /// feature under two columns).
    pub last_use: Vec<bool>,
    names: ColumnNames<'a>,
}

impl<'a> OutputLayout<'a> {
    pub fn new(meta: &'a SnapshotMeta, slots: &'a [(usize, usize)]) -> Self {
        let last_use = slots
            .iter()
            .enumerate()
            .map(|(i, slot)| !slots[i + 1..].contains(slot))
            .collect();
        OutputLayout {
            meta,
            slots,
            last_use,
            names: column_names(meta),
        }
    }

    /// The passthrough values of a stored entity row, one per column.
    pub fn passthrough(&self, row: &EntityRow) -> Result<Vec<Json>> {
        passthrough_of(self.meta, &self.names, &row.passthrough_json)
    }
}

/// Builds one chunk of a snapshot's output from its entity rows and the
/// feature values computed for them, a row at a time.
pub(crate) trait ChunkSink: Send {
    type Chunk: Send;

    /// Adds an entity row; `computed` holds, per view read, the view's
    /// feature values at the row's time (`None`: no visible row). Values
    /// may be moved out of it.
    fn push(
        &mut self,
        layout: &OutputLayout,
        row: EntityRow,
        computed: &mut [Option<Vec<Option<Value>>>],
    ) -> Result<()>;

    /// The chunk of the rows pushed since the last one.
    fn finish(&mut self) -> Result<Self::Chunk>;

    /// An empty sink building the same output, for another thread.
    fn another(&self) -> Self
    where
        Self: Sized;
}

/// Output rows, for callers that read a snapshot row by row.
#[derive(Default)]
pub(crate) struct RowsSink {
    rows: Vec<OutputRow>,
}

impl ChunkSink for RowsSink {
    type Chunk = Vec<OutputRow>;

    fn push(
        &mut self,
        layout: &OutputLayout,
        row: EntityRow,
        computed: &mut [Option<Vec<Option<Value>>>],
    ) -> Result<()> {
        let values = layout
            .slots
            .iter()
            .zip(&layout.last_use)
            .map(|(&(view, feature), &last)| {
                let values = computed[view].as_mut()?;
                if last {
                    values[feature].take()
                } else {
                    values[feature].clone()
                }
            })
            .collect();
        self.rows.push(OutputRow {
            passthrough: layout.passthrough(&row)?,
            keys: row.keys,
            event_ts: row.event_ts_micros,
            values,
        });
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<OutputRow>> {
        Ok(std::mem::take(&mut self.rows))
    }

    fn another(&self) -> Self {
        RowsSink::default()
    }
}

/// The passthrough columns' names, sorted, with each one's position in
/// `meta.passthrough`: a stored object's keys are looked up here.
type ColumnNames<'a> = Vec<(&'a str, usize)>;

fn column_names(meta: &SnapshotMeta) -> ColumnNames<'_> {
    let mut names: ColumnNames = meta
        .passthrough
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    names.sort_unstable();
    names
}

/// The passthrough values of a stored entity row, one per column of
/// `meta.passthrough` (null where the row has none), read without building
/// a map of the row's object.
fn passthrough_of(meta: &SnapshotMeta, names: &ColumnNames, stored: &str) -> Result<Vec<Json>> {
    let mut values = vec![Json::Null; meta.passthrough.len()];
    if stored != "{}" {
        let mut json = serde_json::Deserializer::from_str(stored);
        PassthroughValues {
            names,
            values: &mut values,
        }
        .deserialize(&mut json)
        .and_then(|()| json.end())
        .map_err(|_| StoreError::Corrupt(format!("passthrough of snapshot {}", meta.id)))?;
    }
    Ok(values)
}

/// Reads a stored passthrough object into one value per column.
struct PassthroughValues<'a> {
    names: &'a [(&'a str, usize)],
    values: &'a mut [Json],
}

impl<'de> DeserializeSeed<'de> for PassthroughValues<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, json: D) -> std::result::Result<(), D::Error> {
        json.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PassthroughValues<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(column) = map.next_key_seed(ColumnOf(self.names))? {
            match column {
                Some(i) => self.values[i] = map.next_value()?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A passthrough object's key as the position of its column.
struct ColumnOf<'a>(&'a [(&'a str, usize)]);

impl<'de> DeserializeSeed<'de> for ColumnOf<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(
        self,
        json: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        json.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ColumnOf<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a column name")
    }

    fn visit_str<E>(self, name: &str) -> std::result::Result<Self::Value, E> {
        Ok(self
            .0
            .binary_search_by(|(column, _)| (*column).cmp(name))
            .ok()
            .map(|at| self.0[at].1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::PassthroughColumn;

    #[test]
    fn passthrough_values_come_in_column_order() {
        let meta = SnapshotMeta {
            passthrough: ["label", "tag \"q\"", "extra"]
                .map(|name| PassthroughColumn {
                    name: name.into(),
                    column_type: "json".into(),
                })
                .to_vec(),
            ..SnapshotMeta::default()
        };
        let names = column_names(&meta);
        let stored = r#"{"extra":{"a":[1,2]},"label":0.5,"other":7,"tag \"q\"":"x"}"#;
        assert_eq!(
            passthrough_of(&meta, &names, stored).unwrap(),
            vec![
                serde_json::json!(0.5),
                serde_json::json!("x"),
                serde_json::json!({"a": [1, 2]})
            ]
        );
        assert_eq!(
            passthrough_of(&meta, &names, r#"{"label":1}"#).unwrap(),
            vec![serde_json::json!(1), Json::Null, Json::Null]
        );
        assert_eq!(
            passthrough_of(&meta, &names, "{}").unwrap(),
            vec![Json::Null; 3]
        );
        assert!(passthrough_of(&meta, &names, r#"{"label":1"#).is_err());
        assert!(passthrough_of(&meta, &names, r#"[1]"#).is_err());
        assert!(passthrough_of(&meta, &names, r#"{"label":1} x"#).is_err());
    }
}
