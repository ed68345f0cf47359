//! A stored row of one feature view for one entity, decoded.

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
    pub fn decode(bytes: &[u8], feature_count: usize) -> Result<Self> {
        let row = proto::Row::decode(bytes)?;
        let mut values = vec![None; feature_count];
        for field in row.fields {
            if let (Some(slot), Some(value)) =
                (values.get_mut(field.feature_id as usize), field.value)
            {
                *slot = value.into();
            }
        }
        Ok(RawRow {
            event_ts: row.event_ts_micros,
            created_ts: row.created_ts_micros,
            store_version: row.store_version,
            values,
        })
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
}
