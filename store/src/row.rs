//! A stored row of one feature view for one entity, decoded.

use prost::encoding::{
    check_wire_type, decode_key, int64, merge_loop, message, skip_field, uint32, uint64,
    DecodeContext, WireType,
};
use prost::Message;

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
    pub fn encode(&self) -> Vec<u8> {
        let fields = self
            .values
            .iter()
            .enumerate()
            .filter_map(|(id, value)| {
                value.clone().map(|v| proto::Field {
                    feature_id: id as u32,
                    value: Some(v.into()),
                })
            })
            .collect();
        proto::Row {
            event_ts_micros: self.event_ts,
            created_ts_micros: self.created_ts,
            store_version: self.store_version,
            fields,
        }
        .encode_to_vec()
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

#[cfg(test)]
mod tests {
    use super::*;

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
