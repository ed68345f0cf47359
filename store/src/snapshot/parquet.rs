//! Snapshot rows as a Parquet file, written one record batch per chunk.

use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::parquet_columns::{arrow_type, parquet_error, timestamp_type, ColumnBuilder};
use crate::proto::SnapshotMeta;
use crate::transform::EVENT_TIMESTAMP;
use crate::types::FeatureType;

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
        self.read_snapshot(id, |_, rows| {
            let mut columns: Vec<ColumnBuilder> = schema
                .fields()
                .iter()
                .map(|f| ColumnBuilder::for_type(f.data_type(), rows.len()))
                .collect();
            for row in &rows {
                let mut c = columns.iter_mut();
                for key in &row.keys {
                    c.next().expect("a column per key").append_str(key);
                }
                c.next()
                    .expect("a timestamp column")
                    .append_timestamp(row.event_ts);
                for value in &row.passthrough {
                    c.next()
                        .expect("a column per passthrough")
                        .append_json(value);
                }
                for value in &row.values {
                    c.next()
                        .expect("a column per feature")
                        .append_value(value.as_ref());
                }
            }
            let arrays: Vec<ArrayRef> = columns.into_iter().map(ColumnBuilder::finish).collect();
            let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)
                .map_err(|e| StoreError::Engine(e.to_string()))?;
            writer.write(&batch).map_err(parquet_error)?;
            count += rows.len() as u64;
            Ok(())
        })?;
        writer.close().map_err(parquet_error)?;
        Ok(count)
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
