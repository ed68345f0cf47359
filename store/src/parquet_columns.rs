//! Arrow columns of stored values, and Parquet errors: the one mapping from
//! feature types to Arrow types that snapshots and exports write.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::ArrayRef;
use arrow_schema::{DataType, Field, TimeUnit};
use serde_json::Value as Json;

use crate::error::StoreError;
use crate::types::{FeatureType, Value};

/// The Arrow type of a feature type's column.
pub(crate) fn arrow_type(ty: FeatureType) -> DataType {
    match ty {
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
    }
}

/// A UTC timestamp column in microseconds.
pub(crate) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub(crate) fn parquet_error(e: parquet::errors::ParquetError) -> StoreError {
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

/// An Arrow builder for one output column.
pub(crate) enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    FloatList(ListBuilder<Float32Builder>),
    StringList(ListBuilder<StringBuilder>),
}

impl ColumnBuilder {
    pub(crate) fn for_type(data_type: &DataType, capacity: usize) -> Self {
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

    pub(crate) fn append_str(&mut self, s: &str) {
        if let ColumnBuilder::Utf8(b) = self {
            b.append_value(s);
        }
    }

    pub(crate) fn append_timestamp(&mut self, micros: i64) {
        if let ColumnBuilder::Timestamp(b) = self {
            b.append_value(micros);
        }
    }

    pub(crate) fn append_i64(&mut self, value: i64) {
        if let ColumnBuilder::Int64(b) = self {
            b.append_value(value);
        }
    }

    /// A passthrough value; its column type was inferred to fit it.
    pub(crate) fn append_json(&mut self, json: &Json) {
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

    pub(crate) fn append_value(&mut self, value: Option<&Value>) {
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

    pub(crate) fn append_null(&mut self) {
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

    pub(crate) fn finish(self) -> ArrayRef {
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
