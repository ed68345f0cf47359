//! A stored row of one feature view for one entity, decoded.

use prost::encoding::{
    check_wire_type, decode_key, double, encode_key, encode_varint, encoded_len_varint, float,
    int64, key_len, merge_loop, message, skip_field, string, uint32, uint64, DecodeContext,
    WireType,
};

use crate::error::Result;
use crate::proto;
use crate::time::Micros;
use crate::types::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    pub event_ts: Micros,
    pub created_ts: Micros,
    pub store_version: u64,
    /// Raw values by feature id (position in the view); derived features and
    /// features added after the row was written are `None`.
    pub values: Vec<Option<Value>>,
}

impl RawRow {
    /// Encodes the row as a `Row` message, byte for byte what prost writes
    /// for it, without building the message (no value is cloned).
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(32 + 16 * self.values.len());
        if self.event_ts != 0 {
            int64::encode(1, &self.event_ts, &mut buf);
        }
        if self.created_ts != 0 {
            int64::encode(2, &self.created_ts, &mut buf);
        }
        if self.store_version != 0 {
            uint64::encode(3, &self.store_version, &mut buf);
        }
        for (id, value) in self.values.iter().enumerate() {
            let Some(value) = value else { continue };
            let id = id as u32;
            let value_len = value_encoded_len(value);
            let id_len = if id == 0 {
                0
            } else {
                key_len(1) + encoded_len_varint(u64::from(id))
            };
            let field_len = id_len + key_len(2) + encoded_len_varint(value_len as u64) + value_len;
            encode_key(4, WireType::LengthDelimited, &mut buf);
            encode_varint(field_len as u64, &mut buf);
            if id != 0 {
                uint32::encode(1, &id, &mut buf);
            }
            encode_key(2, WireType::LengthDelimited, &mut buf);
            encode_varint(value_len as u64, &mut buf);
            encode_value(value, &mut buf);
        }
        buf
    }

    /// Decodes a stored row of a view that has `feature_count` features now.
    /// Fields of ids the view no longer has are dropped.
    ///
    /// Reads the `Row` message's wire format field by field, each value
    /// straight into its slot (the same result as decoding a `proto::Row`,
    /// without building its list of fields first: every read decodes rows).
    pub fn decode(bytes: &[u8], feature_count: usize) -> Result<Self> {
        let mut row = RawRow {
            event_ts: 0,
            created_ts: 0,
            store_version: 0,
            values: vec![None; feature_count],
        };
        let mut buf = bytes;
        let ctx = DecodeContext::default();
        while !buf.is_empty() {
            let (tag, wire_type) = decode_key(&mut buf)?;
            match tag {
                1 => int64::merge(wire_type, &mut row.event_ts, &mut buf, ctx.clone())?,
                2 => int64::merge(wire_type, &mut row.created_ts, &mut buf, ctx.clone())?,
                3 => uint64::merge(wire_type, &mut row.store_version, &mut buf, ctx.clone())?,
                4 => {
                    check_wire_type(WireType::LengthDelimited, wire_type)?;
                    let mut field: (u32, Option<proto::Value>) = (0, None);
                    merge_loop(
                        &mut field,
                        &mut buf,
                        ctx.clone(),
                        |(id, value), buf, ctx| {
                            let (tag, wire_type) = decode_key(buf)?;
                            match tag {
                                1 => uint32::merge(wire_type, id, buf, ctx),
                                2 => message::merge(
                                    wire_type,
                                    value.get_or_insert_with(Default::default),
                                    buf,
                                    ctx,
                                ),
                                _ => skip_field(wire_type, tag, buf, ctx),
                            }
                        },
                    )?;
                    if let (Some(slot), Some(value)) =
                        (row.values.get_mut(field.0 as usize), field.1)
                    {
                        *slot = value.into();
                    }
                }
                _ => skip_field(wire_type, tag, &mut buf, ctx.clone())?,
            }
        }
        Ok(row)
    }
}

/// The encoded length of a `Value` message holding `value` (its oneof
/// field is written even when it holds a default).
fn value_encoded_len(value: &Value) -> usize {
    match value {
        Value::Bool(_) => key_len(1) + 1,
        Value::Int64(v) => int64::encoded_len(2, v),
        Value::Float64(_) => key_len(3) + 8,
        Value::String(v) => string::encoded_len(4, v),
        Value::FloatVector(v) => {
            let len = float::encoded_len_packed(1, v);
            key_len(5) + encoded_len_varint(len as u64) + len
        }
        Value::StringList(v) => {
            let len = string::encoded_len_repeated(1, v);
            key_len(6) + encoded_len_varint(len as u64) + len
        }
    }
}

/// The fields of a `Value` message holding `value`.
fn encode_value(value: &Value, buf: &mut Vec<u8>) {
    match value {
        Value::Bool(v) => prost::encoding::bool::encode(1, v, buf),
        Value::Int64(v) => int64::encode(2, v, buf),
        Value::Float64(v) => double::encode(3, v, buf),
        Value::String(v) => string::encode(4, v, buf),
        Value::FloatVector(v) => {
            encode_key(5, WireType::LengthDelimited, buf);
            encode_varint(float::encoded_len_packed(1, v) as u64, buf);
            float::encode_packed(1, v, buf);
        }
        Value::StringList(v) => {
            encode_key(6, WireType::LengthDelimited, buf);
            encode_varint(string::encoded_len_repeated(1, v) as u64, buf);
            string::encode_repeated(1, v, buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn rows_written_before_a_view_grew_still_decode() {
        let row = RawRow {
            event_ts: 10,
            created_ts: 11,
            store_version: 3,
            values: vec![Some(Value::Int64(1)), None],
        };
        let bytes = row.encode();
        let grown = RawRow::decode(&bytes, 4).unwrap();
        assert_eq!(grown.values, vec![Some(Value::Int64(1)), None, None, None]);
        assert_eq!(
            (grown.event_ts, grown.created_ts, grown.store_version),
            (10, 11, 3)
        );
        assert_eq!(RawRow::decode(&bytes, 2).unwrap(), row);
    }

    /// The direct encoder writes what prost writes for the `Row` message:
    /// every value kind, defaults (zero times, feature id 0, empty values).
    #[test]
    fn encoding_directly_equals_encoding_the_message() {
        let via_message = |row: &RawRow| {
            proto::Row {
                event_ts_micros: row.event_ts,
                created_ts_micros: row.created_ts,
                store_version: row.store_version,
                fields: row
                    .values
                    .iter()
                    .enumerate()
                    .filter_map(|(id, value)| {
                        value.clone().map(|v| proto::Field {
                            feature_id: id as u32,
                            value: Some(v.into()),
                        })
                    })
                    .collect(),
            }
            .encode_to_vec()
        };
        let rows = [
            RawRow {
                event_ts: -5,
                created_ts: 1_700_000_000_000_000,
                store_version: u64::MAX,
                values: vec![
                    Some(Value::Bool(false)),
                    Some(Value::Int64(-7)),
                    None,
                    Some(Value::Float64(0.0)),
                    Some(Value::String(String::new())),
                    Some(Value::String("jazz é".into())),
                    Some(Value::FloatVector(vec![0.5, -1.0])),
                    Some(Value::FloatVector(Vec::new())),
                    Some(Value::StringList(vec!["a".into(), String::new()])),
                    Some(Value::StringList(Vec::new())),
                    Some(Value::Int64(i64::MIN)),
                    // Lengths that take more than one varint byte.
                    Some(Value::String("x".repeat(300))),
                    Some(Value::FloatVector((0..64).map(|i| i as f32).collect())),
                    Some(Value::StringList(vec!["y".repeat(200); 3])),
                ],
            },
            RawRow {
                event_ts: 0,
                created_ts: 0,
                store_version: 0,
                values: vec![None; 3],
            },
            RawRow {
                event_ts: 1,
                created_ts: 2,
                store_version: 3,
                values: (0..300).map(|i| Some(Value::Int64(i))).collect(),
            },
        ];
        for row in &rows {
            assert_eq!(row.encode(), via_message(row), "{row:?}");
            assert_eq!(
                &RawRow::decode(&row.encode(), row.values.len()).unwrap(),
                row
            );
        }
    }

    /// The field-by-field decoder reads what `proto::Row::decode` reads:
    /// every value kind, fields in any order, a value repeated (the last
    /// wins), unknown fields skipped; a truncated row is an error.
    #[test]
    fn decoding_field_by_field_equals_decoding_the_message() {
        let values = vec![
            Some(Value::Bool(true)),
            Some(Value::Int64(-7)),
            Some(Value::Float64(2.5)),
            Some(Value::String("jazz".into())),
            Some(Value::FloatVector(vec![0.5, -1.0])),
            Some(Value::StringList(vec!["a".into(), "b".into()])),
            None,
        ];
        let row = RawRow {
            event_ts: -5,
            created_ts: 1_700_000_000_000_000,
            store_version: u64::MAX,
            values,
        };
        let mut message = proto::Row::decode(row.encode().as_slice()).unwrap();
        message.fields.reverse();
        message.fields.push(proto::Field {
            feature_id: 1,
            value: Some(Value::Int64(9).into()),
        });
        message.fields.push(proto::Field {
            feature_id: 40,
            value: Some(Value::Int64(1).into()),
        });
        let mut bytes = message.encode_to_vec();
        // An unknown field (tag 9, varint) the decoder skips.
        bytes.extend_from_slice(&[9 << 3, 1]);
        let decoded = RawRow::decode(&bytes, 7).unwrap();
        let mut expected = row.clone();
        expected.values[1] = Some(Value::Int64(9));
        assert_eq!(decoded, expected);
        assert!(RawRow::decode(&bytes[..bytes.len() - 4], 7).is_err());
    }
}
