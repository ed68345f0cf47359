//! SST file ingestion for the RocksDB engine (the protocol is described in
//! `ingest.rs`): each sorted run is written to a file in a staging
//! directory, a marker is written durably, the files are ingested (moved,
//! not copied, on one file system) and the commit batch deletes the marker.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use rocksdb::{IngestExternalFileOptions, SstFileWriter};

use super::ingest::{Ingestion, Pending, SortedRun, PENDING_PREFIX};
use super::rocks::{engine_error, table_options, RocksEngine};
use super::{Engine, WriteBatch};
use crate::cf::Cf;
use crate::error::{Result, StoreError};

/// Where runs are written before they are ingested, inside the store's
/// directory (so ingestion moves them by a hard link).
const STAGING_DIR: &str = "ingest-staging";

static NEXT_STAGING: AtomicU64 = AtomicU64::new(0);

impl RocksEngine {
    pub(super) fn ingest_runs(&self, runs: Vec<SortedRun>, commit: WriteBatch) -> Result<()> {
        let pending = self.stage(runs, commit)?;
        self.finish_or_refuse_writes(&pending)
    }

    fn finish_or_refuse_writes(&self, pending: &Pending) -> Result<()> {
        self.finish_ingestion(pending).inspect_err(|_| {
            // Part of it may be visible and its version reused by the
            // next write: refuse writes until the reopen rolls it forward.
            self.unfinished_ingestion
                .store(true, std::sync::atomic::Ordering::Release);
        })
    }

    /// Writes the runs' files and the marker: from here on, the ingestion
    /// happens, now or at the next open.
    fn stage(&self, runs: Vec<SortedRun>, commit: WriteBatch) -> Result<Pending> {
        let ingestion = self.begin_staging()?;
        // One file per run, written side by side (compressing a run's
        // blocks is most of the work).
        std::thread::scope(|scope| {
            let writers: Vec<_> = runs
                .iter()
                .enumerate()
                .map(|(i, run)| {
                    let ingestion = &ingestion;
                    scope.spawn(move || {
                        let entries = run.entries.iter().map(|(k, v)| (k, v));
                        ingestion.write_file(i, run.cf, entries)
                    })
                })
                .collect();
            writers
                .into_iter()
                .try_for_each(|writer| writer.join().expect("an SST writer panicked"))
        })?;
        ingestion.mark(commit)
    }

    fn begin_staging(&self) -> Result<RocksIngestion<'_>> {
        let staging = format!(
            "{}-{}-{}",
            std::process::id(),
            crate::time::Clock::system().now(),
            NEXT_STAGING.fetch_add(1, Ordering::Relaxed)
        );
        let dir = self.staging_root().join(&staging);
        std::fs::create_dir_all(&dir)?;
        Ok(RocksIngestion {
            engine: self,
            staging,
            dir,
            files: Mutex::new(Vec::new()),
            next_file: AtomicUsize::new(0),
            marked: false,
        })
    }

    pub(super) fn begin_file_ingestion(&self) -> Result<Box<dyn Ingestion + '_>> {
        Ok(Box::new(self.begin_staging()?))
    }

    /// Ingests the staged files still present (a moved one is gone) and
    /// applies the commit batch, which deletes the marker. A crash while
    /// RocksDB unlinks the originals of a call's files leaves some of them,
    /// hard links to live SST files: ingesting one again writes its entries
    /// again, unchanged (RocksDB does not write a sequence number into the
    /// file, `write_global_seqno` being off by default).
    pub(super) fn finish_ingestion(&self, pending: &Pending) -> Result<()> {
        let dir = self.staging_root().join(&pending.staging);
        // A column family's files (key ranges that do not overlap each
        // other) in one call: all of them or none. Column families in the
        // order of their first run.
        let mut cfs: Vec<Cf> = Vec::new();
        for (cf, _) in &pending.files {
            if !cfs.contains(cf) {
                cfs.push(*cf);
            }
        }
        for cf in cfs {
            let paths: Vec<PathBuf> = pending
                .files
                .iter()
                .filter(|(file_cf, _)| *file_cf == cf)
                .map(|(_, name)| dir.join(name))
                .filter(|path| path.exists())
                .collect();
            if paths.is_empty() {
                continue;
            }
            let mut options = IngestExternalFileOptions::default();
            options.set_move_files(true);
            self.db
                .ingest_external_file_cf_opts(self.handle(cf), &options, paths)
                .map_err(engine_error)?;
        }
        self.write_synced(pending.commit_batch())?;
        // Only empty after a successful move; leftovers are harmless.
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    /// At open: rolls forward every ingestion a crash interrupted after its
    /// marker, and deletes staging directories a crash left before it
    /// (nothing of those was ingested). Returns how many were finished.
    pub(super) fn recover_ingestions(&self) -> Result<usize> {
        let markers = self.scan_prefix(Cf::Meta, PENDING_PREFIX)?;
        for (_, bytes) in &markers {
            let pending = Pending::decode(bytes)?;
            tracing::warn!(
                staging = pending.staging,
                files = pending.files.len(),
                "finishing an ingestion a crash interrupted"
            );
            self.finish_ingestion(&pending)?;
        }
        let root = self.staging_root();
        if root.exists() {
            for entry in std::fs::read_dir(&root)? {
                std::fs::remove_dir_all(entry?.path())?;
            }
        }
        Ok(markers.len())
    }

    fn staging_root(&self) -> PathBuf {
        self.path.join(STAGING_DIR)
    }
}

/// An ingestion staged file by file in a directory of its own (see
/// [`Ingestion`]); dropped before its marker is written, the directory
/// goes with it.
pub(super) struct RocksIngestion<'e> {
    engine: &'e RocksEngine,
    staging: String,
    dir: PathBuf,
    /// (number, column family, file name) of each file written.
    files: Mutex<Vec<(usize, Cf, String)>>,
    next_file: AtomicUsize,
    marked: bool,
}

impl RocksIngestion<'_> {
    /// Writes `entries` (keys strictly increasing) to the staged file
    /// numbered `number`; nothing for no entries.
    fn write_file<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        number: usize,
        cf: Cf,
        entries: impl Iterator<Item = (K, V)>,
    ) -> Result<()> {
        let mut entries = entries.peekable();
        if entries.peek().is_none() {
            return Ok(());
        }
        let name = format!("{number}-{}.sst", cf.name());
        write_sst(&self.dir.join(&name), entries)?;
        crate::sync::lock(&self.files).push((number, cf, name));
        Ok(())
    }

    /// Syncs the files' names and writes the marker: from here on, the
    /// ingestion happens, now or at the next open.
    fn mark(mut self, commit: WriteBatch) -> Result<Pending> {
        // The files' names must survive a crash as long as the marker does:
        // the staging directory, its parent and the store's directory.
        for synced in [
            self.dir.as_path(),
            &self.engine.staging_root(),
            &self.engine.path,
        ] {
            std::fs::File::open(synced)?.sync_all()?;
        }
        let mut files = std::mem::take(&mut *crate::sync::lock(&self.files));
        files.sort_by_key(|(number, _, _)| *number);
        let pending = Pending {
            staging: self.staging.clone(),
            files: files.into_iter().map(|(_, cf, name)| (cf, name)).collect(),
            commit: commit.ops().to_vec(),
        };
        let mut marker = WriteBatch::default();
        marker.put(Cf::Meta, pending.marker_key(), pending.encode());
        // From the write on, the marker may be stored even when the write
        // reports an error: the files stay for the next open to roll it
        // forward, and no other write may reuse its store version.
        self.marked = true;
        self.engine.write_synced(marker).inspect_err(|_| {
            self.engine
                .unfinished_ingestion
                .store(true, std::sync::atomic::Ordering::Release);
        })?;
        Ok(pending)
    }
}

impl Ingestion for RocksIngestion<'_> {
    fn add(&self, cf: Cf, entries: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<()> {
        let number = self.next_file.fetch_add(1, Ordering::Relaxed);
        self.write_file(number, cf, entries)
    }

    fn commit(self: Box<Self>, commit: WriteBatch) -> Result<()> {
        let engine = self.engine;
        let pending = (*self).mark(commit)?;
        engine.finish_or_refuse_writes(&pending)
    }
}

impl Drop for RocksIngestion<'_> {
    fn drop(&mut self) {
        if !self.marked {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn write_sst<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    path: &Path,
    entries: impl Iterator<Item = (K, V)>,
) -> Result<()> {
    let mut options = rocksdb::Options::default();
    options.set_block_based_table_factory(&table_options(None));
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let mut writer = SstFileWriter::create(&options);
    writer.open(path).map_err(engine_error)?;
    for (key, value) in entries {
        writer.put(key, value).map_err(engine_error)?;
    }
    // `finish` syncs the file.
    writer
        .finish()
        .map_err(|e| StoreError::Engine(format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rocks::L0_COMPACTION_TRIGGER;

    fn run(cf: Cf, pairs: &[(&str, &str)]) -> SortedRun {
        let entries = pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        SortedRun::new(cf, entries).unwrap()
    }

    fn get(engine: &RocksEngine, cf: Cf, key: &str) -> Option<String> {
        engine
            .get(cf, key.as_bytes())
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    }

    fn staged(engine: &RocksEngine) -> Pending {
        let mut commit = WriteBatch::default();
        commit.put(Cf::Meta, b"version".to_vec(), b"2".to_vec());
        let runs = vec![
            // Two key ranges of one column family.
            run(Cf::History, &[("h1", "a"), ("h2", "b")]),
            run(Cf::History, &[("h3", "c")]),
            run(Cf::AggIndex, &[("g1", "a")]),
            run(Cf::Online, &[("o1", "b")]),
        ];
        engine.stage(runs, commit).unwrap()
    }

    #[test]
    fn a_crash_after_the_marker_is_rolled_forward_at_open() {
        // Files moved one at a time: a crash may leave a column family's
        // files partly moved (RocksDB unlinks the originals one by one).
        for ingested_before_crash in 0..=4 {
            let dir = tempfile::tempdir().unwrap();
            {
                let engine = RocksEngine::open(dir.path()).unwrap();
                let pending = staged(&engine);
                // The crash: some files ingested, the commit never written.
                for (cf, name) in pending.files.iter().take(ingested_before_crash) {
                    let mut options = IngestExternalFileOptions::default();
                    options.set_move_files(true);
                    let path = engine.staging_root().join(&pending.staging).join(name);
                    engine
                        .db
                        .ingest_external_file_cf_opts(engine.handle(*cf), &options, vec![path])
                        .unwrap();
                }
                assert_eq!(get(&engine, Cf::Meta, "version"), None);
            }
            let engine = RocksEngine::open(dir.path()).unwrap();
            assert_eq!(get(&engine, Cf::History, "h1").as_deref(), Some("a"));
            assert_eq!(get(&engine, Cf::History, "h2").as_deref(), Some("b"));
            assert_eq!(get(&engine, Cf::History, "h3").as_deref(), Some("c"));
            assert_eq!(get(&engine, Cf::AggIndex, "g1").as_deref(), Some("a"));
            assert_eq!(get(&engine, Cf::Online, "o1").as_deref(), Some("b"));
            assert_eq!(get(&engine, Cf::Meta, "version").as_deref(), Some("2"));
            assert!(engine
                .scan_prefix(Cf::Meta, PENDING_PREFIX)
                .unwrap()
                .is_empty());
            assert_eq!(std::fs::read_dir(engine.staging_root()).unwrap().count(), 0);
        }
    }

    #[test]
    fn an_ingestion_failing_midway_refuses_later_writes() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path()).unwrap();
        let pending = staged(&engine);
        // The aggregation index's file, after the history's two.
        let (cf, third) = &pending.files[2];
        assert_eq!(*cf, Cf::AggIndex);
        let path = engine.staging_root().join(&pending.staging).join(third);
        std::fs::write(path, b"not an sst file").unwrap();
        assert!(engine.finish_or_refuse_writes(&pending).is_err());
        // The history's runs are in; its version must not be reused.
        assert_eq!(get(&engine, Cf::History, "h1").as_deref(), Some("a"));
        assert_eq!(get(&engine, Cf::History, "h3").as_deref(), Some("c"));
        let mut batch = WriteBatch::default();
        batch.put(Cf::Meta, b"version".to_vec(), b"2".to_vec());
        let err = engine.write(batch).unwrap_err();
        assert!(err.to_string().contains("restart"), "{err}");
        assert!(engine.ingest(Vec::new(), WriteBatch::default()).is_err());
        // Nor a backup: it would copy the marker without its staged files.
        let err = engine.checkpoint(&dir.path().join("backup")).unwrap_err();
        assert!(err.to_string().contains("restart"), "{err}");
    }

    #[test]
    fn compactions_that_overlapping_ingestions_made_due_are_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path()).unwrap();
        let level0 = |engine: &RocksEngine| files_at_level(engine, Cf::History, 0);
        // Each ingestion after the first overlaps the ones before: its file
        // lands in L0, past the compaction trigger.
        let rounds = L0_COMPACTION_TRIGGER as usize + 2;
        for round in 0..rounds {
            let entries = (0..50_000)
                .map(|i| {
                    (
                        format!("k{i:05}-{round}").into_bytes(),
                        vec![round as u8; 64],
                    )
                })
                .collect();
            let run = SortedRun::new(Cf::History, entries).unwrap();
            engine.ingest(vec![run], WriteBatch::default()).unwrap();
        }
        engine.wait_for_compactions().unwrap();
        assert!(
            level0(&engine) < L0_COMPACTION_TRIGGER as u64,
            "{} files left in L0",
            level0(&engine)
        );
        let pending = engine
            .db
            .property_int_value_cf(engine.handle(Cf::History), "rocksdb.compaction-pending")
            .unwrap()
            .unwrap();
        assert_eq!(pending, 0);
        assert_eq!(
            get(&engine, Cf::History, &format!("k49999-{}", rounds - 1)).as_deref(),
            Some(&*String::from_utf8(vec![rounds as u8 - 1; 64]).unwrap())
        );
    }

    fn files_at_level(engine: &RocksEngine, cf: Cf, level: usize) -> u64 {
        engine
            .db
            .property_int_value_cf(
                engine.handle(cf),
                &format!("rocksdb.num-files-at-level{level}"),
            )
            .unwrap()
            .unwrap()
    }

    #[test]
    fn streams_added_from_many_threads_apart_in_key_range_land_in_the_bottom_level() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path()).unwrap();
        let ingestion = engine.begin_ingestion().unwrap();
        // Four key ranges, each in two files, added side by side.
        std::thread::scope(|scope| {
            for range in 0..4 {
                let ingestion = &*ingestion;
                scope.spawn(move || {
                    for file in 0..2 {
                        let mut entries = (0..1_000).map(move |i| {
                            (
                                format!("k{range}-{file}-{i:04}").into_bytes(),
                                vec![b'v'; 8],
                            )
                        });
                        ingestion.add(Cf::History, &mut entries).unwrap();
                    }
                });
            }
        });
        ingestion.add(Cf::Online, &mut std::iter::empty()).unwrap();
        let mut commit = WriteBatch::default();
        commit.put(Cf::Meta, b"version".to_vec(), b"2".to_vec());
        ingestion.commit(commit).unwrap();
        assert_eq!(get(&engine, Cf::Meta, "version").as_deref(), Some("2"));
        assert_eq!(
            get(&engine, Cf::History, "k3-1-0999").as_deref(),
            Some("vvvvvvvv")
        );
        assert_eq!(files_at_level(&engine, Cf::History, 0), 0);
        assert_eq!(files_at_level(&engine, Cf::History, 6), 8);
        assert_eq!(
            files_at_level(&engine, Cf::Online, 6),
            0,
            "no file for no entries"
        );
        assert!(engine
            .scan_prefix(Cf::Meta, PENDING_PREFIX)
            .unwrap()
            .is_empty());
        assert_eq!(std::fs::read_dir(engine.staging_root()).unwrap().count(), 0);
    }

    #[test]
    fn an_ingestion_dropped_uncommitted_writes_nothing_and_removes_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path()).unwrap();
        let ingestion = engine.begin_ingestion().unwrap();
        let mut entries = (0..10).map(|i| (format!("k{i}").into_bytes(), b"v".to_vec()));
        ingestion.add(Cf::History, &mut entries).unwrap();
        // Keys out of order: the engine refuses the stream.
        let mut unordered = [("b", "v"), ("a", "v")]
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()));
        assert!(ingestion.add(Cf::History, &mut unordered).is_err());
        assert_eq!(std::fs::read_dir(engine.staging_root()).unwrap().count(), 1);
        drop(ingestion);
        assert_eq!(std::fs::read_dir(engine.staging_root()).unwrap().count(), 0);
        assert_eq!(get(&engine, Cf::History, "k1"), None);
        assert!(engine
            .scan_prefix(Cf::Meta, PENDING_PREFIX)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn files_staged_before_a_marker_are_deleted_unapplied_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = RocksEngine::open(dir.path()).unwrap();
            let pending = staged(&engine);
            // As if the crash came before the marker's write.
            let mut unmark = WriteBatch::default();
            unmark.delete(Cf::Meta, pending.marker_key());
            engine.write(unmark).unwrap();
        }
        let engine = RocksEngine::open(dir.path()).unwrap();
        assert_eq!(get(&engine, Cf::History, "h1"), None);
        assert_eq!(get(&engine, Cf::Meta, "version"), None);
        assert_eq!(std::fs::read_dir(engine.staging_root()).unwrap().count(), 0);
    }
}
