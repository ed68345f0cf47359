//! Numbered definition files applied in order, with checksums recorded so an
//! edited applied file is caught at start-up.

use std::path::Path;

use prost::Message;
use sha2::{Digest, Sha256};

use crate::cf::Cf;
use crate::codec;
use crate::definitions::DefinitionFile;
use crate::engine::Engine;
use crate::error::{Result, StoreError};
use crate::proto::MigrationRecord;
use crate::registry::Registry;

/// A migration file found on disk.
#[derive(Debug, Clone)]
pub struct MigrationFile {
    pub file_name: String,
    pub number: u64,
    pub source: String,
    pub sha256: String,
}

/// Reads `NNNN_*.toml` files from `dir`, sorted by number. Other files are
/// ignored; two files with one number are an error.
pub fn read_dir(dir: &Path) -> Result<Vec<MigrationFile>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        StoreError::definition(
            dir.display().to_string(),
            format!("cannot read the migrations directory: {e}"),
        )
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(number) = migration_number(&file_name) else {
            if looks_like_migration(&file_name) {
                tracing::warn!(
                    file = %entry.path().display(),
                    "not applied: migration files are named NNNN_name.toml (four or more digits, an underscore, a name)"
                );
            }
            continue;
        };
        let source = std::fs::read_to_string(entry.path())?;
        files.push(MigrationFile {
            sha256: sha256_hex(source.as_bytes()),
            file_name,
            number,
            source,
        });
    }
    files.sort_by_key(|f| f.number);
    if let Some(pair) = files.windows(2).find(|w| w[0].number == w[1].number) {
        return Err(StoreError::definition(
            &pair[1].file_name,
            format!("has the same number as {}", pair[0].file_name),
        ));
    }
    Ok(files)
}

/// `0003_add_embeddings.toml` → 3.
pub fn migration_number(file_name: &str) -> Option<u64> {
    let stem = file_name.strip_suffix(".toml")?;
    let (digits, _) = stem.split_once('_')?;
    if digits.len() < 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A file that was probably meant as a migration but will never be
/// applied under its name (`0001.toml`, `12_views.toml`, `0003_x.TOML`).
pub fn looks_like_migration(file_name: &str) -> bool {
    let lower = file_name.to_ascii_lowercase();
    migration_number(file_name).is_none()
        && (lower.ends_with(".toml") || lower.starts_with(|c: char| c.is_ascii_digit()))
        && !file_name.starts_with('.')
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Prefix of the names of definitions registered at run time (a training
/// run's embedding views) rather than read from the migrations directory.
pub const RUNTIME_PREFIX: &str = "runtime/";

/// The applied definitions recorded in the store (migration files and
/// run-time registrations), in the order they were applied.
pub fn applied(engine: &dyn Engine) -> Result<Vec<MigrationRecord>> {
    let mut records = engine
        .scan_prefix(Cf::Registry, b"")?
        .into_iter()
        .map(|(_, v)| MigrationRecord::decode(v.as_slice()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    records.sort_by_key(|r| (r.store_version, migration_number(&r.file_name)));
    Ok(records)
}

fn is_runtime(record: &MigrationRecord) -> bool {
    record.file_name.starts_with(RUNTIME_PREFIX)
}

/// Rebuilds the registry from the recorded migrations.
pub fn replay(records: &[MigrationRecord]) -> Result<Registry> {
    let mut registry = Registry::default();
    for record in records {
        let file = DefinitionFile::parse(&record.source)
            .map_err(|e| StoreError::definition(&record.file_name, e))?;
        registry.apply(&record.file_name, &file)?;
    }
    Ok(registry)
}

/// Checks the files on disk against the recorded ones and returns the files
/// still to apply, in order. Errors when an applied file was edited or a new
/// file sorts before an applied one.
pub fn pending(records: &[MigrationRecord], files: &[MigrationFile]) -> Result<Vec<MigrationFile>> {
    let records: Vec<&MigrationRecord> = records.iter().filter(|r| !is_runtime(r)).collect();
    let last_applied = records
        .iter()
        .filter_map(|r| migration_number(&r.file_name))
        .max();
    let mut todo = Vec::new();
    for file in files {
        match records.iter().find(|r| r.file_name == file.file_name) {
            Some(record) if record.sha256 != file.sha256 => {
                return Err(StoreError::MigrationEdited {
                    file: file.file_name.clone(),
                    recorded: record.sha256.clone(),
                    actual: file.sha256.clone(),
                })
            }
            Some(_) => {}
            None => {
                if let Some(last) = last_applied.filter(|last| file.number <= *last) {
                    return Err(StoreError::definition(
                        &file.file_name,
                        format!("is numbered at or below the last applied migration ({last:04}); use a higher number"),
                    ));
                }
                todo.push(file.clone());
            }
        }
    }
    for record in &records {
        if !files.iter().any(|f| f.file_name == record.file_name) {
            tracing::warn!(file = %record.file_name, "applied migration is missing from the migrations directory");
        }
    }
    Ok(todo)
}

/// The registry key of a migration record.
pub(crate) fn record_key(record: &MigrationRecord) -> Vec<u8> {
    codec::migration_key(&record.file_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_numbers() {
        assert_eq!(migration_number("0001_demo.toml"), Some(1));
        assert_eq!(migration_number("0012_more_views.toml"), Some(12));
        assert_eq!(migration_number("1_short.toml"), None);
        assert_eq!(migration_number("0001_demo.txt"), None);
        assert_eq!(migration_number("README.md"), None);
    }

    #[test]
    fn files_that_will_never_be_applied_are_recognised() {
        for name in [
            "0001.toml",
            "1_short.toml",
            "0003_views.TOML",
            "0004_views.toml.bak",
        ] {
            assert!(looks_like_migration(name), "{name}");
        }
        for name in ["0001_demo.toml", "README.md", "notes.txt", ".0001.toml.swp"] {
            assert!(!looks_like_migration(name), "{name}");
        }
    }
}
