//! Snapshot rows as a Parquet file, written one record batch per stored
//! chunk of entity rows, each built column by column.

use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
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
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
        // Floats rarely repeat: a dictionary would be built (every value
        // hashed) only to be abandoned when it fills.
        for field in schema.fields() {
            if field.data_type() == &DataType::Float64 {
                properties = properties
                    .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
            }
        }
        let properties = properties.build();
        let mut writer = ArrowWriter::try_new(out, Arc::clone(&schema), Some(properties))
            .map_err(parquet_error)?;
        let mut count = 0;
        let sink = BatchSink::new(Arc::clone(&schema));
        self.read_snapshot_chunks(id, sink, |_, batch| {
            count += batch.num_rows() as u64;
            writer.write(&batch).map_err(parquet_error)?;
            Ok(())
        })?;
        writer.close().map_err(parquet_error)?;
        Ok(count)
    }
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

    fn finish(&mut self, _: &OutputLayout) -> Result<RecordBatch> {
        let columns = std::mem::replace(&mut self.columns, builders(&self.schema));
        let arrays: Vec<ArrayRef> = columns.into_iter().map(ColumnBuilder::finish).collect();
        RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .map_err(|e| StoreError::Engine(e.to_string()))
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
