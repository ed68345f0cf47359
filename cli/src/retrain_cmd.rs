//! `reprise retrain run|list|show`.

use reprise_store::time::format_rfc3339;
use reprise_store::FeatureStore;
use reprise_trainer::model_io::{self, RANKER_KIND};
use reprise_trainer::retrain::{self, Promotion};
use reprise_trainer::runs::{self, RetrainRun};
use reprise_trainer::TrainError;

use crate::args::{self, RetrainCommand, RetrainRunArgs, StoreArgs};
use crate::train_cmd::write_json;

pub fn run(store_args: &StoreArgs, command: RetrainCommand) -> anyhow::Result<()> {
    let store = args::open_store(store_args)?;
    match command {
        RetrainCommand::Run(args) => run_once(&store, args),
        RetrainCommand::List { json } => {
            let all = runs::list(&store)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(());
            }
            println!(
                "{:<32}  {:<20}  {:<9}  {:<8}  {:<10}  trigger",
                "run", "started", "status", "decision", "candidate"
            );
            for r in &all {
                println!(
                    "{:<32}  {:<20}  {:<9}  {:<8}  {:<10}  {}",
                    r.run_id,
                    r.started_at,
                    r.status,
                    r.decision.as_deref().unwrap_or("-"),
                    r.candidate.as_deref().unwrap_or("-"),
                    r.trigger
                );
            }
            Ok(())
        }
        RetrainCommand::Show { run_id } => {
            let run = runs::get(&store, &run_id)?
                .ok_or_else(|| anyhow::anyhow!("no retraining run `{run_id}`"))?;
            print_run(&run);
            Ok(())
        }
    }
}

/// Promotion from the command line: the stored serving pointer moves (a
/// server picks it up at its next start); open blocking alerts gate.
struct StorePromotion<'a> {
    store: &'a FeatureStore,
}

impl Promotion for StorePromotion<'_> {
    fn blocking_alert(&self) -> reprise_trainer::Result<Option<String>> {
        let open = reprise_actors::validation::alerts::open_blocking(self.store)
            .map_err(|e| TrainError::Promotion(e.to_string()))?;
        Ok(open.into_iter().next().map(|a| {
            format!(
                "blocking alert {} ({} on {}:{})",
                a.id, a.check, a.view, a.feature
            )
        }))
    }

    fn promote(&self, version: &str) -> reprise_trainer::Result<()> {
        // The pipeline recorded the model serving before (so it can be
        // rolled back to); this moves the pointer on.
        Ok(self.store.set_serving_model(version)?)
    }
}

fn run_once(store: &FeatureStore, args: RetrainRunArgs) -> anyhow::Result<()> {
    let mut policy = args.policy.policy()?;
    let params = &mut policy.options.params;
    params.shuffle_labels = args.shuffle_labels;
    if let Some(factors) = args.factors {
        params.als.factors = factors;
        policy.options.declared_dimension = false;
    }
    policy.options.params.als.iterations = args.iterations;
    let serving = match store.serving_model(RANKER_KIND)? {
        Some(v) => Some(v),
        None => model_io::latest(store, RANKER_KIND).ok().map(|r| r.version),
    };
    let mut run = RetrainRun::new(
        "cli",
        policy.options.source,
        &policy.metric,
        policy.margin,
        format_rfc3339(store.clock().now()),
    );
    runs::save(store, &run)?;
    let promotion = StorePromotion { store };
    let result = retrain::execute(
        store,
        &policy,
        serving.as_deref(),
        &promotion,
        &mut run,
        &mut |r| {
            if let Some(step) = r.steps.last() {
                eprintln!("  {:<24} {:>6.1}s", step.name, step.seconds);
            }
        },
    );
    retrain::finish(&mut run, result, format_rfc3339(store.clock().now()));
    runs::save(store, &run)?;
    print_run(&run);
    if let Some(path) = &args.json {
        write_json(path, &serde_json::to_value(&run)?)?;
    }
    if run.status == "failed" {
        anyhow::bail!("retraining run {} failed: {}", run.run_id, run.reason);
    }
    Ok(())
}

fn print_run(run: &RetrainRun) {
    println!(
        "run {} ({}, {}): {} {}",
        run.run_id,
        run.trigger,
        serde_json::to_value(run.source)
            .map(|v| v.as_str().unwrap_or("").to_owned())
            .unwrap_or_default(),
        run.status,
        run.decision.as_deref().unwrap_or("")
    );
    println!("  {}", run.reason);
    for step in &run.steps {
        println!("  {:<24} {:>6.1}s", step.name, step.seconds);
    }
    if let Some(held_out) = &run.held_out {
        println!(
            "  held-out data: store version {}, {} users, {} training / {} held-out interactions ({} from feedback)",
            held_out.store_version,
            held_out.users,
            held_out.train_interactions,
            held_out.held_out_interactions,
            held_out.feedback_interactions
        );
    }
    let mut metrics: Vec<&String> = run.candidate_metrics.keys().collect();
    metrics.sort();
    println!(
        "  {:<14} {:>12} {:>12}",
        "metric",
        run.candidate.as_deref().unwrap_or("candidate"),
        run.serving_before.as_deref().unwrap_or("serving")
    );
    for m in metrics {
        let serving = run
            .serving_metrics
            .get(m)
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"));
        println!(
            "  {:<14} {:>12.4} {:>12}",
            m, run.candidate_metrics[m], serving
        );
    }
    for w in &run.schema_warnings {
        println!("  schema warning: {w}");
    }
}
