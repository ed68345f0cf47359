//! Backfills by bulk ingestion: a batch of rows is validated like a push,
//! encoded, sorted per column family and handed to the engine's
//! [`ingest`](crate::engine::Engine::ingest) (RocksDB: SST files ingested
//! without the WAL or the memtables) as one store version. The rows are
//! stored exactly as a backfill push would store them (created time = event
//! time), so reads, snapshots and aggregations cannot tell them apart.

use std::collections::hash_map::Entry;
use std::collections::BTreeSet;

use serde_json::Value as Json;

use crate::cf::Cf;
use crate::engine::{SortedRun, WriteBatch};
use crate::error::Result;
use crate::feature_store::{put_store_version, FeatureStore};
use crate::push::{encode_rows, retired, NewestRows, ParsedRow, PushOutcome};
use crate::registry::FeatureView;
use crate::text_rows::TextColumns;

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

    /// [`ingest_backfill`](Self::ingest_backfill) of rows parsed from text
    /// cells by `columns`.
    pub fn ingest_parsed(
        &self,
        columns: &TextColumns,
        rows: Vec<ParsedRow>,
    ) -> Result<PushOutcome> {
        let _span = tracing::info_span!("store.ingest", rows = rows.len()).entered();
        let rows = self.check_rows(columns.view(), rows)?;
        self.ingest_rows(columns.view(), rows)
    }

    fn ingest_rows(&self, view: &FeatureView, parsed: Vec<ParsedRow>) -> Result<PushOutcome> {
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
        let (history, index, newest) = encode_in_parts(view, parsed, version, &masks)?;
        let online = self.online_updates(newest)?;
        let touched: Vec<Vec<u8>> = online.iter().map(|(key, _)| key.clone()).collect();
        let runs = vec![
            SortedRun::new(Cf::History, history)?,
            SortedRun::new(Cf::AggIndex, index)?,
            SortedRun::new(Cf::Online, online)?,
        ];
        let mut commit = WriteBatch::default();
        crate::outbox::add_ingestion_entry(self, &mut commit, &runs, version);
        put_store_version(&mut commit, version);
        tracing::info_span!("ingest").in_scope(|| self.engine.ingest(runs, commit))?;
        self.committed(version, &touched);
        self.record_view_writes(&[(view.id, version)]);
        Ok(PushOutcome {
            written,
            store_version: version,
        })
    }
}

/// Encoded entries of one column family, unsorted.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Rows per part when a batch is encoded in parts side by side.
const ENCODE_PART_ROWS: usize = 64 * 1024;

/// [`encode_rows`] of a whole ingestion, in contiguous parts on up to
/// four threads: history entries, aggregation-index entries and the newest
/// row per entity (merged in part order, so later rows still win ties).
fn encode_in_parts(
    view: &FeatureView,
    mut parsed: Vec<ParsedRow>,
    version: u64,
    masks: &BTreeSet<u8>,
) -> Result<(Entries, Entries, NewestRows)> {
    let threads = crate::threads::worker_threads();
    let part_rows = parsed.len().div_ceil(threads).max(ENCODE_PART_ROWS);
    let mut parts = Vec::new();
    let mut first = 0;
    while !parsed.is_empty() {
        let rest = parsed.split_off(part_rows.min(parsed.len()));
        let part = std::mem::replace(&mut parsed, rest);
        let len = part.len();
        parts.push((first, part));
        first += len;
    }
    let encoded: Vec<Result<(Entries, Entries, NewestRows)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|(first, part)| {
                scope.spawn(move || {
                    let mut history = Vec::with_capacity(part.len());
                    let mut index = Vec::with_capacity(part.len() * masks.len());
                    let mut newest = NewestRows::new();
                    encode_rows(
                        view,
                        part,
                        first,
                        version,
                        None,
                        masks,
                        &mut newest,
                        &mut |cf, key, value| match cf {
                            Cf::History => history.push((key, value)),
                            _ => index.push((key, value)),
                        },
                    )?;
                    Ok((history, index, newest))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an encoding thread panicked"))
            .collect()
    });
    let (mut history, mut index, mut newest) = (Vec::new(), Vec::new(), NewestRows::new());
    for part in encoded {
        let (part_history, part_index, part_newest) = part?;
        history.extend(part_history);
        index.extend(part_index);
        for (key, row) in part_newest {
            match newest.entry(key) {
                Entry::Occupied(slot) if row.0 < slot.get().0 => {}
                Entry::Occupied(mut slot) => {
                    slot.insert(row);
                }
                Entry::Vacant(slot) => {
                    slot.insert(row);
                }
            }
        }
    }
    Ok((history, index, newest))
}
