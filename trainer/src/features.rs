//! The ranker's declared inputs (`[recommender] ranker_features`) and the
//! one function, [`RankerInputs::vectorize`], that turns their stored values
//! into model inputs. Training reads the refs through point-in-time
//! snapshots, serving reads the same refs online, and both call the same
//! `vectorize`; the served-feature log stores its output.
//!
//! Each declared entry is a feature ref, `request_context:F` (the request's
//! context field `F`; in training, the value logged with the interaction the
//! row is shown in, see `reprise_models::context`) or
//! `affinity(COUNTS, CATEGORIES)`:
//! - int64 / float64 → the value (null → 0; declare a `default` transform
//!   for another fill), bool → 0 or 1;
//! - float_vector → its `dim` values (null → zeros);
//! - string → one-hot over [`HASH_BUCKETS`] buckets of its xxh3 hash,
//!   string_list → the same, multi-hot;
//! - `affinity(COUNTS, CATEGORIES)`: COUNTS is a bucketed aggregation
//!   feature (a count per vocabulary entry, usually user-level), CATEGORIES a
//!   string or string_list feature (usually item-level) over the same
//!   vocabulary: the share of COUNTS' total in the item's categories. This
//!   is how a user×item cross is declared (a user's genre likes against an
//!   item's genres).

use reprise_store::recommender::{context_field, parse_affinity};
use reprise_store::registry::{Registry, ResolvedRef};
use reprise_store::types::FeatureType;
use reprise_store::Value;

use crate::error::{Result, TrainError};

/// Buckets of the hashed one-hot encoding of strings.
pub const HASH_BUCKETS: usize = 8;

/// Where a value comes from: the store (an index into
/// [`RankerInputs::refs`]) or the request's context (an index into
/// [`RankerInputs::context`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Store(usize),
    Context(usize),
}

/// How one declared entry becomes model inputs.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Number(Source),
    Vector {
        value: Source,
        dim: usize,
    },
    Hashed(Source),
    Affinity {
        counts: Source,
        categories: Source,
        vocabulary: Vec<String>,
    },
}

/// A request-context field the ranker reads, with its type.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextField {
    pub name: String,
    pub feature_type: FeatureType,
}

/// The compiled declaration of the ranker's inputs.
#[derive(Debug, Clone)]
pub struct RankerInputs {
    /// The entries as declared.
    pub declared: Vec<String>,
    /// The feature refs read from the store, in the order `vectorize` wants
    /// their values.
    pub refs: Vec<String>,
    /// The request-context fields read, in the order `vectorize` wants
    /// their values.
    pub context: Vec<ContextField>,
    slots: Vec<Slot>,
    names: Vec<String>,
}

impl RankerInputs {
    /// Compiles `declared` against `registry`.
    pub fn compile(registry: &Registry, declared: &[String]) -> Result<Self> {
        let mut inputs = RankerInputs {
            declared: declared.to_vec(),
            refs: Vec::new(),
            context: Vec::new(),
            slots: Vec::new(),
            names: Vec::new(),
        };
        let spec = registry.recommender();
        for (i, entry) in declared.iter().enumerate() {
            let field = format!("ranker_features[{i}]");
            let bad =
                |message: String| TrainError::Context(format!("{field} `{entry}`: {message}"));
            if let Some((counts, categories)) = parse_affinity(entry) {
                let counts_ref = registry
                    .resolve(counts, &field)
                    .map_err(|e| bad(e.to_string()))?;
                let vocabulary = bucket_vocabulary(&counts_ref).ok_or_else(|| {
                    bad(format!(
                        "`{counts}` is not a bucketed aggregation (bucket_by + vocabulary)"
                    ))
                })?;
                let categories_ref = registry
                    .resolve(categories, &field)
                    .map_err(|e| bad(e.to_string()))?;
                if !matches!(
                    categories_ref.feature().feature_type,
                    FeatureType::String | FeatureType::StringList
                ) {
                    return Err(bad(format!(
                        "`{categories}` must be a string or string_list"
                    )));
                }
                let counts = inputs.reference(counts);
                let categories = inputs.reference(categories);
                inputs.slots.push(Slot::Affinity {
                    counts,
                    categories,
                    vocabulary,
                });
                inputs.names.push(entry.clone());
                continue;
            }
            let (value, feature_type, dim) = match context_field(entry) {
                Some(name) => {
                    let feature_type = spec
                        .and_then(|s| s.context_type(name))
                        .ok_or_else(|| {
                            bad(format!(
                                "request context `{name}` is not logged with the declared interactions"
                            ))
                        })?;
                    let dim = spec.and_then(|s| {
                        let i = s.interactions.feature_index(name)?;
                        s.interactions.features[i].dim
                    });
                    (
                        inputs.context_reference(name, feature_type),
                        feature_type,
                        dim,
                    )
                }
                None => {
                    let resolved = registry
                        .resolve(entry, &field)
                        .map_err(|e| bad(e.to_string()))?;
                    let feature = resolved.feature();
                    (inputs.reference(entry), feature.feature_type, feature.dim)
                }
            };
            match feature_type {
                FeatureType::Int64 | FeatureType::Float64 | FeatureType::Bool => {
                    inputs.slots.push(Slot::Number(value));
                    inputs.names.push(entry.clone());
                }
                FeatureType::FloatVector => {
                    let dim = dim.ok_or_else(|| {
                        bad("a float_vector ranker input needs a declared dim".into())
                    })?;
                    inputs.slots.push(Slot::Vector { value, dim });
                    inputs
                        .names
                        .extend((0..dim).map(|d| format!("{entry}[{d}]")));
                }
                FeatureType::String | FeatureType::StringList => {
                    inputs.slots.push(Slot::Hashed(value));
                    inputs
                        .names
                        .extend((0..HASH_BUCKETS).map(|b| format!("{entry}#{b}")));
                }
            }
        }
        Ok(inputs)
    }

    /// The position of `feature_ref` in `refs`, added when new.
    fn reference(&mut self, feature_ref: &str) -> Source {
        Source::Store(match self.refs.iter().position(|r| r == feature_ref) {
            Some(i) => i,
            None => {
                self.refs.push(feature_ref.to_owned());
                self.refs.len() - 1
            }
        })
    }

    /// The position of context field `name` in `context`, added when new.
    fn context_reference(&mut self, name: &str, feature_type: FeatureType) -> Source {
        Source::Context(match self.context.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.context.push(ContextField {
                    name: name.to_owned(),
                    feature_type,
                });
                self.context.len() - 1
            }
        })
    }

    /// Typed context values, in [`RankerInputs::context`]'s order, from
    /// JSON values by field name (a value of the wrong type is null; the
    /// request's context is checked before it gets here).
    pub fn context_values(
        &self,
        get: impl Fn(&str) -> Option<serde_json::Value>,
    ) -> Vec<Option<Value>> {
        self.context
            .iter()
            .map(|c| {
                let json = get(&c.name)?;
                Value::from_json(&json, c.feature_type, None).ok().flatten()
            })
            .collect()
    }

    /// The model inputs' names, in order.
    pub fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// For each model input (in [`RankerInputs::names`]' order), whether it
    /// is read from the request's context (not stored in snapshots: skew
    /// checks against a training snapshot leave those out).
    pub fn from_context(&self) -> Vec<bool> {
        let context = |s: &Source| matches!(s, Source::Context(_));
        self.slots
            .iter()
            .flat_map(|slot| {
                let (width, is_context) = match slot {
                    Slot::Number(s) => (1, context(s)),
                    Slot::Vector { value, dim } => (*dim, context(value)),
                    Slot::Hashed(s) => (HASH_BUCKETS, context(s)),
                    Slot::Affinity {
                        counts, categories, ..
                    } => (1, context(counts) || context(categories)),
                };
                std::iter::repeat_n(is_context, width)
            })
            .collect()
    }

    /// Model inputs from the values of [`RankerInputs::refs`] and of
    /// [`RankerInputs::context`] (in those orders; missing trailing values
    /// count as null).
    pub fn vectorize(&self, values: &[Option<&Value>], context: &[Option<Value>]) -> Vec<f64> {
        let get = |source: Source| match source {
            Source::Store(i) => values.get(i).copied().flatten(),
            Source::Context(i) => context.get(i).and_then(Option::as_ref),
        };
        let mut out = Vec::with_capacity(self.names.len());
        for slot in &self.slots {
            match slot {
                Slot::Number(i) => out.push(match get(*i) {
                    Some(Value::Int64(v)) => *v as f64,
                    Some(Value::Float64(v)) if v.is_finite() => *v,
                    Some(Value::Bool(b)) => f64::from(u8::from(*b)),
                    _ => 0.0,
                }),
                Slot::Vector { value, dim } => match get(*value) {
                    Some(Value::FloatVector(v)) if v.len() == *dim => {
                        out.extend(v.iter().map(|x| f64::from(*x)))
                    }
                    _ => out.extend(std::iter::repeat_n(0.0, *dim)),
                },
                Slot::Hashed(i) => {
                    let mut buckets = [0.0; HASH_BUCKETS];
                    let mut set = |s: &str| {
                        buckets[(xxhash_rust::xxh3::xxh3_64(s.as_bytes()) % HASH_BUCKETS as u64)
                            as usize] = 1.0;
                    };
                    match get(*i) {
                        Some(Value::String(s)) => set(s),
                        Some(Value::StringList(list)) => list.iter().for_each(|s| set(s)),
                        _ => {}
                    }
                    out.extend(buckets);
                }
                Slot::Affinity {
                    counts,
                    categories,
                    vocabulary,
                } => out.push(affinity(get(*counts), get(*categories), vocabulary)),
            }
        }
        out
    }

    /// [`RankerInputs::vectorize`] over owned values.
    pub fn vectorize_owned(&self, values: &[Option<Value>], context: &[Option<Value>]) -> Vec<f64> {
        let refs: Vec<Option<&Value>> = values.iter().map(Option::as_ref).collect();
        self.vectorize(&refs, context)
    }
}

/// The vocabulary of a bucketed aggregation feature.
fn bucket_vocabulary(r: &ResolvedRef) -> Option<Vec<String>> {
    let spec = r.view.aggregation()?;
    let column = spec.columns.get(r.feature)?;
    let buckets = column.buckets.as_ref()?;
    let mut vocabulary = vec![String::new(); buckets.len];
    for (word, &i) in &buckets.positions {
        vocabulary[i] = word.clone();
    }
    Some(vocabulary)
}

/// The share of `counts`' total in the categories of `categories`.
fn affinity(counts: Option<&Value>, categories: Option<&Value>, vocabulary: &[String]) -> f64 {
    let Some(Value::FloatVector(counts)) = counts else {
        return 0.0;
    };
    let total = counts.iter().map(|c| f64::from(*c)).sum::<f64>();
    if total <= 0.0 {
        return 0.0;
    }
    let share = |category: &str| {
        vocabulary
            .iter()
            .position(|w| w == category)
            .and_then(|i| counts.get(i))
            .map_or(0.0, |c| f64::from(*c) / total)
    };
    match categories {
        Some(Value::String(c)) => share(c),
        Some(Value::StringList(list)) => list.iter().map(|c| share(c)).sum(),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reprise_store::definitions::DefinitionFile;

    const DEFINITIONS: &str = r#"
        [[entity]]
        name = "person"
        join_key = "person_id"

        [[entity]]
        name = "clip"
        join_key = "clip_id"

        [[feature_view]]
        name = "clips"
        version = 1
        entities = ["clip"]
        ttl = "0"

        [[feature_view.feature]]
        name = "topics"
        type = "string_list"

        [[feature_view.feature]]
        name = "minutes"
        type = "int64"

        [[feature_view]]
        name = "hear"
        version = 1
        kind = "events"
        entities = ["person", "clip"]
        ttl = "0"

        [[feature_view.feature]]
        name = "seconds"
        type = "int64"

        [[feature_view.lookup]]
        name = "topics"
        ref = "clips:topics"

        [[aggregation]]
        name = "taste"
        version = 1
        source = "hear"
        entities = ["person"]

        [[aggregation.feature]]
        name = "topic_listens"
        op = "count"
        bucket_by = "topics"
        vocabulary = ["news", "sport", "crime"]
        windows = ["0"]
    "#;

    fn registry() -> Registry {
        let mut registry = Registry::default();
        registry
            .apply("t.toml", &DefinitionFile::parse(DEFINITIONS).unwrap())
            .unwrap();
        registry
    }

    #[test]
    fn every_kind_of_entry_becomes_its_inputs() {
        let declared: Vec<String> = [
            "clips:minutes",
            "affinity(taste:topic_listens_all, clips:topics)",
            "taste:topic_listens_all",
            "clips:topics",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let inputs = RankerInputs::compile(&registry(), &declared).unwrap();
        assert_eq!(
            inputs.refs,
            ["clips:minutes", "taste:topic_listens_all", "clips:topics"]
        );
        assert_eq!(inputs.names().len(), 1 + 1 + 3 + HASH_BUCKETS);
        let counts = Value::FloatVector(vec![3.0, 1.0, 0.0]);
        let topics = Value::StringList(vec!["news".into(), "crime".into()]);
        let minutes = Value::Int64(42);
        let out = inputs.vectorize(&[Some(&minutes), Some(&counts), Some(&topics)], &[]);
        assert_eq!(&out[..5], &[42.0, 0.75, 3.0, 1.0, 0.0]);
        assert_eq!(
            out[5..].iter().sum::<f64>(),
            2.0,
            "two topics hashed: {out:?}"
        );
        // Missing values: zeros, never a shorter vector.
        let empty = inputs.vectorize(&[], &[]);
        assert_eq!(empty, vec![0.0; inputs.names().len()]);
    }

    #[test]
    fn bad_entries_are_explained() {
        for (entry, message) in [
            ("nope:x", "unknown feature view"),
            (
                "affinity(clips:minutes, clips:topics)",
                "not a bucketed aggregation",
            ),
            (
                "affinity(taste:topic_listens_all, clips:minutes)",
                "must be a string",
            ),
        ] {
            let err = RankerInputs::compile(&registry(), &[entry.to_owned()]).unwrap_err();
            assert!(err.to_string().contains(message), "{entry}: {err}");
        }
    }
}
