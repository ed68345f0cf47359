//! `reprise export`: every view's history as Parquet for offline engines,
//! incremental by store version (see `reprise_store::export`).

use anyhow::Context;

use crate::args::{ExportArgs, StoreArgs};

pub fn run(store_args: &StoreArgs, args: ExportArgs) -> anyhow::Result<()> {
    let store = crate::args::open_store(store_args)?;
    let record = store
        .export_history(&args.out, args.since_version, |view, rows| {
            tracing::info!(view, rows, "view exported");
        })
        .with_context(|| format!("exporting to {}", args.out.display()))?;
    let rows: u64 = record.files.iter().map(|f| f.rows).sum();
    println!(
        "{}",
        serde_json::json!({
            "out": args.out,
            "since_version": record.since_version,
            "store_version": record.store_version,
            "files": record.files.len(),
            "rows": rows,
        })
    );
    Ok(())
}
