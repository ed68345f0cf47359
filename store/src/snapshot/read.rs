//! Computing a snapshot's rows, one stored chunk of entity rows at a time.

use prost::Message;

use super::output::{ChunkSink, OutputLayout, OutputRow, RowsSink};
use super::pit::{merge_point_in_time, PitQuery};
use super::Cutoff;
use crate::aggregation;
use crate::cf::Cf;
use crate::codec;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::proto::{EntityRow, EntityRowChunk, SnapshotMeta};
use crate::registry::FeatureView;
use crate::row::RawRow;
use crate::sorted_runs::{key_ranges, merge_sorted};
use crate::threads::worker_threads;
use crate::time::Micros;
use crate::types::Value;
use std::sync::Arc;

/// The entity key of `plan`'s view in an entity row.
fn plan_key(plan: &ViewPlan, row: &EntityRow) -> Vec<u8> {
    let keys: Vec<&str> = plan
        .key_positions
        .iter()
        .map(|&p| row.keys[p].as_str())
        .collect();
    codec::entity_key(&keys)
}

/// A view the snapshot reads, with where its join keys sit in the row.
struct ViewPlan {
    view: Arc<FeatureView>,
    key_positions: Vec<usize>,
}

impl FeatureStore {
    /// Computes the snapshot's rows in input order and hands them to `visit`
    /// a chunk at a time. Memory use is bounded by one pass (up to 1M entity
    /// rows: their stored chunks up to `StoreConfig::snapshot_kept_chunk_bytes`,
    /// each view's lookups and the encoded rows they found).
    pub fn read_snapshot(
        &self,
        id: &str,
        visit: impl FnMut(&SnapshotMeta, Vec<OutputRow>) -> Result<()>,
    ) -> Result<SnapshotMeta> {
        self.read_snapshot_chunks(id, RowsSink::default(), visit)
    }

    /// Computes the snapshot's rows in input order, builds each stored
    /// chunk's output with `sink` and hands it to `visit`.
    pub(crate) fn read_snapshot_chunks<S: ChunkSink>(
        &self,
        id: &str,
        mut sink: S,
        mut visit: impl FnMut(&SnapshotMeta, S::Chunk) -> Result<()>,
    ) -> Result<SnapshotMeta> {
        let _span = tracing::info_span!("store.snapshot_read", snapshot = id).entered();
        let meta = self.snapshot_meta(id)?;
        let registry = self.registry();
        let cutoff = Cutoff::parse(&meta.cutoff)
            .ok_or_else(|| StoreError::Corrupt(format!("cutoff {}", meta.cutoff)))?;
        let mut plans: Vec<ViewPlan> = Vec::new();
        let mut feature_slots: Vec<(usize, usize)> = Vec::new();
        for f in &meta.features {
            let label = format!("{}@{}", f.view, f.view_version);
            let view = registry.view(&label).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "snapshot {id} reads view {label}, which is not registered"
                ))
            })?;
            if registry.is_retired(view.id) {
                return Err(StoreError::Expired {
                    field: "snapshot".into(),
                    message: format!(
                        "snapshot {id} reads view `{label}`, which was retired: its rows have been deleted"
                    ),
                });
            }
            let feature = view.feature_index(&f.feature).ok_or_else(|| {
                StoreError::Corrupt(format!("view {label} lost feature {}", f.feature))
            })?;
            let plan = match plans.iter().position(|p| p.view.id == view.id) {
                Some(p) => p,
                None => {
                    let key_positions = view
                        .join_keys
                        .iter()
                        .map(|k| {
                            meta.join_keys
                                .iter()
                                .position(|j| j == k)
                                .expect("planned from these views")
                        })
                        .collect();
                    plans.push(ViewPlan {
                        view: Arc::clone(view),
                        key_positions,
                    });
                    plans.len() - 1
                }
            };
            feature_slots.push((plan, feature));
        }

        // Entity rows are computed a pass at a time: each view's lookups
        // sorted by (entity key, time), cut into one key range per core and
        // merged with its history in key order, then each chunk's output is
        // built in input order. A producer thread computes while this thread hands
        // finished chunks to `visit` (the Parquet or JSON encoder), so
        // encoding overlaps the lookups.
        // Entity rows whose lookups are merged with each view's history in
        // one pass (`StoreConfig::snapshot_pass_rows`). A pass reads the
        // stretch of history its lookups touch once, so the fewer passes
        // the better (1M entity rows over 1M entities step through the
        // whole history: in windows of 262k rows it was read four times).
        let pass_chunks = self.snapshot_pass_chunks;
        std::thread::scope(|scope| {
            let (sender, chunks) = std::sync::mpsc::sync_channel::<Result<S::Chunk>>(2);
            let layout = OutputLayout::new(&meta, &feature_slots);
            let (meta, plans) = (&meta, &plans);
            scope.spawn(move || {
                let sink = &mut sink;
                let mut first = 0;
                while first < meta.chunks {
                    let pass = first..(first + pass_chunks).min(meta.chunks);
                    first = pass.end;
                    let emit = |rows| sender.send(rows).is_ok();
                    match self.compute_pass(id, &layout, plans, cutoff, pass, sink, emit) {
                        // The receiver is gone (`visit` failed): stop.
                        Ok(false) => return,
                        Ok(true) => {}
                        Err(e) => {
                            let _ = sender.send(Err(e));
                            return;
                        }
                    }
                }
            });
            for rows in chunks {
                visit(meta, rows?)?;
            }
            Ok::<(), StoreError>(())
        })?;
        Ok(meta)
    }

    /// One stored chunk of entity rows, still encoded.
    fn snapshot_chunk(&self, id: &str, chunk_index: u32) -> Result<Vec<u8>> {
        self.engine
            .get(Cf::Snapshots, &codec::snapshot_chunk_key(id, chunk_index))?
            .ok_or_else(|| StoreError::Corrupt(format!("snapshot {id} lost chunk {chunk_index}")))
    }

    /// Computes the entity rows of the stored chunks `pass` and hands their
    /// output (built by `sink`) to `emit` a chunk at a time, in input order;
    /// `Ok(false)` when `emit` refused one (nobody reads any more).
    #[allow(clippy::too_many_arguments)]
    fn compute_pass<S: ChunkSink>(
        &self,
        id: &str,
        layout: &OutputLayout,
        plans: &[ViewPlan],
        cutoff: Cutoff,
        pass: std::ops::Range<u32>,
        sink: &mut S,
        mut emit: impl FnMut(Result<S::Chunk>) -> bool,
    ) -> Result<bool> {
        let meta = layout.meta;
        // The pass's stored chunks and each view's lookups (sorted, with their
        // rows' positions in the pass), read in as many parts as there are
        // cores.
        let parts = pass_parts(pass.clone(), worker_threads());
        let keep_bytes = self.snapshot_kept_chunk_bytes / parts.len().max(1);
        let read: Vec<Result<PassPart>> = std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .iter()
                .map(|chunks| {
                    scope.spawn(|| self.read_pass_part(id, meta, plans, chunks.clone(), keep_bytes))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("snapshot reader panicked"))
                .collect()
        });
        // The pass's chunks in order: each kept from reading or `None`, and
        // the position in the pass of its first entity row.
        let mut chunks: Vec<(Option<Vec<u8>>, usize)> = Vec::with_capacity(pass.len());
        let mut pass_rows = 0u32;
        // Per view, each part's sorted lookups, positions in the pass.
        let mut runs: Vec<Vec<Vec<(PitQuery, u32)>>> = plans.iter().map(|_| Vec::new()).collect();
        let mut earliest = Micros::MAX;
        for (part, part_chunks) in read.into_iter().zip(&parts) {
            let part = part?;
            let offset = pass_rows;
            pass_rows += part.rows;
            earliest = earliest.min(part.earliest);
            for (runs, mut run) in runs.iter_mut().zip(part.lookups) {
                run.iter_mut().for_each(|(_, position)| *position += offset);
                runs.push(run);
            }
            let mut kept = part.chunks.map(Vec::into_iter);
            let mut first = offset as usize;
            for (_, rows) in part_chunks.clone().zip(part.chunk_rows) {
                chunks.push((kept.as_mut().and_then(Iterator::next), first));
                first += rows as usize;
            }
        }
        {
            let registry = self.registry();
            let now = self.clock.now();
            for plan in plans {
                crate::retention::check_lookup(&registry, &plan.view, earliest, now, || {
                    "entity_rows.event_timestamp".to_owned()
                })?;
            }
        }
        let answers: Vec<PassAnswers> = plans
            .iter()
            .zip(runs)
            .map(|(plan, runs)| self.answer_plan(meta, plan, cutoff, runs, pass_rows as usize))
            .collect::<Result<_>>()?;

        // Each core builds every n-th chunk's output; they are handed on
        // in order.
        let workers = worker_threads().clamp(1, chunks.len().max(1));
        let mut shares: Vec<Vec<ChunkToBuild>> = (0..workers).map(|_| Vec::new()).collect();
        for (i, (index, (kept, first))) in pass.zip(chunks).enumerate() {
            shares[i % workers].push(ChunkToBuild { index, kept, first });
        }
        let mut sinks: Vec<S> = (1..workers).map(|_| sink.another()).collect();
        let answers = &answers;
        std::thread::scope(|scope| {
            let built: Vec<_> = shares
                .into_iter()
                .zip(std::iter::once(&mut *sink).chain(sinks.iter_mut()))
                .map(|(share, sink)| {
                    // One built chunk ahead: a worker never runs far past
                    // the order chunks are handed on in.
                    let (send, built) = std::sync::mpsc::sync_channel(1);
                    scope.spawn(move || {
                        let mut decoded = EntityRowChunk::default();
                        for chunk in share {
                            let chunk = self.build_output_chunk(
                                id,
                                layout,
                                plans,
                                answers,
                                chunk,
                                &mut decoded,
                                sink,
                            );
                            let failed = chunk.is_err();
                            if send.send(chunk).is_err() || failed {
                                return;
                            }
                        }
                    });
                    built
                })
                .collect();
            // Chunk i comes from worker i % workers; the first worker with
            // no chunk left has built them all.
            for worker in (0..workers).cycle() {
                let Ok(chunk) = built[worker].recv() else {
                    break;
                };
                if !emit(Ok(chunk?)) {
                    // Dropping the receivers stops the workers.
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// The output of one stored chunk of entity rows.
    #[allow(clippy::too_many_arguments)]
    fn build_output_chunk<S: ChunkSink>(
        &self,
        id: &str,
        layout: &OutputLayout,
        plans: &[ViewPlan],
        answers: &[PassAnswers],
        ChunkToBuild { index, kept, first }: ChunkToBuild,
        decoded: &mut EntityRowChunk,
        sink: &mut S,
    ) -> Result<S::Chunk> {
        let chunk = match kept {
            Some(chunk) => chunk,
            None => self.snapshot_chunk(id, index)?,
        };
        decode_reusing(decoded, &chunk)?;
        // Per view, the feature values of the current entity row.
        let mut computed: Vec<Option<Vec<Option<Value>>>> = Vec::with_capacity(plans.len());
        for (position, entity_row) in (first..).zip(decoded.rows.drain(..)) {
            computed.clear();
            for (plan, answers) in plans.iter().zip(answers) {
                let values = match answers.get(position) {
                    Some(bytes) => {
                        let row = RawRow::decode(bytes, plan.view.features.len())?;
                        Some(plan.view.compute_owned(row))
                    }
                    None => None,
                };
                computed.push(values);
            }
            sink.push(layout, entity_row, &mut computed)?;
        }
        sink.finish()
    }

    /// One view's stored rows visible to every lookup of a pass of `rows`
    /// entity rows. The lookups come sorted in runs (one per part of the
    /// pass); they are cut at the same entity keys into one key range per
    /// core, and each core merges its range of every run into one sorted run
    /// and merges that with the view's history (or its aggregation index)
    /// by its own cursor.
    fn answer_plan(
        &self,
        meta: &SnapshotMeta,
        plan: &ViewPlan,
        cutoff: Cutoff,
        mut runs: Vec<Vec<(PitQuery, u32)>>,
        rows: usize,
    ) -> Result<PassAnswers> {
        // One entity's lookups never span two ranges.
        let ranges = key_ranges(&mut runs, worker_threads(), |(query, _)| &query.entity_key);
        let found: Vec<Result<(Vec<u32>, RunAnswers)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = ranges
                .into_iter()
                .map(|range| {
                    scope.spawn(move || {
                        let (queries, positions) = merge_lookups(range);
                        let answers = self.lookup_sorted(meta, plan, cutoff, &queries)?;
                        Ok((positions, answers))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("snapshot worker panicked"))
                .collect()
        });
        let mut answers = PassAnswers {
            blocks: Vec::new(),
            spans: vec![Span::NONE; rows],
        };
        for range in found {
            let (positions, run) = range?;
            assert_eq!(run.spans.len(), positions.len(), "an answer per lookup");
            let first_block = answers.blocks.len() as u32;
            for (span, position) in run.spans.into_iter().zip(positions) {
                if span.block != Span::NONE.block {
                    answers.spans[position as usize] = Span {
                        block: first_block + span.block,
                        ..span
                    };
                }
            }
            answers.blocks.extend(run.blocks);
        }
        Ok(answers)
    }

    /// The stored chunks `chunks` of entity rows (all of them kept if they
    /// fit in `keep_bytes` together, else none) and each view's lookups for
    /// them, sorted, positions counted from the part's start.
    fn read_pass_part(
        &self,
        id: &str,
        meta: &SnapshotMeta,
        plans: &[ViewPlan],
        chunks: std::ops::Range<u32>,
        keep_bytes: usize,
    ) -> Result<PassPart> {
        // Sized up front: growing a million-entry vector doubles it (and
        // faults in fresh pages) twenty times.
        let expected = (chunks.len() * super::ENTITY_ROW_CHUNK).min(meta.rows as usize);
        let mut kept_bytes = 0;
        let mut part = PassPart {
            chunks: Some(Vec::with_capacity(chunks.len())),
            rows: 0,
            chunk_rows: Vec::with_capacity(chunks.len()),
            lookups: plans.iter().map(|_| Vec::with_capacity(expected)).collect(),
            earliest: Micros::MAX,
        };
        let mut decoded = EntityRowChunk::default();
        for chunk_index in chunks {
            let chunk = self.snapshot_chunk(id, chunk_index)?;
            let first = part.rows;
            decode_reusing(&mut decoded, &chunk)?;
            for row in &decoded.rows {
                part.earliest = part.earliest.min(row.event_ts_micros);
                let position = part.rows;
                for (plan, lookups) in plans.iter().zip(&mut part.lookups) {
                    let query = PitQuery {
                        entity_key: plan_key(plan, row),
                        at: row.event_ts_micros,
                    };
                    lookups.push((query, position));
                }
                part.rows += 1;
            }
            part.chunk_rows.push(part.rows - first);
            kept_bytes += chunk.len();
            if kept_bytes > keep_bytes {
                // Wide entity rows: read again when output rows are built.
                part.chunks = None;
            }
            if let Some(kept) = &mut part.chunks {
                kept.push(chunk);
            }
        }
        for lookups in &mut part.lookups {
            lookups.sort_unstable();
        }
        Ok(part)
    }

    /// The rows of `plan`'s view visible to sorted lookups, still encoded.
    fn lookup_sorted(
        &self,
        meta: &SnapshotMeta,
        plan: &ViewPlan,
        cutoff: Cutoff,
        queries: &[PitQuery],
    ) -> Result<RunAnswers> {
        let mut answers = RunAnswers {
            blocks: Vec::new(),
            spans: Vec::with_capacity(queries.len()),
        };
        let Some(spec) = plan.view.aggregation() else {
            let mut cursor = self.engine.scan_cursor(Cf::History)?;
            merge_point_in_time(
                cursor.as_mut(),
                &plan.view,
                queries,
                meta.store_version,
                cutoff,
                |row| answers.push(row),
            )?;
            return Ok(answers);
        };
        let mut cursor = self.engine.scan_cursor(Cf::AggIndex)?;
        for group in queries.chunk_by(|a, b| a.entity_key == b.entity_key) {
            let events = aggregation::load_group(
                cursor.as_mut(),
                spec,
                &group[0].entity_key,
                group[0].at,
                group[group.len() - 1].at,
                meta.store_version,
            )?;
            for query in group {
                let row = aggregation::aggregate_loaded(
                    spec,
                    plan.view.features.len(),
                    &events,
                    query.at,
                    meta.store_version,
                    cutoff,
                );
                answers.push(Some(&row.encode()));
            }
        }
        Ok(answers)
    }
}

/// Where one lookup's answer sits: a range of one block of found rows.
#[derive(Debug, Clone, Copy)]
struct Span {
    block: u32,
    len: u32,
    start: u32,
}

impl Span {
    /// No visible row.
    const NONE: Span = Span {
        block: u32::MAX,
        len: 0,
        start: 0,
    };
}

/// Bytes per block of found rows. Rows are copied into fixed blocks rather
/// than one growing vector: growing it would copy every row found so far
/// into fresh pages (which the kernel zeroes first) each time it doubled.
const ANSWER_BLOCK_BYTES: usize = 4 << 20;

/// The answers of one key range's sorted lookups, in their order.
struct RunAnswers {
    blocks: Vec<Vec<u8>>,
    spans: Vec<Span>,
}

impl RunAnswers {
    fn push(&mut self, row: Option<&[u8]>) {
        let Some(row) = row else {
            self.spans.push(Span::NONE);
            return;
        };
        let full = self
            .blocks
            .last()
            .is_none_or(|block| block.capacity() - block.len() < row.len());
        if full {
            self.blocks
                .push(Vec::with_capacity(ANSWER_BLOCK_BYTES.max(row.len())));
        }
        let index = (self.blocks.len() - 1) as u32;
        let block = self.blocks.last_mut().expect("a block with room");
        self.spans.push(Span {
            block: index,
            len: row.len() as u32,
            start: block.len() as u32,
        });
        block.extend_from_slice(row);
    }
}

/// One view's answers for a pass, by the entity row's position in it.
struct PassAnswers {
    blocks: Vec<Vec<u8>>,
    spans: Vec<Span>,
}

impl PassAnswers {
    fn get(&self, position: usize) -> Option<&[u8]> {
        let span = self.spans[position];
        let block = self.blocks.get(span.block as usize)?;
        let start = span.start as usize;
        Some(&block[start..start + span.len as usize])
    }
}

/// Decodes a stored chunk of entity rows into `decoded`, keeping its
/// allocation: a vector of rows decoded afresh for each chunk grows by
/// doubling, into fresh pages the kernel zeroes first, every time.
fn decode_reusing(decoded: &mut EntityRowChunk, chunk: &[u8]) -> Result<()> {
    decoded.clear();
    decoded.merge(chunk)?;
    Ok(())
}

/// A stored chunk of entity rows whose output is to be built.
struct ChunkToBuild {
    index: u32,
    /// Its bytes, if kept from reading the pass.
    kept: Option<Vec<u8>>,
    /// The position of its first entity row in the pass.
    first: usize,
}

/// One part of a pass, read on its own thread.
struct PassPart {
    /// Its stored chunks of entity rows, still encoded (`None` past the
    /// part's share of `StoreConfig::snapshot_kept_chunk_bytes`), and their
    /// rows.
    chunks: Option<Vec<Vec<u8>>>,
    rows: u32,
    /// Entity rows per chunk.
    chunk_rows: Vec<u32>,
    /// Per view, sorted; positions count from the part's first row.
    lookups: Vec<Vec<(PitQuery, u32)>>,
    earliest: Micros,
}

/// Sorted runs of lookups merged into one sorted run, unzipped: each side
/// allocated once (fresh pages are dear: the kernel zeroes each one).
fn merge_lookups(runs: Vec<&mut [(PitQuery, u32)]>) -> (Vec<PitQuery>, Vec<u32>) {
    let len = runs.iter().map(|run| run.len()).sum();
    let mut merged = (Vec::with_capacity(len), Vec::with_capacity(len));
    merge_sorted(runs, |(query, position)| {
        merged.0.push(query);
        merged.1.push(position);
    });
    merged
}

/// Cuts a pass's chunks into at most `parts` contiguous ranges of about
/// equal length.
fn pass_parts(pass: std::ops::Range<u32>, parts: usize) -> Vec<std::ops::Range<u32>> {
    let len = pass.len() as u32;
    let parts = (parts as u32).clamp(1, len.max(1));
    (0..parts)
        .map(|i| pass.start + len * i / parts..pass.start + len * (i + 1) / parts)
        .filter(|r| !r.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_is_cut_into_contiguous_parts_that_cover_it() {
        assert_eq!(pass_parts(0..10, 2), vec![0..5, 5..10]);
        assert_eq!(pass_parts(3..10, 2), vec![3..6, 6..10]);
        assert_eq!(pass_parts(4..5, 4), vec![4..5]);
        assert_eq!(pass_parts(0..3, 4), vec![0..1, 1..2, 2..3]);
        assert!(pass_parts(2..2, 2).is_empty());
    }
}
