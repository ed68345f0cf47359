//! Command-line arguments (CONTRACT.md "Command line").

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use reprise_store::{FeatureStore, StoreConfig};

/// The package version and the commit the binary was built from
/// (`build.rs`; `unknown` outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("REPRISE_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "reprise",
    version = VERSION,
    about = "Reprise: a versioned feature store and recommendation server"
)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Export traces over OTLP/HTTP to this endpoint
    /// (e.g. `http://127.0.0.1:4318/v1/traces`); off by default.
    #[arg(long, global = true, env = "REPRISE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the store lives; taken by every subcommand that opens it.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Data directory of the embedded RocksDB store.
    #[arg(
        long,
        global = true,
        env = "REPRISE_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,
    /// Directory of numbered definition files, applied in order.
    #[arg(
        long,
        global = true,
        env = "REPRISE_MIGRATIONS",
        default_value = "./migrations"
    )]
    pub migrations: PathBuf,
    /// Bytes of the online cache.
    #[arg(long, global = true, env = "REPRISE_CACHE_BYTES", default_value_t = 128 << 20)]
    pub cache_bytes: u64,
    /// Rows whose event time is further than this ahead of the clock are
    /// refused (0 = no bound).
    #[arg(long, global = true, env = "REPRISE_MAX_FUTURE", default_value = "1h")]
    pub max_future: String,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the HTTP API (applies pending migrations first).
    Serve(Box<ServeArgs>),
    /// Apply pending migrations and exit.
    Migrate,
    /// Bulk-ingest a JSONL or CSV file into a feature view.
    Push(PushArgs),
    /// Build a point-in-time snapshot from a file of entity rows.
    Snapshot(SnapshotArgs),
    /// Export every view's history as Parquet for offline engines (Spark):
    /// `<view>/v<version>/date=<day>/part-*.parquet` and a manifest,
    /// incremental by store version.
    Export(ExportArgs),
    /// Load the generated demo data set (music catalogue) into the store.
    DemoData,
    /// Import a public data set through the push path.
    #[command(subcommand)]
    Import(ImportSource),
    /// Train the two-stage recommender on the imported interactions, evaluate
    /// it on the held-out 25%, store it and its embeddings.
    Train(TrainArgs),
    /// Evaluate a stored ranker and the baselines on the 75/25 split.
    Evaluate(EvaluateArgs),
    /// Distances between two CSV files, column by column (training vs
    /// serving data, or two windows).
    Drift(DriftArgs),
    /// Run the validation checks (drift, skew, anomaly spike) on the store
    /// now and print per-feature statistics and distances side by side;
    /// alerts are raised as in the server.
    Validate(ValidateArgs),
    /// Write the served-feature log joined with feedback labels (log-and-wait
    /// training data) as JSON lines.
    ExportServed(ExportServedArgs),
    /// Retraining runs: run one (train, compare with the serving ranker on
    /// the same held-out data, promote if better and no blocking alert is
    /// open), list them, show one.
    #[command(subcommand)]
    Retrain(RetrainCommand),
    /// API keys of the keys file.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print a shell completion script (e.g. `reprise completions bash >
    /// /etc/bash_completion.d/reprise`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write a consistent copy of a stopped store to a new directory (a
    /// running server: `POST /v1/admin/backup`).
    Backup {
        /// The backup's directory (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Bring a backup back as a new data directory (`--data-dir`, which
    /// must not exist or be empty).
    Restore {
        /// The backup's directory.
        #[arg(long)]
        from: PathBuf,
    },
    /// Compact history now, dropping rows older than their view's retention.
    Compact,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a random key: print it once and append its SHA-256 hash, name
    /// and scopes to the keys file (the key itself is stored nowhere).
    Add {
        /// The key's name (in logs and traces instead of the key).
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: read, write, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// The keys file (created when missing).
        #[arg(long, env = "REPRISE_KEYS_FILE")]
        file: PathBuf,
    },
}

#[derive(Args)]
pub struct ValidateArgs {
    /// Window length: the latest window is compared with the one before.
    #[arg(long, default_value = "1h")]
    pub window: String,
    /// Default drift threshold on the L-infinity distance.
    #[arg(long, default_value_t = 0.2)]
    pub threshold: f64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args)]
pub struct ExportServedArgs {
    /// Output file (JSON lines); `-` for stdout.
    #[arg(long, default_value = "-")]
    pub out: PathBuf,
    /// Only items that received feedback.
    #[arg(long)]
    pub labelled_only: bool,
}

#[derive(Args)]
pub struct DriftArgs {
    /// The reference data (e.g. training).
    #[arg(long)]
    pub reference: PathBuf,
    /// The data compared with it (e.g. serving).
    #[arg(long)]
    pub current: PathBuf,
    /// Also write the distances as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Train on the data as of this store version (default: the newest).
    #[arg(long)]
    pub as_of_version: Option<u64>,
    /// ALS factors (embedding dimension; default: the declaration's
    /// `embedding_dim`).
    #[arg(long)]
    pub factors: Option<usize>,
    /// ALS iterations.
    #[arg(long, default_value_t = 15)]
    pub iterations: usize,
    /// Seed of the factor initialisation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Candidates taken from ALS and from item-kNN, each.
    #[arg(long, default_value_t = 100)]
    pub candidates: usize,
    /// Candidates taken from the most popular items.
    #[arg(long, default_value_t = 50)]
    pub popular_candidates: usize,
    /// What the ranker learns from: `snapshot` or `served-log`.
    #[arg(long, default_value = "snapshot")]
    pub source: reprise_trainer::TrainingSource,
    /// Train the ranker on randomly permuted labels (a null model, to check
    /// the evaluation and the promotion gate reject it).
    #[arg(long)]
    pub shuffle_labels: bool,
    /// Also write the run's summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args)]
pub struct EvaluateArgs {
    /// Ranker version to evaluate (default: the newest, e.g. `ranker-3`).
    #[arg(long)]
    pub model: Option<String>,
    /// Also write the metrics as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum ImportSource {
    /// MovieLens-100k in RecBole's atomic format (`ml-100k.user`, `.item`,
    /// `.inter`), e.g. as fetched by `scripts/fetch-movielens`.
    Movielens {
        /// Directory holding the three files.
        dir: PathBuf,
    },
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "REPRISE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Load the demo music catalogue's data first (unless it is there
    /// already) and train its declared recommender (unless a ranker is
    /// stored). Needs the demo catalogue's migrations (`migrations/`).
    #[arg(long, conflicts_with = "movielens")]
    pub demo: bool,
    /// Import MovieLens-100k from this directory (unless imported) and train
    /// on it (unless a ranker is stored) before serving; needs the MovieLens
    /// catalogue's migrations (`--migrations catalogs/movielens/migrations`;
    /// `scripts/fetch-movielens` prints the directory).
    #[arg(long, env = "REPRISE_MOVIELENS_DIR")]
    pub movielens: Option<PathBuf>,
    /// Largest accepted request body, in bytes (413 over it).
    #[arg(long, env = "REPRISE_MAX_BODY_BYTES", default_value_t = 64 << 20)]
    pub max_body_bytes: usize,
    /// Rows of one push (400 limit_exceeded over it, as for every limit).
    #[arg(long, env = "REPRISE_MAX_ROWS", default_value_t = 100_000)]
    pub max_rows: usize,
    /// Entities of one online read, items of one rank request.
    #[arg(long, env = "REPRISE_MAX_ENTITIES", default_value_t = 10_000)]
    pub max_entities: usize,
    /// Events of one request.
    #[arg(long, env = "REPRISE_MAX_EVENTS", default_value_t = 10_000)]
    pub max_events: usize,
    /// Entity rows of one snapshot request.
    #[arg(long, env = "REPRISE_MAX_SNAPSHOT_ROWS", default_value_t = 1_000_000)]
    pub max_snapshot_rows: usize,
    /// Bytes of any string in a request (ids, values, keys).
    #[arg(long, env = "REPRISE_MAX_STRING_BYTES", default_value_t = 64 << 10)]
    pub max_string_bytes: usize,
    /// Items of any nested array (vector dimension, string lists).
    #[arg(long, env = "REPRISE_MAX_ARRAY_ITEMS", default_value_t = 65_536)]
    pub max_array_items: usize,
    /// Nesting depth of a request body.
    #[arg(long, env = "REPRISE_MAX_DEPTH", default_value_t = 32)]
    pub max_depth: usize,
    /// Read requests in flight (online reads, snapshots, recommendations,
    /// rank, listings); more are answered 503 with Retry-After before their
    /// body is read.
    #[arg(long, env = "REPRISE_MAX_READS_IN_FLIGHT", default_value_t = 256)]
    pub max_reads_in_flight: usize,
    /// Write requests (push, events) in flight.
    #[arg(long, env = "REPRISE_MAX_WRITES_IN_FLIGHT", default_value_t = 32)]
    pub max_writes_in_flight: usize,
    /// Admin requests in flight.
    #[arg(long, env = "REPRISE_MAX_ADMIN_IN_FLIGHT", default_value_t = 8)]
    pub max_admin_in_flight: usize,
    /// Bytes of request bodies being read at once, all requests together
    /// (bounds the memory maximal bodies can take; 503 over it).
    #[arg(long, env = "REPRISE_MAX_BODY_BYTES_IN_FLIGHT", default_value_t = 256 << 20)]
    pub max_body_bytes_in_flight: usize,
    /// How long a request may wait for its answer (a snapshot of a million
    /// rows takes about a minute); over it, 503 `timeout`.
    #[arg(long, env = "REPRISE_REQUEST_TIMEOUT", default_value = "5m")]
    pub request_timeout: String,
    /// HTTP worker threads (0 = one per core).
    #[arg(long, env = "REPRISE_HTTP_WORKERS", default_value_t = 0)]
    pub http_workers: usize,
    /// Ranker worker threads (blocking work: store reads, ANN search,
    /// scoring, the synced served-feature log, whose syncs concurrent
    /// requests share). 4 measured best on 2 cores; 16 gained 13%
    /// throughput at saturation but doubled p99.
    #[arg(long, env = "REPRISE_RANKER_WORKERS", default_value_t = 4)]
    pub ranker_workers: usize,
    /// Items kept in memory per user's play history (the newest), which
    /// history candidates and the ranker read; older plays stay in the store.
    #[arg(long, default_value_t = reprise_actors::recommend::histories::DEFAULT_MAX_ITEMS_PER_USER)]
    pub max_history_items: usize,
    /// Drift check window: each run compares the latest window of every
    /// monitored view with the one before (and runs every window).
    #[arg(long, env = "REPRISE_DRIFT_WINDOW", default_value = "1h")]
    pub drift_window: String,
    /// Default drift threshold on the L-infinity distance (a feature's
    /// `drift_threshold` overrides it).
    #[arg(long, env = "REPRISE_DRIFT_THRESHOLD", default_value_t = 0.2)]
    pub drift_threshold: f64,
    /// Rows kept per drift or skew window: windows up to this size are
    /// compared exactly, larger ones on a uniform sample of this size.
    #[arg(long, default_value_t = 1_000_000)]
    pub drift_sample_rows: usize,
    /// Checks whose alerts block model promotion until acknowledged
    /// (comma-separated; empty for none).
    #[arg(
        long,
        env = "REPRISE_BLOCKING_CHECKS",
        default_value = "drift,skew,schema,anomaly_spike"
    )]
    pub blocking_checks: String,
    #[command(flatten)]
    pub retrain: RetrainPolicyArgs,
    /// Scheduled retraining: an interval (`7d`, `12h`), a cron expression
    /// with a seconds field in UTC (`0 0 3 * * Sun`), or `0` for none.
    #[arg(long, env = "REPRISE_RETRAIN_EVERY", default_value = "7d")]
    pub retrain_every: String,
    /// Automatic retraining triggers (schedule, drift, play rate) within
    /// this long of the last run's start are dropped.
    #[arg(long, env = "REPRISE_RETRAIN_DEBOUNCE", default_value = "10m")]
    pub retrain_debounce: String,
    /// Feedback verdicts on served items per play-rate window.
    #[arg(long, env = "REPRISE_PLAY_RATE_WINDOW", default_value_t = 500)]
    pub play_rate_window: u64,
    /// A play-rate window this fraction under its baseline triggers a
    /// retraining run (0 turns the trigger off).
    #[arg(long, env = "REPRISE_PLAY_RATE_DROP", default_value_t = 0.2)]
    pub play_rate_drop: f64,
    /// Rankers kept when models are collected (at start and after each
    /// retraining run): the newest this many and the last this many that
    /// served (the rollback depth), with every experiment arm and the
    /// embeddings and training snapshots they name; older ones are deleted.
    #[arg(long, env = "REPRISE_KEEP_MODELS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub keep_models: u64,
    /// The keys file: SHA-256 hashes of the accepted API keys with their
    /// names and scopes (read, write, admin); `reprise keys add` writes it.
    /// Without one, the server listens on loopback only.
    #[arg(long, env = "REPRISE_KEYS_FILE")]
    pub keys: Option<PathBuf>,
    /// A file holding the fleet's own secret (at least 16 bytes, e.g.
    /// `openssl rand -hex 32`; the same file on the leader and every
    /// replica): replicas sign the served-feature logs they send the leader
    /// with it. With a keys file and without it, replicas leave
    /// recommendations to the leader.
    #[arg(long, env = "REPRISE_FLEET_SECRET_FILE")]
    pub fleet_secret_file: Option<PathBuf>,
    /// Listen on a non-loopback address without a keys file: anyone who
    /// reaches the port may do anything.
    #[arg(long)]
    pub insecure: bool,
    /// Require a read key for `/metrics` too (open by default).
    #[arg(long)]
    pub close_metrics: bool,
    /// POST every raised alert as JSON to this URL.
    #[arg(long, env = "REPRISE_ALERT_WEBHOOK")]
    pub alert_webhook: Option<String>,
    /// `single` (default): one server. `leader`: the fleet's system of
    /// record, publishing the online view to `--online-store`. `replica`:
    /// stateless, answers online reads from `--online-store` and forwards
    /// everything else to `--leader`.
    #[arg(long, env = "REPRISE_ROLE", value_enum, default_value_t = Role::Single)]
    pub role: Role,
    /// The shared online store of a fleet: Redis Cluster seed nodes,
    /// comma-separated (`redis://127.0.0.1:7000,redis://127.0.0.1:7001`).
    #[arg(long, env = "REPRISE_ONLINE_STORE", value_delimiter = ',')]
    pub online_store: Vec<String>,
    /// Key prefix of this store's data in the shared online store (several
    /// stores may share one cluster).
    #[arg(
        long,
        env = "REPRISE_ONLINE_STORE_NAMESPACE",
        default_value = "reprise"
    )]
    pub online_store_namespace: String,
    /// A leader's publication counts as done once this many replicas of
    /// each Redis master hold it (Redis replicates asynchronously: a
    /// failover may otherwise lose what a master acknowledged); 0 for a
    /// cluster without replicas.
    #[arg(long, env = "REPRISE_ONLINE_STORE_REPLICAS", default_value_t = 1)]
    pub online_store_replicas: usize,
    /// A leader publishes the whole online view at start even when Redis
    /// is where it left it (by default it publishes only what was committed
    /// since): after Redis lost keys but kept its published version.
    #[arg(long, env = "REPRISE_ONLINE_STORE_REPUBLISH")]
    pub online_store_republish: bool,
    /// A replica's leader (`http://host:port`): writes and every route but
    /// online reads go there.
    #[arg(long, env = "REPRISE_LEADER")]
    pub leader: Option<String>,
    /// A replica whose oldest unpublished commit is older than this answers
    /// 503 on `/readyz` (it keeps serving reads).
    #[arg(long, env = "REPRISE_MAX_LAG", default_value = "5s")]
    pub max_lag: String,
    /// How often (milliseconds) the leader publishes.
    #[arg(long, env = "REPRISE_REPLICATION_INTERVAL_MS", default_value_t = 20)]
    pub replication_interval_ms: u64,
    /// How often (milliseconds) a replica reads the published version and
    /// the change records that drop its cached rows: how long a published
    /// write can stay unseen behind a cached row.
    #[arg(long, env = "REPRISE_FOLLOW_INTERVAL_MS", default_value_t = 5)]
    pub follow_interval_ms: u64,
}

/// What a `reprise serve` process is in a fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Single,
    Leader,
    Replica,
}

#[derive(Subcommand)]
pub enum RetrainCommand {
    /// Run the retraining pipeline on the store now (the server must not be
    /// running: the store has one writer).
    Run(RetrainRunArgs),
    /// List the recorded runs (the server's and the CLI's).
    List {
        /// Print the runs as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one run: steps, metrics of both models, decision and reason.
    Show { run_id: String },
}

#[derive(Args)]
pub struct RetrainRunArgs {
    #[command(flatten)]
    pub policy: RetrainPolicyArgs,
    /// ALS factors of the candidate (default: the declaration's
    /// `embedding_dim`).
    #[arg(long)]
    pub factors: Option<usize>,
    /// ALS iterations of the candidate.
    #[arg(long, default_value_t = 15)]
    pub iterations: usize,
    /// Train the ranker on permuted labels (a null model).
    #[arg(long)]
    pub shuffle_labels: bool,
    /// Also write the run as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// How a retraining run decides and what it trains on (`serve` and
/// `retrain run`).
#[derive(Args, Clone)]
pub struct RetrainPolicyArgs {
    /// A retraining run promotes its candidate only when it beats the
    /// serving ranker on `--retrain-metric`, on the same held-out data, by
    /// this fraction (0.01 = 1%).
    #[arg(long, env = "REPRISE_RETRAIN_MARGIN", default_value_t = 0.0)]
    pub retrain_margin: f64,
    /// The metric compared: ndcg@10, precision@10, recall@10 or auc.
    #[arg(long, env = "REPRISE_RETRAIN_METRIC", default_value = "ndcg@10")]
    pub retrain_metric: String,
    /// What the ranker learns from: `snapshot` (point-in-time snapshot of
    /// the interactions' context) or `served-log` (the served-feature log
    /// joined with feedback).
    #[arg(long, env = "REPRISE_RETRAIN_SOURCE", default_value = "snapshot")]
    pub retrain_source: reprise_trainer::TrainingSource,
}

impl RetrainPolicyArgs {
    pub fn policy(&self) -> anyhow::Result<reprise_trainer::retrain::RetrainPolicy> {
        use reprise_trainer::retrain::{RetrainPolicy, METRICS};
        if !METRICS.contains(&self.retrain_metric.as_str()) {
            anyhow::bail!(
                "--retrain-metric: `{}` is not one of {}",
                self.retrain_metric,
                METRICS.join(", ")
            );
        }
        let mut policy = RetrainPolicy {
            margin: self.retrain_margin,
            metric: self.retrain_metric.clone(),
            ..RetrainPolicy::default()
        };
        policy.options.source = self.retrain_source;
        policy.options.declared_dimension = true;
        Ok(policy)
    }
}

#[derive(Args)]
pub struct PushArgs {
    /// Feature view to write (`name` or `name@N`).
    #[arg(long)]
    pub view: String,
    /// JSONL (one object per line) or CSV (with a header) file.
    pub file: PathBuf,
    /// Rows per write batch (each batch is one store version).
    #[arg(long, default_value_t = 10_000)]
    pub batch_size: usize,
    /// Mark rows as a backfill: their created time is their event time.
    /// A backfill is stored by bulk ingestion as one store version, all
    /// rows or none (a bad row anywhere stores nothing): sorted runs of
    /// `--ingest-rows` rows are spilled inside the store's directory
    /// (`scratch/`, about the size of the encoded rows), merged at
    /// the end and handed to the storage engine as sorted files (no
    /// write-ahead log or memtable).
    #[arg(long)]
    pub backfill: bool,
    /// Rows per sorted run of a backfill (two are in memory at once, ~0.5
    /// KB a row for 10 features: ~700 MB peak at the default); 0 writes a
    /// backfill by ordinary pushes of `--batch-size` rows.
    #[arg(long, default_value_t = 500_000)]
    pub ingest_rows: usize,
}

#[derive(Args)]
pub struct SnapshotArgs {
    /// Feature refs, comma-separated (`user_stats:plays_7d,item_stats@1:popularity`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub features: Vec<String>,
    /// JSONL, CSV or Parquet file of entity rows: join keys, `event_timestamp`, labels.
    #[arg(long)]
    pub entities: PathBuf,
    /// Output file; `.parquet` writes Parquet, anything else JSON lines.
    #[arg(long)]
    pub out: PathBuf,
    /// Pin the snapshot to this store version (default: the current one).
    #[arg(long)]
    pub as_of_version: Option<u64>,
    /// `created` (default) or `event`.
    #[arg(long, default_value = "created")]
    pub cutoff: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The export directory (created; later exports add to it).
    #[arg(long)]
    pub out: PathBuf,
    /// Export the rows written after this store version (default: the
    /// version the directory's manifest is consistent at; 0 without one).
    #[arg(long)]
    pub since_version: Option<u64>,
}

/// Opens the store, applies pending migrations and registers the server's
/// own views.
pub fn open_store(args: &StoreArgs) -> anyhow::Result<FeatureStore> {
    let store = FeatureStore::open(
        &args.data_dir,
        StoreConfig {
            online_cache_bytes: args.cache_bytes,
            max_future: match reprise_store::time::parse_duration(&args.max_future) {
                Some(0) => None,
                Some(ahead) if ahead > 0 => Some(ahead),
                _ => anyhow::bail!(
                    "--max-future `{}` is not a duration like 1h or 15m",
                    args.max_future
                ),
            },
            ..StoreConfig::default()
        },
    )
    .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
    let applied = store
        .migrate(&args.migrations)
        .with_context(|| format!("applying migrations from {}", args.migrations.display()))?;
    if !applied.is_empty() {
        tracing::info!(count = applied.len(), files = ?applied, "migrations applied");
    }
    if reprise_actors::system_views::ensure(&store)? {
        tracing::info!("system views registered");
    }
    Ok(store)
}
