//! Backfills by bulk ingestion: a batch of rows is validated like a push,
//! encoded and sorted in parts, merged per key range on every core and
//! handed to the engine's
//! [`ingest`](crate::engine::Engine::ingest) (RocksDB: SST files ingested
//! without the WAL or the memtables) as one store version. The rows are
//! stored exactly as a backfill push would store them (created time = event
//! time), so reads, snapshots and aggregations cannot tell them apart.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use crate::cf::Cf;
use crate::codec;
use crate::engine::{SortedRun, WriteBatch};
use crate::error::Result;
use crate::feature_store::{put_store_version, FeatureStore};
use crate::push::{encode_rows, retired, ParsedRow, PushOutcome, StoredRows};
use crate::registry::FeatureView;
use crate::sorted_runs::{key_ranges, merge_sorted};
use crate::time::Micros;

impl FeatureStore {
    /// Validates `rows` (as [`push`](Self::push) does) and stores them in
    /// `view_spec` as a backfill, by bulk ingestion, as one store version:
    /// all rows or none, across a crash too. Holds the writer for the
    /// whole ingestion (other pushes wait). Meant for large batches (100k
    /// rows and more); a small one costs a few files.
    pub fn ingest_backfill(&self, view_spec: &str, rows: &[Json]) -> Result<PushOutcome> {
        let _span = tracing::info_span!("store.ingest", rows = rows.len()).entered();
        let (view, parsed) = self.validate_batch(&self.registry(), view_spec, rows)?;
        self.ingest_rows(&view, parsed)
    }

    /// Ingests checked rows of `view` as one store version.
    pub(crate) fn ingest_rows(
        &self,
        view: &FeatureView,
        parsed: Vec<ParsedRow>,
    ) -> Result<PushOutcome> {
        let _writer = self.lock_writer();
        let registry = self.registry();
        // Retiring a version holds the writer lock too.
        if registry.is_retired(view.id) {
            return Err(retired(view));
        }
        let version = self.version() + 1;
        let groupings = crate::aggregation::index::indexed_groupings(&registry);
        let masks = groupings.get(&view.id).cloned().unwrap_or_default();
        let written = parsed.len();
        let (mut histories, mut indexes) = encode_in_parts(view, parsed, 0, version, &masks)?;
        let threads = crate::threads::worker_threads();
        // Cut at entity prefixes: an entity's newest row is in its range.
        let history_ranges = key_ranges(&mut histories, threads, |(key, _)| {
            codec::history_key_prefix(key)
        });
        let index_ranges = key_ranges(&mut indexes, threads, |(key, _)| key.as_slice());
        let runs: Vec<Result<Vec<SortedRun>>> = std::thread::scope(|scope| {
            let history = history_ranges.into_iter().map(|range| {
                scope.spawn(move || {
                    let history = merged(range);
                    let (keys, rows) = newest_per_entity(&history);
                    let online = self
                        .online_replacements(keys, rows, StoredRows::Walk)?
                        .into_iter()
                        .map(|(key, _, row)| (key, row))
                        .collect();
                    Ok(vec![
                        SortedRun::new(Cf::History, history)?,
                        SortedRun::new(Cf::Online, online)?,
                    ])
                })
            });
            let index = index_ranges.into_iter().map(|range| {
                scope.spawn(move || Ok(vec![SortedRun::new(Cf::AggIndex, merged(range))?]))
            });
            let handles: Vec<_> = history.chain(index).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("an ingestion thread panicked"))
                .collect()
        });
        let mut sorted = Vec::new();
        for range in runs {
            sorted.extend(range?.into_iter().filter(|run| !run.entries.is_empty()));
        }
        let touched: Vec<Vec<u8>> = sorted
            .iter()
            .filter(|run| run.cf == Cf::Online)
            .flat_map(|run| run.entries.iter().map(|(key, _)| key.clone()))
            .collect();
        let mut commit = WriteBatch::default();
        crate::outbox::add_ingestion_entry(self, &mut commit, &sorted, version);
        put_store_version(&mut commit, version);
        tracing::info_span!("ingest").in_scope(|| self.engine.ingest(sorted, commit))?;
        self.committed(version, &touched);
        self.record_view_writes(&[(view.id, version)]);
        Ok(PushOutcome {
            written,
            store_version: version,
        })
    }
}

/// Encoded entries of one column family.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Rows per part when a batch is encoded in parts side by side.
const ENCODE_PART_ROWS: usize = 64 * 1024;

/// [`encode_rows`] of a whole ingestion (its rows numbered from
/// `first_seq` in the store version), in contiguous parts on every core:
/// per part, its history entries and its aggregation-index entries, each
/// sorted by key.
pub(crate) fn encode_in_parts(
    view: &FeatureView,
    mut parsed: Vec<ParsedRow>,
    first_seq: usize,
    version: u64,
    masks: &BTreeSet<u8>,
) -> Result<(Vec<Entries>, Vec<Entries>)> {
    let threads = crate::threads::worker_threads();
    let part_rows = parsed.len().div_ceil(threads).max(ENCODE_PART_ROWS);
    let mut parts = Vec::new();
    let mut first = first_seq;
    while !parsed.is_empty() {
        let rest = parsed.split_off(part_rows.min(parsed.len()));
        let part = std::mem::replace(&mut parsed, rest);
        let len = part.len();
        parts.push((first, part));
        first += len;
    }
    let encoded: Vec<Result<(Entries, Entries)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|(first, part)| {
                scope.spawn(move || {
                    let mut history = Vec::with_capacity(part.len());
                    let mut index = Vec::with_capacity(part.len() * masks.len());
                    encode_rows(
                        view,
                        part,
                        first,
                        version,
                        None,
                        masks,
                        None,
                        &mut |cf, key, value| match cf {
                            Cf::History => history.push((key, value)),
                            _ => index.push((key, value)),
                        },
                    )?;
                    history.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    index.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    Ok((history, index))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an encoding thread panicked"))
            .collect()
    });
    encoded
        .into_iter()
        .collect::<Result<Vec<_>>>()
        .map(|parts| parts.into_iter().unzip())
}

/// An encoded row and its event time.
type TimedRow<'a> = (Micros, &'a [u8]);

/// One key range's pieces of the parts' sorted entries, merged.
fn merged(range: Vec<&mut [(Vec<u8>, Vec<u8>)]>) -> Entries {
    let mut entries = Vec::with_capacity(range.iter().map(|piece| piece.len()).sum());
    merge_sorted(range, |entry| entries.push(entry));
    entries
}

/// Each entity's newest row in sorted history entries (its last: keys
/// order an entity's rows by event time, then store version and sequence,
/// so later rows win ties): the online keys and the rows with their event
/// times.
fn newest_per_entity(history: &Entries) -> (Vec<Vec<u8>>, Vec<TimedRow<'_>>) {
    let mut keys = Vec::new();
    let mut rows = Vec::new();
    for (i, (key, row)) in history.iter().enumerate() {
        let prefix = codec::history_key_prefix(key);
        let last = history
            .get(i + 1)
            .is_none_or(|(next, _)| codec::history_key_prefix(next) != prefix);
        if last {
            let position =
                codec::history_position(prefix, key).expect("a history key ends with a position");
            keys.push(prefix.to_vec());
            rows.push((position.event_ts, row.as_slice()));
        }
    }
    (keys, rows)
}
