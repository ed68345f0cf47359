//! `reprise push`: bulk ingest through the normal push path, in batches.

use std::io::Read;
use std::sync::Arc;

use anyhow::{bail, Context};
use reprise_store::transform::EVENT_TIMESTAMP;
use reprise_store::FeatureType;
use serde_json::Value as Json;

use crate::args::{PushArgs, StoreArgs};
use crate::input::{infer_cell, read_rows};
use crate::progress;

pub fn run(store_args: &StoreArgs, args: PushArgs) -> anyhow::Result<()> {
    let store = crate::args::open_store(store_args)?;
    let registry = store.registry();
    let view = Arc::clone(
        registry
            .view(&args.view)
            .with_context(|| format!("unknown feature view `{}`", args.view))?,
    );
    reprise_actors::system_views::refuse_server_written(&args.view)?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    let bar = progress::bytes(size, &format!("push {}", view.label()));
    let wrap_bar = bar.clone();
    let cell_view = Arc::clone(&view);
    let rows = read_rows(
        &args.file,
        move |file| Box::new(wrap_bar.wrap_read(file)) as Box<dyn Read>,
        Box::new(move |column, text| {
            if column == EVENT_TIMESTAMP || cell_view.join_keys.iter().any(|k| k == column) {
                return Ok(Json::String(text.to_owned()));
            }
            match cell_view
                .feature_index(column)
                .map(|i| cell_view.features[i].feature_type)
            {
                Some(FeatureType::String) => Ok(Json::String(text.to_owned())),
                Some(FeatureType::FloatVector | FeatureType::StringList) => {
                    serde_json::from_str(text).map_err(|e| format!("expected a JSON array: {e}"))
                }
                // Numbers and booleans are checked against the type by the push path.
                _ => Ok(infer_cell(text)),
            }
        }),
    )?;

    let label = view.label();
    let flush = |batch: &mut Vec<Json>,
                 first_row: usize|
     -> anyhow::Result<reprise_store::PushOutcome> {
        let outcome = store
            .push(&label, batch, args.backfill)
            .map_err(|e| match e.field() {
                Some(field) => anyhow::anyhow!(
                    "{e} (at {field}; the batch starts at data row {first_row} of the file)"
                ),
                None => anyhow::anyhow!("{e}"),
            })?;
        batch.clear();
        Ok(outcome)
    };
    let (mut batch, mut written, mut batches, mut last_version) =
        (Vec::with_capacity(args.batch_size), 0usize, 0u64, 0);
    for row in rows {
        batch.push(row.map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?);
        if batch.len() == args.batch_size {
            let outcome = flush(&mut batch, written)?;
            (written, batches, last_version) = (
                written + outcome.written,
                batches + 1,
                outcome.store_version,
            );
        }
    }
    if !batch.is_empty() {
        let outcome = flush(&mut batch, written)?;
        (written, batches, last_version) = (
            written + outcome.written,
            batches + 1,
            outcome.store_version,
        );
    }
    bar.finish_and_clear();
    let elapsed = bar.elapsed().as_secs_f64().max(1e-9);
    println!(
        "pushed {written} rows to {} in {batches} batches (store version {last_version}) in {elapsed:.2}s, {:.0} rows/s",
        view.label(),
        written as f64 / elapsed
    );
    Ok(())
}
