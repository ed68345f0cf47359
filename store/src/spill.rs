//! Sorted runs spilled to files, for bulk loads larger than memory. A run
//! is written once, in key order, keeping every [`MARK_EVERY`]th key and
//! its offset in memory (a sparse index: where a reader of a key range
//! starts, and a sample of the keys to cut ranges at). Runs are read back
//! merged in key order by a heap of cursors, one range per core. A
//! [`RunSet`] merges its runs in tiers of [`MAX_FAN_IN`], so a merge reads
//! a bounded number of files at once however large the load.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use crate::error::Result;

/// Entries between two marks of a run's sparse index.
const MARK_EVERY: usize = 1024;

/// Bytes each cursor reads ahead.
const READ_AHEAD: usize = 128 * 1024;

/// Runs of one tier merged into one run of the next tier.
const MAX_FAN_IN: usize = 64;

/// The cut key of an entry's key: ranges never split entries with one cut
/// key, and cut keys sort as their keys do.
pub(crate) type CutKey = fn(&[u8]) -> &[u8];

/// The whole key as its own cut key.
pub(crate) fn whole_key(key: &[u8]) -> &[u8] {
    key
}

/// A run of entries in a file of its own, deleted when the run is dropped.
pub(crate) struct SpilledRun {
    path: PathBuf,
    /// Every `MARK_EVERY`th key, with its byte offset in the file.
    marks: Vec<(Vec<u8>, u64)>,
    len: usize,
}

impl SpilledRun {
    /// Writes `entries` (sorted by key) to a new file at `path`: key length
    /// and value length (u32, little-endian), key, value, for each entry.
    pub(crate) fn write<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        path: PathBuf,
        entries: impl Iterator<Item = (K, V)>,
    ) -> Result<Self> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let mut marks = Vec::new();
        let mut offset = 0u64;
        let mut len = 0;
        for (key, value) in entries {
            let (key, value) = (key.as_ref(), value.as_ref());
            if len % MARK_EVERY == 0 {
                marks.push((key.to_vec(), offset));
            }
            len += 1;
            out.write_all(&(key.len() as u32).to_le_bytes())?;
            out.write_all(&(value.len() as u32).to_le_bytes())?;
            out.write_all(key)?;
            out.write_all(value)?;
            offset += 8 + key.len() as u64 + value.len() as u64;
        }
        out.flush()?;
        Ok(SpilledRun { path, marks, len })
    }

    /// A cursor over the entries whose cut key is in `[from, to)` (`None`:
    /// unbounded), starting at the last mark before `from`.
    fn cursor(&self, cut: CutKey, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<Cursor> {
        let mark = from.map_or(0, |from| {
            self.marks
                .partition_point(|(key, _)| cut(key) < from)
                .saturating_sub(1)
        });
        let (offset, first) = match self.marks.get(mark) {
            Some((_, offset)) => (*offset, mark * MARK_EVERY),
            None => (0, self.len),
        };
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Cursor {
            reader: BufReader::with_capacity(READ_AHEAD, file),
            left: self.len - first,
            cut,
            from: from.map(<[u8]>::to_vec),
            to: to.map(<[u8]>::to_vec),
        })
    }
}

impl Drop for SpilledRun {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The sorted runs of one column family of a load, in files named
/// `{name}-{n}.run` in `dir`: when [`MAX_FAN_IN`] runs of one tier are
/// there, they are merged into one run of the next tier (each entry is
/// rewritten once per tier: once more at 64 runs, twice at 4,096).
pub(crate) struct RunSet {
    dir: PathBuf,
    name: &'static str,
    written: usize,
    runs: Vec<SpilledRun>,
    tiers: Vec<u32>,
}

impl RunSet {
    pub(crate) fn new(dir: PathBuf, name: &'static str) -> Self {
        RunSet {
            dir,
            name,
            written: 0,
            runs: Vec::new(),
            tiers: Vec::new(),
        }
    }

    /// A path for the next run.
    pub(crate) fn next_path(&mut self) -> PathBuf {
        self.written += 1;
        self.dir.join(format!("{}-{}.run", self.name, self.written))
    }

    /// Adds a run of the first tier, then merges every full tier.
    pub(crate) fn push(&mut self, run: SpilledRun) -> Result<()> {
        self.runs.push(run);
        self.tiers.push(0);
        while let Some(tier) = self.full_tier() {
            let mut merged_runs = Vec::with_capacity(MAX_FAN_IN);
            let mut i = 0;
            while i < self.runs.len() {
                if self.tiers[i] == tier {
                    merged_runs.push(self.runs.remove(i));
                    self.tiers.remove(i);
                } else {
                    i += 1;
                }
            }
            let path = self.next_path();
            let mut merged = Merged::new(&merged_runs, whole_key, (None, None))?;
            let run = SpilledRun::write(path, merged.by_ref())?;
            merged.error()?;
            self.runs.push(run);
            self.tiers.push(tier + 1);
        }
        Ok(())
    }

    fn full_tier(&self) -> Option<u32> {
        let mut counts = std::collections::BTreeMap::new();
        for tier in &self.tiers {
            *counts.entry(*tier).or_insert(0) += 1;
        }
        counts
            .into_iter()
            .find(|(_, count)| *count >= MAX_FAN_IN)
            .map(|(tier, _)| tier)
    }

    pub(crate) fn runs(&self) -> &[SpilledRun] {
        &self.runs
    }
}

/// Cut keys splitting `runs` into at most `parts` ranges of about equal
/// size, from the runs' marks.
pub(crate) fn pivots(runs: &[SpilledRun], cut: CutKey, parts: usize) -> Vec<Vec<u8>> {
    let mut sample: Vec<&[u8]> = runs
        .iter()
        .flat_map(|run| run.marks.iter().map(|(key, _)| cut(key)))
        .collect();
    sample.sort_unstable();
    let mut pivots: Vec<Vec<u8>> = (1..parts)
        .map(|i| sample.get(sample.len() * i / parts))
        .map_while(|key| key.map(|key| key.to_vec()))
        .collect();
    pivots.dedup();
    pivots.retain(|pivot| Some(pivot.as_slice()) != sample.first().copied());
    pivots
}

/// The cut keys a range starts at and ends before (`None`: unbounded).
pub(crate) type KeyRange<'k> = (Option<&'k [u8]>, Option<&'k [u8]>);

/// The ranges `pivots` cut.
pub(crate) fn ranges(pivots: &[Vec<u8>]) -> Vec<KeyRange<'_>> {
    let bounds: Vec<Option<&[u8]>> = std::iter::once(None)
        .chain(pivots.iter().map(|p| Some(p.as_slice())))
        .chain(std::iter::once(None))
        .collect();
    bounds.windows(2).map(|pair| (pair[0], pair[1])).collect()
}

struct Cursor {
    reader: BufReader<File>,
    /// Entries left in the file from the read position.
    left: usize,
    cut: CutKey,
    from: Option<Vec<u8>>,
    to: Option<Vec<u8>>,
}

impl Cursor {
    /// The next entry in the cursor's range.
    fn next_entry(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        while self.left > 0 {
            self.left -= 1;
            let mut lengths = [0u8; 8];
            self.reader.read_exact(&mut lengths)?;
            let key_len = u32::from_le_bytes(lengths[..4].try_into().expect("4 bytes"));
            let value_len = u32::from_le_bytes(lengths[4..].try_into().expect("4 bytes"));
            let mut key = vec![0; key_len as usize];
            self.reader.read_exact(&mut key)?;
            let cut = (self.cut)(&key);
            if self.from.as_deref().is_some_and(|from| cut < from) {
                self.reader.seek_relative(i64::from(value_len))?;
                continue;
            }
            if self.to.as_deref().is_some_and(|to| cut >= to) {
                self.left = 0;
                return Ok(None);
            }
            let mut value = vec![0; value_len as usize];
            self.reader.read_exact(&mut value)?;
            return Ok(Some((key, value)));
        }
        Ok(None)
    }
}

/// An entry at the head of run `run`, ordered by key (ties, which unique
/// keys never make, by run).
struct Head {
    key: Vec<u8>,
    value: Vec<u8>,
    run: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .cmp(&other.key)
            .then_with(|| self.run.cmp(&other.run))
    }
}

/// The entries of one key range of many runs, in key order. An error
/// reading a run ends the iteration; [`error`](Self::error) returns it.
pub(crate) struct Merged {
    cursors: Vec<Cursor>,
    heap: BinaryHeap<Reverse<Head>>,
    error: Option<crate::error::StoreError>,
}

impl Merged {
    /// The entries of `runs` whose cut key is in `[from, to)`.
    pub(crate) fn new(runs: &[SpilledRun], cut: CutKey, (from, to): KeyRange<'_>) -> Result<Self> {
        let mut cursors = runs
            .iter()
            .map(|run| run.cursor(cut, from, to))
            .collect::<Result<Vec<_>>>()?;
        let mut heap = BinaryHeap::with_capacity(cursors.len());
        for (run, cursor) in cursors.iter_mut().enumerate() {
            if let Some((key, value)) = cursor.next_entry()? {
                heap.push(Reverse(Head { key, value, run }));
            }
        }
        Ok(Merged {
            cursors,
            heap,
            error: None,
        })
    }

    /// The error that ended the iteration early, if one did.
    pub(crate) fn error(&mut self) -> Result<()> {
        self.error.take().map_or(Ok(()), Err)
    }
}

impl Iterator for Merged {
    type Item = (Vec<u8>, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        let Reverse(head) = self.heap.pop()?;
        match self.cursors[head.run].next_entry() {
            Ok(Some((key, value))) => self.heap.push(Reverse(Head {
                key,
                value,
                run: head.run,
            })),
            Ok(None) => {}
            Err(e) => {
                self.error = Some(e);
                self.heap.clear();
            }
        }
        Some((head.key, head.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first byte: entries with one first byte stay in one range.
    fn first_byte(key: &[u8]) -> &[u8] {
        &key[..1]
    }

    fn entries(keys: impl Iterator<Item = String>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut entries: Vec<_> = keys
            .map(|key| (key.clone().into_bytes(), key.to_uppercase().into_bytes()))
            .collect();
        entries.sort();
        entries
    }

    #[test]
    fn spilled_runs_merge_back_in_key_order_by_ranges_that_keep_cut_keys_together() {
        let dir = tempfile::tempdir().unwrap();
        // Three runs of interleaved keys, long enough for many marks.
        let runs: Vec<Vec<(Vec<u8>, Vec<u8>)>> = (0..3)
            .map(|run| {
                entries(
                    (0..5_000).map(|i| format!("{}{i:05}-{run}", (b'a' + (i % 7) as u8) as char)),
                )
            })
            .collect();
        let spilled: Vec<SpilledRun> = runs
            .iter()
            .enumerate()
            .map(|(i, run)| {
                let entries = run.iter().map(|(k, v)| (k, v));
                SpilledRun::write(dir.path().join(format!("{i}")), entries).unwrap()
            })
            .collect();
        let mut expected: Vec<_> = runs.concat();
        expected.sort();

        let merged: Vec<_> = Merged::new(&spilled, whole_key, (None, None))
            .unwrap()
            .collect();
        assert_eq!(merged, expected);

        for parts in [2, 3, 5] {
            let pivots = pivots(&spilled, first_byte, parts);
            assert!(!pivots.is_empty() && pivots.len() < parts);
            let pieces: Vec<Vec<_>> = ranges(&pivots)
                .into_iter()
                .map(|range| {
                    let mut merged = Merged::new(&spilled, first_byte, range).unwrap();
                    let piece: Vec<_> = merged.by_ref().collect();
                    merged.error().unwrap();
                    piece
                })
                .collect();
            // Every first byte in one range only, and the ranges in order.
            for pair in pieces.windows(2) {
                let (last, next) = (pair[0].last().unwrap(), pair[1].first().unwrap());
                assert!(first_byte(&last.0) < first_byte(&next.0));
            }
            assert_eq!(pieces.concat(), expected, "{parts} parts");
        }

        let paths: Vec<PathBuf> = spilled.iter().map(|run| run.path.clone()).collect();
        drop(spilled);
        assert!(paths.iter().all(|path| !path.exists()));
    }

    #[test]
    fn a_run_set_merges_full_tiers_and_reads_back_every_entry_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = RunSet::new(dir.path().to_path_buf(), "h");
        let mut expected = Vec::new();
        // Two tiers fill: 64 runs merge into one, 64 of those again.
        let runs = MAX_FAN_IN * MAX_FAN_IN + 3;
        for run in 0..runs {
            let entries = entries((0..3).map(|i| format!("k{i}-{run:05}")));
            expected.extend(entries.clone());
            let path = set.next_path();
            set.push(SpilledRun::write(path, entries.into_iter()).unwrap())
                .unwrap();
        }
        expected.sort();
        // One run of tier 2 and three of tier 0.
        assert_eq!(set.runs().len(), 4);
        assert_eq!(set.tiers.iter().filter(|t| **t == 2).count(), 1);
        let merged: Vec<_> = Merged::new(set.runs(), whole_key, (None, None))
            .unwrap()
            .collect();
        assert_eq!(merged, expected);
        // The merged runs' files are gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }

    #[test]
    fn a_run_read_past_its_file_reports_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let entries = entries((0..10).map(|i| format!("k{i}")));
        let run = SpilledRun::write(dir.path().join("run"), entries.into_iter()).unwrap();
        // Cut short behind the reader's back.
        File::options()
            .write(true)
            .open(&run.path)
            .unwrap()
            .set_len(20)
            .unwrap();
        let mut merged = Merged::new(std::slice::from_ref(&run), whole_key, (None, None)).unwrap();
        assert!(merged.by_ref().count() < 10);
        assert!(merged.error().is_err());
        let empty = pivots(&[], whole_key, 4);
        assert!(empty.is_empty());
        assert_eq!(ranges(&empty), vec![(None, None)]);
    }
}
