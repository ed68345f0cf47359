//! Creating a snapshot: validate the request, store the entity rows in
//! chunks, then the metadata (the commit point: a snapshot without metadata
//! does not exist, and a rejected request deletes the chunks it wrote).

use prost::Message;
use serde_json::{Map, Value as Json};

use super::entity_columns::EntityColumns;
use super::{Cutoff, SnapshotInfo};
use crate::cf::Cf;
use crate::codec;
use crate::engine::WriteBatch;
use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::proto::{EntityRow, EntityRowChunk, PassthroughColumn, SnapshotFeature, SnapshotMeta};
use crate::push::{join_key_values, timestamp_field};
use crate::registry::ResolvedRef;
use crate::transform::EVENT_TIMESTAMP;
use crate::types::json_kind;

/// Entity rows per stored chunk.
pub const ENTITY_ROW_CHUNK: usize = 4096;

/// Stored chunks per durable write while a snapshot's rows are stored.
const CHUNKS_PER_WRITE: usize = 16;

#[derive(Debug, Clone, Default)]
pub struct SnapshotSpec {
    pub features: Vec<String>,
    /// Pin to this store version; `None` = the current one (then recorded).
    pub as_of_version: Option<u64>,
    pub cutoff: Cutoff,
    /// Who makes it (`SnapshotMeta.owner`): [`TRAINING_OWNER`] for a
    /// training run's, empty for a user's.
    pub owner: String,
}

/// The owner of snapshots a training run makes: collected once no stored
/// model names them.
pub const TRAINING_OWNER: &str = "training";

impl FeatureStore {
    /// Creates a snapshot of `spec.features` for `entity_rows` (JSON objects
    /// with join keys, `event_timestamp` and any passthrough columns). An
    /// `Err(message)` item rejects the request as a malformed row.
    pub fn create_snapshot<I>(&self, spec: &SnapshotSpec, entity_rows: I) -> Result<SnapshotInfo>
    where
        I: IntoIterator<Item = std::result::Result<Json, String>>,
    {
        let plan = self.plan_snapshot(spec)?;
        let mut rows = entity_rows.into_iter().enumerate();
        self.create_planned(plan, |meta, columns| {
            let (i, row) = rows.next()?;
            Some(json_entity_row(meta, columns, i, row))
        })
    }

    /// Creates a snapshot of `spec.features` for entity rows given as text
    /// cells under `headers` (a CSV file): the same rows as
    /// [`create_snapshot`](Self::create_snapshot) with each cell a JSON
    /// value (empty = null, numbers and booleans in their JSON spelling),
    /// without a JSON object per row.
    pub fn create_snapshot_from_text<I, R>(
        &self,
        spec: &SnapshotSpec,
        headers: &[String],
        entity_rows: I,
    ) -> Result<SnapshotInfo>
    where
        I: IntoIterator<Item = std::result::Result<R, String>>,
        for<'a> &'a R: IntoIterator<Item: AsRef<str>>,
    {
        let plan = self.plan_snapshot(spec)?;
        let text = EntityColumns::new(&plan, headers)?;
        let mut rows = entity_rows.into_iter().enumerate();
        self.create_planned(plan, |_, columns| {
            let (i, row) = rows.next()?;
            Some(
                row.map_err(|message| StoreError::invalid(format!("entity_rows[{i}]"), message))
                    .and_then(|cells| text.row(columns, i, &cells)),
            )
        })
    }

    /// Stores the entity rows `next_row` hands out, then the metadata (the
    /// commit point); a rejected request deletes what it wrote.
    pub(super) fn create_planned(
        &self,
        plan: SnapshotMeta,
        next_row: impl FnMut(&SnapshotMeta, &mut PassthroughColumns) -> Option<Result<EntityRow>>,
    ) -> Result<SnapshotInfo> {
        let _span =
            tracing::info_span!("store.snapshot_create", features = plan.features.len()).entered();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut written: Vec<Vec<u8>> = Vec::new();
        let stored = self
            .store_entity_rows(&id, &plan, next_row, &mut written)
            .and_then(|(meta, unwritten)| {
                let mut batch = match unwritten {
                    // A small snapshot: its rows and metadata in one
                    // logged batch.
                    Some(rows) => rows,
                    None => {
                        // The entity rows were written unlogged: durable
                        // before the metadata that makes them readable.
                        self.engine.persist(Cf::Snapshots)?;
                        WriteBatch::default()
                    }
                };
                batch.put(
                    Cf::Snapshots,
                    codec::snapshot_meta_key(&id),
                    meta.encode_to_vec(),
                );
                self.engine.write(batch)?;
                Ok(meta)
            });
        match stored {
            Ok(meta) => Ok(SnapshotInfo::from(&meta)),
            Err(e) => {
                let mut undo = WriteBatch::default();
                for key in written {
                    undo.delete(Cf::Snapshots, key);
                }
                if !undo.is_empty() {
                    self.engine.write(undo)?;
                }
                Err(e)
            }
        }
    }

    /// Metadata of a stored snapshot.
    pub fn snapshot_meta(&self, id: &str) -> Result<SnapshotMeta> {
        let bytes = self
            .engine
            .get(Cf::Snapshots, &codec::snapshot_meta_key(id))?
            .ok_or_else(|| StoreError::UnknownSnapshot(id.to_owned()))?;
        Ok(SnapshotMeta::decode(bytes.as_slice())?)
    }

    pub fn snapshot_info(&self, id: &str) -> Result<SnapshotInfo> {
        Ok(SnapshotInfo::from(&self.snapshot_meta(id)?))
    }

    pub(super) fn plan_snapshot(&self, spec: &SnapshotSpec) -> Result<SnapshotMeta> {
        if spec.features.is_empty() {
            return Err(StoreError::invalid("features", "name at least one feature"));
        }
        let registry = self.registry();
        let refs: Vec<ResolvedRef> = registry.resolve_all(&spec.features, "features")?;
        let current = self.version();
        let store_version = match spec.as_of_version {
            Some(v) if v > current => {
                return Err(StoreError::invalid(
                    "as_of_version",
                    format!("as_of_version {v} is above the current store version {current}"),
                ))
            }
            Some(v) => v,
            None => current,
        };
        let mut join_keys: Vec<String> = Vec::new();
        let mut features: Vec<SnapshotFeature> = Vec::new();
        for (i, r) in refs.iter().enumerate() {
            for key in &r.view.join_keys {
                if !join_keys.contains(key) {
                    join_keys.push(key.clone());
                }
            }
            let column = r.column();
            if features.iter().any(|f| f.column == column) {
                return Err(StoreError::invalid(
                    format!("features[{i}]"),
                    format!("feature `{column}` is named twice"),
                ));
            }
            features.push(SnapshotFeature {
                view: r.view.name.clone(),
                view_version: r.view.version,
                feature: r.feature().name.clone(),
                column,
                feature_type: r.feature().feature_type.name().to_owned(),
            });
        }
        Ok(SnapshotMeta {
            id: String::new(),
            created_at_micros: self.clock.now(),
            store_version,
            cutoff: spec.cutoff.as_str().to_owned(),
            features,
            join_keys,
            passthrough: Vec::new(),
            rows: 0,
            chunks: 0,
            written_at_version: current,
            owner: spec.owner.clone(),
        })
    }

    /// Stores the entity rows in chunks, written unlogged
    /// [`CHUNKS_PER_WRITE`] at a time; returns the metadata and, when the
    /// rows fit in one write, that write (not made yet: the caller adds the
    /// metadata to it).
    fn store_entity_rows(
        &self,
        id: &str,
        plan: &SnapshotMeta,
        mut next_row: impl FnMut(&SnapshotMeta, &mut PassthroughColumns) -> Option<Result<EntityRow>>,
        written: &mut Vec<Vec<u8>>,
    ) -> Result<(SnapshotMeta, Option<WriteBatch>)> {
        let mut meta = SnapshotMeta {
            id: id.to_owned(),
            ..plan.clone()
        };
        let mut columns = PassthroughColumns::default();
        let mut chunk = EntityRowChunk::default();
        let mut pending = WriteBatch::default();
        // The earliest entity row and its index, checked against retention.
        let mut earliest: Option<(i64, usize)> = None;
        while let Some(row) = next_row(plan, &mut columns) {
            let row = row?;
            if earliest.is_none_or(|(t, _)| row.event_ts_micros < t) {
                earliest = Some((row.event_ts_micros, meta.rows as usize));
            }
            chunk.rows.push(row);
            meta.rows += 1;
            if chunk.rows.len() == super::ENTITY_ROW_CHUNK {
                self.write_chunk(
                    id,
                    &mut meta,
                    std::mem::take(&mut chunk),
                    &mut pending,
                    written,
                )?;
            }
        }
        if !chunk.rows.is_empty() {
            self.write_chunk(id, &mut meta, chunk, &mut pending, written)?;
        }
        // Every chunk still pending: none was written.
        let unwritten = if pending.len() as u32 == meta.chunks {
            Some(pending)
        } else {
            self.engine.write_unlogged(pending)?;
            None
        };
        if meta.rows == 0 {
            return Err(StoreError::invalid(
                "entity_rows",
                "a snapshot needs at least one entity row",
            ));
        }
        if let Some((at, i)) = earliest {
            let registry = self.registry();
            let now = self.clock.now();
            for feature in &meta.features {
                let label = format!("{}@{}", feature.view, feature.view_version);
                if let Some(view) = registry.view(&label) {
                    crate::retention::check_lookup(&registry, view, at, now, || {
                        format!("entity_rows[{i}].{EVENT_TIMESTAMP}")
                    })?;
                }
            }
        }
        meta.passthrough = columns.into_columns();
        Ok((meta, unwritten))
    }

    /// Queues one chunk; every [`CHUNKS_PER_WRITE`] chunks (and at the end)
    /// the queued ones are written as one batch, unlogged (made durable
    /// before the metadata is written).
    fn write_chunk(
        &self,
        id: &str,
        meta: &mut SnapshotMeta,
        chunk: EntityRowChunk,
        pending: &mut WriteBatch,
        written: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        let key = codec::snapshot_chunk_key(id, meta.chunks);
        pending.put(Cf::Snapshots, key.clone(), chunk.encode_to_vec());
        written.push(key);
        meta.chunks += 1;
        if pending.len() >= CHUNKS_PER_WRITE {
            self.engine.write_unlogged(std::mem::take(pending))?;
        }
        Ok(())
    }
}

/// A JSON entity row checked and split as stored: join keys in the
/// snapshot's order, event time, passthrough columns as a JSON object.
fn json_entity_row(
    meta: &SnapshotMeta,
    columns: &mut PassthroughColumns,
    i: usize,
    row: std::result::Result<Json, String>,
) -> Result<EntityRow> {
    let row = row.map_err(|message| StoreError::invalid(format!("entity_rows[{i}]"), message))?;
    let object = row.as_object().ok_or_else(|| StoreError::WrongType {
        field: format!("entity_rows[{i}]"),
        expected: "an object".into(),
        got: json_kind(&row).into(),
    })?;
    let field = |k: &str| format!("entity_rows[{i}].{k}");
    let keys = join_key_values(object, &meta.join_keys, &field)?;
    let event_ts = timestamp_field(object, &field)?;
    let mut passthrough = Map::new();
    for (name, value) in object {
        if name == EVENT_TIMESTAMP || meta.join_keys.contains(name) {
            continue;
        }
        if is_feature_column(meta, name) {
            return Err(StoreError::invalid(
                field(name),
                "a passthrough column clashes with a feature column",
            ));
        }
        columns.observe(name, value);
        passthrough.insert(name.clone(), value.clone());
    }
    Ok(EntityRow {
        keys,
        event_ts_micros: event_ts,
        passthrough_json: Json::Object(passthrough).to_string(),
    })
}

/// Whether `name` is one of the snapshot's feature columns.
pub(super) fn is_feature_column(meta: &SnapshotMeta, name: &str) -> bool {
    meta.features.iter().any(|f| f.column == name)
}

/// Passthrough columns in order of first appearance, with a type that fits
/// every non-null value seen.
#[derive(Default)]
pub(super) struct PassthroughColumns {
    columns: Vec<(String, ColumnKind)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ColumnKind {
    Null,
    Bool,
    Int64,
    Float64,
    String,
    Json,
}

impl ColumnKind {
    fn of(value: &Json) -> Self {
        match value {
            Json::Null => ColumnKind::Null,
            Json::Bool(_) => ColumnKind::Bool,
            Json::Number(n) if n.is_i64() => ColumnKind::Int64,
            Json::Number(_) => ColumnKind::Float64,
            Json::String(_) => ColumnKind::String,
            Json::Array(_) | Json::Object(_) => ColumnKind::Json,
        }
    }

    fn join(self, other: Self) -> Self {
        use ColumnKind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Null, x) | (x, Null) => x,
            (Int64, Float64) | (Float64, Int64) => Float64,
            _ => Json,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ColumnKind::Bool => "bool",
            ColumnKind::Int64 => "int64",
            ColumnKind::Float64 => "float64",
            ColumnKind::Null | ColumnKind::String => "string",
            ColumnKind::Json => "json",
        }
    }
}

impl PassthroughColumns {
    pub(super) fn observe(&mut self, name: &str, value: &Json) {
        let kind = ColumnKind::of(value);
        match self.columns.iter_mut().find(|(n, _)| n == name) {
            Some((_, existing)) => *existing = existing.join(kind),
            None => self.columns.push((name.to_owned(), kind)),
        }
    }

    fn into_columns(self) -> Vec<PassthroughColumn> {
        self.columns
            .into_iter()
            .map(|(name, kind)| PassthroughColumn {
                name,
                column_type: kind.name().to_owned(),
            })
            .collect()
    }
}

impl FeatureStore {
    /// Deletes a snapshot (definition, entity rows, attachments) in one
    /// batch. Its id then answers `snapshot_not_found`.
    pub fn delete_snapshot(&self, id: &str) -> Result<()> {
        self.snapshot_meta(id)?;
        let prefix = codec::snapshot_prefix(id);
        let mut batch = WriteBatch::default();
        let mut cursor = self.engine.cursor(Cf::Snapshots)?;
        cursor.seek(&prefix);
        while let Some((key, _)) = cursor.entry() {
            if !key.starts_with(&prefix) {
                break;
            }
            batch.delete(Cf::Snapshots, key.to_vec());
            cursor.next();
        }
        cursor.status()?;
        drop(cursor);
        self.engine.write(batch)
    }

    /// Every snapshot id with entries in the store, and whether its
    /// metadata is written: one seek per snapshot (past its attachments
    /// and entity-row chunks), not a scan of its rows.
    fn stored_snapshots(&self) -> Result<Vec<(String, bool)>> {
        let mut out = Vec::new();
        let mut cursor = self.engine.cursor(Cf::Snapshots)?;
        cursor.seek(b"");
        while let Some((key, _)) = cursor.entry() {
            let Some(split) = key.iter().position(|b| *b == 0) else {
                cursor.next();
                continue;
            };
            let id = String::from_utf8_lossy(&key[..split]).into_owned();
            let prefix = codec::snapshot_prefix(&id);
            cursor.seek(&codec::snapshot_meta_key(&id));
            let has_meta = cursor
                .entry()
                .is_some_and(|(k, _)| k == codec::snapshot_meta_key(&id).as_slice());
            out.push((id, has_meta));
            match crate::engine::prefix_end(&prefix) {
                Some(end) => cursor.seek(&end),
                None => break,
            }
        }
        cursor.status()?;
        Ok(out)
    }

    /// Deletes the entity rows of snapshots whose creation never finished
    /// (a crash before the metadata was written: nothing can read them).
    /// Only safe while no snapshot is being created: the store calls it at
    /// open. Returns how many were deleted.
    pub(crate) fn delete_incomplete_snapshots(&self) -> Result<usize> {
        let incomplete: Vec<String> = self
            .stored_snapshots()?
            .into_iter()
            .filter(|(_, has_meta)| !has_meta)
            .map(|(id, _)| id)
            .collect();
        for id in &incomplete {
            self.engine
                .delete_prefix(Cf::Snapshots, &codec::snapshot_prefix(id))?;
            tracing::warn!(snapshot = %id, "rows of an unfinished snapshot deleted");
        }
        Ok(incomplete.len())
    }

    /// Ids of every stored snapshot.
    pub fn snapshot_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .stored_snapshots()?
            .into_iter()
            .filter(|(_, has_meta)| *has_meta)
            .map(|(id, _)| id)
            .collect())
    }
}
