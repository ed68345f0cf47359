//! Bulk loads that bypass the write-ahead log and the memtables: sorted
//! runs of puts (one or more per column family, their key ranges apart),
//! plus a small commit batch. The RocksDB engine writes each run to an SST
//! file and ingests the files (`rocks_ingest.rs`); other engines apply
//! everything as one batch.
//!
//! Crash safety without a multi-column-family atomic ingestion (RocksDB's C
//! API has none): before the first file is ingested, a marker naming the
//! staged files and holding the commit batch is written durably; the commit
//! batch deletes it. A crash in between is rolled forward at the next open:
//! the staged files not yet ingested are ingested (re-ingesting one whose
//! unlink was cut short writes the same entries again) and the commit batch
//! is applied. Readers may see a run's entries before the commit; they
//! never see entries that later disappear.

use super::{WriteBatch, WriteOp};
use crate::cf::Cf;
use crate::error::{Result, StoreError};

/// Puts to one column family, keys strictly increasing.
#[derive(Debug, Clone)]
pub struct SortedRun {
    pub cf: Cf,
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl SortedRun {
    /// Sorts `entries` by key; two entries with one key are refused (an
    /// ingested file holds each key once).
    pub fn new(cf: Cf, mut entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Self> {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(StoreError::Engine(format!(
                "a sorted run for {} holds the key {:?} twice",
                cf.name(),
                pair[0].0
            )));
        }
        Ok(SortedRun { cf, entries })
    }
}

/// An ingestion built from sorted streams too large to hold in memory:
/// [`add`](Self::add) writes one stream (from any thread; the RocksDB
/// engine writes it to a file of its own), [`commit`](Self::commit) makes
/// everything added visible with the commit batch, all or nothing across a
/// crash. Dropped uncommitted, nothing is written.
pub trait Ingestion: Send + Sync {
    /// Adds `entries` of `cf`: keys strictly increasing, and apart from the
    /// key range of every other stream of `cf` in this ingestion.
    fn add(&self, cf: Cf, entries: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<()>;

    /// Applies every stream added and then `commit`.
    fn commit(self: Box<Self>, commit: WriteBatch) -> Result<()>;
}

/// Commits what it collects with a function given the runs and the commit
/// batch: the ingestion of engines without files.
pub struct CollectedIngestion<'e> {
    runs: std::sync::Mutex<Vec<SortedRun>>,
    apply: Box<dyn FnOnce(Vec<SortedRun>, WriteBatch) -> Result<()> + Send + Sync + 'e>,
}

impl<'e> CollectedIngestion<'e> {
    pub fn new(
        apply: impl FnOnce(Vec<SortedRun>, WriteBatch) -> Result<()> + Send + Sync + 'e,
    ) -> Self {
        CollectedIngestion {
            runs: std::sync::Mutex::new(Vec::new()),
            apply: Box::new(apply),
        }
    }
}

impl Ingestion for CollectedIngestion<'_> {
    fn add(&self, cf: Cf, entries: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<()> {
        let run = SortedRun::new(cf, entries.collect())?;
        crate::sync::lock(&self.runs).push(run);
        Ok(())
    }

    fn commit(self: Box<Self>, commit: WriteBatch) -> Result<()> {
        let runs = self.runs.into_inner().unwrap_or_else(|p| p.into_inner());
        (self.apply)(runs, commit)
    }
}

/// Prefix of the markers of unfinished ingestions in [`Cf::Meta`].
pub const PENDING_PREFIX: &[u8] = b"ingest/pending/";

/// What a crash must finish: the staged files (column family, file name in
/// the staging directory) and the commit batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub staging: String,
    pub files: Vec<(Cf, String)>,
    pub commit: Vec<WriteOp>,
}

impl Pending {
    pub fn marker_key(&self) -> Vec<u8> {
        [PENDING_PREFIX, self.staging.as_bytes()].concat()
    }

    /// The commit batch, plus the deletion of this marker.
    pub fn commit_batch(&self) -> WriteBatch {
        let mut batch = WriteBatch::default();
        for (cf, key, value) in &self.commit {
            match value {
                Some(value) => batch.put(*cf, key.clone(), value.clone()),
                None => batch.delete(*cf, key.clone()),
            }
        }
        batch.delete(Cf::Meta, self.marker_key());
        batch
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, self.staging.as_bytes());
        out.extend((self.files.len() as u32).to_be_bytes());
        for (cf, name) in &self.files {
            out.push(cf_index(*cf));
            put_bytes(&mut out, name.as_bytes());
        }
        out.extend((self.commit.len() as u32).to_be_bytes());
        for (cf, key, value) in &self.commit {
            out.push(cf_index(*cf));
            put_bytes(&mut out, key);
            match value {
                Some(value) => {
                    out.push(1);
                    put_bytes(&mut out, value);
                }
                None => out.push(0),
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut reader = Reader { bytes, at: 0 };
        let staging = reader.string()?;
        let files = (0..reader.u32()?)
            .map(|_| Ok((reader.cf()?, reader.string()?)))
            .collect::<Result<Vec<_>>>()?;
        let commit = (0..reader.u32()?)
            .map(|_| {
                let cf = reader.cf()?;
                let key = reader.bytes()?.to_vec();
                let value = match reader.u8()? {
                    0 => None,
                    _ => Some(reader.bytes()?.to_vec()),
                };
                Ok((cf, key, value))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Pending {
            staging,
            files,
            commit,
        })
    }
}

fn cf_index(cf: Cf) -> u8 {
    Cf::ALL
        .iter()
        .position(|c| *c == cf)
        .expect("every column family is in ALL") as u8
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let slice = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or_else(|| StoreError::Corrupt("an ingestion marker is truncated".into()))?;
        self.at += n;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes(bytes.try_into().expect("4 bytes")))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| StoreError::Corrupt("an ingestion marker names a non-UTF-8 file".into()))
    }

    fn cf(&mut self) -> Result<Cf> {
        let index = self.u8()? as usize;
        Cf::ALL.get(index).copied().ok_or_else(|| {
            StoreError::Corrupt(format!("an ingestion marker names column family {index}"))
        })
    }
}

/// Everything in one batch: the ingestion of engines without files.
pub fn as_one_batch(runs: Vec<SortedRun>, commit: WriteBatch) -> WriteBatch {
    let mut batch = WriteBatch::default();
    for run in runs {
        for (key, value) in run.entries {
            batch.put(run.cf, key, value);
        }
    }
    for (cf, key, value) in commit.ops() {
        match value {
            Some(value) => batch.put(*cf, key.clone(), value.clone()),
            None => batch.delete(*cf, key.clone()),
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_round_trips() {
        let pending = Pending {
            staging: "7-123".into(),
            files: vec![(Cf::History, "0.sst".into()), (Cf::Online, "1.sst".into())],
            commit: vec![
                (Cf::Meta, b"store_version".to_vec(), Some(vec![0, 0, 0, 9])),
                (Cf::Online, b"gone".to_vec(), None),
            ],
        };
        let decoded = Pending::decode(&pending.encode()).unwrap();
        assert_eq!(decoded, pending);
        assert!(Pending::decode(&pending.encode()[..10]).is_err());
        let batch = decoded.commit_batch();
        assert_eq!(batch.len(), 3);
        assert_eq!(
            batch.ops()[2],
            (Cf::Meta, b"ingest/pending/7-123".to_vec(), None)
        );
    }

    #[test]
    fn a_run_is_sorted_and_refuses_a_key_twice() {
        let run = SortedRun::new(
            Cf::History,
            vec![(b"b".to_vec(), vec![]), (b"a".to_vec(), vec![1])],
        )
        .unwrap();
        assert_eq!(run.entries[0].0, b"a");
        assert!(SortedRun::new(Cf::History, vec![(b"a".to_vec(), vec![]); 2]).is_err());
    }
}
