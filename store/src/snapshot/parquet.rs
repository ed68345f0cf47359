//! Snapshot rows as a Parquet file, written one record batch per chunk.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::Value as Json;

use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::proto::SnapshotMeta;
use crate::transform::EVENT_TIMESTAMP;
use crate::types::{FeatureType, Value};

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 64 * 1024;

impl FeatureStore {
    /// Streams the snapshot's rows to `out` as Parquet; returns the count.
    pub fn write_snapshot_parquet<W: Write + Send>(&self, id: &str, out: W) -> Result<u64> {
        let meta = self.snapshot_meta(id)?;
        let schema = schema_of(&meta)?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let mut writer = ArrowWriter::try_new(out, Arc::clone(&schema), Some(properties))
            .map_err(parquet_error)?;
        let mut count = 0;
        self.read_snapshot(id, |meta, rows| {
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
                for column in &meta.passthrough {
                    c.next()
                        .expect("a column per passthrough")
                        .append_json(row.passthrough.get(&column.name).unwrap_or(&Json::Null));
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

fn parquet_error(e: parquet::errors::ParquetError) -> StoreError {
    match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<std::io::Error>() {
                Ok(io) => StoreError::Io(*io),
                Err(other) => StoreError::Engine(other.to_string()),
            }
        }
        other => StoreError::Engine(format!("parquet: {other}")),
    }
}

fn schema_of(meta: &SnapshotMeta) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = meta
        .join_keys
        .iter()
        .map(|k| Field::new(k, DataType::Utf8, false))
        .collect();
    fields.push(Field::new(
        EVENT_TIMESTAMP,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    ));
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
        let data_type = match ty {
            FeatureType::Bool => DataType::Boolean,
            FeatureType::Int64 => DataType::Int64,
            FeatureType::Float64 => DataType::Float64,
            FeatureType::String => DataType::Utf8,
            FeatureType::FloatVector => {
                DataType::List(Arc::new(Field::new("item", DataType::Float32, true)))
            }
            FeatureType::StringList => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
        };
        fields.push(Field::new(&feature.column, data_type, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// An Arrow builder for one output column.
enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    FloatList(ListBuilder<Float32Builder>),
    StringList(ListBuilder<StringBuilder>),
}

impl ColumnBuilder {
    fn for_type(data_type: &DataType, capacity: usize) -> Self {
        match data_type {
            DataType::Boolean => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
            DataType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Timestamp(..) => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            DataType::List(item) if item.data_type() == &DataType::Float32 => {
                ColumnBuilder::FloatList(ListBuilder::new(Float32Builder::new()))
            }
            DataType::List(_) => ColumnBuilder::StringList(ListBuilder::new(StringBuilder::new())),
            _ => ColumnBuilder::Utf8(StringBuilder::with_capacity(capacity, capacity * 8)),
        }
    }

    fn append_str(&mut self, s: &str) {
        if let ColumnBuilder::Utf8(b) = self {
            b.append_value(s);
        }
    }

    fn append_timestamp(&mut self, micros: i64) {
        if let ColumnBuilder::Timestamp(b) = self {
            b.append_value(micros);
        }
    }

    /// A passthrough value; its column type was inferred to fit it.
    fn append_json(&mut self, json: &Json) {
        match (self, json) {
            (ColumnBuilder::Bool(b), Json::Bool(v)) => b.append_value(*v),
            (ColumnBuilder::Int64(b), j) if j.as_i64().is_some() => b.append_option(j.as_i64()),
            (ColumnBuilder::Float64(b), j) if j.as_f64().is_some() => b.append_option(j.as_f64()),
            (ColumnBuilder::Utf8(b), Json::String(s)) => b.append_value(s),
            (ColumnBuilder::Utf8(b), Json::Null) => b.append_null(),
            (ColumnBuilder::Utf8(b), other) => b.append_value(other.to_string()),
            (builder, _) => builder.append_null(),
        }
    }

    fn append_value(&mut self, value: Option<&Value>) {
        match (self, value) {
            (ColumnBuilder::Bool(b), Some(Value::Bool(v))) => b.append_value(*v),
            (ColumnBuilder::Int64(b), Some(Value::Int64(v))) => b.append_value(*v),
            (ColumnBuilder::Float64(b), Some(Value::Float64(v))) => b.append_value(*v),
            (ColumnBuilder::Utf8(b), Some(Value::String(v))) => b.append_value(v),
            (ColumnBuilder::FloatList(b), Some(Value::FloatVector(v))) => {
                b.values().append_slice(v);
                b.append(true);
            }
            (ColumnBuilder::StringList(b), Some(Value::StringList(v))) => {
                for s in v {
                    b.values().append_value(s);
                }
                b.append(true);
            }
            (builder, _) => builder.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::FloatList(b) => b.append(false),
            ColumnBuilder::StringList(b) => b.append(false),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(mut b) => Arc::new(b.finish()),
            ColumnBuilder::FloatList(mut b) => Arc::new(b.finish()),
            ColumnBuilder::StringList(mut b) => ArrayBuilder::finish(&mut b),
        }
    }
}
