//! `reprise snapshot`: create a point-in-time snapshot from a file of entity
//! rows and write its rows to a JSONL or Parquet file.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Read};

use anyhow::Context;
use reprise_store::transform::EVENT_TIMESTAMP;
use reprise_store::{Cutoff, SnapshotSpec};
use serde_json::Value as Json;

use crate::args::{SnapshotArgs, StoreArgs};
use crate::input::{infer_cell, read_ahead, read_rows};
use crate::progress;

pub fn run(store_args: &StoreArgs, args: SnapshotArgs) -> anyhow::Result<()> {
    let store = crate::args::open_store(store_args)?;
    let cutoff = Cutoff::parse(&args.cutoff)
        .with_context(|| format!("--cutoff `{}` is not created or event", args.cutoff))?;
    let registry = store.registry();
    let mut key_columns: HashSet<String> = HashSet::from([EVENT_TIMESTAMP.to_owned()]);
    for (i, feature) in args.features.iter().enumerate() {
        let resolved = registry.resolve(feature, &format!("--features[{i}]"))?;
        key_columns.extend(resolved.view.join_keys.iter().cloned());
    }
    let size = std::fs::metadata(&args.entities)
        .with_context(|| format!("reading {}", args.entities.display()))?
        .len();
    let bar = progress::bytes(size, "store entity rows");
    let wrap_bar = bar.clone();
    let rows = read_rows(
        &args.entities,
        move |file| Box::new(wrap_bar.wrap_read(file)) as Box<dyn Read + Send>,
        Box::new(move |column, text| {
            Ok(if key_columns.contains(column) {
                Json::String(text.to_owned())
            } else {
                infer_cell(text)
            })
        }),
    )?;
    let spec = SnapshotSpec {
        features: args.features.clone(),
        as_of_version: args.as_of_version,
        cutoff,
        owner: String::new(),
    };
    let info = store.create_snapshot(&spec, read_ahead(rows))?;
    bar.finish_and_clear();
    let stored = bar.elapsed();

    let out =
        File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let bar = progress::written("compute rows");
    let writer = bar.wrap_write(BufWriter::new(out));
    let parquet = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let count = if parquet {
        store.write_snapshot_parquet(&info.id, writer)?
    } else {
        store.write_snapshot_jsonl(&info.id, writer)?
    };
    bar.finish_and_clear();
    println!(
        "snapshot {} at store version {}: {count} rows -> {} (entity rows stored in {:.2}s, rows written in {:.2}s)",
        info.id,
        info.store_version,
        args.out.display(),
        stored.as_secs_f64(),
        bar.elapsed().as_secs_f64()
    );
    Ok(())
}
