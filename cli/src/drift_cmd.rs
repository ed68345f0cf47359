//! `reprise drift --reference A.csv --current B.csv [--json FILE]`.

use anyhow::Context;
use reprise_validation::{compare_csv, ColumnDistances};

use crate::args::{self, DriftArgs, StoreArgs, ValidateArgs};

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

/// `reprise validate`: the server's validation run, offline.
pub fn validate(store_args: &StoreArgs, args: ValidateArgs) -> anyhow::Result<()> {
    use reprise_validation::stats::Summary;
    let store = args::open_store(store_args)?;
    let config = reprise_actors::validation::DriftConfig {
        window_micros: reprise_store::time::parse_duration(&args.window)
            .filter(|w| *w > 0)
            .ok_or_else(|| {
                anyhow::anyhow!("--window `{}` is not a duration like 1h", args.window)
            })?,
        default_threshold: args.threshold,
        ..Default::default()
    };
    let run = reprise_actors::validation::drift::run(&store, &config, &mut Default::default())?;
    let brief = |s: &Summary| match s {
        Summary::Numeric {
            count,
            mean,
            std,
            p50,
            ..
        } => format!(
            "n={count} mean={mean:.3} std={std:.3} p50={}",
            p50.map_or("-".into(), |p| format!("{p:.3}"))
        ),
        Summary::Categorical { count, top, .. } => format!(
            "n={count} top={}",
            top.first().map_or("-".into(), |(v, c)| format!("{v}({c})"))
        ),
    };
    println!(
        "{:<6} {:<20} {:<18} {:>7} {:<5} {:<42} {:<42}",
        "check", "view", "feature", "linf", "fired", "reference", "current"
    );
    for c in &run.comparisons {
        let linf = match &c.distances {
            ColumnDistances::Numeric(d) => d.linf,
            ColumnDistances::Categorical(d) => d.linf,
        };
        println!(
            "{:<6} {:<20} {:<18} {:>7.4} {:<5} {:<42} {:<42}",
            c.check,
            c.view,
            c.feature,
            linf,
            c.fired,
            brief(&c.reference),
            brief(&c.current)
        );
    }
    for a in &run.raised {
        println!(
            "alert {} raised: {} {}:{} {} = {:.4} > {:.4}",
            a.id, a.check, a.view, a.feature, a.metric, a.value, a.threshold
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&run)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
