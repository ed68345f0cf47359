//! Column families: every keyspace of the store, named in one place.

/// A keyspace. The RocksDB engine maps each to a column family; the
/// in-memory engine to a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Applied migration records, by file name.
    Registry,
    /// Every pushed row: (view, entity, event time, store version, sequence).
    History,
    /// The latest row per (view, entity), for online reads.
    Online,
    /// Store version and other single values.
    Meta,
    /// Snapshot definitions and their entity rows.
    Snapshots,
}

impl Cf {
    pub const ALL: [Cf; 5] = [
        Cf::Registry,
        Cf::History,
        Cf::Online,
        Cf::Meta,
        Cf::Snapshots,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Registry => "registry",
            Cf::History => "history",
            Cf::Online => "online",
            Cf::Meta => "meta",
            Cf::Snapshots => "snapshots",
        }
    }
}
