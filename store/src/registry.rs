//! The registry: entities and versioned feature views compiled from the
//! definition files, with feature refs (`view:feature`, `view@N:feature`)
//! resolved against it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::aggregation::AggregationSpec;
use crate::definitions::{DefinitionFile, FeatureDefinition, FeatureViewDef, LookupDef};
use crate::error::{Result, StoreError};
use crate::row::RawRow;
use crate::time::{parse_duration, Micros};
use crate::transform::{Input, Transform, EVENT_TIMESTAMP};
use crate::types::{FeatureType, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub name: String,
    pub join_key: String,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct Feature {
    pub name: String,
    pub feature_type: FeatureType,
    pub dim: Option<usize>,
    pub transform: Option<Transform>,
    pub mandatory: bool,
    /// See `FeatureDefinition::drift_threshold`.
    pub drift_threshold: Option<f64>,
    pub description: String,
    /// The declaration it was compiled from, to check re-declarations.
    pub definition: FeatureDefinition,
    /// Event views: a feature read from another view as of the event time
    /// when the event is pushed (never pushed itself).
    pub lookup: Option<Lookup>,
}

impl Feature {
    pub fn is_derived(&self) -> bool {
        self.transform.is_some()
    }

    /// Whether a push may carry this feature (not derived, not looked up).
    pub fn is_pushed(&self) -> bool {
        self.transform.is_none() && self.lookup.is_none()
    }
}

/// A lookup feature of an event view: `view`'s `feature`, joined on the
/// event's join keys at `key_positions` (in `view.join_keys` order).
#[derive(Debug, Clone)]
pub struct Lookup {
    pub view: Arc<FeatureView>,
    pub feature: usize,
    pub key_positions: Vec<usize>,
    /// The declaration, to check re-declarations.
    pub definition: LookupDef,
}

/// What a view holds.
#[derive(Debug, Clone)]
pub enum ViewKind {
    /// The latest row per key is the value (pushed snapshots of state).
    State,
    /// An append-only log of raw events; aggregations read it.
    Events,
    /// Computed on read from an events view (never pushed).
    Aggregation(Arc<AggregationSpec>),
}

impl ViewKind {
    pub fn name(&self) -> &'static str {
        match self {
            ViewKind::State => "state",
            ViewKind::Events => "events",
            ViewKind::Aggregation(_) => "aggregation",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FeatureView {
    /// Dense id used in storage keys; assigned in registration order.
    pub id: u32,
    pub name: String,
    pub version: u32,
    pub entities: Vec<String>,
    /// One join key per entity, in `entities` order.
    pub join_keys: Vec<String>,
    /// 0 = no limit.
    pub ttl_micros: Micros,
    pub ttl: String,
    /// How long history is kept; 0 = forever (see `retention.rs`).
    pub retention_micros: Micros,
    pub description: String,
    /// In declaration order; a feature's position is its stored id.
    pub features: Vec<Feature>,
    pub kind: ViewKind,
    pub(crate) by_name: HashMap<String, usize>,
}

impl FeatureView {
    /// The aggregation this view computes, if it is one.
    pub fn aggregation(&self) -> Option<&Arc<AggregationSpec>> {
        match &self.kind {
            ViewKind::Aggregation(spec) => Some(spec),
            ViewKind::State | ViewKind::Events => None,
        }
    }

    /// Whether a value read from this view can only change when the view
    /// (for an aggregation: its source) is written, never by time passing:
    /// no TTL, and for an aggregation only all-time windows.
    pub fn time_invariant(&self) -> bool {
        match &self.kind {
            ViewKind::Aggregation(spec) => {
                spec.horizon == 0 && spec.columns.iter().all(|c| c.window == 0)
            }
            ViewKind::State | ViewKind::Events => self.ttl_micros == 0,
        }
    }

    pub fn is_events(&self) -> bool {
        matches!(self.kind, ViewKind::Events)
    }

    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// A row's values (in view order) as a JSON object by feature name,
    /// nulls left out.
    pub fn values_by_name(
        &self,
        values: Vec<Option<Value>>,
    ) -> serde_json::Map<String, serde_json::Value> {
        self.features
            .iter()
            .zip(values)
            .filter_map(|(f, v)| Some((f.name.clone(), serde_json::to_value(v?).ok()?)))
            .collect()
    }

    /// `name@version`, the unique label of this view version.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// Whether a row with `event_ts` is still live at `at` under this view's TTL.
    pub fn within_ttl(&self, event_ts: Micros, at: Micros) -> bool {
        self.ttl_micros == 0 || event_ts > at.saturating_sub(self.ttl_micros)
    }

    /// Every feature's value for one stored row: raw features as stored,
    /// derived ones through their transforms, in declaration order. This is
    /// the single code path shared by online reads and snapshots.
    pub fn compute(&self, row: &RawRow) -> Vec<Option<Value>> {
        let mut values: Vec<Option<Value>> = Vec::with_capacity(self.features.len());
        for (index, feature) in self.features.iter().enumerate() {
            let value = match &feature.transform {
                None => row.values.get(index).cloned().flatten(),
                Some(transform) => {
                    let input = match transform.input {
                        Input::Feature(i) => values[i].as_ref(),
                        Input::EventTimestamp => None,
                    };
                    transform.apply(input, row.event_ts)
                }
            };
            values.push(value);
        }
        values
    }

    /// [`compute`](Self::compute) of a row the caller no longer needs: raw
    /// values are moved, not cloned, when the view derives nothing.
    pub fn compute_owned(&self, row: RawRow) -> Vec<Option<Value>> {
        if self.features.iter().any(|f| f.transform.is_some()) {
            return self.compute(&row);
        }
        let mut values = row.values;
        values.resize(self.features.len(), None);
        values
    }
}

/// A feature ref resolved against the registry.
#[derive(Debug, Clone)]
pub struct ResolvedRef {
    pub view: Arc<FeatureView>,
    pub feature: usize,
    /// Whether the ref named the view version explicitly (`view@N:feature`).
    pub explicit_version: bool,
}

impl ResolvedRef {
    pub fn feature(&self) -> &Feature {
        &self.view.features[self.feature]
    }

    /// Column name in snapshot output: `view__feature`, or `view_vN__feature`
    /// when the ref pinned a view version.
    pub fn column(&self) -> String {
        if self.explicit_version {
            format!(
                "{}_v{}__{}",
                self.view.name,
                self.view.version,
                self.feature().name
            )
        } else {
            format!("{}__{}", self.view.name, self.feature().name)
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Registry {
    entities: BTreeMap<String, Entity>,
    pub(crate) views: BTreeMap<String, BTreeMap<u32, Arc<FeatureView>>>,
    pub(crate) by_id: Vec<Arc<FeatureView>>,
    recommender: Option<Arc<crate::recommender::RecommenderSpec>>,
    /// Ids of old view versions whose data was deleted (`retire.rs`):
    /// feature refs to them are refused.
    pub(crate) retired: std::collections::BTreeSet<u32>,
}

impl Registry {
    /// Whether view `id` is a retired version (its rows deleted).
    pub fn is_retired(&self, id: u32) -> bool {
        self.retired.contains(&id)
    }

    pub fn entities(&self) -> impl Iterator<Item = &Entity> {
        self.entities.values()
    }

    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.get(name)
    }

    /// The `[recommender]` declaration, when a migration made one.
    pub fn recommender(&self) -> Option<&Arc<crate::recommender::RecommenderSpec>> {
        self.recommender.as_ref()
    }

    /// The aggregations whose source is the events view `view_id`.
    pub fn aggregations_of(&self, view_id: u32) -> impl Iterator<Item = &Arc<AggregationSpec>> {
        self.by_id
            .iter()
            .filter_map(|v| v.aggregation())
            .filter(move |a| a.source.id == view_id)
    }

    /// Every view version, in id order.
    pub fn views(&self) -> &[Arc<FeatureView>] {
        &self.by_id
    }

    pub fn view_by_id(&self, id: u32) -> Option<&Arc<FeatureView>> {
        self.by_id.get(id as usize)
    }

    /// `name` (newest version) or `name@N`.
    /// The view `view_spec` names, or an unknown-view error at `field`.
    pub fn require_view(&self, view_spec: &str, field: &str) -> Result<&Arc<FeatureView>> {
        self.view(view_spec).ok_or_else(|| StoreError::UnknownView {
            field: field.to_owned(),
            view: view_spec.to_owned(),
        })
    }

    pub fn view(&self, spec: &str) -> Option<&Arc<FeatureView>> {
        let (name, version) = split_version(spec)?;
        let versions = self.views.get(name)?;
        match version {
            Some(v) => versions.get(&v),
            None => versions.values().next_back(),
        }
    }

    /// Resolves `view:feature` or `view@N:feature`; `field` names the request
    /// field for errors.
    pub fn resolve(&self, feature_ref: &str, field: &str) -> Result<ResolvedRef> {
        let (view_spec, feature) = feature_ref.split_once(':').ok_or_else(|| {
            StoreError::invalid(
                field,
                format!("feature ref `{feature_ref}` is not of the form view:feature"),
            )
        })?;
        let view = self.require_view(view_spec, field)?;
        if self.is_retired(view.id) {
            return Err(StoreError::Expired {
                field: field.to_owned(),
                message: format!(
                    "view `{}` was retired: an old version whose rows have been deleted (the model that read it was collected); read a newer version",
                    view.label()
                ),
            });
        }
        let index = view
            .feature_index(feature)
            .ok_or_else(|| StoreError::UnknownFeature {
                field: field.to_owned(),
                feature: feature_ref.to_owned(),
            })?;
        Ok(ResolvedRef {
            view: Arc::clone(view),
            feature: index,
            explicit_version: view_spec.contains('@'),
        })
    }

    /// Resolves a list of refs; errors name `{list_field}[i]`. The field
    /// name is only formatted on error (this runs on every online read).
    pub fn resolve_all(&self, refs: &[String], list_field: &str) -> Result<Vec<ResolvedRef>> {
        refs.iter()
            .enumerate()
            .map(|(i, r)| {
                self.try_resolve(r).ok_or_else(|| {
                    self.resolve(r, &format!("{list_field}[{i}]"))
                        .expect_err("try_resolve and resolve agree")
                })
            })
            .collect()
    }

    fn try_resolve(&self, feature_ref: &str) -> Option<ResolvedRef> {
        let (view_spec, feature) = feature_ref.split_once(':')?;
        let view = self.view(view_spec).filter(|v| !self.is_retired(v.id))?;
        Some(ResolvedRef {
            view: Arc::clone(view),
            feature: view.feature_index(feature)?,
            explicit_version: view_spec.contains('@'),
        })
    }

    /// Applies one definition file. On error the registry is unchanged.
    pub fn apply(&mut self, file_name: &str, file: &DefinitionFile) -> Result<()> {
        let mut next = self.clone();
        for entity in &file.entity {
            next.add_entity(file_name, entity)?;
        }
        for view in &file.feature_view {
            next.add_view(file_name, view)?;
        }
        for aggregation in &file.aggregation {
            crate::aggregation::register(&mut next, file_name, aggregation)?;
        }
        // The declaration follows the newest view versions: compiled again
        // whenever a file changes the registry.
        let declared = match (&file.recommender, &next.recommender) {
            (Some(def), _) => Some((file_name.to_owned(), def.clone())),
            (None, Some(spec)) => Some((spec.file.clone(), spec.definition.clone())),
            (None, None) => None,
        };
        if let Some((declared_in, def)) = declared {
            next.recommender = Some(Arc::new(crate::recommender::compile(
                &next,
                &declared_in,
                &def,
            )?));
        }
        *self = next;
        Ok(())
    }

    fn add_entity(&mut self, file: &str, def: &crate::definitions::EntityDef) -> Result<()> {
        if !is_identifier(&def.name) || !is_identifier(&def.join_key) {
            return Err(StoreError::definition(
                file,
                format!(
                    "entity `{}`: names and join keys must be [A-Za-z0-9_]+",
                    def.name
                ),
            ));
        }
        let entity = Entity {
            name: def.name.clone(),
            join_key: def.join_key.clone(),
            description: def.description.clone(),
        };
        match self.entities.get(&def.name) {
            Some(existing) if existing.join_key != entity.join_key => Err(StoreError::definition(
                file,
                format!(
                    "entity `{}` already exists with join key `{}`",
                    def.name, existing.join_key
                ),
            )),
            _ => {
                self.entities.insert(def.name.clone(), entity);
                Ok(())
            }
        }
    }

    fn add_view(&mut self, file: &str, def: &FeatureViewDef) -> Result<()> {
        let label = format!("{}@{}", def.name, def.version);
        let fail = |message: String| {
            StoreError::definition(file, format!("feature view {label}: {message}"))
        };
        if !is_identifier(&def.name) || def.name.contains("__") {
            return Err(fail("view names must be [A-Za-z0-9_]+ without `__`".into()));
        }
        if def.version == 0 {
            return Err(fail("versions start at 1".into()));
        }
        if def.entities.is_empty() {
            return Err(fail("a view needs at least one entity".into()));
        }
        let mut join_keys = Vec::with_capacity(def.entities.len());
        for name in &def.entities {
            let entity = self
                .entities
                .get(name)
                .ok_or_else(|| fail(format!("unknown entity `{name}`")))?;
            join_keys.push(entity.join_key.clone());
        }
        let ttl_micros = parse_duration(&def.ttl).ok_or_else(|| {
            fail(format!(
                "ttl `{}` is not a duration like 30d, 12h, 15m, 90s or 0",
                def.ttl
            ))
        })?;
        let retention_micros = match def.retention.as_deref() {
            None => 0,
            Some(text) => parse_duration(text).filter(|r| *r >= 0).ok_or_else(|| {
                fail(format!(
                    "retention `{text}` is not a duration like 90d, 12h or 0 (forever)"
                ))
            })?,
        };
        if retention_micros > 0 && ttl_micros > retention_micros {
            return Err(fail(format!(
                "ttl `{}` is longer than retention `{}`: lookups inside the TTL would miss dropped rows",
                def.ttl,
                def.retention.as_deref().unwrap_or_default()
            )));
        }
        if let Some(old) = self.views.get(&def.name).and_then(|v| v.get(&def.version)) {
            for aggregation in self.by_id.iter().filter_map(|v| v.aggregation()) {
                if aggregation.source.id != old.id {
                    continue;
                }
                if let Some(reason) =
                    crate::retention::window_outlives(aggregation.horizon, retention_micros)
                {
                    return Err(fail(format!(
                        "aggregation `{}` reads this view: {reason}",
                        aggregation.definition.name
                    )));
                }
            }
        }
        let kind = match def.kind.as_deref() {
            None | Some("state") => ViewKind::State,
            Some("events") => ViewKind::Events,
            Some(other) => return Err(fail(format!("kind `{other}` is not one of state, events"))),
        };
        if !def.lookup.is_empty() && !matches!(kind, ViewKind::Events) {
            return Err(fail("only kind = \"events\" views declare lookups".into()));
        }
        if self
            .by_id
            .iter()
            .any(|v| v.name == def.name && v.aggregation().is_some())
        {
            return Err(fail("the name is taken by an aggregation".into()));
        }

        let existing = self
            .views
            .get(&def.name)
            .and_then(|v| v.get(&def.version))
            .cloned();
        if let Some(old) = &existing {
            if old.entities != def.entities
                || old.ttl_micros != ttl_micros
                || old.kind.name() != kind.name()
            {
                return Err(fail(
                    "changing entities, ttl or kind requires a new view version".into(),
                ));
            }
            if old.features.iter().any(|f| f.lookup.is_some())
                && old.features.iter().filter(|f| f.lookup.is_none()).count() != def.feature.len()
            {
                return Err(fail(
                    "a view with lookups cannot grow; declare a new view version".into(),
                ));
            }
            let plain = old.features.iter().filter(|f| f.lookup.is_none()).count();
            for (i, old_feature) in old.features.iter().enumerate() {
                let same = match &old_feature.lookup {
                    Some(lookup) => def
                        .lookup
                        .get(i - plain)
                        .is_some_and(|l| *l == lookup.definition),
                    None => def.feature.get(i) == Some(&old_feature.definition),
                };
                if !same {
                    return Err(fail(format!(
                        "feature `{}` was changed or removed; that requires a new view version \
                         (a re-declared view may only append features)",
                        old_feature.name
                    )));
                }
            }
        } else if let Some(newest) = self.views.get(&def.name).and_then(|v| v.keys().next_back()) {
            if def.version < *newest {
                return Err(fail(format!(
                    "version must be above the newest version {newest}"
                )));
            }
        }

        let mut features: Vec<Feature> = Vec::with_capacity(def.feature.len());
        let mut by_name = HashMap::new();
        for fdef in &def.feature {
            let feature = compile_feature(fdef, &features, &by_name, &def.entities, &join_keys)
                .map_err(&fail)?;
            by_name.insert(feature.name.clone(), features.len());
            features.push(feature);
        }
        for ldef in &def.lookup {
            let feature = self
                .compile_lookup(ldef, &by_name, &def.entities, &join_keys)
                .map_err(&fail)?;
            by_name.insert(feature.name.clone(), features.len());
            features.push(feature);
        }
        let id = match &existing {
            Some(old) => old.id,
            None => self.by_id.len() as u32,
        };
        let view = Arc::new(FeatureView {
            id,
            name: def.name.clone(),
            version: def.version,
            entities: def.entities.clone(),
            join_keys,
            ttl_micros,
            ttl: def.ttl.clone(),
            retention_micros,
            description: def.description.clone(),
            features,
            kind,
            by_name,
        });
        if existing.is_some() {
            self.by_id[id as usize] = Arc::clone(&view);
        } else {
            self.by_id.push(Arc::clone(&view));
        }
        self.views
            .entry(def.name.clone())
            .or_default()
            .insert(def.version, view);
        Ok(())
    }

    /// A lookup feature: `ldef.feature_ref` must name a feature of a state
    /// view whose join keys are all among the event view's.
    fn compile_lookup(
        &self,
        ldef: &LookupDef,
        by_name: &HashMap<String, usize>,
        entities: &[String],
        join_keys: &[String],
    ) -> std::result::Result<Feature, String> {
        let name = &ldef.name;
        if !is_identifier(name)
            || by_name.contains_key(name)
            || join_keys.contains(name)
            || entities.contains(name)
            || name == EVENT_TIMESTAMP
        {
            return Err(format!(
                "lookup `{name}` must be [A-Za-z0-9_]+ and clash with no feature or key"
            ));
        }
        let resolved = self
            .resolve(&ldef.feature_ref, "lookup")
            .map_err(|e| format!("lookup `{name}`: {e}"))?;
        if resolved.view.aggregation().is_some() {
            return Err(format!(
                "lookup `{name}`: `{}` is an aggregation; lookups read stored views",
                ldef.feature_ref
            ));
        }
        let key_positions = resolved
            .view
            .join_keys
            .iter()
            .map(|k| {
                join_keys.iter().position(|j| j == k).ok_or_else(|| {
                    format!(
                        "lookup `{name}`: the event view has no join key `{k}` to read `{}` by",
                        ldef.feature_ref
                    )
                })
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        let target = resolved.feature();
        Ok(Feature {
            name: name.clone(),
            feature_type: target.feature_type,
            dim: target.dim,
            transform: None,
            mandatory: false,
            drift_threshold: None,
            description: ldef.description.clone(),
            definition: FeatureDefinition {
                name: name.clone(),
                feature_type: target.feature_type.name().to_owned(),
                dim: target.dim,
                transform: None,
                mandatory: false,
                drift_threshold: None,
                description: ldef.description.clone(),
            },
            lookup: Some(Lookup {
                view: Arc::clone(&resolved.view),
                feature: resolved.feature,
                key_positions,
                definition: ldef.clone(),
            }),
        })
    }
}

pub(crate) fn compile_feature(
    def: &FeatureDefinition,
    earlier: &[Feature],
    by_name: &HashMap<String, usize>,
    entities: &[String],
    join_keys: &[String],
) -> std::result::Result<Feature, String> {
    let name = &def.name;
    if !is_identifier(name) {
        return Err(format!("feature name `{name}` must be [A-Za-z0-9_]+"));
    }
    if by_name.contains_key(name)
        || join_keys.contains(name)
        || name == EVENT_TIMESTAMP
        || entities.contains(name)
    {
        return Err(format!(
            "feature `{name}` is declared twice or clashes with a key or `{EVENT_TIMESTAMP}`"
        ));
    }
    let feature_type = FeatureType::parse(&def.feature_type).ok_or_else(|| {
        format!(
            "feature `{name}`: unknown type `{}` (bool, int64, float64, string, float_vector, string_list)",
            def.feature_type
        )
    })?;
    if def.dim.is_some() && feature_type != FeatureType::FloatVector {
        return Err(format!("feature `{name}`: dim is only for float_vector"));
    }
    let transform = match &def.transform {
        None => None,
        Some(tdef) => {
            let input_name = tdef.input();
            let (input, input_type) = if input_name == EVENT_TIMESTAMP {
                (Input::EventTimestamp, None)
            } else {
                let index = *by_name.get(input_name).ok_or_else(|| {
                    format!("feature `{name}`: transform input `{input_name}` is not an earlier feature of this view")
                })?;
                (Input::Feature(index), Some(earlier[index].feature_type))
            };
            Some(
                Transform::compile(tdef, input, input_type, feature_type)
                    .map_err(|e| format!("feature `{name}`: {e}"))?,
            )
        }
    };
    Ok(Feature {
        name: name.clone(),
        feature_type,
        dim: def.dim,
        transform,
        mandatory: def.mandatory,
        drift_threshold: def.drift_threshold,
        description: def.description.clone(),
        definition: def.clone(),
        lookup: None,
    })
}

/// Splits `name@N` into its parts; `None` when `N` is not a number.
fn split_version(spec: &str) -> Option<(&str, Option<u32>)> {
    match spec.split_once('@') {
        None => Some((spec, None)),
        Some((name, version)) => Some((name, Some(version.parse().ok()?))),
    }
}

pub(crate) fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(text: &str) -> Result<Registry> {
        let mut registry = Registry::default();
        registry.apply("test.toml", &DefinitionFile::parse(text).unwrap())?;
        Ok(registry)
    }

    const BASE: &str = r#"
        [[entity]]
        name = "user"
        join_key = "user_id"

        [[feature_view]]
        name = "user_stats"
        version = 1
        entities = ["user"]
        ttl = "30d"

        [[feature_view.feature]]
        name = "plays_7d"
        type = "int64"

        [[feature_view.feature]]
        name = "plays_7d_log"
        type = "float64"
        transform = { kind = "log1p", input = "plays_7d" }
    "#;

    #[test]
    fn refs_resolve_to_the_newest_version_unless_pinned() {
        let mut r = registry(BASE).unwrap();
        let v2 = BASE.replace("version = 1", "version = 2").replace(
            "[[entity]]\n        name = \"user\"\n        join_key = \"user_id\"",
            "",
        );
        r.apply("v2.toml", &DefinitionFile::parse(&v2).unwrap())
            .unwrap();
        assert_eq!(
            r.resolve("user_stats:plays_7d", "f").unwrap().view.version,
            2
        );
        let pinned = r.resolve("user_stats@1:plays_7d_log", "f").unwrap();
        assert_eq!((pinned.view.version, pinned.feature), (1, 1));
        assert_eq!(pinned.column(), "user_stats_v1__plays_7d_log");
        assert!(
            matches!(r.resolve("nope:x", "features[0]"), Err(StoreError::UnknownView { field, .. }) if field == "features[0]")
        );
        assert!(matches!(
            r.resolve("user_stats:nope", "f"),
            Err(StoreError::UnknownFeature { .. })
        ));
        assert!(matches!(
            r.resolve("user_stats", "f"),
            Err(StoreError::InvalidValue { .. })
        ));
    }

    #[test]
    fn a_redeclared_view_may_only_append_features() {
        let mut r = registry(BASE).unwrap();
        let appended =
            format!("{BASE}\n[[feature_view.feature]]\nname = \"skips\"\ntype = \"int64\"\n")
                .replace(
                    "[[entity]]\n        name = \"user\"\n        join_key = \"user_id\"",
                    "",
                );
        r.apply("append.toml", &DefinitionFile::parse(&appended).unwrap())
            .unwrap();
        assert_eq!(r.view("user_stats").unwrap().features.len(), 3);
        assert_eq!(r.view("user_stats").unwrap().id, 0);

        let retyped = BASE.replace("type = \"int64\"", "type = \"float64\"");
        let err = r
            .apply("retype.toml", &DefinitionFile::parse(&retyped).unwrap())
            .unwrap_err();
        assert!(
            err.to_string().contains("requires a new view version"),
            "{err}"
        );
        assert_eq!(
            r.view("user_stats").unwrap().features.len(),
            3,
            "a failed file changes nothing"
        );
    }

    #[test]
    fn bad_definitions_are_explained() {
        let err = registry(&BASE.replace("\"30d\"", "\"30 days\"")).unwrap_err();
        assert!(err.to_string().contains("ttl `30 days`"), "{err}");
        let err =
            registry(&BASE.replace("input = \"plays_7d\"", "input = \"plays_30d\"")).unwrap_err();
        assert!(err.to_string().contains("not an earlier feature"), "{err}");
        let err = registry(&BASE.replace("entities = [\"user\"]", "entities = [\"artist\"]"))
            .unwrap_err();
        assert!(err.to_string().contains("unknown entity `artist`"), "{err}");
    }

    #[test]
    fn compute_applies_transforms_over_raw_values() {
        let r = registry(BASE).unwrap();
        let view = r.view("user_stats").unwrap();
        let row = RawRow {
            event_ts: 0,
            created_ts: 0,
            store_version: 1,
            values: vec![Some(Value::Int64(3))],
        };
        assert_eq!(
            view.compute(&row),
            vec![Some(Value::Int64(3)), Some(Value::Float64(4f64.ln()))]
        );
    }
}
