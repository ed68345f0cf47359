//! `reprise push`: a file's rows in batches through the push path, or, for
//! a backfill, by bulk ingestion. CSV rows are parsed straight into typed
//! values on a thread of their own, and each batch is encoded while the one
//! before it is written (`FeatureStore::prepare_parsed`); JSON lines go
//! through the JSON push path.

use std::fs::File;
use std::io::Read;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use anyhow::{bail, Context};
use indicatif::ProgressBar;
use reprise_store::backfill::Backfill;
use reprise_store::push::{ParsedRow, PreparedPush};
use reprise_store::text_rows::TextColumns;
use reprise_store::{FeatureStore, PushOutcome, StoreError};
use serde_json::Value as Json;

use crate::args::{PushArgs, StoreArgs};
use crate::input::{is_csv, json_lines};
use crate::progress;

pub fn run(store_args: &StoreArgs, args: PushArgs) -> anyhow::Result<()> {
    let store = crate::args::open_store(store_args)?;
    let label = store
        .registry()
        .view(&args.view)
        .with_context(|| format!("unknown feature view `{}`", args.view))?
        .label();
    reprise_actors::system_views::refuse_server_written(&args.view)?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let ingest = args.backfill && args.ingest_rows > 0;
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    let bar = progress::bytes(size, &format!("push {label}"));
    let writer = Writer {
        store: &store,
        label: &label,
        ingest,
        backfill: args.backfill,
        chunk: if ingest {
            args.ingest_rows
        } else {
            args.batch_size
        },
        bar: &bar,
    };
    let file =
        File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let reader = Box::new(bar.wrap_read(file)) as Box<dyn Read + Send>;
    let totals = if is_csv(&args.file) {
        writer.csv(reader)
    } else {
        writer.json_lines(reader)
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    if ingest {
        // Files that overlap what the store held land above it: merged
        // now, inside the backfill, not at the next open.
        bar.set_message("waiting for compactions");
        store.wait_for_compactions().with_context(|| {
            format!(
                "the rows are stored (store version {}), but waiting for the compactions they made due failed",
                totals.last_version
            )
        })?;
    }
    bar.finish_and_clear();
    let elapsed = bar.elapsed().as_secs_f64().max(1e-9);
    println!(
        "pushed {} rows to {label} in {} {} (store version {}) in {elapsed:.2}s, {:.0} rows/s",
        totals.written,
        totals.batches,
        if totals.batches == 1 {
            "batch"
        } else {
            "batches"
        },
        totals.last_version,
        totals.written as f64 / elapsed
    );
    Ok(())
}

#[derive(Default)]
struct Totals {
    written: usize,
    batches: u64,
    last_version: u64,
}

impl Totals {
    fn add(&mut self, outcome: PushOutcome) {
        self.written += outcome.written;
        self.batches += 1;
        self.last_version = outcome.store_version;
    }
}

struct Writer<'a> {
    store: &'a FeatureStore,
    label: &'a str,
    ingest: bool,
    backfill: bool,
    /// Rows per batch (per sorted run for a backfill).
    chunk: usize,
    bar: &'a ProgressBar,
}

impl<'a> Writer<'a> {
    /// CSV: one thread parses the next batch into typed rows while this one
    /// writes the previous.
    fn csv(&self, reader: Box<dyn Read + Send>) -> anyhow::Result<Totals> {
        let mut csv = csv::Reader::from_reader(reader);
        let headers: Vec<String> = csv
            .headers()
            .context("reading the CSV header")?
            .iter()
            .map(str::to_owned)
            .collect();
        let columns = self
            .store
            .text_columns(self.label, &headers)
            .map_err(|e| anyhow::anyhow!("the header: {e}"))?;
        let (send, receive) = std::sync::mpsc::sync_channel::<anyhow::Result<Vec<ParsedRow>>>(0);
        let chunk = self.chunk;
        let columns = Arc::new(columns);
        let parser_columns = Arc::clone(&columns);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut record = csv::StringRecord::new();
                let mut batch = Vec::with_capacity(chunk);
                let mut row = 0usize;
                loop {
                    let parsed = match csv.read_record(&mut record) {
                        Ok(false) => break,
                        Ok(true) => {
                            let line = record.position().map_or(row as u64 + 2, |p| p.line());
                            parser_columns
                                .parse(row, record.iter())
                                .map_err(|e| match e.field() {
                                    Some(field) => {
                                        anyhow::anyhow!("line {line}: {e} (at {field})")
                                    }
                                    None => anyhow::anyhow!("line {line}: {e}"),
                                })
                        }
                        Err(e) => Err(anyhow::anyhow!("CSV record {}: {e}", row + 1)),
                    };
                    row += 1;
                    match parsed {
                        Ok(parsed) => batch.push(parsed),
                        Err(e) => {
                            let _ = send.send(Err(e));
                            return;
                        }
                    }
                    if batch.len() == chunk {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(chunk));
                        if send.send(Ok(full)).is_err() {
                            return;
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = send.send(Ok(batch));
                }
            });
            if self.ingest {
                let mut backfill = self.begin_backfill()?;
                let mut added = 0;
                for batch in receive {
                    let batch = batch?;
                    let rows = batch.len();
                    backfill.add_parsed(batch).map_err(|e| located(e, added))?;
                    added += rows;
                    self.on_added(added);
                }
                self.finish_backfill(backfill)
            } else {
                self.push_pipelined(&columns, receive)
            }
        })
    }

    /// Pushes `batches` in order, each prepared on this thread while a
    /// thread of its own writes the one before.
    fn push_pipelined(
        &self,
        columns: &TextColumns,
        batches: Receiver<anyhow::Result<Vec<ParsedRow>>>,
    ) -> anyhow::Result<Totals> {
        let (send, prepared) = std::sync::mpsc::sync_channel::<PreparedPush>(0);
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> anyhow::Result<Totals> {
                let mut totals = Totals::default();
                for push in prepared {
                    totals.add(push.write().map_err(|e| located(e, totals.written))?);
                }
                Ok(totals)
            });
            let mut sent = 0;
            let mut preparing = || -> anyhow::Result<()> {
                for batch in &batches {
                    let batch = batch?;
                    let rows = batch.len();
                    let push = self
                        .store
                        .prepare_parsed(columns, batch, self.backfill)
                        .map_err(|e| located(e, sent))?;
                    if send.send(push).is_err() {
                        // The writer stopped at an error it reports.
                        break;
                    }
                    sent += rows;
                }
                Ok(())
            };
            let prepared = preparing();
            drop(send);
            let written = writer.join().expect("the writing thread panicked");
            // A failed write makes the next preparation fail too: the
            // write's error is the one to report.
            let totals = written?;
            prepared?;
            Ok(totals)
        })
    }

    fn json_lines(&self, reader: Box<dyn Read + Send>) -> anyhow::Result<Totals> {
        let rows = json_lines(reader);
        let mut totals = Totals::default();
        let mut batch: Vec<Json> = Vec::with_capacity(self.chunk);
        let mut backfill = if self.ingest {
            Some(self.begin_backfill()?)
        } else {
            None
        };
        let mut added = 0;
        let mut flush = |batch: &mut Vec<Json>, totals: &mut Totals| -> anyhow::Result<()> {
            match backfill.as_mut() {
                Some(backfill) => {
                    backfill.add_json(batch).map_err(|e| located(e, added))?;
                    added += batch.len();
                    self.on_added(added);
                }
                None => {
                    let outcome = self.store.push(self.label, batch, self.backfill);
                    totals.add(outcome.map_err(|e| located(e, totals.written))?);
                }
            }
            batch.clear();
            Ok(())
        };
        for row in rows {
            batch.push(row.map_err(|e| anyhow::anyhow!("{e}"))?);
            if batch.len() == self.chunk {
                flush(&mut batch, &mut totals)?;
            }
        }
        if !batch.is_empty() {
            flush(&mut batch, &mut totals)?;
        }
        match backfill {
            Some(backfill) => self.finish_backfill(backfill),
            None => Ok(totals),
        }
    }

    /// A backfill: sorted runs spilled to the store's scratch directory.
    fn begin_backfill(&self) -> anyhow::Result<Backfill<'a>> {
        Ok(self.store.begin_backfill(self.label)?)
    }

    fn on_added(&self, rows: usize) {
        self.bar.set_message(format!("{rows} rows sorted"));
    }

    /// Merges the sorted runs into the store: one store version.
    fn finish_backfill(&self, backfill: Backfill<'_>) -> anyhow::Result<Totals> {
        self.bar.set_message("merging sorted runs into the store");
        let mut totals = Totals::default();
        totals.add(backfill.finish()?);
        Ok(totals)
    }
}

/// A batch's error, with where the batch starts in the file.
fn located(e: StoreError, first_row: usize) -> anyhow::Error {
    match e.field() {
        Some(field) => {
            anyhow::anyhow!(
                "{e} (at {field}; the batch starts at data row {first_row} of the file)"
            )
        }
        None => anyhow::anyhow!("{e}"),
    }
}
