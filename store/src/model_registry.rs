//! The model registry: every trained model (embeddings, rankers) stored by
//! version, `{kind}-{n}` with `n` counting per kind, prost-encoded with its
//! training snapshot, store version, feature refs, hyper-parameters, metrics
//! and code version. Saving a model does not change feature data, so it takes
//! no store version of its own; it records the one it was trained at. A
//! leader publishes the registry (records and serving pointers) with its
//! definitions, so replicas serve the same models.

use std::sync::atomic::Ordering;

use prost::Message;

use crate::cf::Cf;
use crate::codec;
use crate::engine::WriteBatch;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::proto::ModelRecord;

impl FeatureStore {
    /// Stores `record` as the next version of its kind and returns the
    /// version (`ranker-7`). `created_at` defaults to now.
    pub fn save_model(&self, mut record: ModelRecord) -> Result<String> {
        let kind = record.kind.clone();
        if kind.is_empty()
            || !kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(StoreError::invalid(
                "kind",
                format!("model kind `{kind}` must be [a-z0-9_]+"),
            ));
        }
        let _writer = self.lock_writer();
        let counter_key = codec::model_counter_key(&kind);
        let n = match self.engine.get(Cf::Meta, &counter_key)? {
            Some(bytes) => codec::decode_u64(&bytes)? + 1,
            None => 1,
        };
        record.version = format!("{kind}-{n}");
        if record.created_at_micros == 0 {
            record.created_at_micros = self.clock.now();
        }
        let mut batch = WriteBatch::default();
        batch.put(
            Cf::Models,
            record.version.as_bytes().to_vec(),
            record.encode_to_vec(),
        );
        batch.put(Cf::Meta, counter_key, n.to_be_bytes().to_vec());
        self.engine.write(batch)?;
        self.models_changed.fetch_add(1, Ordering::AcqRel);
        tracing::info!(version = %record.version, "model saved");
        Ok(record.version)
    }

    /// The model stored as `version`.
    pub fn load_model(&self, version: &str) -> Result<ModelRecord> {
        let bytes = self
            .engine
            .get(Cf::Models, version.as_bytes())?
            .ok_or_else(|| StoreError::UnknownModel(version.to_owned()))?;
        Ok(ModelRecord::decode(bytes.as_slice())?)
    }

    /// Records `version` as the one serving for its kind (a restart serves
    /// it again) and appends it to the kind's promotion history. The model
    /// must exist.
    pub fn set_serving_model(&self, version: &str) -> Result<()> {
        let record = self.load_model(version)?;
        let _writer = self.lock_writer();
        let mut history = self.serving_history_locked(&record.kind)?;
        if history.last().map(String::as_str) != Some(version) {
            history.push(version.to_owned());
        }
        self.write_serving(&record.kind, &history)?;
        tracing::info!(%version, "serving model recorded");
        Ok(())
    }

    /// The versions that served `kind`, oldest first (the last serves now).
    pub fn serving_history(&self, kind: &str) -> Result<Vec<String>> {
        self.serving_history_locked(kind)
    }

    /// Drops the serving version of `kind` from its history and makes the
    /// one before it serve again; returns it.
    pub fn rollback_serving_model(&self, kind: &str) -> Result<String> {
        let _writer = self.lock_writer();
        let mut history = self.serving_history_locked(kind)?;
        if history.len() < 2 {
            return Err(StoreError::invalid(
                "kind",
                format!("no earlier `{kind}` model has served: nothing to roll back to"),
            ));
        }
        history.pop();
        self.write_serving(kind, &history)?;
        let previous = history.last().cloned().expect("two or more before the pop");
        tracing::info!(%previous, "serving model rolled back");
        Ok(previous)
    }

    fn serving_history_locked(&self, kind: &str) -> Result<Vec<String>> {
        match self
            .engine
            .get(Cf::Meta, &codec::serving_history_key(kind))?
        {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("serving history: {e}"))),
            None => Ok(Vec::new()),
        }
    }

    fn write_serving(&self, kind: &str, history: &[String]) -> Result<()> {
        let mut batch = WriteBatch::default();
        if let Some(current) = history.last() {
            batch.put(
                Cf::Meta,
                codec::serving_model_key(kind),
                current.as_bytes().to_vec(),
            );
        }
        batch.put(
            Cf::Meta,
            codec::serving_history_key(kind),
            serde_json::to_vec(history).expect("strings serialise"),
        );
        self.engine.write(batch)?;
        self.models_changed.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Records the experiment routing traffic (`None`: none), for replicas
    /// (they leave its requests to the leader, which keeps its tallies).
    pub fn set_active_experiment(&self, name: Option<&str>) -> Result<()> {
        if self.active_experiment()?.as_deref() == name {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        match name {
            Some(name) => batch.put(
                Cf::Meta,
                codec::ACTIVE_EXPERIMENT_KEY.to_vec(),
                name.as_bytes().to_vec(),
            ),
            None => batch.delete(Cf::Meta, codec::ACTIVE_EXPERIMENT_KEY.to_vec()),
        }
        self.engine.write(batch)?;
        self.models_changed.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// The experiment recorded as routing traffic, if any.
    pub fn active_experiment(&self) -> Result<Option<String>> {
        self.engine
            .get(Cf::Meta, codec::ACTIVE_EXPERIMENT_KEY)?
            .map(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|e| StoreError::Corrupt(format!("active experiment: {e}")))
            })
            .transpose()
    }

    /// The version recorded as serving for `kind`, if any.
    pub fn serving_model(&self, kind: &str) -> Result<Option<String>> {
        self.engine
            .get(Cf::Meta, &codec::serving_model_key(kind))?
            .map(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|e| StoreError::Corrupt(format!("serving model pointer: {e}")))
            })
            .transpose()
    }

    /// Deletes model `version` (the caller's collection policy decides
    /// which). A model in its kind's promotion history (serving, or a
    /// rollback target) is refused.
    pub fn delete_model(&self, version: &str) -> Result<()> {
        let record = self.load_model(version)?;
        // Under the lock promotions record under: never the serving model
        // or a rollback target.
        let _writer = self.lock_writer();
        if self
            .serving_history_locked(&record.kind)?
            .iter()
            .any(|v| v == version)
        {
            return Err(StoreError::invalid(
                "version",
                format!("{version} has served (a rollback can reach it): promote another model and trim the history first"),
            ));
        }
        let mut batch = WriteBatch::default();
        batch.delete(Cf::Models, version.as_bytes().to_vec());
        self.engine.write(batch)?;
        self.models_changed.fetch_add(1, Ordering::AcqRel);
        tracing::info!(%version, "model deleted");
        Ok(())
    }

    /// Keeps the last `keep` (at least one) versions of `kind`'s promotion
    /// history, the depth rollbacks can reach; returns them.
    pub fn trim_serving_history(&self, kind: &str, keep: usize) -> Result<Vec<String>> {
        let _writer = self.lock_writer();
        let mut history = self.serving_history_locked(kind)?;
        let drop = history.len().saturating_sub(keep.max(1));
        if drop > 0 {
            history.drain(..drop);
            self.write_serving(kind, &history)?;
        }
        Ok(history)
    }

    /// Every stored model, oldest first.
    pub fn models(&self) -> Result<Vec<ModelRecord>> {
        let mut models = self
            .engine
            .scan_prefix(Cf::Models, b"")?
            .into_iter()
            .map(|(_, v)| ModelRecord::decode(v.as_slice()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        models.sort_by(|a, b| {
            (a.created_at_micros, &a.version).cmp(&(b.created_at_micros, &b.version))
        });
        Ok(models)
    }
}
