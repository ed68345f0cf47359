//! Rows given as text cells under named columns (a CSV file): parsed
//! straight into typed values, without a JSON object per row, with the
//! checks and error fields of a JSON push (`rows[i].column`). Empty cells
//! are nulls; numbers and booleans are read in their JSON spelling;
//! `float_vector` and `string_list` cells hold a JSON array.

use std::sync::Arc;

use crate::codec;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::push::{writable_feature, writable_view, ParsedRow};
use crate::registry::FeatureView;
use crate::time::parse_rfc3339;
use crate::transform::EVENT_TIMESTAMP;
use crate::types::{FeatureType, Value};

/// What one column of a text row holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CellRole {
    /// The join key at this position.
    Key(usize),
    Time,
    /// Anything else (a feature, a passthrough column) at this position.
    Other(usize),
}

/// A view's columns in a file's order: parses its rows.
pub struct TextColumns {
    view: Arc<FeatureView>,
    names: Vec<String>,
    columns: Vec<CellRole>,
}

impl FeatureStore {
    /// Resolves `headers` against the view `view_spec` (which rows may be
    /// written to): every column is a join key, `event_timestamp` or a
    /// pushed feature, and the join keys and the time are all there.
    pub fn text_columns(&self, view_spec: &str, headers: &[String]) -> Result<TextColumns> {
        let registry = self.registry();
        let view = Arc::clone(writable_view(&registry, view_spec)?);
        let columns = header_roles(headers, &view.join_keys, |_, name, field| {
            let index = view
                .feature_index(name)
                .ok_or_else(|| StoreError::UnknownFeature {
                    field: field.to_owned(),
                    feature: format!("{}:{name}", view.name),
                })?;
            writable_feature(&view, index, field)?;
            Ok(index)
        })?;
        Ok(TextColumns {
            view,
            names: headers.to_vec(),
            columns,
        })
    }
}

impl TextColumns {
    pub fn view(&self) -> &Arc<FeatureView> {
        &self.view
    }

    /// Parses row `index` (for error fields) from its cells, in the
    /// headers' order.
    pub fn parse<'a>(
        &self,
        index: usize,
        cells: impl IntoIterator<Item = &'a str>,
    ) -> Result<ParsedRow> {
        let view = &self.view;
        let field = |column: usize| format!("rows[{index}].{}", self.names[column]);
        let mut values = vec![None; view.features.len()];
        let (keys, event_ts) = split_cells(
            "rows",
            index,
            &self.names,
            &self.columns,
            view.join_keys.len(),
            cells,
            |feature, column, text| {
                let spec = &view.features[feature];
                values[feature] = Some(parse_cell(text, spec.feature_type, spec.dim).map_err(
                    |got| StoreError::WrongType {
                        field: field(column),
                        expected: spec.feature_type.name().into(),
                        got,
                    },
                )?);
                Ok(())
            },
        )?;
        Ok(ParsedRow {
            entity_key: codec::entity_key(&keys),
            keys,
            event_ts,
            values,
        })
    }
}

/// The roles of a text file's columns under `headers`: `event_timestamp`,
/// the join keys `join_keys`, and every other column's position as
/// `other(column, name, field)` answers (or refuses) it. A column named
/// twice is refused, and so is a header without every join key and the
/// time (fields `columns.{name}`).
pub(crate) fn header_roles(
    headers: &[String],
    join_keys: &[String],
    mut other: impl FnMut(usize, &str, &str) -> Result<usize>,
) -> Result<Vec<CellRole>> {
    let mut roles = Vec::with_capacity(headers.len());
    for (column, name) in headers.iter().enumerate() {
        let field = format!("columns.{name}");
        if headers[..column].contains(name) {
            return Err(StoreError::invalid(field, "the column appears twice"));
        }
        roles.push(if name == EVENT_TIMESTAMP {
            CellRole::Time
        } else if let Some(key) = join_keys.iter().position(|k| k == name) {
            CellRole::Key(key)
        } else {
            CellRole::Other(other(column, name, &field)?)
        });
    }
    for key in join_keys {
        if !headers.contains(key) {
            return Err(StoreError::missing(format!("columns.{key}")));
        }
    }
    if !headers.iter().any(|h| h == EVENT_TIMESTAMP) {
        return Err(StoreError::missing(format!("columns.{EVENT_TIMESTAMP}")));
    }
    Ok(roles)
}

/// Splits the cells of row `index` of a text file (error fields
/// `{list}[index].{column}`) under a header of `names` whose columns hold
/// `roles`: the join keys (required, `key_count` of them) and the RFC 3339
/// `event_timestamp` (required) are returned, every other non-empty cell
/// goes to `other(position, column, text)`. A row with more or fewer cells
/// than the header is refused.
pub(crate) fn split_cells(
    list: &str,
    index: usize,
    names: &[String],
    roles: &[CellRole],
    key_count: usize,
    cells: impl IntoIterator<Item: AsRef<str>>,
    mut other: impl FnMut(usize, usize, &str) -> Result<()>,
) -> Result<(Vec<String>, crate::time::Micros)> {
    let field = |column: usize| format!("{list}[{index}].{}", names[column]);
    let mut keys = vec![String::new(); key_count];
    let mut event_ts = None;
    let mut count = 0;
    for (column, text) in cells.into_iter().enumerate() {
        let text = text.as_ref();
        count += 1;
        let Some(role) = roles.get(column) else {
            return Err(StoreError::invalid(
                format!("{list}[{index}]"),
                format!("has more than the {} columns of the header", roles.len()),
            ));
        };
        match *role {
            CellRole::Key(_) | CellRole::Time if text.is_empty() => {
                return Err(StoreError::missing(field(column)))
            }
            CellRole::Key(key) => keys[key] = text.to_owned(),
            CellRole::Time => {
                event_ts = Some(parse_rfc3339(text).ok_or_else(|| {
                    StoreError::invalid(
                        field(column),
                        format!("`{text}` is not an RFC 3339 timestamp like 2026-01-01T00:00:00Z"),
                    )
                })?)
            }
            CellRole::Other(_) if text.is_empty() => {}
            CellRole::Other(position) => other(position, column, text)?,
        }
    }
    if count < roles.len() {
        return Err(StoreError::missing(field(count)));
    }
    let event_ts = event_ts.expect("the header has an event_timestamp column");
    Ok((keys, event_ts))
}

/// A non-empty cell whose type is not declared, as JSON: a number or
/// boolean when it reads as one, else a string.
pub fn infer_cell(text: &str) -> serde_json::Value {
    use serde_json::Value as Json;
    if let Ok(v) = text.parse::<i64>() {
        return Json::from(v);
    }
    if let Ok(v) = text.parse::<f64>() {
        if let Some(n) = serde_json::Number::from_f64(v) {
            return Json::Number(n);
        }
    }
    match text {
        "true" => Json::Bool(true),
        "false" => Json::Bool(false),
        _ => Json::String(text.to_owned()),
    }
}

/// One non-empty cell as a value of `ty`; the error describes what it holds.
fn parse_cell(
    text: &str,
    ty: FeatureType,
    dim: Option<usize>,
) -> std::result::Result<Value, String> {
    let not = || format!("`{text}`");
    match ty {
        FeatureType::String => Ok(Value::String(text.to_owned())),
        FeatureType::Int64 => text.parse().map(Value::Int64).map_err(|_| not()),
        FeatureType::Float64 => match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Value::Float64(v)),
            _ => Err(not()),
        },
        FeatureType::Bool => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(not()),
        },
        FeatureType::FloatVector | FeatureType::StringList => {
            let json: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("`{text}` (not JSON: {e})"))?;
            Value::from_json(&json, ty, dim)?.ok_or_else(|| "null".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_parse_by_declared_type() {
        assert_eq!(
            parse_cell("42", FeatureType::Int64, None),
            Ok(Value::Int64(42))
        );
        assert!(parse_cell("4.5", FeatureType::Int64, None).is_err());
        assert_eq!(
            parse_cell("4.5", FeatureType::Float64, None),
            Ok(Value::Float64(4.5))
        );
        assert!(parse_cell("NaN", FeatureType::Float64, None).is_err());
        assert!(parse_cell("inf", FeatureType::Float64, None).is_err());
        assert_eq!(
            parse_cell("true", FeatureType::Bool, None),
            Ok(Value::Bool(true))
        );
        assert!(parse_cell("1", FeatureType::Bool, None).is_err());
        assert_eq!(
            parse_cell("007", FeatureType::String, None),
            Ok(Value::String("007".into()))
        );
        assert_eq!(
            parse_cell("[1, 2.5]", FeatureType::FloatVector, Some(2)),
            Ok(Value::FloatVector(vec![1.0, 2.5]))
        );
        assert!(parse_cell("[1]", FeatureType::FloatVector, Some(2)).is_err());
        assert_eq!(
            parse_cell(r#"["a"]"#, FeatureType::StringList, None),
            Ok(Value::StringList(vec!["a".into()]))
        );
    }
}
