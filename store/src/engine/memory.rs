//! An in-memory engine: ordered maps behind one lock, so a batch is atomic.
//! Nothing survives the process; "durable" here means visible to every later
//! read of the same engine.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard};

use super::{Cursor, Engine, WriteBatch};
use crate::cf::Cf;
use crate::error::Result;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Default)]
pub struct MemoryEngine {
    maps: RwLock<BTreeMap<Cf, Map>>,
}

impl MemoryEngine {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<Cf, Map>> {
        self.maps
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Engine for MemoryEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.read().get(&cf).and_then(|m| m.get(key)).cloned())
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut maps = self
            .maps
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (cf, key, value) in batch.ops {
            let map = maps.entry(cf).or_default();
            match value {
                Some(value) => map.insert(key, value),
                None => map.remove(&key),
            };
        }
        Ok(())
    }

    fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let maps = self.read();
        let Some(map) = maps.get(&cf) else {
            return Ok(Vec::new());
        };
        Ok(map
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan_prefix_page(
        &self,
        cf: Cf,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let maps = self.read();
        let Some(map) = maps.get(&cf) else {
            return Ok(Vec::new());
        };
        let lower = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Included(prefix),
        };
        Ok(map
            .range::<[u8], _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn delete_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<()> {
        let mut maps = self
            .maps
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(map) = maps.get_mut(&cf) {
            map.retain(|key, _| !key.starts_with(prefix));
        }
        Ok(())
    }

    fn cursor(&self, cf: Cf) -> Result<Box<dyn Cursor + '_>> {
        Ok(Box::new(MemoryCursor {
            engine: self,
            cf,
            current: None,
        }))
    }
}

/// Takes the lock for each step only, so holding a cursor never blocks a
/// writer (or deadlocks a thread that also reads).
struct MemoryCursor<'a> {
    engine: &'a MemoryEngine,
    cf: Cf,
    current: Option<(Vec<u8>, Vec<u8>)>,
}

impl MemoryCursor<'_> {
    fn first_in(&mut self, lower: Bound<&[u8]>) {
        self.current = self
            .engine
            .read()
            .get(&self.cf)
            .and_then(|m| m.range::<[u8], _>((lower, Bound::Unbounded)).next())
            .map(|(k, v)| (k.clone(), v.clone()));
    }

    fn last_in(&mut self, upper: Bound<&[u8]>) {
        self.current = self
            .engine
            .read()
            .get(&self.cf)
            .and_then(|m| m.range::<[u8], _>((Bound::Unbounded, upper)).next_back())
            .map(|(k, v)| (k.clone(), v.clone()));
    }
}

impl Cursor for MemoryCursor<'_> {
    fn seek_for_prev(&mut self, key: &[u8]) {
        self.last_in(Bound::Included(key));
    }

    fn seek(&mut self, key: &[u8]) {
        self.first_in(Bound::Included(key));
    }

    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn entry(&self) -> Option<(&[u8], &[u8])> {
        self.current
            .as_ref()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    fn prev(&mut self) {
        if let Some((key, _)) = self.current.take() {
            self.last_in(Bound::Excluded(&key));
        }
    }

    fn next(&mut self) {
        if let Some((key, _)) = self.current.take() {
            self.first_in(Bound::Excluded(&key));
        }
    }
}
