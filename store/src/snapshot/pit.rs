//! Point-in-time lookups: one (view, entity, time) at a time by a backwards
//! seek ([`point_in_time`]), and many at once by a forward merge over entity
//! rows sorted by key and time ([`merge_point_in_time`]). Both give the same
//! answer (`store/tests/integration/snapshot_merge.rs` checks it).

use super::Cutoff;
use crate::codec::{self, HistoryPosition};
use crate::engine::Cursor;
use crate::error::Result;
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
    let prefix = codec::view_entity_prefix(view.id, entity_key);
    cursor.seek_for_prev(&codec::history_key(&prefix, HistoryPosition::last_at(at)));
    while let Some((key, value)) = cursor.entry() {
        let Some(position) = codec::history_position(&prefix, key) else {
            break;
        };
        if !view.within_ttl(position.event_ts, at) {
            break;
        }
        if position.store_version <= max_version {
            let row = RawRow::decode(value, view.features.len())?;
            if cutoff == Cutoff::Event || row.created_ts <= at {
                return Ok(Some(row));
            }
        }
        cursor.prev();
    }
    Ok(None)
}

/// One lookup of a merge: an entity key (as [`codec::entity_key`] encodes
/// it) at a time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
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
/// when it is far) and answer all of that entity's lookups. Answers are in
/// the order of `queries`.
pub fn merge_point_in_time(
    cursor: &mut dyn Cursor,
    view: &FeatureView,
    queries: &[PitQuery],
    max_version: u64,
    cutoff: Cutoff,
) -> Result<Vec<Option<RawRow>>> {
    debug_assert!(queries.windows(2).all(|w| w[0] <= w[1]), "sorted queries");
    let features = view.features.len();
    let mut answers = Vec::with_capacity(queries.len());
    let mut buffered: Vec<(HistoryPosition, Vec<u8>)> = Vec::new();
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
                buffered.push((position, value.to_vec()));
            }
            cursor.next();
        }
        if overflow {
            for query in group {
                answers.push(point_in_time(
                    cursor,
                    view,
                    entity_key,
                    query.at,
                    max_version,
                    cutoff,
                )?);
            }
            must_seek = true;
        } else {
            for query in group {
                answers.push(latest_visible(&buffered, view, features, query.at, cutoff)?);
            }
        }
        start = end;
    }
    cursor.status()?;
    Ok(answers)
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

/// The answer of [`point_in_time`] at `at` among one entity's buffered rows
/// (version-filtered, oldest first).
fn latest_visible(
    buffered: &[(HistoryPosition, Vec<u8>)],
    view: &FeatureView,
    features: usize,
    at: Micros,
    cutoff: Cutoff,
) -> Result<Option<RawRow>> {
    let upto = buffered.partition_point(|(position, _)| position.event_ts <= at);
    for (position, bytes) in buffered[..upto].iter().rev() {
        if !view.within_ttl(position.event_ts, at) {
            break;
        }
        let row = RawRow::decode(bytes, features)?;
        if cutoff == Cutoff::Event || row.created_ts <= at {
            return Ok(Some(row));
        }
    }
    Ok(None)
}
