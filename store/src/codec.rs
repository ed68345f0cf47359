//! Typed key codecs. Every key the store writes is built and parsed here, so
//! the byte layout (and its sort order) is defined in one place.
//!
//! Layouts (all integers big-endian, so byte order = numeric order):
//! - entity key: for each join-key value, `u32 length ++ utf-8 bytes`
//! - history: `u32 view id ++ entity key ++ i64 event time (sign bit flipped)
//!   ++ u64 store version ++ u32 sequence in batch`
//! - online: `u32 view id ++ entity key`
//! - aggregation index: `u32 source view id ++ u8 entity mask ++ group
//!   entity key ++` the history tail (event time, store version, sequence)
//! - snapshots: `id ++ 0x00 ++ "meta"`, `id ++ 0x00 ++ "rows" ++ u32 chunk`
//!   and `id ++ 0x00 ++ "attachment/" ++ name`

use crate::error::{Result, StoreError};
use crate::time::Micros;

pub const META_STORE_VERSION: &[u8] = b"store_version";

/// Encodes the values of an entity's join keys.
pub fn entity_key<S: AsRef<str>>(keys: &[S]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.iter().map(|k| k.as_ref().len() + 4).sum());
    for key in keys {
        let key = key.as_ref().as_bytes();
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
    }
    out
}

/// Decodes an entity key back into join-key values.
pub fn decode_entity_key(mut bytes: &[u8]) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = split_u32(bytes)?;
        let len = len as usize;
        if rest.len() < len {
            return Err(StoreError::Corrupt("truncated entity key".into()));
        }
        let key =
            std::str::from_utf8(&rest[..len]).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        keys.push(key.to_owned());
        bytes = &rest[len..];
    }
    Ok(keys)
}

/// `view id ++ entity key`: the online key, and the prefix of history keys.
pub fn view_entity_prefix(view_id: u32, entity_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + entity_key.len() + 20);
    out.extend_from_slice(&view_id.to_be_bytes());
    out.extend_from_slice(entity_key);
    out
}

/// The view id a key of the history, online or aggregation index keyspace
/// starts with (`None` for a key shorter than one).
pub fn key_view_id(key: &[u8]) -> Option<u32> {
    key.get(..4)
        .map(|b| u32::from_be_bytes(b.try_into().expect("four bytes")))
}

/// The (source view id, entity mask) grouping an aggregation index key or
/// prefix belongs to.
pub fn agg_index_grouping(key: &[u8]) -> Option<(u32, u8)> {
    Some((key_view_id(key)?, *key.get(4)?))
}

/// `source view id ++ entity mask ++ group key`: the prefix of one group's
/// events in the aggregation index (`Cf::AggIndex`); the tail is a history
/// position, as in history keys. The mask says which of the source view's
/// entities (by position) the group key holds.
pub fn agg_index_prefix(source_view_id: u32, entity_mask: u8, group_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + group_key.len() + HistoryPosition::LEN);
    out.extend_from_slice(&source_view_id.to_be_bytes());
    out.push(entity_mask);
    out.extend_from_slice(group_key);
    out
}

/// Order-preserving encoding of a signed timestamp.
fn encode_ts(ts: Micros) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

fn decode_ts(bytes: [u8; 8]) -> Micros {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// The fixed-size tail of a history key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HistoryPosition {
    pub event_ts: Micros,
    pub store_version: u64,
    pub seq: u32,
}

impl HistoryPosition {
    pub const LEN: usize = 8 + 8 + 4;

    /// The greatest position at or before `event_ts`.
    pub fn last_at(event_ts: Micros) -> Self {
        HistoryPosition {
            event_ts,
            store_version: u64::MAX,
            seq: u32::MAX,
        }
    }
}

pub fn history_key(prefix: &[u8], pos: HistoryPosition) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + HistoryPosition::LEN);
    out.extend_from_slice(prefix);
    into_history_key(out, pos)
}

/// [`history_key`] built in `prefix`'s own allocation.
pub fn into_history_key(mut prefix: Vec<u8>, pos: HistoryPosition) -> Vec<u8> {
    prefix.extend_from_slice(&encode_ts(pos.event_ts));
    prefix.extend_from_slice(&pos.store_version.to_be_bytes());
    prefix.extend_from_slice(&pos.seq.to_be_bytes());
    prefix
}

/// The prefix of a history key (`view id ++ entity key` in the history, a
/// group prefix in the aggregation index): all but its position.
pub fn history_key_prefix(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(HistoryPosition::LEN)]
}

/// Parses the position out of a history key that starts with `prefix`.
/// `None` when the key belongs to another (view, entity).
pub fn history_position(prefix: &[u8], key: &[u8]) -> Option<HistoryPosition> {
    let tail = key.strip_prefix(prefix)?;
    if tail.len() != HistoryPosition::LEN {
        return None;
    }
    Some(HistoryPosition {
        event_ts: decode_ts(tail[0..8].try_into().ok()?),
        store_version: u64::from_be_bytes(tail[8..16].try_into().ok()?),
        seq: u32::from_be_bytes(tail[16..20].try_into().ok()?),
    })
}

/// Every key of one snapshot starts with this.
pub fn snapshot_prefix(id: &str) -> Vec<u8> {
    [id.as_bytes(), b"\0"].concat()
}

pub fn snapshot_meta_key(id: &str) -> Vec<u8> {
    [id.as_bytes(), b"\0meta"].concat()
}

pub fn snapshot_chunk_key(id: &str, chunk: u32) -> Vec<u8> {
    [id.as_bytes(), b"\0rows", &chunk.to_be_bytes()].concat()
}

pub fn snapshot_attachment_key(id: &str, name: &str) -> Vec<u8> {
    [id.as_bytes(), b"\0attachment/", name.as_bytes()].concat()
}

/// Meta key of a model kind's version counter.
pub fn model_counter_key(kind: &str) -> Vec<u8> {
    [b"model_seq/".as_slice(), kind.as_bytes()].concat()
}

/// Meta keys of each model kind's serving pointer.
pub const SERVING_MODEL_PREFIX: &[u8] = b"serving_model/";
/// Meta keys of each model kind's promotion history.
pub const SERVING_HISTORY_PREFIX: &[u8] = b"serving_history/";

/// The Meta key of the experiment routing traffic, if any.
pub const ACTIVE_EXPERIMENT_KEY: &[u8] = b"serving_experiment";

pub fn serving_model_key(kind: &str) -> Vec<u8> {
    [SERVING_MODEL_PREFIX, kind.as_bytes()].concat()
}

pub fn serving_history_key(kind: &str) -> Vec<u8> {
    [SERVING_HISTORY_PREFIX, kind.as_bytes()].concat()
}

pub fn migration_key(file_name: &str) -> Vec<u8> {
    file_name.as_bytes().to_vec()
}

pub fn decode_u64(bytes: &[u8]) -> Result<u64> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("expected 8 bytes, found {}", bytes.len())))?;
    Ok(u64::from_be_bytes(array))
}

fn split_u32(bytes: &[u8]) -> Result<(u32, &[u8])> {
    if bytes.len() < 4 {
        return Err(StoreError::Corrupt("truncated length prefix".into()));
    }
    let (head, rest) = bytes.split_at(4);
    Ok((u32::from_be_bytes(head.try_into().expect("4 bytes")), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn entity_keys_round_trip(keys in proptest::collection::vec(".*", 1..4)) {
            prop_assert_eq!(decode_entity_key(&entity_key(&keys)).unwrap(), keys);
        }

        #[test]
        fn history_keys_sort_like_their_positions(
            a in (any::<i64>(), any::<u64>(), any::<u32>()),
            b in (any::<i64>(), any::<u64>(), any::<u32>()),
        ) {
            let prefix = view_entity_prefix(7, &entity_key(&["u1"]));
            let pa = HistoryPosition { event_ts: a.0, store_version: a.1, seq: a.2 };
            let pb = HistoryPosition { event_ts: b.0, store_version: b.1, seq: b.2 };
            let (ka, kb) = (history_key(&prefix, pa), history_key(&prefix, pb));
            prop_assert_eq!(ka.cmp(&kb), pa.cmp(&pb));
            prop_assert_eq!(history_position(&prefix, &ka), Some(pa));
        }
    }

    #[test]
    fn one_entitys_prefix_never_covers_another() {
        // "u1" must not be a prefix-match for "u10": lengths are encoded.
        let p1 = view_entity_prefix(1, &entity_key(&["u1"]));
        let p10 = view_entity_prefix(1, &entity_key(&["u10"]));
        let key = history_key(&p10, HistoryPosition::last_at(0));
        assert_eq!(history_position(&p1, &key), None);
    }
}
