//! Exports the history of every view as Parquet for offline engines
//! (Spark): the rows written at store versions in `(since, pinned]`, where
//! `pinned` is the store version when the export starts, so an export is
//! consistent at one version and a sequence of incremental exports holds
//! every row exactly once.
//!
//! Layout under the output directory:
//! - `<view name>/v<version>/date=<YYYY-MM-DD>/part-<since+1>-<pinned>-<n>.parquet`
//!   (date of the event time, UTC); columns: the join keys (strings),
//!   `event_timestamp`, `created_timestamp` (UTC, microseconds),
//!   `store_version`, `sequence` (int64: the row's position in its push
//!   batch; among rows of equal event time and store version, aggregations
//!   and point-in-time reads take the later), then
//!   every stored feature (pushed or looked
//!   up at push; derived features are computed by the reader, and
//!   aggregation views by the reader from their source events);
//! - `manifest.json`: the commit point. It lists every export (`since_version`,
//!   `store_version`, its files and row counts), each view's layout, and the
//!   definitions (migration sources in order). A file not in the manifest
//!   (an export that died) is not part of the data.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;
use crate::parquet_columns::{arrow_type, parquet_error, timestamp_type, ColumnBuilder};
use crate::registry::FeatureView;
use crate::time::{format_rfc3339, Micros};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

/// The initial capacity of a date's column builders.
const BATCH_ROWS: usize = 1_024;

/// `manifest.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    /// The store version the directory is consistent at: every row written
    /// at or before it is in the listed files, none after it.
    pub store_version: u64,
    /// Every export so far, oldest first; the last one's `store_version` is
    /// what the directory is consistent at.
    pub exports: Vec<ExportRecord>,
    /// The layout of each exported view (`name@version`).
    pub views: Vec<ExportedView>,
    /// The applied definitions, in order (file name and TOML source).
    pub definitions: Vec<ExportedDefinition>,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        match std::fs::read(dir.join(MANIFEST)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("{MANIFEST}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportRecord {
    /// Rows written at versions in `(since_version, store_version]`.
    pub since_version: u64,
    pub store_version: u64,
    pub exported_at: String,
    pub files: Vec<ExportedFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportedFile {
    /// Relative to the export directory.
    pub path: String,
    pub view: String,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportedView {
    pub name: String,
    pub version: u32,
    /// `state` or `events`.
    pub kind: String,
    pub join_keys: Vec<String>,
    /// Stored feature columns and their types, in column order.
    pub columns: Vec<(String, String)>,
    pub ttl_micros: Micros,
    pub retention_micros: Micros,
    /// Whether it was retired (its rows deleted; earlier exports keep them).
    pub retired: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportedDefinition {
    pub file_name: String,
    pub store_version: u64,
    pub source: String,
}

/// The fixed columns before the features.
const EVENT_TIMESTAMP: &str = "event_timestamp";
const CREATED_TIMESTAMP: &str = "created_timestamp";
const STORE_VERSION: &str = "store_version";
const SEQUENCE: &str = "sequence";

/// The features of `view` an export carries: every stored one.
fn stored_features(view: &FeatureView) -> impl Iterator<Item = (usize, &crate::registry::Feature)> {
    view.features
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.is_derived())
}

fn schema_of(view: &FeatureView) -> SchemaRef {
    let mut fields: Vec<Field> = view
        .join_keys
        .iter()
        .map(|k| Field::new(k, DataType::Utf8, false))
        .collect();
    fields.push(Field::new(EVENT_TIMESTAMP, timestamp_type(), false));
    fields.push(Field::new(CREATED_TIMESTAMP, timestamp_type(), false));
    fields.push(Field::new(STORE_VERSION, DataType::Int64, false));
    fields.push(Field::new(SEQUENCE, DataType::Int64, false));
    for (_, feature) in stored_features(view) {
        fields.push(Field::new(
            &feature.name,
            arrow_type(feature.feature_type),
            true,
        ));
    }
    Arc::new(Schema::new(fields))
}

/// Makes the entries of `directory` durable.
fn sync_directory(directory: &Path) -> Result<()> {
    File::open(directory)?.sync_all()?;
    Ok(())
}

/// The rows of one date partition buffered since the last flush.
struct DateBuffer {
    columns: Vec<ColumnBuilder>,
    rows: usize,
}

/// Writes one view's rows into date partitions. History comes in entity
/// order, so every date's rows interleave: they are buffered per date, and
/// when the buffers reach [`BUFFER_BYTES`] every date's go to one new file
/// (a partition gets one file per flush, however its rows interleave).
struct ViewExport<'a> {
    dir: &'a Path,
    view: &'a FeatureView,
    schema: SchemaRef,
    first: u64,
    pinned: u64,
    buffers: std::collections::BTreeMap<String, DateBuffer>,
    /// Estimated bytes buffered.
    buffered: usize,
    flushes: u32,
    done: Vec<ExportedFile>,
    /// Partition directories written to (fsynced before the manifest).
    directories: std::collections::BTreeSet<std::path::PathBuf>,
}

/// Bytes of buffered rows (estimated) that trigger a flush of every date.
const BUFFER_BYTES: usize = 256 << 20;

fn value_bytes(value: Option<&crate::types::Value>) -> usize {
    use crate::types::Value;
    match value {
        None => 1,
        Some(Value::String(s)) => s.len() + 8,
        Some(Value::FloatVector(v)) => v.len() * 4 + 8,
        Some(Value::StringList(v)) => v.iter().map(|s| s.len() + 8).sum::<usize>() + 8,
        Some(_) => 8,
    }
}

impl ViewExport<'_> {
    fn add(&mut self, row: &crate::history::HistoryRow) -> Result<()> {
        let date = format_rfc3339(row.event_ts)[..10].to_owned();
        let view = self.view;
        let schema = &self.schema;
        let buffer = self.buffers.entry(date).or_insert_with(|| DateBuffer {
            columns: schema
                .fields()
                .iter()
                .map(|f| ColumnBuilder::for_type(f.data_type(), BATCH_ROWS))
                .collect(),
            rows: 0,
        });
        let mut c = buffer.columns.iter_mut();
        let mut bytes = 32;
        for key in &row.keys {
            c.next().expect("a column per key").append_str(key);
            bytes += key.len() + 8;
        }
        c.next().expect("event time").append_timestamp(row.event_ts);
        c.next()
            .expect("created time")
            .append_timestamp(row.created_ts);
        c.next()
            .expect("store version")
            .append_i64(row.store_version as i64);
        c.next()
            .expect("sequence")
            .append_i64(i64::from(row.sequence));
        for (i, _) in stored_features(view) {
            let value = row.values[i].as_ref();
            bytes += value_bytes(value);
            c.next()
                .expect("a column per stored feature")
                .append_value(value);
        }
        buffer.rows += 1;
        self.buffered += bytes;
        if self.buffered >= BUFFER_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every date's buffered rows to a new file of its partition.
    fn flush(&mut self) -> Result<()> {
        self.flushes += 1;
        for (date, buffer) in std::mem::take(&mut self.buffers) {
            let relative_dir = format!("{}/v{}/date={date}", self.view.name, self.view.version);
            std::fs::create_dir_all(self.dir.join(&relative_dir))?;
            let name = format!("part-{}-{}-{}", self.first, self.pinned, self.flushes);
            let relative = format!("{relative_dir}/{name}.parquet");
            let temporary = self.dir.join(&relative_dir).join(format!("{name}.tmp"));
            let properties = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(128 * 1024))
                .build();
            let mut writer = ArrowWriter::try_new(
                File::create(&temporary)?,
                Arc::clone(&self.schema),
                Some(properties),
            )
            .map_err(parquet_error)?;
            let arrays: Vec<ArrayRef> = buffer
                .columns
                .into_iter()
                .map(ColumnBuilder::finish)
                .collect();
            let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays)
                .map_err(|e| StoreError::Engine(e.to_string()))?;
            writer.write(&batch).map_err(parquet_error)?;
            writer.close().map_err(parquet_error)?;
            // Durable before the manifest names it.
            File::open(&temporary)?.sync_all()?;
            std::fs::rename(&temporary, self.dir.join(&relative))?;
            self.directories.insert(self.dir.join(&relative_dir));
            self.done.push(ExportedFile {
                path: relative,
                view: self.view.label(),
                rows: buffer.rows as u64,
            });
        }
        self.buffered = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<ExportedFile>> {
        if !self.buffers.is_empty() {
            self.flush()?;
        }
        // The files' directory entries, and the directories' own, up to
        // the export directory.
        for directory in &self.directories {
            let mut at = directory.as_path();
            while at.starts_with(self.dir) {
                sync_directory(at)?;
                match at.parent() {
                    Some(parent) if at != self.dir => at = parent,
                    _ => break,
                }
            }
        }
        self.done.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(self.done)
    }
}

impl FeatureStore {
    /// Exports the rows written after store version `since` (default: what
    /// `dir`'s manifest is consistent at, 0 without one) up to the current
    /// version into `dir`, then records the export in the manifest.
    /// `progress` hears each view's label and row count as it finishes.
    pub fn export_history(
        &self,
        dir: &Path,
        since: Option<u64>,
        mut progress: impl FnMut(&str, u64),
    ) -> Result<ExportRecord> {
        std::fs::create_dir_all(dir)?;
        let existing = Manifest::read(dir)?;
        // A directory's exports follow one another: another starting point
        // would leave a gap or hold rows twice.
        if let (Some(manifest), Some(asked)) = (&existing, since) {
            if asked != manifest.store_version {
                return Err(StoreError::invalid(
                    "since_version",
                    format!(
                        "{} holds the rows up to store version {}: export from there (omit --since-version) or into a new directory",
                        dir.display(),
                        manifest.store_version
                    ),
                ));
            }
        }
        let mut manifest = existing.unwrap_or(Manifest {
            format: 1,
            ..Manifest::default()
        });
        let since = since.unwrap_or(manifest.store_version);
        let pinned = self.version();
        if since > pinned {
            return Err(StoreError::invalid(
                "since_version",
                format!("{since} is after the store's version {pinned}"),
            ));
        }
        let _span = tracing::info_span!("store.export", since, pinned).entered();
        let registry = self.registry();
        let mut files = Vec::new();
        for view in registry.views() {
            if view.aggregation().is_some() || registry.is_retired(view.id) {
                continue;
            }
            let mut export = ViewExport {
                dir,
                view,
                schema: schema_of(view),
                first: since + 1,
                pinned,
                buffers: std::collections::BTreeMap::new(),
                buffered: 0,
                flushes: 0,
                done: Vec::new(),
                directories: std::collections::BTreeSet::new(),
            };
            let mut rows = 0;
            self.for_each_history_row(&view.label(), pinned, |row| {
                if row.store_version > since {
                    rows += 1;
                    export.add(&row)?;
                }
                Ok(())
            })?;
            files.extend(export.finish()?);
            progress(&view.label(), rows);
        }
        let record = ExportRecord {
            since_version: since,
            store_version: pinned,
            exported_at: format_rfc3339(self.clock.now()),
            files,
        };
        manifest.views = registry
            .views()
            .iter()
            .filter(|v| v.aggregation().is_none())
            .map(|v| ExportedView {
                name: v.name.clone(),
                version: v.version,
                kind: v.kind.name().to_owned(),
                join_keys: v.join_keys.clone(),
                columns: stored_features(v)
                    .map(|(_, f)| (f.name.clone(), f.feature_type.name().to_owned()))
                    .collect(),
                ttl_micros: v.ttl_micros,
                retention_micros: v.retention_micros,
                retired: registry.is_retired(v.id),
            })
            .collect();
        manifest.definitions = crate::migrations::applied(self.engine.as_ref())?
            .into_iter()
            .map(|r| ExportedDefinition {
                file_name: r.file_name,
                store_version: r.store_version,
                source: r.source,
            })
            .collect();
        manifest.store_version = pinned;
        manifest.exports.push(record.clone());
        // The commit point: written whole, then renamed over the old one.
        let temporary = dir.join(format!("{MANIFEST}.tmp"));
        std::fs::write(
            &temporary,
            serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Engine(e.to_string()))?,
        )?;
        File::open(&temporary)?.sync_all()?;
        std::fs::rename(&temporary, dir.join(MANIFEST))?;
        sync_directory(dir)?;
        Ok(record)
    }
}
