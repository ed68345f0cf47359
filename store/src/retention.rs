//! Retention: how long a view's history is kept. Expired rows are dropped
//! by the storage engine's compactions (a RocksDB compaction filter), so
//! dropping them costs no extra pass and no delete markers; until then they
//! are still on disk. Online rows (the latest per key) are never dropped by
//! retention: their TTL decides what an online read returns.
//!
//! What a user can rely on, with `retention = R` on a view and the store's
//! clock at `now` (the horizon is `now - R`):
//! - every row with an event time after the horizon is kept; the latest row
//!   of a key stays readable online until its TTL, and is forgotten (online
//!   too) once the key has not been written for the retention;
//! - a snapshot whose lookups could reach before the horizon is refused
//!   with a clear error (lookups of an entity row at `t` reach back to
//!   `t - ttl` for a view with a TTL, to `t - the widest window` for an
//!   aggregation of an events view, and to `t` for a view without a TTL:
//!   such a view's snapshot inside retention sees only rows inside it);
//! - an aggregation cannot have a window wider than its source's retention.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cf::Cf;
use crate::codec::HistoryPosition;
use crate::registry::{FeatureView, Registry};
use crate::time::{Clock, Micros};

/// Which history rows are expired, for the engine's compactions.
#[derive(Debug, Clone)]
pub struct RetentionRules {
    /// Retention by stored view id (only views that have one).
    by_view: HashMap<u32, Micros>,
    clock: Clock,
}

impl RetentionRules {
    pub fn new(registry: &Registry, clock: Clock) -> Self {
        let by_view = registry
            .views()
            .iter()
            .filter(|v| v.retention_micros > 0 && v.aggregation().is_none())
            .map(|v| (v.id, v.retention_micros))
            .collect();
        RetentionRules { by_view, clock }
    }

    /// Keeps everything (before the registry is known).
    pub fn none() -> Self {
        RetentionRules {
            by_view: HashMap::new(),
            clock: Clock::system(),
        }
    }

    /// No view has a retention: compactions keep everything.
    pub fn is_empty(&self) -> bool {
        self.by_view.is_empty()
    }

    /// Whether the entry `key` of `cf` holds a row older than its view's
    /// retention. History keys are `view id ++ entity ++ position`,
    /// aggregation-index keys `source view id ++ mask ++ group ++ position`;
    /// an online row (`view id ++ entity`, the latest row of a key) is
    /// expired when that latest row itself is older than the retention (the
    /// key was not written within it); other column families are never
    /// expired.
    pub fn expired(&self, cf: Cf, key: &[u8], value: &[u8], now: Micros) -> bool {
        let Some(view) = crate::codec::key_view_id(key) else {
            return false;
        };
        let Some(&retention) = self.by_view.get(&view) else {
            return false;
        };
        let event_ts = match cf {
            Cf::History | Cf::AggIndex if key.len() >= 4 + HistoryPosition::LEN => {
                let tail = &key[key.len() - HistoryPosition::LEN..];
                (u64::from_be_bytes(tail[..8].try_into().expect("8 bytes")) ^ (1 << 63)) as i64
            }
            Cf::Online => match <crate::proto::Row as prost::Message>::decode(value) {
                Ok(row) => row.event_ts_micros,
                Err(_) => return false,
            },
            _ => return false,
        };
        event_ts <= now.saturating_sub(retention)
    }

    pub fn now(&self) -> Micros {
        self.clock.now()
    }
}

/// How far back a lookup of `view` at `at` reads: it needs the rows with
/// event times after the returned time (see the module documentation for
/// the rule per kind).
pub fn lookback_start(view: &FeatureView, at: Micros) -> Micros {
    match view.aggregation() {
        Some(spec) if spec.horizon == 0 => Micros::MIN,
        Some(spec) => at.saturating_sub(spec.horizon),
        None if view.ttl_micros > 0 => at.saturating_sub(view.ttl_micros),
        None => at,
    }
}

/// The retention that applies to `view`'s lookups: its own, or for an
/// aggregation its source's as registered now (0 = none).
pub fn retention_of(registry: &Registry, view: &FeatureView) -> Micros {
    match view.aggregation() {
        Some(spec) => registry
            .view_by_id(spec.source.id)
            .map_or(spec.source.retention_micros, |source| {
                source.retention_micros
            }),
        None => view.retention_micros,
    }
}

/// Why an aggregation window of `horizon` (0 = all time) cannot read a
/// source kept for `retention` (0 = forever), if it cannot.
pub fn window_outlives(horizon: Micros, retention: Micros) -> Option<String> {
    if retention == 0 {
        return None;
    }
    if horizon == 0 {
        return Some(
            "an all-time window needs the whole history, but the source has a retention".into(),
        );
    }
    (horizon > retention).then(|| {
        format!(
            "the widest window ({}s) is longer than the source's retention ({}s)",
            horizon / crate::time::MICROS_PER_SECOND,
            retention / crate::time::MICROS_PER_SECOND
        )
    })
}

/// Shared with the engine's compaction filter; replaced when the registry
/// changes.
pub type SharedRules = Arc<std::sync::RwLock<Arc<RetentionRules>>>;

/// How much earlier than the horizon a read is refused (see `check_lookup`).
pub const READ_MARGIN: Micros = 3_600 * crate::time::MICROS_PER_SECOND;

/// Refuses a lookup of `view` at `at` that could reach history its
/// retention has dropped (or will drop before the read ends), naming
/// `field`.
pub fn check_lookup(
    registry: &Registry,
    view: &FeatureView,
    at: Micros,
    now: Micros,
    field: impl FnOnce() -> String,
) -> crate::error::Result<()> {
    let retention = retention_of(registry, view);
    if retention == 0 {
        return Ok(());
    }
    // A compaction running while the read goes on judges the horizon at its
    // own (later) clock: refuse an hour early rather than race it.
    let horizon = now.saturating_sub(retention).saturating_add(READ_MARGIN);
    if lookback_start(view, at) >= horizon {
        return Ok(());
    }
    use crate::time::format_rfc3339;
    Err(crate::error::StoreError::Expired {
        field: field(),
        message: format!(
            "view `{}` keeps {}s of history (retention): a lookup at {} reads rows from before {}, which may have been dropped",
            view.label(),
            retention / crate::time::MICROS_PER_SECOND,
            format_rfc3339(at),
            format_rfc3339(horizon)
        ),
    })
}
