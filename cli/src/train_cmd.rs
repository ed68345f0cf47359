//! `reprise train` and `reprise evaluate`.

use std::path::Path;

use anyhow::Context;
use reprise_models::als::AlsParams;
use reprise_models::metrics::TopK;
use reprise_models::pipeline::PipelineParams;
use reprise_trainer::train::Step;
use reprise_trainer::{Evaluation, PipelineMetrics, TrainOptions};
use serde_json::json;

use crate::args::{self, EvaluateArgs, ExportServedArgs, StoreArgs, TrainArgs};
use crate::progress;
use reprise_store::FeatureStore;

/// Imports MovieLens from `dir` (unless its ratings are in the store; the
/// store's migrations must be the MovieLens catalogue's), then
/// [`train_once`].
pub fn import_and_train_once(store: &FeatureStore, dir: &Path) -> anyhow::Result<()> {
    let imported = store.view_history(reprise_trainer::movielens::RATINGS_VIEW, store.version())?;
    if imported.is_empty() {
        import_movielens(store, dir)?;
    }
    train_once(store)
}

/// Trains the declared recommender with the default parameters, unless a
/// ranker is stored already.
pub fn train_once(store: &FeatureStore) -> anyhow::Result<()> {
    if reprise_trainer::model_io::latest(store, reprise_trainer::model_io::RANKER_KIND).is_ok() {
        return Ok(());
    }
    let options = TrainOptions {
        declared_dimension: true,
        ..TrainOptions::default()
    };
    let outcome = reprise_trainer::train(store, &options, &mut print_step)?;
    tracing::info!(
        ranker = %outcome.ranker_version,
        ndcg_at_10 = outcome.metrics.top_k.ndcg,
        precision_at_10 = outcome.metrics.top_k.precision,
        "demo model trained"
    );
    Ok(())
}

/// `reprise import movielens DIR`, with a progress bar.
pub fn import_movielens(store: &FeatureStore, dir: &Path) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let bar = progress::count(0, "import ratings");
    let rows = reprise_trainer::movielens::import(store, dir, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    println!(
        "imported MovieLens from {}: {rows} rows in {:.1}s (store version {})",
        dir.display(),
        start.elapsed().as_secs_f64(),
        store.version()
    );
    Ok(())
}

pub fn print_step(step: &Step) {
    eprintln!("  {:<18} {:>6.1}s", step.name, step.seconds);
}

pub fn train(store_args: &StoreArgs, args: TrainArgs) -> anyhow::Result<()> {
    let store = args::open_store(store_args)?;
    let options = TrainOptions {
        params: PipelineParams {
            als: AlsParams {
                factors: args.factors.unwrap_or(AlsParams::default().factors),
                iterations: args.iterations,
                seed: args.seed,
                ..AlsParams::default()
            },
            candidates: args.candidates,
            popular_candidates: args.popular_candidates,
            shuffle_labels: args.shuffle_labels,
            ..PipelineParams::default()
        },
        as_of_version: args.as_of_version,
        source: args.source,
        declared_dimension: args.factors.is_none(),
        expected_schema: None,
    };
    let outcome = reprise_trainer::train(&store, &options, &mut print_step)?;
    println!(
        "trained {} and {} on store version {} ({} ranker rows, {} positive; snapshot {})",
        outcome.ranker_version,
        outcome.embeddings_version,
        outcome.store_version,
        outcome.ranker_rows,
        outcome.ranker_positives,
        outcome.training_snapshot_id
    );
    println!(
        "embeddings written to {}:vector and {}:vector",
        outcome.user_embedding_view, outcome.item_embedding_view
    );
    print!(
        "{}",
        table(
            &[("pipeline", &outcome.metrics.top_k)],
            Some(&outcome.metrics)
        )
    );
    if let Some(path) = &args.json {
        write_json(path, &serde_json::to_value(&outcome)?)?;
    }
    Ok(())
}

pub fn evaluate(store_args: &StoreArgs, args: EvaluateArgs) -> anyhow::Result<()> {
    let store = args::open_store(store_args)?;
    let e: Evaluation = reprise_trainer::evaluate(&store, args.model.as_deref())?;
    println!(
        "{} at store version {}: {} users, {} items, {} training and {} held-out interactions",
        e.model, e.store_version, e.users, e.items, e.train_interactions, e.held_out_interactions
    );
    print!(
        "{}",
        table(
            &[
                ("pipeline", &e.pipeline.top_k),
                ("most_popular", &e.most_popular),
                ("item_knn", &e.item_knn),
            ],
            Some(&e.pipeline)
        )
    );
    if let Some(path) = &args.json {
        let top_k = |m: &TopK| json!({"precision@10": m.precision, "recall@10": m.recall, "ndcg@10": m.ndcg});
        let mut pipeline = top_k(&e.pipeline.top_k);
        pipeline["auc"] = json!(e.pipeline.auc);
        pipeline["log_loss"] = json!(e.pipeline.log_loss);
        write_json(
            path,
            &json!({
                "pipeline": pipeline,
                "most_popular": top_k(&e.most_popular),
                "item_knn": top_k(&e.item_knn),
                "model": e.model,
                "store_version": e.store_version,
                "users_evaluated": e.pipeline.top_k.users,
            }),
        )?;
    }
    Ok(())
}

/// A fixed-width table of top-10 metrics, with the ranker's AUC and log-loss
/// under it.
fn table(rows: &[(&str, &TopK)], ranker: Option<&PipelineMetrics>) -> String {
    let mut out = format!(
        "{:<14} {:>12} {:>10} {:>8}\n",
        "model", "precision@10", "recall@10", "ndcg@10"
    );
    for (name, m) in rows {
        out += &format!(
            "{name:<14} {:>12.4} {:>10.4} {:>8.4}\n",
            m.precision, m.recall, m.ndcg
        );
    }
    if let Some(r) = ranker {
        out += &format!(
            "ranker over {} candidates ({} held-out hits): AUC {:.4}, log-loss {:.4}\n",
            r.candidates, r.candidate_hits, r.auc, r.log_loss
        );
    }
    out
}

pub fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// `reprise export-served`: log-and-wait training data as JSON lines.
pub fn export_served(store_args: &StoreArgs, args: ExportServedArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let store = args::open_store(store_args)?;
    let mut out: Box<dyn Write> = if args.out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(&args.out)
                .with_context(|| format!("creating {}", args.out.display()))?,
        ))
    };
    let mut written = 0usize;
    // Streamed in key order (request id, item): serving order for the
    // time-ordered request ids; memory stays flat however long the log.
    reprise_trainer::served_log::for_each_served(&store, store.version(), None, |example| {
        if args.labelled_only && example.label.is_none() {
            return Ok(());
        }
        serde_json::to_writer(&mut out, &example)
            .and_then(|()| out.write_all(b"\n").map_err(serde_json::Error::io))
            .map_err(|e| reprise_trainer::TrainError::Data {
                file: args.out.display().to_string(),
                message: e.to_string(),
            })?;
        written += 1;
        Ok(())
    })?;
    out.flush()?;
    eprintln!("{written} served items written");
    Ok(())
}
