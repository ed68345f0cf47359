//! `reprise serve`.

use std::sync::Arc;

use reprise_actors::retrain::Schedule;
use reprise_api::ServerConfig;

use anyhow::Context;
use reprise_api::replica::ReplicaConfig;
use reprise_store::online_store::{OnlineStore, RedisClusterOnlineStore};
use reprise_store::proto::Definitions;
use reprise_store::{FeatureStore, StoreConfig};

use crate::args::{Role, ServeArgs, StoreArgs};

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
    let keys = crate::keys_cmd::server_keys(&args)?;
    let fleet_secret = args
        .fleet_secret_file
        .as_deref()
        .map(reprise_api::fleet::secret_from_file)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--fleet-secret-file {e}"))?;
    if keys.is_some() && fleet_secret.is_none() && args.role != Role::Single {
        tracing::warn!(
            "a keys file without --fleet-secret-file: replicas leave recommendations to the leader"
        );
    }
    let limits = limits(&args)?;
    let interval = std::time::Duration::from_millis(args.replication_interval_ms.max(1));
    let shared = match (args.role, args.online_store.is_empty()) {
        (Role::Single, true) => None,
        (Role::Single, false) => {
            anyhow::bail!("--online-store needs --role leader or --role replica")
        }
        (_, true) => anyhow::bail!(
            "--role {:?} needs --online-store (Redis Cluster seed nodes, redis://host:port,...)",
            args.role
        ),
        (_, false) => Some(connect(&args)?),
    };
    if args.role == Role::Replica {
        let shared = shared.expect("a replica has a shared store");
        let Some(leader) = args.leader.clone() else {
            anyhow::bail!("--role replica needs --leader http://host:port");
        };
        if args.demo || args.movielens.is_some() {
            anyhow::bail!("--demo and --movielens load data: run them on the leader");
        }
        let definitions = wait_for_definitions(shared.as_ref())?;
        let config = StoreConfig {
            online_cache_bytes: store_args.cache_bytes,
            ..StoreConfig::default()
        };
        let store = FeatureStore::replica(shared, &definitions, config)?;
        let config = ReplicaConfig {
            listen: args.listen,
            http_workers: args.http_workers,
            limits,
            keys,
            metrics_open: !args.close_metrics,
            leader,
            max_lag: duration_flag("--max-lag", &args.max_lag)?,
            recommender: reprise_actors::recommend::RecommenderConfig {
                workers: args.ranker_workers,
                ..Default::default()
            },
            fleet_secret,
        };
        actix_rt::System::new().block_on(reprise_api::replica::serve_replica(
            Arc::new(store),
            definitions.store_version,
            config,
            std::time::Duration::from_millis(args.follow_interval_ms.max(1)),
        ))?;
        return Ok(());
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
        limits,
        keys,
        shared_online_store: shared,
        replication_interval: interval,
        republish_online_store: args.online_store_republish,
        metrics_open: !args.close_metrics,
        fleet_secret,
        ..ServerConfig::default()
    };
    let store = Arc::new(store);
    actix_rt::System::new().block_on(reprise_api::serve(store, config))?;
    Ok(())
}

fn limits(args: &ServeArgs) -> anyhow::Result<reprise_api::limits::Limits> {
    Ok(reprise_api::limits::Limits {
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
        request_timeout: duration_flag("--request-timeout", &args.request_timeout)?,
    })
}

/// A duration flag (`30s`, `5m`, ...), more than zero.
fn duration_flag(flag: &str, value: &str) -> anyhow::Result<std::time::Duration> {
    reprise_store::time::parse_duration(value)
        .filter(|t| *t > 0)
        .map(|micros| std::time::Duration::from_micros(micros as u64))
        .ok_or_else(|| anyhow::anyhow!("{flag} `{value}` is not a duration like 30s or 5m"))
}

/// The shared online store the flags name.
fn connect(args: &ServeArgs) -> anyhow::Result<Arc<dyn OnlineStore>> {
    let store = RedisClusterOnlineStore::connect(&args.online_store, &args.online_store_namespace)
        .with_context(|| {
            format!(
                "connecting to the Redis Cluster at {}",
                args.online_store.join(",")
            )
        })?;
    Ok(Arc::new(store.with_replicas(args.online_store_replicas)))
}

/// The definitions the leader published; waits for a leader's first
/// publication (a fleet may start in any order).
fn wait_for_definitions(shared: &dyn OnlineStore) -> anyhow::Result<Definitions> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut said = false;
    loop {
        if let Some(definitions) = shared.definitions()? {
            return Ok(definitions);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no leader has published to this online store (namespace) within 2 minutes: start `reprise serve --role leader` with the same --online-store"
        );
        if !said {
            tracing::info!("waiting for the leader's first publication");
            said = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
