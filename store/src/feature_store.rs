//! [`FeatureStore`]: the registry, the write path that hands out store
//! versions, and the online cache, over one [`Engine`].
//!
//! Write protocol: validated push batches queue in `pending`. The writer
//! lock holder takes every queued batch (group commit), gives each the next
//! store version and builds one engine batch (history rows, online rows, the
//! last version number). It then releases the lock and writes the batch with
//! a synced WAL while the next group prepares (`write_pipeline.rs`: writes
//! keep the order of preparation), invalidates the touched cache entries,
//! publishes the version, and only then answers each batch's caller.
//! Readers that see version `V` therefore see every batch `<= V`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::cf::Cf;
use crate::codec;
use crate::definitions::DefinitionFile;
use crate::engine::{Engine, EngineStats, MemoryEngine, RocksEngine, WriteBatch};
use crate::error::{Result, StoreError};
use crate::migrations::{self, MigrationFile};
use crate::online_cache::OnlineCache;
use crate::outbox::Publication;
use crate::proto::MigrationRecord;
use crate::registry::Registry;
use crate::retention::RetentionRules;
use crate::time::{Clock, Micros};
use crate::write_pipeline::{WritePipeline, WriterLock};

/// Settings of a [`FeatureStore`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Upper bound of the online cache, in bytes of cached rows.
    pub online_cache_bytes: u64,
    /// Created times of pushed rows and "now" of TTL checks come from here.
    pub clock: Clock,
    /// Pushed rows may be at most this far (microseconds) ahead of the
    /// clock; `None`: no bound. (A year-9999 row would stay the latest value
    /// of its key forever.)
    pub max_future: Option<Micros>,
    /// Entity rows a snapshot computes in one pass (one read of each view's
    /// history; memory grows with it). Rounded up to whole stored chunks.
    pub snapshot_pass_rows: usize,
    /// Bytes of encoded entity rows a pass keeps from reading them until it
    /// builds output rows (~40 MB for 1M rows with a key and a short
    /// passthrough); a pass with wider rows reads them again instead.
    pub snapshot_kept_chunk_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            online_cache_bytes: 128 << 20,
            clock: Clock::system(),
            max_future: None,
            snapshot_pass_rows: 1 << 20,
            snapshot_kept_chunk_bytes: 128 << 20,
        }
    }
}

pub struct FeatureStore {
    pub(crate) engine: Box<dyn Engine>,
    registry: RwLock<Arc<Registry>>,
    /// The writer lock, and the order of writes (`write_pipeline.rs`).
    pub(crate) pipeline: WritePipeline,
    /// Validated push batches waiting for the writer (group commit).
    pub(crate) pending: Mutex<Vec<Arc<crate::push::PendingBatch>>>,
    pub(crate) version: AtomicU64,
    /// The last store version that wrote each view (by view id), for views
    /// written since open; others report `opened_at_version`.
    view_versions: RwLock<std::collections::HashMap<u32, u64>>,
    opened_at_version: u64,
    pub(crate) cache: OnlineCache,
    pub(crate) clock: Clock,
    pub(crate) max_future: Option<Micros>,
    /// Stored entity-row chunks per snapshot pass (at least one).
    pub(crate) snapshot_pass_chunks: u32,
    pub(crate) snapshot_kept_chunk_bytes: usize,
    /// Whether commits write outbox entries (`outbox.rs`).
    pub(crate) outbox: std::sync::atomic::AtomicBool,
    /// Set on a replica: online reads go to this shared online store
    /// instead of the engine (`online.rs`), and the store version is the
    /// version it has published.
    pub(crate) remote_online: std::sync::OnceLock<Arc<dyn crate::online_store::OnlineStore>>,
    /// A replica's cache of the shared store's rows and the change feed
    /// that keeps it current (`online_store/replica.rs`).
    pub(crate) replica_cache: crate::online_store::ReplicaCache,
    /// Bumped by every write to the model registry (models, serving
    /// pointers), which a leader publishes with the definitions.
    pub(crate) models_changed: AtomicU64,
    /// The `models_changed` the leader last published.
    pub(crate) models_published: AtomicU64,
}

impl FeatureStore {
    /// Opens (or creates) a RocksDB-backed store in `data_dir`.
    pub fn open(data_dir: &Path, config: StoreConfig) -> Result<Self> {
        Self::with_engine(Box::new(RocksEngine::open(data_dir)?), config)
    }

    /// A store that lives in memory only.
    pub fn in_memory(config: StoreConfig) -> Result<Self> {
        Self::with_engine(Box::new(MemoryEngine::new()), config)
    }

    pub fn with_engine(engine: Box<dyn Engine>, config: StoreConfig) -> Result<Self> {
        let store = Self::assemble(engine, config)?;
        // Nothing is being created yet: what has no metadata never will.
        store.delete_incomplete_snapshots()?;
        Ok(store)
    }

    fn assemble(engine: Box<dyn Engine>, config: StoreConfig) -> Result<Self> {
        let version = match engine.get(Cf::Meta, codec::META_STORE_VERSION)? {
            Some(bytes) => codec::decode_u64(&bytes)?,
            None => 0,
        };
        let mut registry = migrations::replay(&migrations::applied(engine.as_ref())?)?;
        crate::retire::load(engine.as_ref(), &mut registry)?;
        let indexed = crate::aggregation::index::ensure_time_indexes(
            engine.as_ref(),
            &registry,
            &mut |view, events| tracing::info!(view, events, "indexing events by time"),
        )?;
        if indexed > 0 {
            tracing::info!(entries = indexed, "events views' time indexes backfilled");
        }
        engine.set_retention(Arc::new(RetentionRules::new(
            &registry,
            config.clock.clone(),
        )));
        let outbox = engine.get(Cf::Meta, crate::outbox::ENABLED_KEY)?.is_some();
        Ok(FeatureStore {
            engine,
            registry: RwLock::new(Arc::new(registry)),
            pipeline: WritePipeline::default(),
            pending: Mutex::new(Vec::new()),
            version: AtomicU64::new(version),
            view_versions: RwLock::new(std::collections::HashMap::new()),
            opened_at_version: version,
            cache: OnlineCache::new(config.online_cache_bytes),
            clock: config.clock,
            max_future: config.max_future,
            snapshot_pass_chunks: config
                .snapshot_pass_rows
                .div_ceil(crate::snapshot::ENTITY_ROW_CHUNK)
                .clamp(1, u32::MAX as usize) as u32,
            snapshot_kept_chunk_bytes: config.snapshot_kept_chunk_bytes,
            outbox: std::sync::atomic::AtomicBool::new(outbox),
            remote_online: std::sync::OnceLock::new(),
            replica_cache: crate::online_store::ReplicaCache::default(),
            models_changed: AtomicU64::new(0),
            models_published: AtomicU64::new(0),
        })
    }

    /// The newest committed store version.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Push groups prepared and not yet written: 0, 1, or 2 while one is
    /// written and the next waits for its turn (`write_pipeline.rs`).
    pub fn writes_in_flight(&self) -> u64 {
        self.pipeline.in_flight_count()
    }

    /// The registry as of now (cheap to clone; replaced, never mutated, by
    /// migrations).
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&crate::sync::read(&self.registry))
    }

    /// A version at or after the last write to view `view_id`: equal
    /// answers mean no row of the view was written in between (readers use
    /// it to keep derived data of a view until the view changes).
    /// For an aggregation, the answer is its source view's.
    pub fn view_write_version(&self, view_id: u32) -> u64 {
        let view_id = match self
            .registry()
            .view_by_id(view_id)
            .and_then(|v| v.aggregation())
        {
            Some(spec) => spec.source.id,
            None => view_id,
        };
        crate::sync::read(&self.view_versions)
            .get(&view_id)
            .copied()
            .unwrap_or(self.opened_at_version)
    }

    pub(crate) fn record_view_writes(&self, writes: &[(u32, u64)]) {
        let mut map = crate::sync::write(&self.view_versions);
        for (view, version) in writes {
            map.insert(*view, *version);
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn engine_stats(&self) -> EngineStats {
        self.engine.stats()
    }

    pub fn cache_stats(&self) -> crate::online_cache::CacheStats {
        // A replica's reads go through its own cache.
        self.replica_cache
            .stats()
            .unwrap_or_else(|| self.cache.stats())
    }

    /// Checks the files in `dir` against the applied ones and applies the new
    /// ones in order, each as one batch with its own store version. Returns
    /// the names of the files applied now.
    pub fn migrate(&self, dir: &Path) -> Result<Vec<String>> {
        let files = migrations::read_dir(dir)?;
        let _writer = self.lock_writer();
        let records = migrations::applied(self.engine.as_ref())?;
        let todo = migrations::pending(&records, &files)?;
        let mut registry = (*self.registry()).clone();
        let mut applied = Vec::new();
        for file in todo {
            self.apply_migration(&mut registry, &file)?;
            applied.push(file.file_name);
        }
        Ok(applied)
    }

    /// Checks that no applied migration was edited and none is pending.
    pub fn verify_migrations(&self, dir: &Path) -> Result<Vec<String>> {
        let files = migrations::read_dir(dir)?;
        let records = migrations::applied(self.engine.as_ref())?;
        Ok(migrations::pending(&records, &files)?
            .into_iter()
            .map(|f| f.file_name)
            .collect())
    }

    /// Registers definitions at run time (a training run's new embedding view
    /// version), recorded like a migration under `runtime/{name}` so the
    /// registry replays them on start-up. Returns the store version.
    pub fn register_definitions(&self, name: &str, source: &str) -> Result<u64> {
        let file = MigrationFile {
            file_name: format!("{}{name}", migrations::RUNTIME_PREFIX),
            number: 0,
            sha256: migrations::sha256_hex(source.as_bytes()),
            source: source.to_owned(),
        };
        let _writer = self.lock_writer();
        let records = migrations::applied(self.engine.as_ref())?;
        if records.iter().any(|r| r.file_name == file.file_name) {
            return Err(StoreError::definition(
                &file.file_name,
                "is already registered",
            ));
        }
        let mut registry = (*self.registry()).clone();
        self.apply_migration(&mut registry, &file)?;
        Ok(self.version())
    }

    /// [`register_definitions`](Self::register_definitions) unless `name`
    /// is registered already; returns whether it was registered now.
    pub fn ensure_definitions(&self, name: &str, source: &str) -> Result<bool> {
        let file_name = format!("{}{name}", migrations::RUNTIME_PREFIX);
        let records = migrations::applied(self.engine.as_ref())?;
        if records.iter().any(|r| r.file_name == file_name) {
            return Ok(false);
        }
        self.register_definitions(name, source)?;
        Ok(true)
    }

    fn apply_migration(&self, registry: &mut Registry, file: &MigrationFile) -> Result<()> {
        let definitions = DefinitionFile::parse(&file.source)
            .map_err(|e| StoreError::definition(&file.file_name, e))?;
        let before = registry.clone();
        registry.apply(&file.file_name, &definitions)?;
        // New groupings of events are indexed from history before the
        // record that makes their aggregations visible is committed.
        let indexed = crate::aggregation::index::backfill(
            self.engine.as_ref(),
            &before,
            registry,
            &mut |view, events| tracing::info!(file = %file.file_name, view, events, "backfilling aggregation index"),
        )?;
        if indexed > 0 {
            tracing::info!(file = %file.file_name, entries = indexed, "aggregation index backfilled");
        }
        let version = self.version() + 1;
        let record = MigrationRecord {
            file_name: file.file_name.clone(),
            sha256: file.sha256.clone(),
            source: file.source.clone(),
            applied_at_micros: self.clock.now(),
            store_version: version,
        };
        let mut batch = WriteBatch::default();
        batch.put(
            Cf::Registry,
            migrations::record_key(&record),
            prost::Message::encode_to_vec(&record),
        );
        // Index entries the backfill wrote are not listed in the batch.
        let publication = if indexed > 0 {
            Publication::Everything
        } else {
            Publication::Keys
        };
        self.commit_publishing(batch, version, &[], publication)?;
        self.publish_registry(registry.clone());
        tracing::info!(file = %file.file_name, store_version = version, "applied migration");
        Ok(())
    }

    /// Rebuilds the registry from the records in the engine (a replica
    /// whose definitions changed).
    pub(crate) fn reload_registry(&self) -> Result<()> {
        let mut registry = migrations::replay(&migrations::applied(self.engine.as_ref())?)?;
        crate::retire::load(self.engine.as_ref(), &mut registry)?;
        self.publish_registry(registry);
        Ok(())
    }

    /// Makes `registry` the one reads see, and its retentions the ones
    /// compactions apply.
    pub(crate) fn publish_registry(&self, registry: Registry) {
        self.engine
            .set_retention(Arc::new(RetentionRules::new(&registry, self.clock.clone())));
        *crate::sync::write(&self.registry) = Arc::new(registry);
    }

    /// Waits for the compactions earlier writes made due (see
    /// [`Engine::wait_for_compactions`](crate::engine::Engine::wait_for_compactions)):
    /// a bulk load ends with its tree settled, and the next process does
    /// not start by redoing a compaction this one dropped at exit.
    pub fn wait_for_compactions(&self) -> Result<()> {
        let _span = tracing::info_span!("store.wait_for_compactions").entered();
        self.engine.wait_for_compactions()
    }

    /// Where bulk loads spill (see [`Engine::scratch_dir`](crate::engine::Engine::scratch_dir)).
    pub fn scratch_dir(&self) -> std::path::PathBuf {
        self.engine.scratch_dir()
    }

    /// Compacts history now, dropping the rows retention has expired
    /// (compactions do it on their own as data is written; this is for
    /// operators and tests).
    pub fn compact_history(&self) -> Result<()> {
        let _span = tracing::info_span!("store.compact_history").entered();
        self.engine.compact_history()?;
        // Rows it reclaimed may still sit in the cache (reads already treat
        // them as forgotten; this frees the memory).
        self.cache.clear();
        Ok(())
    }

    /// The writer lock, taken once no push group is being written: the
    /// holder writes on top of the last written version.
    pub(crate) fn lock_writer(&self) -> WriterLock<'_> {
        self.pipeline.lock_exclusive()
    }

    /// Writes `batch` (holding store versions up to `version`, under the
    /// writer lock), publishes the version, then drops the cached online rows
    /// it replaces (see `online_cache.rs` for why in this order).
    pub(crate) fn commit(
        &self,
        batch: WriteBatch,
        version: u64,
        online_keys: &[Vec<u8>],
    ) -> Result<()> {
        self.commit_publishing(batch, version, online_keys, Publication::Keys)
    }

    /// [`commit`](Self::commit), with the outbox entry publishing
    /// `publication` (everything, when the batch follows writes it cannot
    /// list).
    pub(crate) fn commit_publishing(
        &self,
        mut batch: WriteBatch,
        version: u64,
        online_keys: &[Vec<u8>],
        publication: Publication,
    ) -> Result<()> {
        debug_assert!(version > self.version());
        crate::outbox::add_entry(self, &mut batch, version, publication);
        put_store_version(&mut batch, version);
        self.engine.write(batch)?;
        self.committed(version, online_keys);
        Ok(())
    }

    /// [`committed`](Self::committed) of a bulk load whose online rows are
    /// too many to list: the cache forgets every row.
    pub(crate) fn committed_clearing_cache(&self, version: u64) {
        self.version.store(version, Ordering::Release);
        self.cache.clear();
    }

    /// After `version` is durable: readers see it, and the cache forgets
    /// the online rows it replaced.
    pub(crate) fn committed(&self, version: u64, online_keys: &[Vec<u8>]) {
        self.version.store(version, Ordering::Release);
        for key in online_keys {
            self.cache.invalidate(key);
        }
    }
}

/// Adds the write of the store version to `batch`.
pub(crate) fn put_store_version(batch: &mut WriteBatch, version: u64) {
    batch.put(
        Cf::Meta,
        codec::META_STORE_VERSION.to_vec(),
        version.to_be_bytes().to_vec(),
    );
}
