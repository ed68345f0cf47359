//! Snapshot rows as a Parquet file, written one record batch per stored
//! chunk of entity rows, each built column by column.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::output::{ChunkSink, OutputLayout};
use super::ENTITY_ROW_CHUNK;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::parquet_columns::{arrow_type, parquet_error, timestamp_type, ColumnBuilder};
use crate::proto::{EntityRow, SnapshotMeta};
use crate::transform::EVENT_TIMESTAMP;
use crate::types::{FeatureType, Value};

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 64 * 1024;

impl FeatureStore {
    /// Streams the snapshot's rows to `out` as Parquet; returns the count.
    pub fn write_snapshot_parquet<W: Write + Send>(&self, id: &str, out: W) -> Result<u64> {
        let meta = self.snapshot_meta(id)?;
        let schema = schema_of(&meta)?;
        // The writer is opened on the first batch: which columns get a
        // dictionary is decided from it.
        let mut out = Some(out);
        let mut open = |first: Option<&RecordBatch>| {
            let out = out.take().expect("one writer per snapshot");
            ArrowWriter::try_new(out, Arc::clone(&schema), Some(properties(&schema, first)))
                .map_err(parquet_error)
        };
        let mut writer = None;
        let mut count = 0;
        let sink = BatchSink::new(Arc::clone(&schema));
        self.read_snapshot_chunks(id, sink, |_, batch| {
            count += batch.num_rows() as u64;
            let writer = match &mut writer {
                Some(writer) => writer,
                None => writer.insert(open(Some(&batch))?),
            };
            writer.write(&batch).map_err(parquet_error)?;
            Ok(())
        })?;
        let writer = match writer {
            Some(writer) => writer,
            None => open(None)?,
        };
        writer.close().map_err(parquet_error)?;
        Ok(count)
    }
}

/// How a snapshot's columns are written: Snappy, row groups of 64k rows,
/// and a dictionary only for columns whose values repeat.
///
/// A dictionary hashes every value; for columns of (nearly) distinct
/// values, like an entity key over many entities or event times, it saves
/// nothing, and a row group's worth of them rarely fills the dictionary
/// page, so the writer would not give up on it either. Floats rarely
/// repeat; a string, integer or timestamp column is written without one
/// when more than half of the first batch's values are distinct (a guess
/// from the first batch: a wrong one costs size or time, never a value).
fn properties(schema: &Schema, first: Option<&RecordBatch>) -> WriterProperties {
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    for (i, field) in schema.fields().iter().enumerate() {
        let mostly_distinct = match field.data_type() {
            DataType::Float64 => true,
            _ => first.is_some_and(|batch| mostly_distinct(batch.column(i))),
        };
        if mostly_distinct {
            properties = properties
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    properties.build()
}

/// Whether more than half of a string, integer or timestamp column's
/// values are distinct (other columns: no).
fn mostly_distinct(column: &ArrayRef) -> bool {
    let any = column.as_any();
    let distinct = if let Some(strings) = any.downcast_ref::<StringArray>() {
        strings.iter().flatten().collect::<HashSet<&str>>().len()
    } else if let Some(ints) = any.downcast_ref::<Int64Array>() {
        ints.iter().flatten().collect::<HashSet<i64>>().len()
    } else if let Some(times) = any.downcast_ref::<TimestampMicrosecondArray>() {
        times.iter().flatten().collect::<HashSet<i64>>().len()
    } else {
        return false;
    };
    distinct * 2 > column.len()
}

/// Arrow record batches of a snapshot's output, built straight from the
/// entity rows and computed values (no output row in between).
struct BatchSink {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
}

impl BatchSink {
    fn new(schema: SchemaRef) -> Self {
        let columns = builders(&schema);
        BatchSink { schema, columns }
    }
}

/// Empty builders for a chunk of `schema`'s columns.
fn builders(schema: &Schema) -> Vec<ColumnBuilder> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnBuilder::for_type(f.data_type(), ENTITY_ROW_CHUNK))
        .collect()
}

impl ChunkSink for BatchSink {
    type Chunk = RecordBatch;

    fn push(
        &mut self,
        layout: &OutputLayout,
        row: EntityRow,
        computed: &mut [Option<Vec<Option<Value>>>],
    ) -> Result<()> {
        let mut c = self.columns.iter_mut();
        for key in &row.keys {
            c.next().expect("a column per key").append_str(key);
        }
        c.next()
            .expect("a timestamp column")
            .append_timestamp(row.event_ts_micros);
        for value in &layout.passthrough(&row)? {
            c.next()
                .expect("a column per passthrough")
                .append_json(value);
        }
        for &(view, feature) in layout.slots {
            let value = computed[view].as_ref().and_then(|v| v[feature].as_ref());
            c.next().expect("a column per feature").append_value(value);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        let columns = std::mem::replace(&mut self.columns, builders(&self.schema));
        let arrays: Vec<ArrayRef> = columns.into_iter().map(ColumnBuilder::finish).collect();
        RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .map_err(|e| StoreError::Engine(e.to_string()))
    }

    fn another(&self) -> Self {
        BatchSink::new(Arc::clone(&self.schema))
    }
}

fn schema_of(meta: &SnapshotMeta) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = meta
        .join_keys
        .iter()
        .map(|k| Field::new(k, DataType::Utf8, false))
        .collect();
    fields.push(Field::new(EVENT_TIMESTAMP, timestamp_type(), false));
    for column in &meta.passthrough {
        let data_type = match column.column_type.as_str() {
            "bool" => DataType::Boolean,
            "int64" => DataType::Int64,
            "float64" => DataType::Float64,
            _ => DataType::Utf8,
        };
        fields.push(Field::new(&column.name, data_type, true));
    }
    for feature in &meta.features {
        let ty = FeatureType::parse(&feature.feature_type)
            .ok_or_else(|| StoreError::Corrupt(format!("feature type {}", feature.feature_type)))?;
        let data_type = arrow_type(ty);
        fields.push(Field::new(&feature.column, data_type, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_columns_whose_values_repeat_get_a_dictionary() {
        let schema = Schema::new(vec![
            Field::new("user_id", DataType::Utf8, false),
            Field::new("segment", DataType::Utf8, true),
            Field::new("event_timestamp", timestamp_type(), false),
            Field::new("clicks", DataType::Int64, true),
            Field::new("score", DataType::Float64, true),
            Field::new("liked", DataType::Boolean, true),
        ]);
        let rows = 100;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("u{i}")),
            )),
            Arc::new(StringArray::from_iter(
                (0..rows).map(|i| (i % 7 != 0).then(|| ["a", "b"][i % 2])),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values((0..rows as i64).map(|i| i * 1_000))
                    .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from_iter_values(
                (0..rows as i64).map(|i| i % 3),
            )),
            Arc::new(arrow_array::Float64Array::from_iter_values(
                (0..rows).map(|i| i as f64),
            )),
            Arc::new(arrow_array::BooleanArray::from_iter(
                (0..rows).map(|i| Some(i % 2 == 0)),
            )),
        ];
        let batch = RecordBatch::try_new(Arc::new(schema.clone()), columns).unwrap();
        let dictionary = |properties: &WriterProperties, column: &str| {
            properties.dictionary_enabled(&ColumnPath::from(column))
        };
        let decided = properties(&schema, Some(&batch));
        assert!(!dictionary(&decided, "user_id"), "distinct keys");
        assert!(dictionary(&decided, "segment"), "two values and nulls");
        assert!(!dictionary(&decided, "event_timestamp"), "distinct times");
        assert!(dictionary(&decided, "clicks"), "three values");
        assert!(!dictionary(&decided, "score"), "floats");
        assert!(dictionary(&decided, "liked"));
        // An empty snapshot: nothing to judge by, so only floats go without.
        let empty = properties(&schema, None);
        assert!(dictionary(&empty, "user_id"));
        assert!(!dictionary(&empty, "score"));
        assert_eq!(decided.max_row_group_row_count(), Some(ROW_GROUP_ROWS));
    }
}
