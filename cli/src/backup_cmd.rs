//! `reprise backup`, `reprise restore` and `reprise compact` on a stopped
//! store (a running server: `POST /v1/admin/backup`, `/v1/admin/compact`).

use std::path::Path;

use anyhow::Context;

use crate::args::StoreArgs;

pub fn backup(store_args: &StoreArgs, out: &Path) -> anyhow::Result<()> {
    let store = crate::args::open_store(store_args)?;
    let out = std::path::absolute(out).with_context(|| format!("{}", out.display()))?;
    let info = store.backup(&out)?;
    println!(
        "backup of {} at store version {} -> {}",
        store_args.data_dir.display(),
        info.store_version,
        out.display()
    );
    Ok(())
}

pub fn restore(store_args: &StoreArgs, from: &Path) -> anyhow::Result<()> {
    let info = reprise_store::restore(from, &store_args.data_dir).with_context(|| {
        format!(
            "restoring {} into {}",
            from.display(),
            store_args.data_dir.display()
        )
    })?;
    println!(
        "restored {} at store version {} into {}",
        from.display(),
        info.store_version,
        store_args.data_dir.display()
    );
    Ok(())
}

pub fn compact(store_args: &StoreArgs) -> anyhow::Result<()> {
    let store = crate::args::open_store(store_args)?;
    let started = std::time::Instant::now();
    store.compact_history()?;
    println!(
        "history compacted in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
