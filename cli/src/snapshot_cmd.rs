//! `reprise snapshot`: create a point-in-time snapshot from a file of entity
//! rows (CSV, JSON lines or Parquet) and write its rows to a JSONL or
//! Parquet file.

use std::fs::File;
use std::io::{BufWriter, Read};

use anyhow::Context;
use reprise_store::{Cutoff, SnapshotSpec};

use crate::args::{SnapshotArgs, StoreArgs};
use crate::input::{is_csv, is_parquet, json_lines, read_ahead};
use crate::progress;

pub fn run(store_args: &StoreArgs, args: SnapshotArgs) -> anyhow::Result<()> {
    let store = crate::args::open_store(store_args)?;
    let cutoff = Cutoff::parse(&args.cutoff)
        .with_context(|| format!("--cutoff `{}` is not created or event", args.cutoff))?;
    let size = std::fs::metadata(&args.entities)
        .with_context(|| format!("reading {}", args.entities.display()))?
        .len();
    let file = File::open(&args.entities)
        .with_context(|| format!("opening {}", args.entities.display()))?;
    let spec = SnapshotSpec {
        features: args.features.clone(),
        as_of_version: args.as_of_version,
        cutoff,
        owner: String::new(),
    };
    let parquet_entities = is_parquet(&args.entities);
    let bar = if parquet_entities {
        progress::spinner("store entity rows")
    } else {
        progress::bytes(size, "store entity rows")
    };
    let created = if parquet_entities {
        store.create_snapshot_from_parquet(&spec, file)
    } else {
        let reader = Box::new(bar.wrap_read(file)) as Box<dyn Read + Send>;
        if is_csv(&args.entities) {
            let mut csv = csv::Reader::from_reader(reader);
            let headers: Vec<String> = csv
                .headers()
                .with_context(|| format!("reading the CSV header of {}", args.entities.display()))?
                .iter()
                .map(str::to_owned)
                .collect();
            let records = csv
                .into_records()
                .enumerate()
                .map(|(i, record)| record.map_err(|e| format!("CSV record {}: {e}", i + 1)));
            store.create_snapshot_from_text::<_, csv::StringRecord>(
                &spec,
                &headers,
                read_ahead(Box::new(records)),
            )
        } else {
            store.create_snapshot(&spec, read_ahead(json_lines(reader)))
        }
    };
    let info = created.map_err(|e| {
        bar.finish_and_clear();
        let file = args.entities.display();
        match e.field() {
            Some(field) if !e.to_string().contains(field) => {
                anyhow::anyhow!("{file}: {e} (at {field})")
            }
            _ => anyhow::anyhow!("{file}: {e}"),
        }
    })?;
    bar.finish_and_clear();
    let stored = bar.elapsed();

    let out =
        File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let bar = progress::written("compute rows");
    let writer = bar.wrap_write(BufWriter::new(out));
    let count = if is_parquet(&args.out) {
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
