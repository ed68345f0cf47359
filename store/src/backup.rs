//! Backups (CONTRACT.md "Backup"): a consistent copy of the whole store at
//! one store version, taken while it serves, and the restore that brings it
//! back as a new data directory.

use std::path::Path;

use crate::error::{Result, StoreError};
use crate::feature_store::FeatureStore;

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupInfo {
    pub store_version: u64,
}

impl FeatureStore {
    /// Writes a copy of the store to `dir` (absolute, not existing yet).
    /// Commits wait while the copy's file list is taken (milliseconds: the
    /// data files are hard-linked, not copied), so the copy holds exactly
    /// the batches acknowledged up to the version returned: every one
    /// acknowledged before the call, none after it.
    pub fn backup(&self, dir: &Path) -> Result<BackupInfo> {
        let _span = tracing::info_span!("store.backup", dir = %dir.display()).entered();
        if !dir.is_absolute() {
            return Err(StoreError::invalid(
                "dir",
                format!("`{}` is not an absolute path", dir.display()),
            ));
        }
        if dir.exists() {
            return Err(StoreError::invalid(
                "dir",
                format!(
                    "`{}` exists already; a backup goes to a new directory",
                    dir.display()
                ),
            ));
        }
        match dir.parent() {
            Some(parent) if parent.is_dir() => {}
            _ => {
                return Err(StoreError::invalid(
                    "dir",
                    format!("the parent directory of `{}` does not exist", dir.display()),
                ))
            }
        }
        let _writer = self.lock_writer();
        let store_version = self.version();
        self.engine.checkpoint(dir)?;
        tracing::info!(store_version, dir = %dir.display(), "backup written");
        Ok(BackupInfo { store_version })
    }
}

/// Brings a backup back as the data directory `data_dir` (which must not
/// exist or be empty): the files are copied, so the backup stays usable.
/// Returns the restored store version.
pub fn restore(backup: &Path, data_dir: &Path) -> Result<BackupInfo> {
    if !backup.join("CURRENT").is_file() {
        return Err(StoreError::invalid(
            "from",
            format!("`{}` is not a backup (no CURRENT file)", backup.display()),
        ));
    }
    if data_dir.exists() && std::fs::read_dir(data_dir)?.next().is_some() {
        return Err(StoreError::invalid(
            "data_dir",
            format!(
                "`{}` is not empty; restore into a new data directory",
                data_dir.display()
            ),
        ));
    }
    std::fs::create_dir_all(data_dir)?;
    for entry in std::fs::read_dir(backup)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), data_dir.join(entry.file_name()))?;
        }
    }
    let store = FeatureStore::open(data_dir, crate::StoreConfig::default())?;
    Ok(BackupInfo {
        store_version: store.version(),
    })
}
