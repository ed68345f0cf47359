//! Compiling `[[aggregation]]` definitions.
//!
//! Each aggregation feature expands to one stored-nowhere feature per
//! window, named `{name}_{window}` for `count` and `{name}_{op}_{window}`
//! for the other ops (`plays_7d`, `seconds_mean_30d`); the all-time window
//! `"0"` is spelled `all` (`plays_all`). Declared `derived` transforms
//! follow, over those features.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::definitions::{AggregationDef, AggregationFeatureDef, FeatureDefinition, FilterDef};
use crate::error::{Result, StoreError};
use crate::registry::{compile_feature, is_identifier, Feature, FeatureView, Registry, ViewKind};
use crate::time::{parse_duration, Micros};
use crate::types::{FeatureType, Value};

/// An aggregation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    Last,
    DistinctCount,
}

impl Op {
    fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "count" => Op::Count,
            "sum" => Op::Sum,
            "mean" => Op::Mean,
            "min" => Op::Min,
            "max" => Op::Max,
            "last" => Op::Last,
            "distinct_count" => Op::DistinctCount,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Count => "count",
            Op::Sum => "sum",
            Op::Mean => "mean",
            Op::Min => "min",
            Op::Max => "max",
            Op::Last => "last",
            Op::DistinctCount => "distinct_count",
        }
    }
}

/// A comparison of one event column with a constant.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Position of the column among the source view's features.
    pub feature: usize,
    pub op: CmpOp,
    pub value: FilterValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl Filter {
    /// Whether an event whose column holds `value` passes (null never does).
    pub fn passes(&self, value: Option<&Value>) -> bool {
        use std::cmp::Ordering;
        let ordering = match (value, &self.value) {
            (Some(v), FilterValue::Number(n)) => v.as_f64().and_then(|x| x.partial_cmp(n)),
            (Some(Value::String(s)), FilterValue::Text(t)) => Some(s.as_str().cmp(t.as_str())),
            (Some(Value::Bool(b)), FilterValue::Bool(c)) => Some(b.cmp(c)),
            _ => None,
        };
        let Some(ordering) = ordering else {
            return false;
        };
        match self.op {
            CmpOp::Lt => ordering == Ordering::Less,
            CmpOp::Le => ordering != Ordering::Greater,
            CmpOp::Eq => ordering == Ordering::Equal,
            CmpOp::Ne => ordering != Ordering::Equal,
            CmpOp::Ge => ordering != Ordering::Less,
            CmpOp::Gt => ordering == Ordering::Greater,
        }
    }
}

/// Per-bucket aggregation: the event column holding the bucket (a string or
/// a string_list) and the vocabulary's positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    pub column: usize,
    pub positions: HashMap<String, usize>,
    pub len: usize,
}

/// One aggregated feature for one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub op: Op,
    /// Position of the aggregated column among the source's features.
    pub input: Option<usize>,
    /// 0 = all time.
    pub window: Micros,
    pub filter: Option<Filter>,
    pub buckets: Option<Buckets>,
}

impl Column {
    /// Whether an event at `event_ts` is inside this column's window at `at`.
    pub fn covers(&self, event_ts: Micros, at: Micros) -> bool {
        self.window == 0 || event_ts > at.saturating_sub(self.window)
    }
}

/// A compiled aggregation.
#[derive(Debug, Clone)]
pub struct AggregationSpec {
    /// The events view version it reads.
    pub source: Arc<FeatureView>,
    /// Positions of the grouping entities among the source's entities.
    pub group_positions: Vec<usize>,
    /// One per aggregated feature, in the view's feature order (the derived
    /// features follow them).
    pub columns: Vec<Column>,
    /// The widest window (0 = all time): how far back a read looks.
    pub horizon: Micros,
    pub definition: AggregationDef,
}

impl AggregationSpec {
    /// The grouping as a bit mask over the source's entity positions (the
    /// key of its index; aggregations with the same source and grouping
    /// share one index).
    pub fn group_mask(&self) -> u8 {
        group_mask(&self.group_positions)
    }
}

pub(crate) fn group_mask(positions: &[usize]) -> u8 {
    positions.iter().fold(0u8, |mask, &p| mask | (1 << p))
}

/// Whether `a` is `b` or the start of it.
fn is_prefix<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.len() <= b.len() && a == &b[..a.len()]
}

/// The feature name of `def` over `window`.
pub fn feature_name(def: &AggregationFeatureDef, window: &str) -> String {
    let window = if window.trim() == "0" {
        "all"
    } else {
        window.trim()
    };
    match def.op.as_str() {
        "count" => format!("{}_{window}", def.name),
        op => format!("{}_{op}_{window}", def.name),
    }
}

/// Compiles `def` and registers it (a new aggregation, a new version, or an
/// append-only re-declaration of an existing version).
pub fn register(registry: &mut Registry, file: &str, def: &AggregationDef) -> Result<()> {
    let label = format!("{}@{}", def.name, def.version);
    let fail =
        |message: String| StoreError::definition(file, format!("aggregation {label}: {message}"));
    if !is_identifier(&def.name) || def.name.contains("__") {
        return Err(fail("names must be [A-Za-z0-9_]+ without `__`".into()));
    }
    if def.version == 0 {
        return Err(fail("versions start at 1".into()));
    }
    let versions = registry.views.get(&def.name);
    if let Some(view) = versions.and_then(|v| v.values().next()) {
        if view.aggregation().is_none() {
            return Err(fail("the name is taken by a feature view".into()));
        }
    }
    let existing = versions.and_then(|v| v.get(&def.version)).cloned();
    match &existing {
        Some(old) => {
            let old = old.aggregation().expect("checked above").definition.clone();
            if old.source != def.source
                || old.entities != def.entities
                || !is_prefix(&old.feature, &def.feature)
                || !is_prefix(&old.derived, &def.derived)
            {
                return Err(fail(
                    "a re-declared aggregation may only append features; a new window, op, \
                     filter or grouping needs a new version"
                        .into(),
                ));
            }
        }
        None => {
            if let Some(newest) = versions.and_then(|v| v.keys().next_back()) {
                if def.version < *newest {
                    return Err(fail(format!(
                        "version must be above the newest version {newest}"
                    )));
                }
            }
        }
    }

    // A re-declared version keeps the source view version it was compiled
    // against (`play` may name a newer version by now).
    let source = match existing.as_ref().and_then(|old| old.aggregation()) {
        Some(old) => Arc::clone(&old.source),
        None => registry
            .view(&def.source)
            .cloned()
            .ok_or_else(|| fail(format!("unknown source view `{}`", def.source)))?,
    };
    if !source.is_events() {
        return Err(fail(format!(
            "source `{}` is a {} view; aggregations read kind = \"events\" views",
            def.source,
            source.kind.name()
        )));
    }
    if def.entities.is_empty() {
        return Err(fail("group by at least one entity".into()));
    }
    if source.entities.len() > 8 {
        return Err(fail(
            "sources with more than 8 entities are not supported".into(),
        ));
    }
    let mut group_positions = Vec::with_capacity(def.entities.len());
    for entity in &def.entities {
        let position = source
            .entities
            .iter()
            .position(|e| e == entity)
            .ok_or_else(|| fail(format!("`{entity}` is not an entity of `{}`", def.source)))?;
        if group_positions.contains(&position) {
            return Err(fail(format!("entity `{entity}` is listed twice")));
        }
        group_positions.push(position);
    }
    // The group key is built in the source's entity order, whatever order
    // the declaration lists them in (the index is written that way).
    group_positions.sort_unstable();
    let entities: Vec<String> = group_positions
        .iter()
        .map(|&p| source.entities[p].clone())
        .collect();
    let join_keys: Vec<String> = group_positions
        .iter()
        .map(|&p| source.join_keys[p].clone())
        .collect();
    if def.feature.is_empty() {
        return Err(fail("declare at least one [[aggregation.feature]]".into()));
    }

    let mut features: Vec<Feature> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut columns = Vec::new();
    let mut horizon: Option<Micros> = Some(0);
    for fdef in &def.feature {
        let compiled = compile_feature_def(&source, fdef)
            .map_err(|e| fail(format!("feature `{}`: {e}", fdef.name)))?;
        if fdef.windows.is_empty() {
            return Err(fail(format!(
                "feature `{}`: list at least one window",
                fdef.name
            )));
        }
        for window_text in &fdef.windows {
            let window = parse_duration(window_text)
                .filter(|w| *w > 0 || window_text.trim() == "0")
                .ok_or_else(|| {
                    fail(format!(
                        "feature `{}`: window `{window_text}` is not a duration like 1h, 7d or 0 (all time)",
                        fdef.name
                    ))
                })?;
            let name = feature_name(fdef, window_text);
            if by_name.contains_key(&name) || join_keys.contains(&name) {
                return Err(fail(format!("feature `{name}` is declared twice")));
            }
            horizon = match (horizon, window) {
                (_, 0) | (None, _) => None,
                (Some(h), w) => Some(h.max(w)),
            };
            let definition = FeatureDefinition {
                name: name.clone(),
                feature_type: compiled.feature_type.name().to_owned(),
                dim: compiled.dim,
                transform: None,
                mandatory: false,
                drift_threshold: fdef.drift_threshold,
                description: fdef.description.clone(),
            };
            by_name.insert(name.clone(), features.len());
            features.push(Feature {
                name,
                feature_type: compiled.feature_type,
                dim: compiled.dim,
                transform: None,
                mandatory: false,
                drift_threshold: fdef.drift_threshold,
                description: fdef.description.clone(),
                definition,
                lookup: None,
            });
            columns.push(Column {
                op: compiled.op,
                input: compiled.input,
                window,
                filter: compiled.filter.clone(),
                buckets: compiled.buckets.clone(),
            });
        }
    }
    for ddef in &def.derived {
        if ddef.transform.is_none() {
            return Err(fail(format!(
                "derived feature `{}` needs a transform",
                ddef.name
            )));
        }
        let feature =
            compile_feature(ddef, &features, &by_name, &entities, &join_keys).map_err(&fail)?;
        by_name.insert(feature.name.clone(), features.len());
        features.push(feature);
    }

    let horizon = horizon.unwrap_or(0);
    if let Some(reason) = crate::retention::window_outlives(horizon, source.retention_micros) {
        return Err(fail(format!("source `{}`: {reason}", def.source)));
    }
    let spec = Arc::new(AggregationSpec {
        source: Arc::clone(&source),
        group_positions,
        columns,
        horizon,
        definition: def.clone(),
    });
    let id = match &existing {
        Some(old) => old.id,
        None => registry.by_id.len() as u32,
    };
    let view = Arc::new(FeatureView {
        id,
        name: def.name.clone(),
        version: def.version,
        entities: entities.clone(),
        join_keys,
        ttl_micros: 0,
        ttl: "0".into(),
        retention_micros: 0,
        description: def.description.clone(),
        features,
        kind: ViewKind::Aggregation(spec),
        by_name,
    });
    if existing.is_some() {
        registry.by_id[id as usize] = Arc::clone(&view);
    } else {
        registry.by_id.push(Arc::clone(&view));
    }
    registry
        .views
        .entry(def.name.clone())
        .or_default()
        .insert(def.version, view);
    Ok(())
}

/// What one `[[aggregation.feature]]` compiles to (the same for each of its
/// windows).
struct CompiledFeature {
    op: Op,
    input: Option<usize>,
    filter: Option<Filter>,
    buckets: Option<Buckets>,
    feature_type: FeatureType,
    dim: Option<usize>,
}

fn compile_feature_def(
    source: &FeatureView,
    def: &AggregationFeatureDef,
) -> std::result::Result<CompiledFeature, String> {
    if !is_identifier(&def.name) {
        return Err("names must be [A-Za-z0-9_]+".into());
    }
    let op = Op::parse(&def.op).ok_or_else(|| {
        format!(
            "op `{}` is not one of count, sum, mean, min, max, last, distinct_count",
            def.op
        )
    })?;
    let column = |name: &str| {
        source
            .feature_index(name)
            .ok_or_else(|| format!("`{name}` is not a feature of `{}`", source.label()))
    };
    let input = match (&def.input, op) {
        (None, Op::Count) => None,
        (Some(_), Op::Count) => return Err("count takes no input".into()),
        (None, _) => return Err(format!("{} needs an input", op.name())),
        (Some(name), _) => Some(column(name)?),
    };
    let input_type = input.map(|i| source.features[i].feature_type);
    let scalar_type = match (op, input_type) {
        (Op::Count, _) => FeatureType::Int64,
        (Op::DistinctCount, Some(FeatureType::String | FeatureType::Int64 | FeatureType::Bool)) => {
            FeatureType::Int64
        }
        (Op::DistinctCount, Some(t)) => {
            return Err(format!(
                "distinct_count needs a string, int64 or bool input, not {t}"
            ))
        }
        (Op::Last, Some(t)) => t,
        // A bool counts as 0 or 1 (the mean of `liked` is a like rate).
        (Op::Sum | Op::Mean | Op::Min | Op::Max, Some(t))
            if t.is_numeric() || t == FeatureType::Bool =>
        {
            FeatureType::Float64
        }
        (_, Some(t)) => return Err(format!("{} needs a numeric input, not {t}", op.name())),
        (_, None) => unreachable!("inputs checked above"),
    };
    let filter = def
        .filter
        .as_ref()
        .map(|f| compile_filter(source, f, &column))
        .transpose()?;
    let buckets = match (&def.bucket_by, &def.vocabulary) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err("bucket_by and vocabulary go together".into())
        }
        (Some(by), Some(vocabulary)) => {
            if !matches!(op, Op::Count | Op::Sum) {
                return Err("bucket_by works with count and sum".into());
            }
            let index = column(by)?;
            let by_type = source.features[index].feature_type;
            if !matches!(by_type, FeatureType::String | FeatureType::StringList) {
                return Err(format!(
                    "bucket_by `{by}` must be a string or string_list, not {by_type}"
                ));
            }
            if vocabulary.is_empty() {
                return Err("the vocabulary is empty".into());
            }
            let mut positions = HashMap::new();
            for (i, word) in vocabulary.iter().enumerate() {
                if positions.insert(word.clone(), i).is_some() {
                    return Err(format!("`{word}` is twice in the vocabulary"));
                }
            }
            Some(Buckets {
                column: index,
                positions,
                len: vocabulary.len(),
            })
        }
    };
    let (feature_type, dim) = match &buckets {
        Some(b) => (FeatureType::FloatVector, Some(b.len)),
        None => (
            scalar_type,
            if scalar_type == FeatureType::FloatVector {
                input.and_then(|i| source.features[i].dim)
            } else {
                None
            },
        ),
    };
    Ok(CompiledFeature {
        op,
        input,
        filter,
        buckets,
        feature_type,
        dim,
    })
}

pub(crate) fn compile_filter(
    source: &FeatureView,
    def: &FilterDef,
    column: &dyn Fn(&str) -> std::result::Result<usize, String>,
) -> std::result::Result<Filter, String> {
    let feature = column(&def.feature)?;
    let op = match def.op.as_str() {
        "<" => CmpOp::Lt,
        "<=" => CmpOp::Le,
        "==" | "=" => CmpOp::Eq,
        "!=" => CmpOp::Ne,
        ">=" => CmpOp::Ge,
        ">" => CmpOp::Gt,
        other => {
            return Err(format!(
                "filter op `{other}` is not one of <, <=, ==, !=, >=, >"
            ))
        }
    };
    let column_type = source.features[feature].feature_type;
    let value = match (&def.value, column_type) {
        (Json::Number(n), t) if t.is_numeric() => FilterValue::Number(
            n.as_f64()
                .ok_or_else(|| format!("filter value {n} is out of range"))?,
        ),
        (Json::String(s), FeatureType::String) => FilterValue::Text(s.clone()),
        (Json::Bool(b), FeatureType::Bool) if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
            FilterValue::Bool(*b)
        }
        (value, t) => {
            return Err(format!(
                "filter on `{}` ({t}) cannot compare with {value} using {}",
                def.feature, def.op
            ))
        }
    };
    Ok(Filter { feature, op, value })
}
