//! Named counters updated atomically with a push: a service that keeps a
//! running total of what it writes (an experiment arm's impressions, say)
//! adds its deltas to the same engine batch as the rows, so the total is
//! exact after a crash and reading it costs one lookup, not a scan of the
//! rows. Kept in the metadata column family, outside the store-version
//! sequence (a counter is the newest total, not versioned history).

use std::collections::BTreeMap;

use crate::cf::Cf;
use crate::engine::WriteBatch;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;

const PREFIX: &str = "counter/";

fn key(name: &str) -> Vec<u8> {
    format!("{PREFIX}{name}").into_bytes()
}

fn decode(name: &str, bytes: &[u8]) -> Result<i64> {
    <[u8; 8]>::try_from(bytes)
        .map(i64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt(format!("counter {name}: {} bytes", bytes.len())))
}

/// The deltas of one push, by counter name (several pushes in one group
/// commit are summed before the totals are read).
pub(crate) type Deltas = BTreeMap<String, i64>;

impl FeatureStore {
    /// The counter `name`, or `None` if nothing was ever added to it.
    pub fn counter(&self, name: &str) -> Result<Option<i64>> {
        self.engine
            .get(Cf::Meta, &key(name))?
            .map(|bytes| decode(name, &bytes))
            .transpose()
    }

    /// Every counter whose name starts with `prefix`, by name.
    pub fn counters(&self, prefix: &str) -> Result<BTreeMap<String, i64>> {
        self.engine
            .scan_prefix(Cf::Meta, &key(prefix))?
            .into_iter()
            .map(|(k, v)| {
                let name = String::from_utf8_lossy(&k[PREFIX.len()..]).into_owned();
                let value = decode(&name, &v)?;
                Ok((name, value))
            })
            .collect()
    }

    /// Adds `deltas` to their counters in `batch` (under the writer lock,
    /// so no other push reads the same totals in between), on top of the
    /// totals `written_before` (a group in flight writes them; the engine
    /// may not hold them yet). Returns the totals written.
    pub(crate) fn add_counters(
        &self,
        batch: &mut WriteBatch,
        deltas: &Deltas,
        written_before: Option<&Deltas>,
    ) -> Result<Deltas> {
        let mut totals = Deltas::new();
        if deltas.is_empty() {
            return Ok(totals);
        }
        let keys: Vec<Vec<u8>> = deltas.keys().map(|name| key(name)).collect();
        let current = self.engine.multi_get(Cf::Meta, &keys)?;
        for ((name, delta), (key, current)) in deltas.iter().zip(keys.into_iter().zip(current)) {
            let total = match (written_before.and_then(|totals| totals.get(name)), current) {
                (Some(total), _) => *total,
                (None, Some(bytes)) => decode(name, &bytes)?,
                (None, None) => 0,
            }
            .saturating_add(*delta);
            batch.put(Cf::Meta, key, total.to_be_bytes().to_vec());
            totals.insert(name.clone(), total);
        }
        Ok(totals)
    }
}
