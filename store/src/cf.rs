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
    /// Trained models, by version.
    Models,
    /// Events of an events view grouped by the entities an aggregation
    /// groups by: (source view, entity mask, group key, event time, store
    /// version, sequence) → the event row. Written in the event's batch.
    AggIndex,
    /// Committed store versions not yet published to a shared online store
    /// (a leader's outbox): store version → what it changed.
    Outbox,
}

impl Cf {
    pub const ALL: [Cf; 8] = [
        Cf::Registry,
        Cf::History,
        Cf::Online,
        Cf::Meta,
        Cf::Snapshots,
        Cf::Models,
        Cf::AggIndex,
        Cf::Outbox,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Registry => "registry",
            Cf::History => "history",
            Cf::Online => "online",
            Cf::Meta => "meta",
            Cf::Snapshots => "snapshots",
            Cf::Models => "models",
            Cf::AggIndex => "agg_index",
            Cf::Outbox => "outbox",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cf;

    #[test]
    fn all_lists_every_column_family_once() {
        // The match is exhaustive: a new variant fails to compile here until
        // it is given a position, and the assertion then wants it in ALL.
        let position = |cf: Cf| match cf {
            Cf::Registry => 0,
            Cf::History => 1,
            Cf::Online => 2,
            Cf::Meta => 3,
            Cf::Snapshots => 4,
            Cf::Models => 5,
            Cf::AggIndex => 6,
            Cf::Outbox => 7,
        };
        for (i, cf) in Cf::ALL.iter().enumerate() {
            assert_eq!(position(*cf), i, "{}", cf.name());
        }
        assert_eq!(Cf::ALL.len(), 8);
    }
}
