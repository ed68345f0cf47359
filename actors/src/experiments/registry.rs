//! Experiments kept in the `experiment` view (migrations/0009): the newest
//! row of an experiment is its definition.

use std::collections::BTreeMap;

use reprise_store::time::format_rfc3339;
use reprise_store::{FeatureStore, StoreError, Value};
use serde_json::json;

use super::assign::{Arm, Experiment};
use super::tally::Tally;
use crate::error::ActorError;

pub const EXPERIMENT_VIEW: &str = "experiment";

/// Validates and stores `experiment` (its arms' models must be stored
/// rankers).
pub fn put(store: &FeatureStore, experiment: &Experiment) -> Result<(), ActorError> {
    experiment.validate()?;
    for (i, arm) in experiment.arms.iter().enumerate() {
        match store.load_model(&arm.model_version) {
            Ok(m) if m.kind == reprise_trainer::model_io::RANKER_KIND => {}
            Ok(m) => {
                return Err(ActorError::invalid(
                    format!("arms[{i}].model_version"),
                    format!("{} is a {} model, not a ranker", arm.model_version, m.kind),
                ))
            }
            Err(StoreError::UnknownModel(_)) => {
                return Err(ActorError::invalid(
                    format!("arms[{i}].model_version"),
                    format!("no model {}", arm.model_version),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    define(store, experiment)
}

/// Stores the definition of `experiment` (validated) and starts its tally,
/// in one write.
pub(crate) fn define(store: &FeatureStore, experiment: &Experiment) -> Result<(), ActorError> {
    let defined_at = format_rfc3339(store.clock().now());
    let row = json!({"experiment": experiment.name, "event_timestamp": defined_at,
        "arms": serde_json::to_string(&experiment.arms).expect("arms serialise"),
        "salt": experiment.salt, "active": experiment.active});
    let tallied = [(Tally::new(&experiment.name, &defined_at).defined(), 1)];
    store.push_all_counting(&[(EXPERIMENT_VIEW, &[row])], false, &tallied)?;
    Ok(())
}

/// Every experiment, by name: its newest definition.
pub fn list(store: &FeatureStore) -> Result<Vec<Experiment>, ActorError> {
    let mut by_name: BTreeMap<String, Experiment> = BTreeMap::new();
    for experiment in definitions(store)? {
        by_name.insert(experiment.name.clone(), experiment);
    }
    Ok(by_name.into_values().collect())
}

/// Every definition ever stored (a redefinition is a new one), oldest
/// first within each name.
pub fn definitions(store: &FeatureStore) -> Result<Vec<Experiment>, ActorError> {
    let rows = match store.view_history(EXPERIMENT_VIEW, store.version()) {
        Ok(rows) => rows,
        Err(StoreError::UnknownView { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let registry = store.registry();
    let Some(view) = registry.view(EXPERIMENT_VIEW) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(name) = row.keys.first().cloned() else {
            continue;
        };
        let get = |f: &str| {
            view.feature_index(f)
                .and_then(|i| row.values.get(i).cloned().flatten())
        };
        let arms: Vec<Arm> = match get("arms") {
            Some(Value::String(s)) => serde_json::from_str(&s).unwrap_or_default(),
            _ => Vec::new(),
        };
        out.push(Experiment {
            name,
            arms,
            salt: match get("salt") {
                Some(Value::String(s)) => s,
                _ => String::new(),
            },
            active: matches!(get("active"), Some(Value::Bool(true))),
            defined_at: format_rfc3339(row.event_ts),
        });
    }
    Ok(out)
}

/// The experiment that routes traffic: the most recently defined active one.
pub fn active(store: &FeatureStore) -> Result<Option<Experiment>, ActorError> {
    Ok(list(store)?
        .into_iter()
        .filter(|e| e.active && !e.arms.is_empty())
        .max_by(|a, b| a.defined_at.cmp(&b.defined_at)))
}
