//! Backfills larger than memory, as one store version: rows arrive in
//! chunks; each chunk is validated, encoded and sorted on every core and
//! spilled to files as sorted runs ([`crate::spill`]). At the end the runs
//! are merged back per key range, one range per core, straight into the
//! engine's ingestion, with each entity's newest row picked on the way
//! (the online rows). The ingested files of a column family are apart in
//! key range, so into a store holding nothing there, RocksDB places them
//! at the bottom level and no compaction rewrites them.
//!
//! The ingestion of one chunk at a time ([`FeatureStore::ingest_backfill`])
//! made every ingestion overlap the ones before (its rows spread over every
//! entity), each landing in L0 for compactions to merge; on 10M rows the
//! merges took a third of the time.
//!
//! A backfill of one chunk is ingested from memory, as
//! [`ingest_backfill`](FeatureStore::ingest_backfill) does. A bad row in any
//! chunk fails the backfill before anything is written.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::cf::Cf;
use crate::codec;
use crate::engine::{Ingestion, WriteBatch};
use crate::error::{Result, StoreError};
use crate::feature_store::{put_store_version, FeatureStore};
use crate::ingest::encode_in_parts;
use crate::push::{retired, ParsedRow, PushOutcome, StoredRows};
use crate::registry::FeatureView;
use crate::spill::{pivots, ranges, CutKey, KeyRange, Merged, SpilledRun};
use crate::text_rows::TextColumns;
use crate::time::Micros;
use crate::write_pipeline::WriterLock;

/// Entries per ingested file, by default.
const FILE_ENTRIES: usize = 1 << 21;

/// Rows one store version numbers (a row's sequence is a u32).
const MAX_ROWS: usize = u32::MAX as usize + 1;

/// A backfill in progress: [`add`](Self::add_parsed) its rows, then
/// [`finish`](Self::finish). Dropped unfinished, it writes nothing.
pub struct Backfill<'s> {
    store: &'s FeatureStore,
    view: Arc<FeatureView>,
    spill_dir: std::path::PathBuf,
    /// The first chunk, until a second one comes.
    held: Vec<ParsedRow>,
    spilled: Option<Spilled<'s>>,
    rows: usize,
    file_entries: usize,
}

/// The state of a backfill that has spilled: it holds the writer (its
/// rows carry its store version) until it finishes.
struct Spilled<'s> {
    _writer: WriterLock<'s>,
    version: u64,
    masks: BTreeSet<u8>,
    dir: tempfile::TempDir,
    history: Vec<SpilledRun>,
    index: Vec<SpilledRun>,
}

impl FeatureStore {
    /// Starts a backfill of `view_spec` that spills its sorted runs into a
    /// directory it makes (and removes) inside `spill_dir`.
    pub fn begin_backfill(&self, view_spec: &str, spill_dir: &Path) -> Result<Backfill<'_>> {
        let view = Arc::clone(crate::push::writable_view(&self.registry(), view_spec)?);
        Ok(Backfill {
            store: self,
            view,
            spill_dir: spill_dir.to_path_buf(),
            held: Vec::new(),
            spilled: None,
            rows: 0,
            file_entries: FILE_ENTRIES,
        })
    }
}

impl<'s> Backfill<'s> {
    /// Entries per ingested file (default 2Mi): smaller files compact
    /// piecemeal later, larger ones mean fewer files.
    pub fn with_file_entries(mut self, entries: usize) -> Self {
        self.file_entries = entries.max(1);
        self
    }

    /// Adds rows parsed from text cells by `columns` (of this view).
    pub fn add_parsed(&mut self, rows: Vec<ParsedRow>) -> Result<()> {
        let rows = self.store.check_rows(&self.view, rows)?;
        self.add(rows)
    }

    /// Adds JSON rows, validated as a push validates them.
    pub fn add_json(&mut self, rows: &[Json]) -> Result<()> {
        let (_, rows) =
            self.store
                .validate_batch(&self.store.registry(), &self.view.label(), rows)?;
        self.add(rows)
    }

    /// The text columns of this view for `headers`.
    pub fn text_columns(&self, headers: &[String]) -> Result<TextColumns> {
        self.store.text_columns(&self.view.label(), headers)
    }

    fn add(&mut self, rows: Vec<ParsedRow>) -> Result<()> {
        if self.rows + rows.len() > MAX_ROWS {
            return Err(StoreError::invalid(
                "rows",
                format!("a backfill stores at most {MAX_ROWS} rows; split the file"),
            ));
        }
        if self.spilled.is_none() && self.held.is_empty() {
            self.rows = rows.len();
            self.held = rows;
            return Ok(());
        }
        if self.spilled.is_none() {
            self.spilled = Some(self.start_spilling()?);
            let held = std::mem::take(&mut self.held);
            self.spill(held, 0)?;
        }
        let first = self.rows;
        self.rows += rows.len();
        self.spill(rows, first)
    }

    fn start_spilling(&self) -> Result<Spilled<'s>> {
        let store: &'s FeatureStore = self.store;
        let writer = store.lock_writer();
        let registry = store.registry();
        // Retiring a version holds the writer lock too.
        if registry.is_retired(self.view.id) {
            return Err(retired(&self.view));
        }
        let groupings = crate::aggregation::index::indexed_groupings(&registry);
        std::fs::create_dir_all(&self.spill_dir)?;
        Ok(Spilled {
            _writer: writer,
            version: store.version() + 1,
            masks: groupings.get(&self.view.id).cloned().unwrap_or_default(),
            dir: tempfile::Builder::new()
                .prefix("backfill-")
                .tempdir_in(&self.spill_dir)?,
            history: Vec::new(),
            index: Vec::new(),
        })
    }

    /// Encodes and sorts `rows` (numbered from `first`) and spills each
    /// part's history and aggregation-index entries as runs.
    fn spill(&mut self, rows: Vec<ParsedRow>, first: usize) -> Result<()> {
        let spilled = self.spilled.as_mut().expect("spilling started");
        let (histories, indexes) =
            encode_in_parts(&self.view, rows, first, spilled.version, &spilled.masks)?;
        let dir = spilled.dir.path();
        let base = spilled.history.len() + spilled.index.len();
        let written: Vec<Result<(bool, SpilledRun)>> = std::thread::scope(|scope| {
            let writers: Vec<_> = histories
                .iter()
                .map(|entries| (true, entries))
                .chain(indexes.iter().map(|entries| (false, entries)))
                .filter(|(_, entries)| !entries.is_empty())
                .enumerate()
                .map(|(i, (history, entries))| {
                    let path = dir.join(format!("{}.run", base + i));
                    scope.spawn(move || Ok((history, SpilledRun::write(path, entries)?)))
                })
                .collect();
            writers
                .into_iter()
                .map(|w| w.join().expect("a spilling thread panicked"))
                .collect()
        });
        for run in written {
            let (history, run) = run?;
            if history {
                spilled.history.push(run);
            } else {
                spilled.index.push(run);
            }
        }
        Ok(())
    }

    /// Ingests every row added, as one store version.
    pub fn finish(self) -> Result<PushOutcome> {
        let Some(spilled) = self.spilled else {
            if self.held.is_empty() {
                return Ok(PushOutcome {
                    written: 0,
                    store_version: self.store.version(),
                });
            }
            return self.store.ingest_rows(&self.view, self.held);
        };
        let _span = tracing::info_span!("store.backfill", rows = self.rows).entered();
        let store = self.store;
        let ingestion = store.engine.begin_ingestion()?;
        let file_entries = self.file_entries;
        let threads = crate::threads::worker_threads();
        let history_pivots = pivots(&spilled.history, codec::history_key_prefix, threads);
        let index_pivots = pivots(&spilled.index, whole_key, threads);
        let touched: Vec<Result<Vec<Vec<u8>>>> = std::thread::scope(|scope| {
            let ingestion = &*ingestion;
            let history = ranges(&history_pivots).into_iter().map(|range| {
                let runs = &spilled.history;
                scope.spawn(move || {
                    ingest_history_range(store, ingestion, runs, range, file_entries)
                })
            });
            let index = ranges(&index_pivots).into_iter().map(|range| {
                let runs = &spilled.index;
                scope.spawn(move || {
                    let files = (ingestion, file_entries);
                    ingest_range(files, Cf::AggIndex, runs, whole_key, range, |_| {})?;
                    Ok(Vec::new())
                })
            });
            let handles: Vec<_> = history.chain(index).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a backfill thread panicked"))
                .collect()
        });
        let touched: Vec<Vec<u8>> = touched.into_iter().collect::<Result<Vec<_>>>()?.concat();
        let mut commit = WriteBatch::default();
        crate::outbox::add_resync_entry(store, &mut commit, spilled.version);
        put_store_version(&mut commit, spilled.version);
        tracing::info_span!("ingest").in_scope(|| ingestion.commit(commit))?;
        store.committed(spilled.version, &touched);
        store.record_view_writes(&[(self.view.id, spilled.version)]);
        Ok(PushOutcome {
            written: self.rows,
            store_version: spilled.version,
        })
    }
}

fn whole_key(key: &[u8]) -> &[u8] {
    key
}

/// Merges the runs' entries in `range` into files of `file_entries`
/// entries each (the last one fewer), handing every entry to `seen` first.
fn ingest_range(
    (ingestion, file_entries): (&dyn Ingestion, usize),
    cf: Cf,
    runs: &[SpilledRun],
    cut: CutKey,
    range: KeyRange<'_>,
    mut seen: impl FnMut(&(Vec<u8>, Vec<u8>)),
) -> Result<()> {
    let mut merged = Merged::new(runs, cut, range)?;
    loop {
        let mut taken = 0;
        let mut file = merged.by_ref().take(file_entries).inspect(|entry| {
            taken += 1;
            seen(entry);
        });
        ingestion.add(cf, &mut file)?;
        if taken < file_entries {
            return merged.error();
        }
    }
}

/// [`ingest_range`] of the history, then the online rows of the range's
/// entities (each one's newest row, where it is newer than the stored
/// one). Returns the online keys written.
fn ingest_history_range(
    store: &FeatureStore,
    ingestion: &dyn Ingestion,
    runs: &[SpilledRun],
    range: KeyRange<'_>,
    file_entries: usize,
) -> Result<Vec<Vec<u8>>> {
    let mut newest = NewestPerEntity::default();
    ingest_range(
        (ingestion, file_entries),
        Cf::History,
        runs,
        codec::history_key_prefix,
        range,
        |entry| newest.see(entry),
    )?;
    let online: Vec<(Vec<u8>, Vec<u8>)> = store
        .online_replacements(newest.keys, newest.rows, StoredRows::Walk)?
        .into_iter()
        .map(|(key, _, row)| (key, row))
        .collect();
    let touched = online.iter().map(|(key, _)| key.clone()).collect();
    ingestion.add(Cf::Online, &mut online.into_iter())?;
    Ok(touched)
}

/// Each entity's newest row, from history entries seen in key order (an
/// entity's rows by event time, then store version and sequence: its
/// last one wins).
#[derive(Default)]
struct NewestPerEntity {
    keys: Vec<Vec<u8>>,
    rows: Vec<(Micros, Vec<u8>)>,
}

impl NewestPerEntity {
    fn see(&mut self, (key, row): &(Vec<u8>, Vec<u8>)) {
        let prefix = codec::history_key_prefix(key);
        let position =
            codec::history_position(prefix, key).expect("a history key ends with a position");
        if self.keys.last().is_some_and(|last| last == prefix) {
            let newest = self.rows.last_mut().expect("a row per key");
            newest.0 = position.event_ts;
            newest.1.clear();
            newest.1.extend_from_slice(row);
        } else {
            self.keys.push(prefix.to_vec());
            self.rows.push((position.event_ts, row.clone()));
        }
    }
}
