//! A snapshot's entity rows read from a Parquet file: typed columns, no
//! text parsed. Join keys are strings or integers, `event_timestamp` a
//! timestamp (any unit, read as UTC) or RFC 3339 text; other columns pass
//! through (booleans, integers, floats, strings, timestamps as RFC 3339).
//! Dictionary-encoded (categorical) columns read as their values; files
//! compressed with Snappy, zstd, LZ4 or gzip.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch, RecordBatchReader};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value as Json;

use super::create::SnapshotSpec;
use super::entity_columns::EntityColumns;
use super::{SnapshotInfo, ENTITY_ROW_CHUNK};
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::text_rows::CellRole;
use crate::time::{format_rfc3339, parse_rfc3339, Micros};

impl FeatureStore {
    /// Creates a snapshot of `spec.features` for the entity rows of the
    /// Parquet file `file` (the same rows as
    /// [`create_snapshot_from_text`](Self::create_snapshot_from_text) for
    /// the file as CSV).
    pub fn create_snapshot_from_parquet(
        &self,
        spec: &SnapshotSpec,
        file: std::fs::File,
    ) -> Result<SnapshotInfo> {
        let plan = self.plan_snapshot(spec)?;
        let mut batches = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|builder| builder.with_batch_size(ENTITY_ROW_CHUNK).build())
            .map_err(unreadable)?;
        let headers: Vec<String> = batches
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let columns = EntityColumns::new(&plan, &headers)?;
        let mut batch: Option<(RecordBatch, Vec<Cells>)> = None;
        let (mut in_batch, mut index) = (0, 0);
        self.create_planned(plan, |_, observed| {
            while batch.as_ref().is_none_or(|b| in_batch == b.0.num_rows()) {
                match batches.next()? {
                    Ok(next) => {
                        let cells = next
                            .columns()
                            .iter()
                            .map(|c| Cells::of(c.as_ref()))
                            .collect();
                        (batch, in_batch) = (Some((next, cells)), 0);
                    }
                    Err(e) => return Some(Err(unreadable(e.into()))),
                }
            }
            let (batch, cells) = batch.as_ref().expect("a batch with rows left");
            let row = entity_row(&columns, observed, batch, cells, in_batch, index);
            (in_batch, index) = (in_batch + 1, index + 1);
            Some(row)
        })
    }
}

/// Where a column's cells are: the column itself, or a dictionary's
/// values (pandas and Polars categorical columns) found through its keys.
struct Cells {
    /// Each row's index into the dictionary's values.
    dictionary_keys: Option<Vec<usize>>,
}

impl Cells {
    fn of(array: &dyn Array) -> Self {
        Cells {
            dictionary_keys: array
                .as_any_dictionary_opt()
                .map(|dictionary| dictionary.normalized_keys()),
        }
    }

    /// The array holding row `r`'s cell of `column`, the cell's index in
    /// it, or `None` when the cell is null.
    fn at<'a>(&self, column: &'a dyn Array, r: usize) -> Option<(&'a dyn Array, usize)> {
        let (array, i) = match (&self.dictionary_keys, column.as_any_dictionary_opt()) {
            (Some(keys), Some(dictionary)) if !column.is_null(r) => {
                (dictionary.values().as_ref(), keys[r])
            }
            (Some(_), _) => return None,
            (None, _) => (column, r),
        };
        // A column of type Null has no validity bits: every cell is null.
        let null = array.data_type() == &DataType::Null || array.is_null(i);
        (!null).then_some((array, i))
    }
}

/// Entity row `index` of the file: row `r` of `batch`.
fn entity_row(
    columns: &EntityColumns,
    observed: &mut super::create::PassthroughColumns,
    batch: &RecordBatch,
    cells: &[Cells],
    r: usize,
    index: usize,
) -> Result<crate::proto::EntityRow> {
    let mut keys = vec![String::new(); columns.key_count()];
    let mut event_ts = None;
    let mut values = vec![Json::Null; columns.passthrough_count()];
    for (column, role) in columns.roles().iter().enumerate() {
        let field = || format!("entity_rows[{index}].{}", columns.names()[column]);
        let cell = cells[column].at(batch.column(column).as_ref(), r);
        let Some((array, r)) = cell else {
            if let CellRole::Key(_) | CellRole::Time = role {
                return Err(StoreError::missing(field()));
            }
            continue;
        };
        match *role {
            CellRole::Key(key) => {
                let text = key_text(array, r).ok_or_else(|| {
                    StoreError::invalid(
                        field(),
                        format!(
                            "a join key is a string or an integer, not {}",
                            array.data_type()
                        ),
                    )
                })?;
                if text.is_empty() {
                    return Err(StoreError::missing(field()));
                }
                keys[key] = text;
            }
            CellRole::Time => event_ts = Some(timestamp(array, r, field)?),
            CellRole::Other(at) => {
                values[at] = json_value(array, r).ok_or_else(|| {
                    StoreError::invalid(
                        field(),
                        format!(
                            "a passthrough column is a boolean, a number, a string or a timestamp, not {}",
                            array.data_type()
                        ),
                    )
                })?
            }
        }
    }
    let event_ts = event_ts.expect("the header has an event_timestamp column");
    Ok(columns.entity_row(observed, keys, event_ts, &values))
}

/// A join key's text: a string, or an integer in decimal.
fn key_text(array: &dyn Array, r: usize) -> Option<String> {
    Some(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(r).to_owned(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(r).to_owned(),
        DataType::Utf8View => array.as_string_view().value(r).to_owned(),
        _ => integer(array, r)?.to_string(),
    })
}

/// An integer cell, widened.
fn integer(array: &dyn Array, r: usize) -> Option<i128> {
    Some(match array.data_type() {
        DataType::Int8 => array.as_primitive::<Int8Type>().value(r).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(r).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(r).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(r).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(r).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(r).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(r).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(r).into(),
        _ => return None,
    })
}

/// A timestamp cell in microseconds since the epoch, if it is one.
fn timestamp_micros(array: &dyn Array, r: usize) -> Option<Micros> {
    Some(match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => array
            .as_primitive::<TimestampSecondType>()
            .value(r)
            .saturating_mul(1_000_000),
        DataType::Timestamp(TimeUnit::Millisecond, _) => array
            .as_primitive::<TimestampMillisecondType>()
            .value(r)
            .saturating_mul(1_000),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            array.as_primitive::<TimestampMicrosecondType>().value(r)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => array
            .as_primitive::<TimestampNanosecondType>()
            .value(r)
            .div_euclid(1_000),
        _ => return None,
    })
}

/// The entity row's time: a timestamp column, or RFC 3339 text.
fn timestamp(array: &dyn Array, r: usize, field: impl Fn() -> String) -> Result<Micros> {
    if let Some(micros) = timestamp_micros(array, r) {
        return Ok(micros);
    }
    let text = match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(r),
        DataType::LargeUtf8 => array.as_string::<i64>().value(r),
        DataType::Utf8View => array.as_string_view().value(r),
        other => {
            return Err(StoreError::invalid(
                field(),
                format!("`event_timestamp` is a timestamp or RFC 3339 text, not {other}"),
            ))
        }
    };
    parse_rfc3339(text).ok_or_else(|| {
        StoreError::invalid(
            field(),
            format!("`{text}` is not an RFC 3339 timestamp like 2026-01-01T00:00:00Z"),
        )
    })
}

/// A passthrough cell as JSON (as a CSV cell of the same value reads).
fn json_value(array: &dyn Array, r: usize) -> Option<Json> {
    if let Some(v) = integer(array, r) {
        return Some(match i64::try_from(v) {
            Ok(v) => Json::from(v),
            Err(_) => Json::from(v as u64),
        });
    }
    if let Some(micros) = timestamp_micros(array, r) {
        return Some(Json::String(format_rfc3339(micros)));
    }
    Some(match array.data_type() {
        DataType::Boolean => Json::Bool(array.as_boolean().value(r)),
        // The shortest decimal that reads back as this f32 (0.1, not
        // 0.10000000149011612), as its text in a CSV would.
        DataType::Float32 => float(
            array
                .as_primitive::<Float32Type>()
                .value(r)
                .to_string()
                .parse()
                .expect("a float's text parses"),
        ),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(r)),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            Json::String(key_text(array, r)?)
        }
        _ => return None,
    })
}

/// A float as JSON; NaN and infinities (which JSON cannot hold) as null.
fn float(v: f64) -> Json {
    serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
}

fn unreadable(e: parquet::errors::ParquetError) -> StoreError {
    StoreError::invalid(
        "entity_rows",
        format!("the Parquet file cannot be read: {e}"),
    )
}
