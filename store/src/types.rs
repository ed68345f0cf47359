//! Feature types and values, and their JSON form on the wire.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::proto;

/// The declared type of a feature (CONTRACT.md "Concepts").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureType {
    Bool,
    Int64,
    Float64,
    String,
    FloatVector,
    StringList,
}

impl FeatureType {
    pub fn name(self) -> &'static str {
        match self {
            FeatureType::Bool => "bool",
            FeatureType::Int64 => "int64",
            FeatureType::Float64 => "float64",
            FeatureType::String => "string",
            FeatureType::FloatVector => "float_vector",
            FeatureType::StringList => "string_list",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "bool" => FeatureType::Bool,
            "int64" => FeatureType::Int64,
            "float64" => FeatureType::Float64,
            "string" => FeatureType::String,
            "float_vector" => FeatureType::FloatVector,
            "string_list" => FeatureType::StringList,
            _ => return None,
        })
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, FeatureType::Int64 | FeatureType::Float64)
    }
}

impl std::fmt::Display for FeatureType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A feature value. `None` (null) is represented outside this type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int64(i64),
    Float64(f64),
    String(String),
    FloatVector(Vec<f32>),
    StringList(Vec<String>),
}

impl Value {
    pub fn feature_type(&self) -> FeatureType {
        match self {
            Value::Bool(_) => FeatureType::Bool,
            Value::Int64(_) => FeatureType::Int64,
            Value::Float64(_) => FeatureType::Float64,
            Value::String(_) => FeatureType::String,
            Value::FloatVector(_) => FeatureType::FloatVector,
            Value::StringList(_) => FeatureType::StringList,
        }
    }

    /// Numeric view of an int64 or float64 value.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int64(v) => Some(*v as f64),
            Value::Float64(v) => Some(*v),
            _ => None,
        }
    }

    /// Converts a JSON value to a value of type `ty`. `Ok(None)` for JSON null;
    /// `Err(description of what was found)` when the JSON does not fit the type.
    /// `dim` is the required length of a `float_vector`, when declared.
    pub fn from_json(
        json: &Json,
        ty: FeatureType,
        dim: Option<usize>,
    ) -> Result<Option<Value>, String> {
        if json.is_null() {
            return Ok(None);
        }
        let value = match (ty, json) {
            (FeatureType::Bool, Json::Bool(b)) => Value::Bool(*b),
            (FeatureType::Int64, Json::Number(n)) => match n.as_i64() {
                Some(v) => Value::Int64(v),
                None => return Err(format!("non-integer number {n}")),
            },
            (FeatureType::Float64, Json::Number(n)) => match n.as_f64() {
                Some(v) if v.is_finite() => Value::Float64(v),
                _ => return Err(format!("number {n} out of range (non-finite)")),
            },
            (FeatureType::String, Json::String(s)) => Value::String(s.clone()),
            (FeatureType::FloatVector, Json::Array(items)) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    match item.as_f64() {
                        // Stored as f32: what overflows it would be infinity.
                        Some(v) if (v as f32).is_finite() => values.push(v as f32),
                        Some(v) => {
                            return Err(format!(
                                "vector item {v} out of the 32-bit float range (non-finite)"
                            ))
                        }
                        None => return Err(format!("array holding {}", json_kind(item))),
                    }
                }
                if let Some(dim) = dim {
                    if values.len() != dim {
                        return Err(format!(
                            "vector of dimension {} (declared {dim})",
                            values.len()
                        ));
                    }
                }
                Value::FloatVector(values)
            }
            (FeatureType::StringList, Json::Array(items)) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    match item.as_str() {
                        Some(s) => values.push(s.to_owned()),
                        None => return Err(format!("array holding {}", json_kind(item))),
                    }
                }
                Value::StringList(values)
            }
            (_, other) => return Err(json_kind(other).to_owned()),
        };
        Ok(Some(value))
    }
}

/// The wire form: plain JSON; `f32` vector items keep their shortest form
/// (`0.1`, not `0.10000000149011612`); a non-finite float is `null`.
impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int64(v) => serializer.serialize_i64(*v),
            Value::Float64(v) => serializer.serialize_f64(*v),
            Value::String(s) => serializer.serialize_str(s),
            Value::FloatVector(v) => v.serialize(serializer),
            Value::StringList(v) => v.serialize(serializer),
        }
    }
}

/// A short description of a JSON value's kind, for error messages.
pub fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

impl From<Value> for proto::Value {
    fn from(value: Value) -> Self {
        use proto::value::Kind;
        let kind = match value {
            Value::Bool(b) => Kind::BoolValue(b),
            Value::Int64(v) => Kind::Int64Value(v),
            Value::Float64(v) => Kind::Float64Value(v),
            Value::String(s) => Kind::StringValue(s),
            Value::FloatVector(values) => Kind::FloatVectorValue(proto::FloatVector { values }),
            Value::StringList(values) => Kind::StringListValue(proto::StringList { values }),
        };
        proto::Value { kind: Some(kind) }
    }
}

impl From<proto::Value> for Option<Value> {
    fn from(value: proto::Value) -> Self {
        use proto::value::Kind;
        Some(match value.kind? {
            Kind::BoolValue(b) => Value::Bool(b),
            Kind::Int64Value(v) => Value::Int64(v),
            Kind::Float64Value(v) => Value::Float64(v),
            Kind::StringValue(s) => Value::String(s),
            Kind::FloatVectorValue(v) => Value::FloatVector(v.values),
            Kind::StringListValue(v) => Value::StringList(v.values),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_values_are_checked_against_the_declared_type() {
        assert_eq!(
            Value::from_json(&json!(12), FeatureType::Int64, None),
            Ok(Some(Value::Int64(12)))
        );
        assert_eq!(
            Value::from_json(&json!(12), FeatureType::Float64, None),
            Ok(Some(Value::Float64(12.0)))
        );
        assert_eq!(
            Value::from_json(&json!(null), FeatureType::Int64, None),
            Ok(None)
        );
        assert_eq!(
            Value::from_json(&json!(1.5), FeatureType::Int64, None),
            Err("non-integer number 1.5".to_owned())
        );
        assert_eq!(
            Value::from_json(&json!("x"), FeatureType::Int64, None),
            Err("a string".to_owned())
        );
        assert_eq!(
            Value::from_json(&json!([1, 2]), FeatureType::FloatVector, Some(3)),
            Err("vector of dimension 2 (declared 3)".to_owned())
        );
        assert_eq!(
            Value::from_json(&json!(["a", 1]), FeatureType::StringList, None),
            Err("array holding an integer".to_owned())
        );
        // Nothing non-finite is stored: 1e39 overflows a 32-bit float.
        let overflow: Json = serde_json::from_str("[1.0, 1e39]").unwrap();
        let err = Value::from_json(&overflow, FeatureType::FloatVector, None).unwrap_err();
        assert!(err.contains("non-finite"), "{err}");
        assert!(Value::from_json(&json!([3.0e38]), FeatureType::FloatVector, None).is_ok());
    }

    #[test]
    fn values_round_trip_through_proto() {
        let values = [
            Value::Bool(true),
            Value::Int64(-3),
            Value::Float64(0.25),
            Value::String("jazz".into()),
            Value::FloatVector(vec![0.1, -2.0]),
            Value::StringList(vec!["a".into(), "b".into()]),
        ];
        for value in values {
            let encoded: proto::Value = value.clone().into();
            let decoded: Option<Value> = encoded.into();
            assert_eq!(decoded, Some(value));
        }
    }

    #[test]
    fn float_vectors_print_in_shortest_form() {
        let text = serde_json::to_string(&Value::FloatVector(vec![0.1, 2.5])).unwrap();
        assert_eq!(text, "[0.1,2.5]");
    }
}
