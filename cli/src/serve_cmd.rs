//! `reprise serve`.

use std::sync::Arc;

use reprise_api::ServerConfig;

use crate::args::{ServeArgs, StoreArgs};

const CHECKS: [&str; 4] = ["drift", "skew", "schema", "anomaly_spike"];

pub fn run(store_args: &StoreArgs, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(unknown) = args
        .blocking_checks
        .split(',')
        .map(str::trim)
        .find(|c| !c.is_empty() && !CHECKS.contains(c))
    {
        anyhow::bail!(
            "--blocking-checks: `{unknown}` is not one of {}",
            CHECKS.join(", ")
        );
    }
    let store = crate::args::open_store(store_args)?;
    if args.demo {
        crate::demo::load(&store)?;
        if let Some(dir) = &args.movielens {
            crate::train_cmd::import_and_train_once(&store, dir)?;
        }
    }
    let config = ServerConfig {
        listen: args.listen,
        http_workers: args.http_workers,
        drift: reprise_actors::validation::DriftConfig {
            window_micros: reprise_store::time::parse_duration(&args.drift_window)
                .filter(|w| *w > 0)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--drift-window `{}` is not a duration like 15m, 1h or 1d",
                        args.drift_window
                    )
                })?,
            default_threshold: args.drift_threshold,
            webhook: args.alert_webhook.clone(),
            blocking_checks: args
                .blocking_checks
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect(),
            ..Default::default()
        },
        retrain: reprise_actors::retrain::RetrainConfig {
            margin: args.retrain_margin,
            every: reprise_store::time::parse_duration(&args.retrain_every)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--retrain-every `{}` is not a duration like 7d, 12h or 0",
                        args.retrain_every
                    )
                })
                .map(|micros| {
                    (micros > 0).then(|| std::time::Duration::from_micros(micros as u64))
                })?,
            ..Default::default()
        },
        recommender: reprise_actors::recommend::RecommenderConfig {
            workers: args.ranker_workers,
            ..Default::default()
        },
        max_body_bytes: args.max_body_bytes,
        ..ServerConfig::default()
    };
    let store = Arc::new(store);
    actix_rt::System::new().block_on(reprise_api::serve(store, config))?;
    Ok(())
}
