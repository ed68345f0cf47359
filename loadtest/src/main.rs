//! `reprise-loadtest`: see the crate docs. Exits 1 when a scenario's error
//! rate is above `--max-error-rate`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reprise_loadtest::{run, LoadConfig, Report, Scenario};

#[derive(Parser)]
#[command(
    version,
    about = "HTTP load generator for a running Reprise server (127.0.0.1)"
)]
struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Scenarios to run in order; `baseline` is always run first.
    #[arg(long = "scenario", value_enum, default_values_t = [Scenario::Online1x10])]
    scenarios: Vec<Scenario>,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured warm-up seconds per scenario.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Fixed request rate per second (open model); default: closed model.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop a scenario after this many measured requests.
    #[arg(long)]
    max_requests: Option<u64>,
    /// User ids 1..=N for the `recommendations` scenario (943 = MovieLens-100k).
    #[arg(long, default_value_t = 943)]
    users: u32,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Fail (exit 1) when a scenario's error rate is above this.
    #[arg(long, default_value_t = 0.0)]
    max_error_rate: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = LoadConfig {
        url: args.url.trim_end_matches('/').to_owned(),
        connections: args.connections,
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
        rate: args.rate,
        max_requests: args.max_requests,
        users: args.users,
    };
    let mut scenarios = vec![Scenario::Baseline];
    scenarios.extend(
        args.scenarios
            .iter()
            .copied()
            .filter(|s| *s != Scenario::Baseline),
    );
    let reports = scenarios
        .into_iter()
        .map(|s| {
            eprintln!(
                "running {} for {:.0}s (+{:.0}s warm-up)...",
                s.name(),
                args.duration,
                args.warmup
            );
            run(&config, s)
        })
        .collect();
    let report = Report {
        url: config.url.clone(),
        connections: config.connections,
        rate: config.rate,
        scenarios: reports,
    }
    .with_baseline_ratios();
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).expect("reports serialise");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let failed = report.over_error_bound(args.max_error_rate);
    for s in &failed {
        eprintln!(
            "error: {}: {} of {} requests failed (bound {:.2}%); first: {}",
            s.scenario.name(),
            s.errors,
            s.requests,
            args.max_error_rate * 100.0,
            s.first_error.as_deref().unwrap_or("no request ran")
        );
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
