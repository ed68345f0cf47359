//! The point-in-time lookup, one (view, entity, time) at a time.

use super::Cutoff;
use crate::codec::{self, HistoryPosition};
use crate::engine::ReverseCursor;
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
    cursor: &mut dyn ReverseCursor,
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
