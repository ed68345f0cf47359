//! `reprise drift --reference A.csv --current B.csv [--json FILE]`.

use anyhow::Context;
use reprise_validation::{compare_csv, ColumnDistances};

use crate::args::DriftArgs;

pub fn run(args: DriftArgs) -> anyhow::Result<()> {
    let report = compare_csv(&args.reference, &args.current)?;
    println!(
        "{:<20} {:<12} {:>8} {:>10} {:>8} {:>8} {:>11} {:>8}",
        "column", "kind", "linf", "ks_pvalue", "js_log2", "psi", "wasserstein", "value"
    );
    for (name, d) in &report.columns {
        match d {
            ColumnDistances::Numeric(n) => println!(
                "{name:<20} {:<12} {:>8.4} {:>10.3e} {:>8.4} {:>8.4} {:>11.4} {:>8}",
                "numeric", n.linf, n.ks_pvalue, n.js_log2, n.psi, n.wasserstein_norm, ""
            ),
            ColumnDistances::Categorical(c) => println!(
                "{name:<20} {:<12} {:>8.4} {:>10} {:>8.4} {:>8} {:>11} {:>8}",
                "categorical", c.linf, "", c.js_log2, "", "", c.linf_value
            ),
        }
    }
    for name in &report.only_in_reference {
        println!("{name:<20} only in {}", args.reference.display());
    }
    for name in &report.only_in_current {
        println!("{name:<20} only in {}", args.current.display());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
