//! The online view in an [`Engine`]: one atomic write batch per version
//! (rows, events and the published version together), so a version is
//! visible whole or not at all.

use crate::cf::Cf;
use crate::codec::{self, HistoryPosition};
use crate::engine::{Engine, WriteBatch};
use crate::error::Result;
use crate::time::Micros;

use super::{OnlineChanges, OnlineStore};

/// The meta key of the published version.
const PUBLISHED_KEY: &[u8] = b"online_store/published";

pub struct EngineOnlineStore {
    engine: Box<dyn Engine>,
}

impl EngineOnlineStore {
    pub fn new(engine: Box<dyn Engine>) -> Self {
        EngineOnlineStore { engine }
    }
}

impl OnlineStore for EngineOnlineStore {
    fn publish(&self, changes: &OnlineChanges) -> Result<()> {
        if changes.version <= self.published_version()? {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for (key, row) in &changes.rows {
            batch.put(Cf::Online, key.clone(), row.clone());
        }
        for (key, row) in &changes.events {
            batch.put(Cf::AggIndex, key.clone(), row.clone());
        }
        batch.put(
            Cf::Meta,
            PUBLISHED_KEY.to_vec(),
            changes.version.to_be_bytes().to_vec(),
        );
        self.engine.write(batch)
    }

    fn published_version(&self) -> Result<u64> {
        self.engine
            .get(Cf::Meta, PUBLISHED_KEY)?
            .map_or(Ok(0), |b| codec::decode_u64(&b))
    }

    fn latest(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.engine.multi_get(Cf::Online, keys)
    }

    fn group_events(
        &self,
        prefix: &[u8],
        from: Micros,
        to: Micros,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut cursor = self.engine.cursor(Cf::AggIndex)?;
        cursor.seek(&codec::history_key(
            prefix,
            HistoryPosition {
                event_ts: from.saturating_add(1),
                store_version: 0,
                seq: 0,
            },
        ));
        let mut out = Vec::new();
        while let Some((key, value)) = cursor.entry() {
            match codec::history_position(prefix, key) {
                Some(position) if position.event_ts <= to => {
                    out.push((key.to_vec(), value.to_vec()))
                }
                _ => break,
            }
            cursor.next();
        }
        cursor.status()?;
        Ok(out)
    }
}
