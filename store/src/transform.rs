//! Declared feature transforms: the one implementation used by online reads,
//! offline snapshots and (later) the served-feature log. Nothing else in the
//! code base computes a derived feature.

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::definitions::TransformDef;
use crate::time::{Micros, MICROS_PER_SECOND};
use crate::types::{FeatureType, Value};

/// Where a transform reads its input from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// An earlier feature of the same view, by position.
    Feature(usize),
    /// The row's own event timestamp.
    EventTimestamp,
}

/// The operation of a compiled transform.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Scale { factor: f64, offset: f64 },
    Log1p,
    Clip { min: f64, max: f64 },
    Bucketize { boundaries: Vec<f64> },
    HourOfDay,
    DayOfWeek,
    HashBucket { buckets: u64 },
    OneHot { vocabulary: Vec<String> },
    Default { value: Value },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    pub input: Input,
    pub op: Op,
}

/// The name a transform uses for the row's event time.
pub const EVENT_TIMESTAMP: &str = "event_timestamp";

impl Transform {
    /// Compiles a declared transform whose input has type `input_type`
    /// (`None` for the event timestamp) and checks the output type.
    pub fn compile(
        def: &TransformDef,
        input: Input,
        input_type: Option<FeatureType>,
        declared: FeatureType,
    ) -> Result<Self, String> {
        let numeric = |what: &str| match input_type {
            Some(t) if t.is_numeric() => Ok(()),
            other => Err(format!(
                "{what} needs an int64 or float64 input, not {}",
                type_name(other)
            )),
        };
        let (op, output) = match def {
            TransformDef::Scale { factor, offset, .. } => {
                numeric("scale")?;
                (
                    Op::Scale {
                        factor: *factor,
                        offset: *offset,
                    },
                    FeatureType::Float64,
                )
            }
            TransformDef::Log1p { .. } => {
                numeric("log1p")?;
                (Op::Log1p, FeatureType::Float64)
            }
            TransformDef::Clip { min, max, .. } => {
                numeric("clip")?;
                let (min, max) = (
                    min.unwrap_or(f64::NEG_INFINITY),
                    max.unwrap_or(f64::INFINITY),
                );
                if min > max {
                    return Err(format!("clip min {min} is above max {max}"));
                }
                (Op::Clip { min, max }, FeatureType::Float64)
            }
            TransformDef::Bucketize { boundaries, .. } => {
                numeric("bucketize")?;
                if boundaries.windows(2).any(|w| w[0] >= w[1])
                    || boundaries.iter().any(|b| b.is_nan())
                {
                    return Err("bucketize boundaries must be strictly increasing".into());
                }
                (
                    Op::Bucketize {
                        boundaries: boundaries.clone(),
                    },
                    FeatureType::Int64,
                )
            }
            TransformDef::HourOfDay { .. } | TransformDef::DayOfWeek { .. } => {
                if !matches!(input_type, None | Some(FeatureType::Int64)) {
                    return Err(format!(
                        "{} needs `{EVENT_TIMESTAMP}` or an int64 of Unix seconds, not {}",
                        def.kind(),
                        type_name(input_type)
                    ));
                }
                let op = if matches!(def, TransformDef::HourOfDay { .. }) {
                    Op::HourOfDay
                } else {
                    Op::DayOfWeek
                };
                (op, FeatureType::Int64)
            }
            TransformDef::HashBucket { buckets, .. } => {
                if !matches!(input_type, Some(FeatureType::String | FeatureType::Int64)) {
                    return Err(format!(
                        "hash_bucket needs a string or int64 input, not {}",
                        type_name(input_type)
                    ));
                }
                if *buckets == 0 {
                    return Err("hash_bucket needs buckets >= 1".into());
                }
                (Op::HashBucket { buckets: *buckets }, FeatureType::Int64)
            }
            TransformDef::OneHot { vocabulary, .. } => {
                if input_type != Some(FeatureType::String) {
                    return Err(format!(
                        "one_hot needs a string input, not {}",
                        type_name(input_type)
                    ));
                }
                (
                    Op::OneHot {
                        vocabulary: vocabulary.clone(),
                    },
                    FeatureType::FloatVector,
                )
            }
            TransformDef::Default { value, .. } => {
                let ty = input_type.ok_or("default needs a feature as input")?;
                let value = Value::from_json(value, ty, None)
                    .map_err(|got| format!("default value must be {ty}, got {got}"))?
                    .ok_or("default value must not be null")?;
                (Op::Default { value }, ty)
            }
        };
        if matches!(input, Input::EventTimestamp) && !matches!(op, Op::HourOfDay | Op::DayOfWeek) {
            return Err(format!(
                "`{EVENT_TIMESTAMP}` can only feed hour_of_day or day_of_week"
            ));
        }
        if output != declared {
            return Err(format!(
                "a {} transform produces {output}, but the feature is declared {declared}",
                def.kind()
            ));
        }
        Ok(Transform { input, op })
    }

    /// Applies the transform. `input` is the input feature's value (ignored
    /// for `Input::EventTimestamp`); `event_ts` is the row's event time.
    pub fn apply(&self, input: Option<&Value>, event_ts: Micros) -> Option<Value> {
        let timestamp = match self.input {
            Input::EventTimestamp => Some(event_ts),
            Input::Feature(_) => match input {
                Some(Value::Int64(seconds)) => seconds.checked_mul(MICROS_PER_SECOND),
                _ => None,
            },
        };
        match &self.op {
            Op::Scale { factor, offset } => finite(input?.as_f64()? * factor + offset),
            Op::Log1p => {
                let x = input?.as_f64()?;
                if x <= -1.0 {
                    None
                } else {
                    finite(x.ln_1p())
                }
            }
            Op::Clip { min, max } => finite(input?.as_f64()?.clamp(*min, *max)),
            Op::Bucketize { boundaries } => {
                let x = input?.as_f64()?;
                if x.is_nan() {
                    return None;
                }
                Some(Value::Int64(boundaries.partition_point(|b| *b <= x) as i64))
            }
            Op::HourOfDay => Some(Value::Int64(i64::from(utc(timestamp?)?.hour()))),
            Op::DayOfWeek => Some(Value::Int64(i64::from(
                utc(timestamp?)?.weekday().num_days_from_monday(),
            ))),
            Op::HashBucket { buckets } => {
                let hash = match input? {
                    Value::String(s) => xxhash_rust::xxh3::xxh3_64(s.as_bytes()),
                    Value::Int64(v) => xxhash_rust::xxh3::xxh3_64(v.to_string().as_bytes()),
                    _ => return None,
                };
                Some(Value::Int64((hash % buckets) as i64))
            }
            Op::OneHot { vocabulary } => {
                let Value::String(s) = input? else {
                    return None;
                };
                Some(Value::FloatVector(
                    vocabulary
                        .iter()
                        .map(|v| if v == s { 1.0 } else { 0.0 })
                        .collect(),
                ))
            }
            Op::Default { value } => Some(input.cloned().unwrap_or_else(|| value.clone())),
        }
    }
}

fn finite(x: f64) -> Option<Value> {
    x.is_finite().then_some(Value::Float64(x))
}

fn utc(micros: Micros) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(micros)
}

fn type_name(ty: Option<FeatureType>) -> &'static str {
    ty.map_or(EVENT_TIMESTAMP, FeatureType::name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;
    use serde_json::json;

    fn compile(def: TransformDef, input_type: FeatureType, declared: FeatureType) -> Transform {
        Transform::compile(&def, Input::Feature(0), Some(input_type), declared).unwrap()
    }

    #[test]
    fn numeric_transforms() {
        let t = compile(
            TransformDef::Scale {
                input: "x".into(),
                factor: 2.0,
                offset: 1.0,
            },
            FeatureType::Int64,
            FeatureType::Float64,
        );
        assert_eq!(
            t.apply(Some(&Value::Int64(3)), 0),
            Some(Value::Float64(7.0))
        );
        assert_eq!(t.apply(None, 0), None);

        let t = compile(
            TransformDef::Log1p { input: "x".into() },
            FeatureType::Float64,
            FeatureType::Float64,
        );
        assert_eq!(
            t.apply(Some(&Value::Float64(0.0)), 0),
            Some(Value::Float64(0.0))
        );
        assert_eq!(t.apply(Some(&Value::Float64(-1.0)), 0), None);

        let t = compile(
            TransformDef::Clip {
                input: "x".into(),
                min: Some(0.0),
                max: Some(10.0),
            },
            FeatureType::Int64,
            FeatureType::Float64,
        );
        assert_eq!(
            t.apply(Some(&Value::Int64(42)), 0),
            Some(Value::Float64(10.0))
        );
        assert_eq!(
            t.apply(Some(&Value::Int64(-5)), 0),
            Some(Value::Float64(0.0))
        );

        let t = compile(
            TransformDef::Bucketize {
                input: "x".into(),
                boundaries: vec![1.0, 10.0, 100.0],
            },
            FeatureType::Float64,
            FeatureType::Int64,
        );
        let buckets: Vec<_> = [0.5, 1.0, 9.9, 10.0, 1e6]
            .iter()
            .map(|x| t.apply(Some(&Value::Float64(*x)), 0))
            .collect();
        assert_eq!(buckets, [0, 1, 1, 2, 3].map(|b| Some(Value::Int64(b))));
    }

    #[test]
    fn calendar_transforms_read_the_event_timestamp_or_unix_seconds() {
        // 2026-01-01 is a Thursday.
        let ts = parse_rfc3339("2026-01-01T17:30:00Z").unwrap();
        let hour = Transform::compile(
            &TransformDef::HourOfDay {
                input: EVENT_TIMESTAMP.into(),
            },
            Input::EventTimestamp,
            None,
            FeatureType::Int64,
        )
        .unwrap();
        assert_eq!(hour.apply(None, ts), Some(Value::Int64(17)));
        let day = compile(
            TransformDef::DayOfWeek { input: "t".into() },
            FeatureType::Int64,
            FeatureType::Int64,
        );
        assert_eq!(
            day.apply(Some(&Value::Int64(ts / MICROS_PER_SECOND)), 0),
            Some(Value::Int64(3))
        );
    }

    #[test]
    fn categorical_transforms() {
        let t = compile(
            TransformDef::HashBucket {
                input: "x".into(),
                buckets: 8,
            },
            FeatureType::String,
            FeatureType::Int64,
        );
        let a = t.apply(Some(&Value::String("jazz".into())), 0);
        assert_eq!(a, t.apply(Some(&Value::String("jazz".into())), 0));
        assert!(matches!(a, Some(Value::Int64(b)) if (0..8).contains(&b)));

        let t = compile(
            TransformDef::OneHot {
                input: "x".into(),
                vocabulary: vec!["a".into(), "b".into()],
            },
            FeatureType::String,
            FeatureType::FloatVector,
        );
        assert_eq!(
            t.apply(Some(&Value::String("b".into())), 0),
            Some(Value::FloatVector(vec![0.0, 1.0]))
        );
        assert_eq!(
            t.apply(Some(&Value::String("z".into())), 0),
            Some(Value::FloatVector(vec![0.0, 0.0]))
        );

        let t = compile(
            TransformDef::Default {
                input: "x".into(),
                value: json!(7),
            },
            FeatureType::Int64,
            FeatureType::Int64,
        );
        assert_eq!(t.apply(None, 0), Some(Value::Int64(7)));
        assert_eq!(t.apply(Some(&Value::Int64(1)), 0), Some(Value::Int64(1)));
    }

    #[test]
    fn type_errors_are_reported_at_definition_time() {
        let err = Transform::compile(
            &TransformDef::Log1p { input: "x".into() },
            Input::Feature(0),
            Some(FeatureType::String),
            FeatureType::Float64,
        )
        .unwrap_err();
        assert!(
            err.contains("log1p needs an int64 or float64 input"),
            "{err}"
        );
        let err = Transform::compile(
            &TransformDef::Log1p { input: "x".into() },
            Input::Feature(0),
            Some(FeatureType::Int64),
            FeatureType::Int64,
        )
        .unwrap_err();
        assert!(err.contains("produces float64"), "{err}");
    }
}
