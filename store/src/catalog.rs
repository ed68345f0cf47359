//! The catalogue as a reader sees it: entities, every view version with its
//! kind, features, types, transforms, lookups, aggregations and windows,
//! TTL, retention, drift thresholds, and when it was last written (the
//! store version of its newest write). What the console's feature page and
//! `GET /v1/catalog` show.

use serde::Serialize;

use crate::definitions::{AggregationDef, LookupDef, TransformDef};
use crate::feature_store::FeatureStore;
use crate::registry::ViewKind;
use crate::time::format_duration;

#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    pub store_version: u64,
    pub entities: Vec<EntityEntry>,
    pub views: Vec<ViewEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntityEntry {
    pub name: String,
    pub join_key: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ViewEntry {
    pub name: String,
    pub version: u32,
    /// `state`, `events` or `aggregation`.
    pub kind: &'static str,
    pub entities: Vec<String>,
    pub ttl: String,
    pub retention: String,
    pub description: String,
    pub retired: bool,
    /// The store version of the newest write to it (for an aggregation, to
    /// its source); 0 = never written.
    pub last_write_version: u64,
    pub features: Vec<FeatureEntry>,
    /// An aggregation's declaration (source, grouping, ops and windows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<AggregationDef>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub feature_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dim: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform: Option<TransformDef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup: Option<LookupDef>,
    pub mandatory: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_threshold: Option<f64>,
    pub description: String,
}

impl FeatureStore {
    /// The catalogue: every entity and view version, newest store state.
    pub fn catalog(&self) -> Catalog {
        let registry = self.registry();
        let mut entities: Vec<EntityEntry> = registry
            .entities()
            .map(|e| EntityEntry {
                name: e.name.clone(),
                join_key: e.join_key.clone(),
                description: e.description.clone(),
            })
            .collect();
        entities.sort_by(|a, b| a.name.cmp(&b.name));
        let views = registry
            .views()
            .iter()
            .map(|v| ViewEntry {
                name: v.name.clone(),
                version: v.version,
                kind: match v.kind {
                    ViewKind::State => "state",
                    ViewKind::Events => "events",
                    ViewKind::Aggregation(_) => "aggregation",
                },
                entities: v.entities.clone(),
                ttl: format_duration(v.ttl_micros),
                retention: format_duration(v.retention_micros),
                description: v.description.clone(),
                retired: registry.is_retired(v.id),
                last_write_version: self.view_write_version(v.id),
                features: v
                    .features
                    .iter()
                    .map(|f| FeatureEntry {
                        name: f.name.clone(),
                        feature_type: f.feature_type.name(),
                        dim: f.dim,
                        transform: f.definition.transform.clone(),
                        lookup: f.lookup.as_ref().map(|l| l.definition.clone()),
                        mandatory: f.mandatory,
                        drift_threshold: f.drift_threshold,
                        description: f.description.clone(),
                    })
                    .collect(),
                aggregation: v.aggregation().map(|a| a.definition.clone()),
            })
            .collect();
        Catalog {
            store_version: self.version(),
            entities,
            views,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;

    #[test]
    fn the_catalogue_lists_views_features_and_their_last_write() {
        let store = FeatureStore::in_memory(StoreConfig::default()).unwrap();
        store
            .register_definitions(
                "t",
                r#"
[[entity]]
name = "user"
join_key = "user_id"

[[feature_view]]
name = "stats"
version = 1
entities = ["user"]
ttl = "7d"
retention = "30d"

[[feature_view.feature]]
name = "plays"
type = "int64"
drift_threshold = 0.3

[[feature_view.feature]]
name = "plays_log"
type = "float64"
transform = { kind = "log1p", input = "plays" }
"#,
            )
            .unwrap();
        let before = store.catalog();
        assert_eq!(before.views[0].last_write_version, 0);
        let row = serde_json::json!({"user_id": "u", "event_timestamp": "2026-01-01T00:00:00Z", "plays": 1});
        let written = store.push("stats", &[row], true).unwrap();
        let catalog = store.catalog();
        let view = &catalog.views[0];
        assert_eq!(
            (view.kind, view.ttl.as_str(), view.retention.as_str()),
            ("state", "7d", "30d")
        );
        assert_eq!(view.last_write_version, written.store_version);
        assert_eq!(catalog.entities[0].join_key, "user_id");
        let json = serde_json::to_value(view).unwrap();
        assert_eq!(json["features"][0]["drift_threshold"], 0.3);
        assert_eq!(json["features"][1]["transform"]["kind"], "log1p");
        assert_eq!(json["features"][1]["type"], "float64");
    }
}
