//! A schema inferred from training data (type, presence fraction, domain of
//! small categoricals, value range) and the check of serving data against
//! it, giving typed anomalies.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Categoricals with at most this many values get a domain.
pub const MAX_DOMAIN: usize = 100;
/// Serving presence below training presence less this is `low_presence`.
pub const PRESENCE_TOLERANCE: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Numeric,
    Categorical,
    Vector,
    List,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    pub kind: Kind,
    /// Share of rows with a value.
    pub presence: f64,
    /// Every value seen, for categoricals with at most [`MAX_DOMAIN`].
    pub domain: Option<BTreeSet<String>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub features: BTreeMap<String, FeatureSchema>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    MissingFeature,
    LowPresence,
    OutOfDomain,
    OutOfRange,
    TypeMismatch,
    Nan,
    NewFeature,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub feature: String,
    pub kind: AnomalyKind,
    pub detail: String,
}

fn kind_of(v: &Json) -> Option<Kind> {
    match v {
        Json::Number(_) => Some(Kind::Numeric),
        Json::String(_) | Json::Bool(_) => Some(Kind::Categorical),
        Json::Array(a) if a.iter().all(Json::is_number) => Some(Kind::Vector),
        Json::Array(_) => Some(Kind::List),
        Json::Null | Json::Object(_) => None,
    }
}

fn category(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Infers a schema from columns of training values (JSON cells; null is a
/// missing value).
pub fn infer(columns: &BTreeMap<String, Vec<Json>>) -> Schema {
    let mut schema = Schema::default();
    for (name, cells) in columns {
        let present: Vec<&Json> = cells.iter().filter(|c| !c.is_null()).collect();
        let Some(kind) = present.first().and_then(|c| kind_of(c)) else {
            continue;
        };
        let numbers: Vec<f64> = present.iter().filter_map(|c| c.as_f64()).collect();
        let domain = (kind == Kind::Categorical).then(|| {
            present
                .iter()
                .map(|c| category(c))
                .collect::<BTreeSet<String>>()
        });
        schema.features.insert(
            name.clone(),
            FeatureSchema {
                kind,
                presence: present.len() as f64 / cells.len().max(1) as f64,
                domain: domain.filter(|d| d.len() <= MAX_DOMAIN),
                min: numbers.iter().copied().reduce(f64::min),
                max: numbers.iter().copied().reduce(f64::max),
            },
        );
    }
    schema
}

/// Checks columns of serving values against `schema`.
pub fn check(schema: &Schema, columns: &BTreeMap<String, Vec<Json>>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut push = |feature: &str, kind, detail: String| {
        out.push(Anomaly {
            feature: feature.to_owned(),
            kind,
            detail,
        })
    };
    for (name, expected) in &schema.features {
        let Some(cells) = columns.get(name) else {
            push(name, AnomalyKind::MissingFeature, "no such column".into());
            continue;
        };
        let present: Vec<&Json> = cells.iter().filter(|c| !c.is_null()).collect();
        let presence = present.len() as f64 / cells.len().max(1) as f64;
        if presence + PRESENCE_TOLERANCE < expected.presence {
            push(
                name,
                AnomalyKind::LowPresence,
                format!(
                    "present in {presence:.3} of rows, {:.3} in training",
                    expected.presence
                ),
            );
        }
        let mismatched = present
            .iter()
            .filter(|c| kind_of(c) != Some(expected.kind) && !c.is_string())
            .count();
        let nan_text = present
            .iter()
            .filter(|c| c.as_str().is_some_and(|s| s.eq_ignore_ascii_case("nan")))
            .count();
        if expected.kind == Kind::Numeric && nan_text > 0 {
            push(name, AnomalyKind::Nan, format!("{nan_text} NaN values"));
        }
        let wrong_strings = present
            .iter()
            .filter(|c| {
                expected.kind != Kind::Categorical
                    && c.as_str().is_some_and(|s| !s.eq_ignore_ascii_case("nan"))
            })
            .count();
        if mismatched + wrong_strings > 0 {
            push(
                name,
                AnomalyKind::TypeMismatch,
                format!(
                    "{} values are not {:?}",
                    mismatched + wrong_strings,
                    expected.kind
                ),
            );
        }
        if let Some(domain) = &expected.domain {
            let unseen: BTreeSet<String> = present
                .iter()
                .filter(|c| kind_of(c) == Some(Kind::Categorical))
                .map(|c| category(c))
                .filter(|v| !domain.contains(v))
                .collect();
            if !unseen.is_empty() {
                let shown: Vec<&String> = unseen.iter().take(5).collect();
                push(
                    name,
                    AnomalyKind::OutOfDomain,
                    format!(
                        "{} values outside the training domain, e.g. {shown:?}",
                        unseen.len()
                    ),
                );
            }
        }
        if let (Some(lo), Some(hi)) = (expected.min, expected.max) {
            let outside = present
                .iter()
                .filter_map(|c| c.as_f64())
                .filter(|x| *x < lo || *x > hi)
                .count();
            if outside > 0 && expected.kind == Kind::Numeric {
                push(
                    name,
                    AnomalyKind::OutOfRange,
                    format!("{outside} values outside [{lo}, {hi}]"),
                );
            }
        }
    }
    for name in columns.keys() {
        if !schema.features.contains_key(name) {
            push(
                name,
                AnomalyKind::NewFeature,
                "not in the training schema".into(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn columns(pairs: &[(&str, Vec<Json>)]) -> BTreeMap<String, Vec<Json>> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn inferred_schema_and_every_anomaly_kind() {
        let training = columns(&[
            ("plays", vec![json!(1), json!(5), json!(10), json!(3)]),
            (
                "device",
                vec![json!("web"), json!("tv"), json!("web"), json!("tv")],
            ),
            (
                "rating",
                vec![json!(4.0), json!(3.5), json!(5.0), json!(1.0)],
            ),
            (
                "genres",
                vec![json!(["a"]), json!(["b"]), Json::Null, json!(["a"])],
            ),
        ]);
        let schema = infer(&training);
        let plays = &schema.features["plays"];
        assert_eq!((plays.kind, plays.presence), (Kind::Numeric, 1.0));
        assert_eq!((plays.min, plays.max), (Some(1.0), Some(10.0)));
        assert_eq!(
            schema.features["device"].domain,
            Some(["tv".to_owned(), "web".to_owned()].into())
        );
        assert_eq!(schema.features["genres"].presence, 0.75);
        // Training data checks clean against its own schema.
        assert_eq!(check(&schema, &training), vec![]);

        let serving = columns(&[
            (
                "plays",
                vec![json!(2), json!(50), json!("many"), json!("NaN")],
            ),
            (
                "device",
                vec![json!("web"), json!("watch"), Json::Null, Json::Null],
            ),
            (
                "genres",
                vec![Json::Null, Json::Null, Json::Null, json!(["a"])],
            ),
            ("country", vec![json!("SE")]),
        ]);
        let kinds: Vec<(String, AnomalyKind)> = check(&schema, &serving)
            .into_iter()
            .map(|a| (a.feature, a.kind))
            .collect();
        let expect = [
            ("device", AnomalyKind::LowPresence),
            ("device", AnomalyKind::OutOfDomain),
            ("genres", AnomalyKind::LowPresence),
            ("plays", AnomalyKind::Nan),
            ("plays", AnomalyKind::TypeMismatch),
            ("plays", AnomalyKind::OutOfRange),
            ("rating", AnomalyKind::MissingFeature),
            ("country", AnomalyKind::NewFeature),
        ];
        for (feature, kind) in expect {
            assert!(
                kinds.contains(&(feature.to_owned(), kind)),
                "{feature} {kind:?} missing from {kinds:?}"
            );
        }
        assert_eq!(kinds.len(), expect.len(), "{kinds:?}");
    }
}
