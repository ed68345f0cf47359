//! Point-in-time lookups: one (view, entity, time) at a time by a backwards
//! seek ([`point_in_time`]), and many at once by a forward merge over entity
//! rows sorted by key and time ([`merge_point_in_time`]). Both give the same
//! answer (`store/tests/integration/snapshot_merge.rs` checks it).

use prost::Message;

use super::Cutoff;
use crate::codec::{self, HistoryPosition};
use crate::engine::Cursor;
use crate::error::Result;
use crate::proto;
use crate::registry::FeatureView;
use crate::row::RawRow;
use crate::time::Micros;

/// The row of `view` for `entity_key` with the greatest event time `<= at`,
/// inside the TTL, at store version `<= max_version` and (with
/// [`Cutoff::Created`]) created at or before `at`. Ties on event time go to
/// the newest write, which is the greatest key: keys sort by (event time,
/// store version, sequence), and the walk goes backwards.
pub fn point_in_time(
    cursor: &mut dyn Cursor,
    view: &FeatureView,
    entity_key: &[u8],
    at: Micros,
    max_version: u64,
    cutoff: Cutoff,
) -> Result<Option<RawRow>> {
    if !seek_visible(cursor, view, entity_key, at, max_version, cutoff)? {
        return Ok(None);
    }
    let (_, value) = cursor.entry().expect("seek_visible stopped on an entry");
    Ok(Some(RawRow::decode(value, view.features.len())?))
}

/// Moves `cursor` to the stored row [`point_in_time`] answers with; `false`
/// when there is none.
fn seek_visible(
    cursor: &mut dyn Cursor,
    view: &FeatureView,
    entity_key: &[u8],
    at: Micros,
    max_version: u64,
    cutoff: Cutoff,
) -> Result<bool> {
    let prefix = codec::view_entity_prefix(view.id, entity_key);
    cursor.seek_for_prev(&codec::history_key(&prefix, HistoryPosition::last_at(at)));
    while let Some((key, value)) = cursor.entry() {
        let Some(position) = codec::history_position(&prefix, key) else {
            break;
        };
        if !view.within_ttl(position.event_ts, at) {
            break;
        }
        if position.store_version <= max_version && known_at(value, at, cutoff)? {
            return Ok(true);
        }
        cursor.prev();
    }
    Ok(false)
}

/// Whether a stored row counts as known at `at` under `cutoff`: with
/// [`Cutoff::Created`], only when it was written at or before `at` (read
/// from the row's times alone, its values left encoded).
fn known_at(row: &[u8], at: Micros, cutoff: Cutoff) -> Result<bool> {
    Ok(match cutoff {
        Cutoff::Event => true,
        Cutoff::Created => proto::RowTimes::decode(row)?.created_ts_micros <= at,
    })
}

/// One lookup of a merge: an entity key (as [`codec::entity_key`] encodes
/// it) at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PitQuery {
    pub entity_key: Vec<u8>,
    pub at: Micros,
}

/// How far a merge walks forwards before it seeks instead: a `next` costs a
/// few dozen nanoseconds, a seek a microsecond or more.
const MAX_STEPS: usize = 32;

/// The history rows one entity's lookups can see, buffered; beyond this an
/// entity's lookups fall back to one backwards seek each.
const MAX_BUFFERED: usize = 65_536;

/// [`point_in_time`] for many lookups sorted by (entity key, time), by one
/// forward pass over the view's history in key order: each entity's rows
/// are read once (stepping forward when the next entity is near, seeking
/// when it is far) and answer all of that entity's lookups. `answer` gets
/// each lookup's stored row (still encoded), in the order of `queries`.
pub fn merge_point_in_time(
    cursor: &mut dyn Cursor,
    view: &FeatureView,
    queries: &[PitQuery],
    max_version: u64,
    cutoff: Cutoff,
    mut answer: impl FnMut(Option<&[u8]>),
) -> Result<()> {
    debug_assert!(queries.windows(2).all(|w| w[0] <= w[1]), "sorted queries");
    // One entity's rows: (position, where its bytes sit in `bytes`).
    let mut buffered: Vec<(HistoryPosition, std::ops::Range<usize>)> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut must_seek = true;
    let mut start = 0;
    while start < queries.len() {
        let entity_key = &queries[start].entity_key;
        let end = queries[start..]
            .iter()
            .position(|q| &q.entity_key != entity_key)
            .map_or(queries.len(), |n| start + n);
        let group = &queries[start..end];
        let (earliest, latest) = (group[0].at, group[group.len() - 1].at);
        let prefix = codec::view_entity_prefix(view.id, entity_key);
        position_at(cursor, &prefix, must_seek);
        must_seek = false;
        buffered.clear();
        bytes.clear();
        let mut overflow = false;
        while let Some((key, value)) = cursor.entry() {
            let Some(position) = codec::history_position(&prefix, key) else {
                break;
            };
            if position.event_ts > latest {
                break;
            }
            // A row already outside the TTL at the earliest lookup is
            // outside it for every later one.
            let expired =
                position.event_ts <= earliest && !view.within_ttl(position.event_ts, earliest);
            if position.store_version <= max_version && !expired {
                if buffered.len() == MAX_BUFFERED {
                    overflow = true;
                    break;
                }
                buffered.push((position, bytes.len()..bytes.len() + value.len()));
                bytes.extend_from_slice(value);
            }
            cursor.next();
        }
        if overflow {
            for query in group {
                if seek_visible(cursor, view, entity_key, query.at, max_version, cutoff)? {
                    answer(cursor.entry().map(|(_, value)| value));
                } else {
                    answer(None);
                }
            }
            must_seek = true;
        } else {
            for query in group {
                let visible = latest_visible(&buffered, &bytes, view, query.at, cutoff)?;
                answer(visible.map(|range| &bytes[range]));
            }
        }
        start = end;
    }
    cursor.status()?;
    Ok(())
}

/// Moves a forward cursor to the first key `>= prefix`: a few steps when
/// that is near (the merge's usual case), a seek otherwise.
fn position_at(cursor: &mut dyn Cursor, prefix: &[u8], must_seek: bool) {
    if !must_seek {
        for _ in 0..MAX_STEPS {
            match cursor.entry() {
                None => return,
                Some((key, _)) if key >= prefix => return,
                Some(_) => cursor.next(),
            }
        }
    }
    cursor.seek(prefix);
}

/// Where the answer of [`point_in_time`] at `at` sits among one entity's
/// buffered rows (version-filtered, oldest first).
fn latest_visible(
    buffered: &[(HistoryPosition, std::ops::Range<usize>)],
    bytes: &[u8],
    view: &FeatureView,
    at: Micros,
    cutoff: Cutoff,
) -> Result<Option<std::ops::Range<usize>>> {
    let upto = buffered.partition_point(|(position, _)| position.event_ts <= at);
    for (position, range) in buffered[..upto].iter().rev() {
        if !view.within_ttl(position.event_ts, at) {
            break;
        }
        if known_at(&bytes[range.clone()], at, cutoff)? {
            return Ok(Some(range.clone()));
        }
    }
    Ok(None)
}
