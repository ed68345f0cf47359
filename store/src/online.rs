//! Online reads: the latest row per (view, entity), through the cache, with
//! the view's TTL enforced at read time and derived features computed by the
//! shared transform path.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::cf::Cf;
use crate::codec;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::push::join_key_values;
use crate::registry::ResolvedRef;
use crate::row::RawRow;
use crate::time::Micros;
use crate::types::Value;

/// Per-feature status of an online read (CONTRACT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureStatus {
    Present,
    NotFound,
    OutsideMaxAge,
    NullValue,
}

impl FeatureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureStatus::Present => "PRESENT",
            FeatureStatus::NotFound => "NOT_FOUND",
            FeatureStatus::OutsideMaxAge => "OUTSIDE_MAX_AGE",
            FeatureStatus::NullValue => "NULL_VALUE",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OnlineRow {
    pub values: Vec<Option<Value>>,
    pub statuses: Vec<FeatureStatus>,
    pub event_timestamps: Vec<Option<Micros>>,
}

/// Whether an online read may go to the engine on a cache miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EngineAccess {
    Allowed,
    CacheOnly,
}

/// A stored row and every feature of its view computed from it.
type ComputedRow = (Arc<RawRow>, Vec<Option<Value>>);

#[derive(Debug, Clone, PartialEq)]
pub struct OnlineResult {
    pub store_version: u64,
    pub rows: Vec<OnlineRow>,
}

impl FeatureStore {
    /// Reads `features` for each entity (a JSON object of join-key values),
    /// rows in request order, values in `features` order.
    pub fn online_features(
        &self,
        features: &[String],
        entities: &[Map<String, Json>],
    ) -> Result<OnlineResult> {
        self.online_features_at(features, entities, self.clock.now())
    }

    /// As [`online_features`](Self::online_features), with TTLs judged at `now`.
    pub fn online_features_at(
        &self,
        features: &[String],
        entities: &[Map<String, Json>],
        now: Micros,
    ) -> Result<OnlineResult> {
        Ok(self
            .read_online(features, entities, now, EngineAccess::Allowed)?
            .expect("a read that may use the engine always answers"))
    }

    /// The answer of [`online_features`](Self::online_features) when the
    /// online cache holds every row it needs, `None` when it would have to
    /// read the engine (a cache miss or an aggregation): a caller that must
    /// not block (an HTTP worker) answers hits at once and sends the rest to
    /// a thread that may. Bad requests are errors either way.
    pub fn online_features_cached(
        &self,
        features: &[String],
        entities: &[Map<String, Json>],
    ) -> Result<Option<OnlineResult>> {
        self.read_online(
            features,
            entities,
            self.clock.now(),
            EngineAccess::CacheOnly,
        )
    }

    fn read_online(
        &self,
        features: &[String],
        entities: &[Map<String, Json>],
        now: Micros,
        access: EngineAccess,
    ) -> Result<Option<OnlineResult>> {
        let _span = tracing::info_span!(
            "store.online_read",
            entities = entities.len(),
            features = features.len()
        )
        .entered();
        if features.is_empty() {
            return Err(StoreError::invalid("features", "name at least one feature"));
        }
        let registry = self.registry();
        let refs = registry.resolve_all(features, "features")?;
        // Distinct views, and each ref's position among them.
        let mut view_slots: Vec<&ResolvedRef> = Vec::new();
        let ref_view: Vec<usize> = refs
            .iter()
            .map(
                |r| match view_slots.iter().position(|v| v.view.id == r.view.id) {
                    Some(i) => i,
                    None => {
                        view_slots.push(r);
                        view_slots.len() - 1
                    }
                },
            )
            .collect();

        // One online key per (entity, stored view); aggregations are
        // computed from their index at `now`.
        let mut keys = Vec::with_capacity(entities.len() * view_slots.len());
        let mut entity_keys = Vec::with_capacity(entities.len() * view_slots.len());
        for (i, entity) in entities.iter().enumerate() {
            for slot in &view_slots {
                let field = |k: &str| format!("entities[{i}].{k}");
                let values = join_key_values(entity, &slot.view.join_keys, &field)?;
                let entity_key = codec::entity_key(&values);
                if slot.view.aggregation().is_none() {
                    keys.push(codec::view_entity_prefix(slot.view.id, &entity_key));
                }
                entity_keys.push(entity_key);
            }
        }
        if access == EngineAccess::CacheOnly
            && (self.remote_online.get().is_some()
                || view_slots
                    .iter()
                    .any(|slot| slot.view.aggregation().is_some()))
        {
            return Ok(None);
        }
        let (fetched, store_version) = match self.remote_online.get() {
            // A replica's rows come with the published version read after
            // them: the answer names that one.
            Some(remote) => self.remote_rows(remote.as_ref(), &keys)?,
            None => {
                let version = self.version();
                let Some(fetched) = self.latest_rows(&keys, access)? else {
                    return Ok(None);
                };
                (fetched, version)
            }
        };
        let mut fetched = fetched.into_iter();
        // A replica reads every aggregation group's events in the widest
        // window from the shared online store, all groups at once.
        let mut remote_events = match self.remote_online.get() {
            Some(remote) => {
                let groups: Vec<crate::online_store::EventGroup> = entity_keys
                    .iter()
                    .enumerate()
                    .filter_map(|(i, entity_key)| {
                        let spec = view_slots[i % view_slots.len()].view.aggregation()?;
                        let prefix =
                            codec::agg_index_prefix(spec.source.id, spec.group_mask(), entity_key);
                        let from = match spec.horizon {
                            0 => Micros::MIN,
                            horizon => now.saturating_sub(horizon),
                        };
                        Some((prefix, from, now))
                    })
                    .collect();
                self.remote_group_events(remote.as_ref(), &groups)?
                    .into_iter()
            }
            None => Vec::new().into_iter(),
        };
        let mut stored: Vec<Option<Arc<RawRow>>> = Vec::with_capacity(entity_keys.len());
        let mut agg_cursor = None;
        for (i, entity_key) in entity_keys.iter().enumerate() {
            let slot = view_slots[i % view_slots.len()];
            match slot.view.aggregation() {
                None => stored.push(fetched.next().expect("one fetched row per stored slot")),
                Some(spec) => {
                    let mut remote_cursor;
                    let cursor: &mut dyn crate::engine::Cursor = match self.remote_online.get() {
                        // A replica: the group's events, read above.
                        Some(_) => {
                            remote_cursor = crate::engine::SliceCursor::new(
                                remote_events.next().expect("one read per aggregation slot"),
                            );
                            &mut remote_cursor
                        }
                        None => {
                            if agg_cursor.is_none() {
                                agg_cursor = Some(self.engine.cursor(Cf::AggIndex)?);
                            }
                            agg_cursor.as_mut().expect("opened above").as_mut()
                        }
                    };
                    let row = crate::aggregation::aggregate(
                        cursor,
                        spec,
                        slot.view.features.len(),
                        entity_key,
                        now,
                        store_version,
                        crate::snapshot::Cutoff::Created,
                    )?;
                    stored.push(Some(Arc::new(row)));
                }
            }
        }

        let _transform = tracing::info_span!("transform").entered();
        let rows = entities
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let base = i * view_slots.len();
                let computed: Vec<Option<ComputedRow>> = view_slots
                    .iter()
                    .enumerate()
                    .map(|(v, slot)| {
                        // A key not written within its view's retention is
                        // forgotten, whether or not a compaction has
                        // reclaimed its row yet (or the cache still holds it).
                        let retention = slot.view.retention_micros;
                        stored[base + v]
                            .clone()
                            .filter(|row| {
                                retention == 0 || row.event_ts > now.saturating_sub(retention)
                            })
                            .map(|row| {
                                let values = slot.view.compute(&row);
                                (row, values)
                            })
                    })
                    .collect();
                let mut out = OnlineRow {
                    values: Vec::with_capacity(refs.len()),
                    statuses: Vec::with_capacity(refs.len()),
                    event_timestamps: Vec::with_capacity(refs.len()),
                };
                for (r, &v) in refs.iter().zip(&ref_view) {
                    let (value, status, ts) = match &computed[v] {
                        None => (None, FeatureStatus::NotFound, None),
                        Some((row, _)) if !r.view.within_ttl(row.event_ts, now) => {
                            (None, FeatureStatus::OutsideMaxAge, Some(row.event_ts))
                        }
                        Some((row, values)) => match &values[r.feature] {
                            None => (None, FeatureStatus::NullValue, Some(row.event_ts)),
                            Some(value) => (
                                Some(value.clone()),
                                FeatureStatus::Present,
                                Some(row.event_ts),
                            ),
                        },
                    };
                    out.values.push(value);
                    out.statuses.push(status);
                    out.event_timestamps.push(ts);
                }
                out
            })
            .collect();
        Ok(Some(OnlineResult {
            store_version,
            rows,
        }))
    }

    /// The latest stored row for each online key: cache first, then one
    /// batched engine read for the misses (`None` instead when the engine
    /// may not be read).
    fn latest_rows(
        &self,
        keys: &[Vec<u8>],
        access: EngineAccess,
    ) -> Result<Option<Vec<Option<Arc<RawRow>>>>> {
        let version_before = self.version();
        let cache_span =
            tracing::info_span!("cache", keys = keys.len(), misses = tracing::field::Empty)
                .entered();
        let mut out: Vec<Option<Arc<RawRow>>> = Vec::with_capacity(keys.len());
        let mut misses: HashMap<&[u8], Vec<usize>> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            match self.cache.get(key) {
                Some(row) => out.push(row),
                None => {
                    out.push(None);
                    misses.entry(key.as_slice()).or_default().push(i);
                }
            }
        }
        cache_span.record("misses", misses.len());
        drop(cache_span);
        if misses.is_empty() {
            return Ok(Some(out));
        }
        if access == EngineAccess::CacheOnly {
            return Ok(None);
        }
        let _store_span = tracing::info_span!("store", keys = misses.len()).entered();
        let registry = self.registry();
        let miss_keys: Vec<Vec<u8>> = misses.keys().map(|k| k.to_vec()).collect();
        let fetched = self.engine.multi_get(Cf::Online, &miss_keys)?;
        // Cache only what no concurrent commit may have replaced: the
        // version is checked again under each key's lock as it goes in
        // (`OnlineCache::insert_if`).
        let cacheable = self.version() == version_before;
        for (key, bytes) in miss_keys.into_iter().zip(fetched) {
            let row = match bytes {
                None => None,
                Some(bytes) => {
                    let feature_count = codec::key_view_id(&key)
                        .and_then(|id| registry.view_by_id(id))
                        .map_or(0, |v| v.features.len());
                    Some(Arc::new(RawRow::decode(&bytes, feature_count)?))
                }
            };
            for &i in &misses[key.as_slice()] {
                out[i] = row.clone();
            }
            if cacheable {
                self.cache
                    .insert_if(key, row, |_| self.version() == version_before);
            }
        }
        Ok(Some(out))
    }
}

impl FeatureStore {
    /// The latest rows of `keys` on a replica: from its cache (kept by the
    /// change feed, `online_store/replica.rs`), the others from the shared
    /// online store; and the version the answer is as of (no row is from a
    /// later one): the replica's, or the published version read after the
    /// rows when that is higher.
    fn remote_rows(
        &self,
        remote: &dyn crate::online_store::OnlineStore,
        keys: &[Vec<u8>],
    ) -> Result<(Vec<Option<Arc<RawRow>>>, u64)> {
        let _span = tracing::info_span!("shared_store", keys = keys.len()).entered();
        let cached = self.replica_cache.active();
        let mut out: Vec<Option<Arc<RawRow>>> = Vec::with_capacity(keys.len());
        let mut misses: Vec<usize> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match cached.as_ref().and_then(|(cache, _)| cache.get(key)) {
                Some(row) => out.push(row),
                None => {
                    out.push(None);
                    misses.push(i);
                }
            }
        }
        // Read after the lookups: a cached row is the shared store's row as
        // of the replica's version when it was looked up (or a newer one,
        // read from the shared store ahead of the feed: its own version).
        let replica_version = out
            .iter()
            .flatten()
            .map(|row| row.store_version)
            .fold(self.version(), u64::max);
        if misses.is_empty() {
            return Ok((out, replica_version));
        }
        let miss_keys: Vec<Vec<u8>> = misses.iter().map(|&i| keys[i].clone()).collect();
        let (fetched, published) = self.decoded_remote_rows(remote, &miss_keys)?;
        for ((&i, key), row) in misses.iter().zip(miss_keys).zip(fetched) {
            if let Some((cache, mark)) = &cached {
                cache.insert_if(key, row.clone(), |key| {
                    self.replica_cache.unchanged_since(*mark, key)
                });
            }
            out[i] = row;
        }
        Ok((out, published.max(replica_version)))
    }

    /// The published events of each of `groups` (a replica's aggregation
    /// reads): from the replica's cache, which change records keep current
    /// as they do rows, else from the shared store in one round trip (every
    /// event after the window's start, cached for later windows).
    fn remote_group_events(
        &self,
        remote: &dyn crate::online_store::OnlineStore,
        groups: &[crate::online_store::EventGroup],
    ) -> Result<Vec<crate::online_store::GroupEvents>> {
        let cached = self.replica_cache.active_events();
        let mut out: Vec<crate::online_store::GroupEvents> = vec![Vec::new(); groups.len()];
        let mut misses = Vec::new();
        for (i, (prefix, from, to)) in groups.iter().enumerate() {
            let hit = cached
                .as_ref()
                .and_then(|(cache, _)| cache.get(prefix))
                .filter(|c| c.from <= *from);
            match hit {
                Some(c) => out[i] = events_within(prefix, &c.events, *from, *to),
                None => misses.push(i),
            }
        }
        if misses.is_empty() {
            return Ok(out);
        }
        let wanted: Vec<crate::online_store::EventGroup> = misses
            .iter()
            .map(|&i| (groups[i].0.clone(), groups[i].1, Micros::MAX))
            .collect();
        for (&i, events) in misses.iter().zip(remote.group_events_many(&wanted)?) {
            let (prefix, from, to) = &groups[i];
            out[i] = events_within(prefix, &events, *from, *to);
            if let Some((cache, mark)) = &cached {
                let entry = Arc::new(crate::online_store::CachedEvents {
                    from: *from,
                    events,
                });
                cache.insert_if(prefix.clone(), entry, |prefix| {
                    self.replica_cache.unchanged_since(*mark, prefix)
                });
            }
        }
        Ok(out)
    }

    /// Rows of `keys` read from the shared online store, decoded, and the
    /// published version read after them.
    fn decoded_remote_rows(
        &self,
        remote: &dyn crate::online_store::OnlineStore,
        keys: &[Vec<u8>],
    ) -> Result<(Vec<Option<Arc<RawRow>>>, u64)> {
        let registry = self.registry();
        let (rows, published) = remote.latest_with_version(keys)?;
        let rows = rows
            .into_iter()
            .zip(keys)
            .map(|(bytes, key)| {
                let Some(bytes) = bytes else {
                    return Ok(None);
                };
                let feature_count = codec::key_view_id(key)
                    .and_then(|id| registry.view_by_id(id))
                    .map_or(0, |v| v.features.len());
                Ok(Some(Arc::new(RawRow::decode(&bytes, feature_count)?)))
            })
            .collect::<Result<_>>()?;
        Ok((rows, published))
    }
}

/// The events of group `prefix` with an event time in `(from, to]`, in
/// index order.
fn events_within(
    prefix: &[u8],
    events: &[(Vec<u8>, Vec<u8>)],
    from: Micros,
    to: Micros,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    events
        .iter()
        .filter(|(key, _)| {
            codec::history_position(prefix, key)
                .is_some_and(|p| p.event_ts > from && p.event_ts <= to)
        })
        .cloned()
        .collect()
}
