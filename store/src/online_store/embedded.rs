//! The online view in an [`Engine`]: applied changes wait in memory and
//! are written with the published version in one atomic batch, so a version
//! is visible whole or not at all (and an applied but unpublished version
//! is lost with the process, as a publisher's restart expects).

use crate::cf::Cf;
use crate::codec::{self, HistoryPosition};
use crate::engine::{Engine, WriteBatch};
use crate::error::Result;
use crate::time::Micros;

use std::sync::Mutex;

use prost::Message;

use super::{ChangeRecord, LeaderState, OnlineChanges, OnlineStore, CHANGE_RECORDS_KEPT};
use crate::proto::Definitions;

/// The meta keys of the published version, the definitions and the
/// leader's state.
const PUBLISHED_KEY: &[u8] = b"online_store/published";
const DEFINITIONS_KEY: &[u8] = b"online_store/definitions";
const LEADER_KEY: &[u8] = b"online_store/leader";
/// Change records: this prefix ++ version (big-endian) -> previous
/// (big-endian) ++ encoded keys.
const CHANGES_PREFIX: &[u8] = b"online_store/changes/";

fn change_key(version: u64) -> Vec<u8> {
    [CHANGES_PREFIX, &version.to_be_bytes()[..]].concat()
}

pub struct EngineOnlineStore {
    engine: Box<dyn Engine>,
    /// Applied, not yet published.
    staged: Mutex<Vec<OnlineChanges>>,
}

impl std::fmt::Debug for EngineOnlineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineOnlineStore")
    }
}

impl EngineOnlineStore {
    pub fn new(engine: Box<dyn Engine>) -> Self {
        EngineOnlineStore {
            engine,
            staged: Mutex::new(Vec::new()),
        }
    }
}

impl OnlineStore for EngineOnlineStore {
    fn apply(&self, changes: &OnlineChanges) -> Result<()> {
        crate::sync::lock(&self.staged).push(changes.clone());
        Ok(())
    }

    fn publish_version(&self, version: u64) -> Result<()> {
        let mut staged = crate::sync::lock(&self.staged);
        if version <= self.published_version()? {
            staged.retain(|c| c.version > version);
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        let (now, later): (Vec<_>, Vec<_>) = staged.drain(..).partition(|c| c.version <= version);
        for changes in &now {
            for (key, row) in &changes.rows {
                batch.put(Cf::Online, key.clone(), row.clone());
            }
            for (key, row) in &changes.events {
                batch.put(Cf::AggIndex, key.clone(), row.clone());
            }
        }
        batch.put(
            Cf::Meta,
            PUBLISHED_KEY.to_vec(),
            version.to_be_bytes().to_vec(),
        );
        *staged = later;
        self.engine.write(batch)
    }

    fn publish_definitions(&self, definitions: &Definitions) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put(
            Cf::Meta,
            DEFINITIONS_KEY.to_vec(),
            definitions.encode_to_vec(),
        );
        self.engine.write(batch)
    }

    fn definitions(&self) -> Result<Option<Definitions>> {
        self.engine
            .get(Cf::Meta, DEFINITIONS_KEY)?
            .map(|bytes| Definitions::decode(bytes.as_slice()).map_err(Into::into))
            .transpose()
    }

    fn set_leader_state(&self, state: &LeaderState) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put(Cf::Meta, LEADER_KEY.to_vec(), state.encode().into_bytes());
        self.engine.write(batch)
    }

    fn leader_state(&self) -> Result<Option<LeaderState>> {
        Ok(self
            .engine
            .get(Cf::Meta, LEADER_KEY)?
            .and_then(|bytes| LeaderState::decode(&String::from_utf8_lossy(&bytes))))
    }

    fn record_changes(&self, version: u64, keys: &[Vec<u8>], everything: bool) -> Result<()> {
        let _one_writer = crate::sync::lock(&self.staged);
        let previous = self.newest_change()?;
        if version <= previous {
            return Ok(());
        }
        let record = ChangeRecord {
            version,
            previous,
            keys: keys.to_vec(),
            everything,
        };
        let mut batch = WriteBatch::default();
        let value = [&previous.to_be_bytes()[..], &record.encode_keys()].concat();
        batch.put(Cf::Meta, change_key(version), value);
        self.engine.write(batch)?;
        // Trimmed a hundred records at a time (a scan of them all).
        if version % 100 == 0 {
            let records = self.engine.scan_prefix(Cf::Meta, CHANGES_PREFIX)?;
            let excess = records.len().saturating_sub(CHANGE_RECORDS_KEPT);
            let mut batch = WriteBatch::default();
            for (key, _) in records.into_iter().take(excess) {
                batch.delete(Cf::Meta, key);
            }
            self.engine.write(batch)?;
        }
        Ok(())
    }

    fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<ChangeRecord>> {
        let page = self.engine.scan_prefix_page(
            Cf::Meta,
            CHANGES_PREFIX,
            Some(&change_key(after)),
            limit,
        )?;
        page.into_iter()
            .map(|(key, value)| {
                let corrupt = || crate::error::StoreError::Corrupt("a change record".into());
                let (previous, keys) = value.split_at_checked(8).ok_or_else(corrupt)?;
                let (keys, everything) = ChangeRecord::decode_keys(keys)?;
                Ok(ChangeRecord {
                    version: codec::decode_u64(&key[CHANGES_PREFIX.len()..])?,
                    previous: codec::decode_u64(previous)?,
                    keys,
                    everything,
                })
            })
            .collect()
    }

    fn newest_change(&self) -> Result<u64> {
        let mut cursor = self.engine.cursor(Cf::Meta)?;
        cursor.seek_for_prev(&change_key(u64::MAX));
        match cursor.entry() {
            Some((key, _)) if key.starts_with(CHANGES_PREFIX) => {
                codec::decode_u64(&key[CHANGES_PREFIX.len()..])
            }
            _ => Ok(0),
        }
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
