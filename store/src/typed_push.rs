//! Rows the server builds itself (the served-feature log, written on every
//! recommendation): typed values by feature name, checked as a pushed JSON
//! row is (known, writable features; the declared type; finite numbers; a
//! vector's declared dimension) and written by the same group commit,
//! without building and parsing JSON.

use std::sync::Arc;

use crate::codec;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::push::{writable_feature, writable_view, ParsedRow, PushOutcome};
use crate::registry::{Feature, FeatureView};
use crate::time::Micros;
use crate::types::Value;

/// One row: join-key values in the view's order, the event time, and
/// values by feature name.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedRow<'n> {
    pub keys: Vec<String>,
    pub event_ts: Micros,
    pub values: Vec<(&'n str, Value)>,
}

impl FeatureStore {
    /// Writes `batches` (view spec, rows) and `counters` as one push: all
    /// or nothing, one store version per batch, durable on return.
    pub fn push_typed_counting(
        &self,
        batches: Vec<(&str, Vec<TypedRow<'_>>)>,
        counters: &[(String, i64)],
    ) -> Result<Vec<PushOutcome>> {
        let _span = tracing::info_span!("store.push_typed", batches = batches.len()).entered();
        let registry = self.registry();
        let validated = batches
            .into_iter()
            .map(|(view_spec, rows)| {
                let view = writable_view(&registry, view_spec)?;
                let parsed = rows
                    .into_iter()
                    .enumerate()
                    .map(|(i, row)| checked(view, i, row))
                    .collect::<Result<Vec<_>>>()?;
                let parsed = self.check_rows(view, parsed)?;
                Ok((Arc::clone(view), parsed))
            })
            .collect::<Result<Vec<_>>>()?;
        self.write_batches(validated, false, counters)
    }
}

fn checked(view: &FeatureView, index: usize, row: TypedRow<'_>) -> Result<ParsedRow> {
    let field = |name: &str| format!("rows[{index}].{name}");
    if row.keys.len() != view.join_keys.len() {
        return Err(StoreError::invalid(
            format!("rows[{index}]"),
            format!(
                "needs the {} join keys of `{}` ({})",
                view.join_keys.len(),
                view.name,
                view.join_keys.join(", ")
            ),
        ));
    }
    if let Some(at) = row.keys.iter().position(String::is_empty) {
        return Err(StoreError::invalid(
            format!("rows[{index}].{}", view.join_keys[at]),
            "must not be empty",
        ));
    }
    let mut values = vec![None; view.features.len()];
    for (name, value) in row.values {
        let at = view
            .feature_index(name)
            .ok_or_else(|| StoreError::UnknownFeature {
                field: field(name),
                feature: format!("{}:{name}", view.name),
            })?;
        let feature = writable_feature(view, at, &field(name))?;
        fits(feature, &value).map_err(|got| StoreError::WrongType {
            field: field(name),
            expected: feature.feature_type.name().into(),
            got,
        })?;
        values[at] = Some(value);
    }
    Ok(ParsedRow {
        entity_key: codec::entity_key(&row.keys),
        keys: row.keys,
        event_ts: row.event_ts,
        values,
    })
}

/// What `Value::from_json` would have refused, said the same way; and a
/// value of another type than the declared one (no integer for a float:
/// typed rows carry the declared type).
fn fits(feature: &Feature, value: &Value) -> std::result::Result<(), String> {
    if value.feature_type() != feature.feature_type {
        return Err(value.feature_type().name().to_owned());
    }
    match value {
        Value::Float64(v) if !v.is_finite() => Err(format!("number {v} (non-finite)")),
        Value::FloatVector(items) => {
            if let Some(bad) = items.iter().find(|v| !v.is_finite()) {
                return Err(format!("vector item {bad} (non-finite)"));
            }
            match feature.dim {
                Some(dim) if items.len() != dim => Err(format!(
                    "vector of dimension {} (declared {dim})",
                    items.len()
                )),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}
