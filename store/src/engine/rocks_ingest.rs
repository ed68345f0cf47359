//! SST file ingestion for the RocksDB engine (the protocol is described in
//! `ingest.rs`): each sorted run is written to a file in a staging
//! directory, a marker is written durably, the files are ingested (moved,
//! not copied, on one file system) and the commit batch deletes the marker.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{IngestExternalFileOptions, SstFileWriter};

use super::ingest::{Pending, SortedRun, PENDING_PREFIX};
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
        let staging = format!(
            "{}-{}-{}",
            std::process::id(),
            crate::time::Clock::system().now(),
            NEXT_STAGING.fetch_add(1, Ordering::Relaxed)
        );
        let dir = self.staging_root().join(&staging);
        std::fs::create_dir_all(&dir)?;
        // One file per run, written side by side (compressing a run's
        // blocks is most of the work).
        let files: Vec<(Cf, String)> = std::thread::scope(|scope| {
            let writers: Vec<_> = runs
                .iter()
                .enumerate()
                .filter(|(_, run)| !run.entries.is_empty())
                .map(|(i, run)| {
                    let name = format!("{i}-{}.sst", run.cf.name());
                    let path = dir.join(&name);
                    let writer = scope.spawn(move || write_sst(&path, run));
                    (run.cf, name, writer)
                })
                .collect();
            writers
                .into_iter()
                .map(|(cf, name, writer)| {
                    writer.join().expect("an SST writer panicked")?;
                    Ok((cf, name))
                })
                .collect::<Result<_>>()
        })?;
        // The files' names must survive a crash as long as the marker does:
        // the staging directory, its parent and the store's directory.
        for synced in [dir.as_path(), &self.staging_root(), &self.path] {
            std::fs::File::open(synced)?.sync_all()?;
        }
        let pending = Pending {
            staging,
            files,
            commit: commit.ops().to_vec(),
        };
        let mut marker = WriteBatch::default();
        marker.put(Cf::Meta, pending.marker_key(), pending.encode());
        self.write_synced(marker)?;
        Ok(pending)
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

fn write_sst(path: &Path, run: &SortedRun) -> Result<()> {
    let mut options = rocksdb::Options::default();
    options.set_block_based_table_factory(&table_options(None));
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let mut writer = SstFileWriter::create(&options);
    writer.open(path).map_err(engine_error)?;
    for (key, value) in &run.entries {
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
    }

    #[test]
    fn compactions_that_overlapping_ingestions_made_due_are_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path()).unwrap();
        let level0 = |engine: &RocksEngine| {
            engine
                .db
                .property_int_value_cf(engine.handle(Cf::History), "rocksdb.num-files-at-level0")
                .unwrap()
                .unwrap()
        };
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

    #[test]
    fn held_compactions_let_a_bulk_load_pile_up_in_l0_until_let_run() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path()).unwrap();
        let property = |name: &str| {
            engine
                .db
                .property_int_value_cf(engine.handle(Cf::History), name)
                .unwrap()
                .unwrap()
        };
        engine.hold_compactions(true).unwrap();
        // Past RocksDB's default stop-writes trigger (36 L0 files): held,
        // the ingestions neither compact nor wait for a compaction.
        let rounds = 40;
        for round in 0..rounds {
            let entries = (0..2_000)
                .map(|i| {
                    (
                        format!("k{i:04}-{round:02}").into_bytes(),
                        vec![round as u8; 16],
                    )
                })
                .collect();
            let run = SortedRun::new(Cf::History, entries).unwrap();
            engine.ingest(vec![run], WriteBatch::default()).unwrap();
        }
        engine.wait_for_compactions().unwrap();
        // The first file went to the bottom level: it overlapped nothing.
        assert_eq!(property("rocksdb.num-files-at-level0"), rounds - 1);
        engine.hold_compactions(false).unwrap();
        engine.wait_for_compactions().unwrap();
        assert!(property("rocksdb.num-files-at-level0") < L0_COMPACTION_TRIGGER as u64);
        assert_eq!(property("rocksdb.compaction-pending"), 0);
        assert_eq!(
            get(&engine, Cf::History, "k1999-39").as_deref(),
            Some("''''''''''''''''")
        );
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
