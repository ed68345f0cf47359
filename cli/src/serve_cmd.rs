//! `reprise serve`.

use std::sync::Arc;

use reprise_actors::retrain::Schedule;
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
        crate::train_cmd::train_once(&store)?;
    }
    if let Some(dir) = &args.movielens {
        crate::train_cmd::import_and_train_once(&store, dir)?;
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
            sample_rows: args.drift_sample_rows.max(1),
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
            policy: args.retrain.policy()?,
            schedule: Schedule::parse(&args.retrain_every)
                .map_err(|e| anyhow::anyhow!("--retrain-every: {e}"))?,
            debounce: reprise_store::time::parse_duration(&args.retrain_debounce)
                .filter(|d| *d >= 0)
                .map(|micros| std::time::Duration::from_micros(micros as u64))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--retrain-debounce `{}` is not a duration like 10m or 1h",
                        args.retrain_debounce
                    )
                })?,
            play_rate_window: args.play_rate_window,
            play_rate_drop: (args.play_rate_drop > 0.0).then_some(args.play_rate_drop),
            keep_models: args.keep_models as usize,
        },
        recommender: reprise_actors::recommend::RecommenderConfig {
            workers: args.ranker_workers,
            max_history_items: args.max_history_items,
            ..Default::default()
        },
        limits: reprise_api::limits::Limits {
            max_body_bytes: args.max_body_bytes,
            max_rows: args.max_rows,
            max_entities: args.max_entities,
            max_events: args.max_events,
            max_snapshot_rows: args.max_snapshot_rows,
            max_string_bytes: args.max_string_bytes,
            max_array_items: args.max_array_items,
            max_depth: args.max_depth,
            max_in_flight: [
                args.max_reads_in_flight.max(1),
                args.max_writes_in_flight.max(1),
                args.max_admin_in_flight.max(1),
            ],
            max_body_bytes_in_flight: args.max_body_bytes_in_flight.max(args.max_body_bytes),
            request_timeout: reprise_store::time::parse_duration(&args.request_timeout)
                .filter(|t| *t > 0)
                .map(|micros| std::time::Duration::from_micros(micros as u64))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--request-timeout `{}` is not a duration like 30s or 5m",
                        args.request_timeout
                    )
                })?,
        },
        keys: crate::keys_cmd::server_keys(&args)?,
        metrics_open: !args.close_metrics,
        ..ServerConfig::default()
    };
    let store = Arc::new(store);
    actix_rt::System::new().block_on(reprise_api::serve(store, config))?;
    Ok(())
}
