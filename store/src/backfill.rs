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
//! chunk fails the backfill before anything is written. Memory is bounded
//! by the chunk (two in flight), the runs' read buffers (runs merge in
//! tiers, see [`RunSet`]) and [`ONLINE_BATCH`] online rows per range; the
//! spill takes about the rows' encoded size on disk, in the engine's
//! scratch directory (emptied at every open).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value as Json;

use crate::cf::Cf;
use crate::codec;
use crate::engine::{Ingestion, WriteBatch};
use crate::error::{Result, StoreError};
use crate::feature_store::{put_store_version, FeatureStore};
use crate::ingest::{encode_in_parts, Entries};
use crate::push::{retired, ParsedRow, PushOutcome, StoredRows};
use crate::registry::FeatureView;
use crate::spill::{pivots, ranges, whole_key, CutKey, KeyRange, Merged, RunSet, SpilledRun};
use crate::time::Micros;
use crate::write_pipeline::WriterLock;

/// Entries per ingested file, by default.
const FILE_ENTRIES: usize = 1 << 21;

/// Rows one store version numbers (a row's sequence is a u32).
const MAX_ROWS: usize = u32::MAX as usize + 1;

/// Entities whose online rows are checked and written at a time.
const ONLINE_BATCH: usize = 1 << 18;

/// A backfill in progress: [`add`](Self::add_parsed) its rows, then
/// [`finish`](Self::finish). Dropped unfinished, it writes nothing.
pub struct Backfill<'s> {
    store: &'s FeatureStore,
    view: Arc<FeatureView>,
    /// The first chunk, until a second one comes.
    held: Vec<ParsedRow>,
    spilled: Option<Spilled<'s>>,
    rows: usize,
    file_entries: usize,
    online_batch: usize,
    /// Set by a failed add: the rows added so far are not all spilled.
    failed: bool,
}

/// The state of a backfill that has spilled: it holds the writer (its
/// rows carry its store version) until it finishes.
struct Spilled<'s> {
    _writer: WriterLock<'s>,
    version: u64,
    masks: BTreeSet<u8>,
    history: RunSet,
    index: RunSet,
    /// Declared last: removed after the runs' files.
    _dir: tempfile::TempDir,
}

impl FeatureStore {
    /// Starts a backfill of `view_spec`. It spills its sorted runs into a
    /// directory of its own in the engine's scratch directory.
    pub fn begin_backfill(&self, view_spec: &str) -> Result<Backfill<'_>> {
        let view = Arc::clone(crate::push::writable_view(&self.registry(), view_spec)?);
        Ok(Backfill {
            store: self,
            view,
            held: Vec::new(),
            spilled: None,
            rows: 0,
            file_entries: FILE_ENTRIES,
            online_batch: ONLINE_BATCH,
            failed: false,
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

    /// Entities whose online rows are checked and written at a time
    /// (default 256Ki): the memory the online rows take.
    pub fn with_online_batch(mut self, entities: usize) -> Self {
        self.online_batch = entities.max(1);
        self
    }

    /// Adds rows parsed from text cells (by this view's
    /// [`text_columns`](FeatureStore::text_columns)).
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

    fn add(&mut self, rows: Vec<ParsedRow>) -> Result<()> {
        self.refuse_after_failure()?;
        let added = self.spill_or_hold(rows);
        self.failed = added.is_err() && self.spilled.is_some();
        added
    }

    fn refuse_after_failure(&self) -> Result<()> {
        if self.failed {
            return Err(StoreError::Engine(
                "this backfill failed to spill its rows; start it again".into(),
            ));
        }
        Ok(())
    }

    fn spill_or_hold(&mut self, rows: Vec<ParsedRow>) -> Result<()> {
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
        let scratch = store.engine.scratch_dir();
        std::fs::create_dir_all(&scratch)?;
        let dir = tempfile::Builder::new()
            .prefix("backfill-")
            .tempdir_in(&scratch)?;
        Ok(Spilled {
            _writer: writer,
            version: store.version() + 1,
            masks: groupings.get(&self.view.id).cloned().unwrap_or_default(),
            history: RunSet::new(dir.path().to_path_buf(), "history"),
            index: RunSet::new(dir.path().to_path_buf(), "index"),
            _dir: dir,
        })
    }

    /// Encodes and sorts `rows` (numbered from `first`) and spills each
    /// part's history and aggregation-index entries as runs.
    fn spill(&mut self, rows: Vec<ParsedRow>, first: usize) -> Result<()> {
        let spilled = self.spilled.as_mut().expect("spilling started");
        let (histories, indexes) =
            encode_in_parts(&self.view, rows, first, spilled.version, &spilled.masks)?;
        // One run per column family and chunk: its parts merged as written.
        let kinds = [
            (histories, &mut spilled.history),
            (indexes, &mut spilled.index),
        ];
        let runs: Vec<_> = kinds
            .into_iter()
            .filter(|(parts, _)| parts.iter().any(|part| !part.is_empty()))
            .map(|(parts, runs)| {
                let path = runs.next_path();
                (parts, runs, path)
            })
            .collect();
        let written: Vec<(&mut RunSet, Result<SpilledRun>)> = std::thread::scope(|scope| {
            let writers: Vec<_> = runs
                .into_iter()
                .map(|(parts, runs, path)| {
                    let run = scope.spawn(move || SpilledRun::write(path, merged_parts(&parts)));
                    (runs, run)
                })
                .collect();
            writers
                .into_iter()
                .map(|(runs, w)| (runs, w.join().expect("a spilling thread panicked")))
                .collect()
        });
        for (runs, run) in written {
            runs.push(run?)?;
        }
        Ok(())
    }

    /// Ingests every row added, as one store version.
    pub fn finish(self) -> Result<PushOutcome> {
        self.refuse_after_failure()?;
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
        let (file_entries, online_batch) = (self.file_entries, self.online_batch);
        let threads = crate::threads::worker_threads();
        let (history_runs, index_runs) = (spilled.history.runs(), spilled.index.runs());
        let history_pivots = pivots(history_runs, codec::history_key_prefix, threads);
        let index_pivots = pivots(index_runs, whole_key, threads);
        let noted = AtomicUsize::new(0);
        // Followers are told of event keys; the cache only of online ones.
        let list_events = store.outbox_enabled();
        let merged: Vec<Result<ListedKeys>> = std::thread::scope(|scope| {
            let files = (&*ingestion, file_entries);
            let noted = &noted;
            let history = ranges(&history_pivots).into_iter().map(|range| {
                scope.spawn(move || {
                    let listed = ListedKeys::new(noted);
                    let online = OnlineRows::new(store, files.0, online_batch, listed);
                    ingest_history_range(online, files, history_runs, range)
                })
            });
            let index = ranges(&index_pivots).into_iter().map(|range| {
                scope.spawn(move || {
                    let mut listed = ListedKeys::new(noted);
                    let note = |(key, _): &(Vec<u8>, Vec<u8>)| {
                        if list_events {
                            listed.note(Cf::AggIndex, key)
                        }
                    };
                    ingest_range(files, Cf::AggIndex, index_runs, whole_key, range, note)?;
                    Ok(listed)
                })
            });
            let handles: Vec<_> = history.chain(index).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a backfill thread panicked"))
                .collect()
        });
        let listed = ListedKeys::all(merged.into_iter().collect::<Result<Vec<_>>>()?);
        let version = spilled.version;
        let mut commit = WriteBatch::default();
        match &listed {
            Some(keys) => {
                let keys = keys.iter().map(|(cf, key)| (*cf, key.as_slice()));
                crate::outbox::add_bulk_entry(store, &mut commit, keys, version)
            }
            None => crate::outbox::add_resync_entry(store, &mut commit, version),
        }
        put_store_version(&mut commit, version);
        tracing::info_span!("ingest").in_scope(|| ingestion.commit(commit))?;
        match listed {
            Some(keys) => {
                let online: Vec<Vec<u8>> = keys
                    .into_iter()
                    .filter(|(cf, _)| *cf == Cf::Online)
                    .map(|(_, key)| key)
                    .collect();
                store.committed(version, &online);
            }
            // Too many online rows to list: the whole cache goes.
            None => store.committed_clearing_cache(version),
        }
        store.record_view_writes(&[(self.view.id, spilled.version)]);
        Ok(PushOutcome {
            written: self.rows,
            store_version: spilled.version,
        })
    }
}

/// The entries of sorted `parts` (a few), merged in key order.
fn merged_parts(parts: &[Entries]) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
    let mut next = vec![0usize; parts.len()];
    std::iter::from_fn(move || {
        let part = (0..parts.len())
            .filter(|p| next[*p] < parts[*p].len())
            .min_by(|a, b| parts[*a][next[*a]].0.cmp(&parts[*b][next[*b]].0))?;
        let (key, value) = &parts[part][next[part]];
        next[part] += 1;
        Some((key, value))
    })
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

/// [`ingest_range`] of the history, writing the online rows of the
/// range's entities on the way: each one's newest row, where it is newer
/// than the stored one.
fn ingest_history_range<'a>(
    mut online: OnlineRows<'a>,
    files: (&dyn Ingestion, usize),
    runs: &[SpilledRun],
    range: KeyRange<'_>,
) -> Result<ListedKeys<'a>> {
    ingest_range(
        files,
        Cf::History,
        runs,
        codec::history_key_prefix,
        range,
        |entry| online.see(entry),
    )?;
    online.write()?;
    Ok(online.listed)
}

/// The keys a backfill wrote that followers and the online cache are told
/// of (online rows; aggregation-index entries when the outbox is on), while
/// all ranges together wrote few enough to list
/// ([`MAX_LISTED_KEYS`](crate::outbox::MAX_LISTED_KEYS)).
struct ListedKeys<'a> {
    keys: Vec<(Cf, Vec<u8>)>,
    /// Keys noted by every range so far.
    noted: &'a AtomicUsize,
    /// Past the limit: `keys` is dropped.
    overflowed: bool,
}

impl<'a> ListedKeys<'a> {
    fn new(noted: &'a AtomicUsize) -> Self {
        ListedKeys {
            keys: Vec::new(),
            noted,
            overflowed: false,
        }
    }

    fn note(&mut self, cf: Cf, key: &[u8]) {
        if self.overflowed {
            return;
        }
        if self.noted.fetch_add(1, Ordering::Relaxed) < crate::outbox::MAX_LISTED_KEYS {
            self.keys.push((cf, key.to_vec()));
        } else {
            self.keys = Vec::new();
            self.overflowed = true;
        }
    }

    /// Every range's keys, when all of them together are few enough.
    fn all(ranges: Vec<ListedKeys>) -> Option<Vec<(Cf, Vec<u8>)>> {
        let mut all = Vec::new();
        for range in ranges {
            if range.overflowed {
                return None;
            }
            all.extend(range.keys);
        }
        (all.len() <= crate::outbox::MAX_LISTED_KEYS).then_some(all)
    }
}

/// Each entity's newest row, from history entries seen in key order (an
/// entity's rows by event time, then store version and sequence: its last
/// one wins), written to the online column family in batches of `batch`
/// entities where it replaces the stored row.
struct OnlineRows<'a> {
    store: &'a FeatureStore,
    ingestion: &'a dyn Ingestion,
    batch: usize,
    keys: Vec<Vec<u8>>,
    rows: Vec<(Micros, Vec<u8>)>,
    /// The first error writing a batch (the entries keep coming).
    error: Option<StoreError>,
    /// The online keys written.
    listed: ListedKeys<'a>,
}

impl<'a> OnlineRows<'a> {
    fn new(
        store: &'a FeatureStore,
        ingestion: &'a dyn Ingestion,
        batch: usize,
        listed: ListedKeys<'a>,
    ) -> Self {
        OnlineRows {
            store,
            ingestion,
            batch,
            keys: Vec::new(),
            rows: Vec::new(),
            error: None,
            listed,
        }
    }

    fn see(&mut self, (key, row): &(Vec<u8>, Vec<u8>)) {
        let prefix = codec::history_key_prefix(key);
        let position =
            codec::history_position(prefix, key).expect("a history key ends with a position");
        if self.keys.last().is_some_and(|last| last == prefix) {
            let newest = self.rows.last_mut().expect("a row per key");
            newest.0 = position.event_ts;
            newest.1.clear();
            newest.1.extend_from_slice(row);
            return;
        }
        // This entry starts an entity: every one seen before is complete.
        if self.keys.len() >= self.batch && self.error.is_none() {
            if let Err(e) = self.write() {
                self.error = Some(e);
            }
        }
        self.keys.push(prefix.to_vec());
        self.rows.push((position.event_ts, row.clone()));
    }

    /// Writes the online rows of the entities seen (and complete).
    fn write(&mut self) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let keys = std::mem::take(&mut self.keys);
        let rows = std::mem::take(&mut self.rows);
        let listed = &mut self.listed;
        let mut online = self
            .store
            .online_replacements(keys, rows, StoredRows::Walk)?
            .into_iter()
            .map(|(key, _, row)| {
                listed.note(Cf::Online, &key);
                (key, row)
            });
        self.ingestion.add(Cf::Online, &mut online)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::MAX_LISTED_KEYS;

    #[test]
    fn listed_keys_are_bounded_across_all_ranges_together() {
        // Two ranges just under the limit together: every key listed.
        let noted = AtomicUsize::new(0);
        let (mut a, mut b) = (ListedKeys::new(&noted), ListedKeys::new(&noted));
        for i in 0..MAX_LISTED_KEYS as u32 {
            let range = if i % 2 == 0 { &mut a } else { &mut b };
            range.note(Cf::Online, &i.to_be_bytes());
        }
        let all = ListedKeys::all(vec![a, b]).expect("at the limit, listed");
        assert_eq!(all.len(), MAX_LISTED_KEYS);
        // One key more, in either range: nothing listed, and the range that
        // went past drops what it held.
        let noted = AtomicUsize::new(0);
        let (mut a, mut b) = (ListedKeys::new(&noted), ListedKeys::new(&noted));
        for i in 0..MAX_LISTED_KEYS as u32 {
            a.note(Cf::Online, &i.to_be_bytes());
        }
        b.note(Cf::AggIndex, b"one more");
        assert!(b.overflowed && b.keys.is_empty());
        assert!(ListedKeys::all(vec![a, b]).is_none());
    }
}
