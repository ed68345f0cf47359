//! The skew check: the serving ranker's context features as it was trained
//! (its training snapshot, through the same `vectorize`) against the same
//! features as served in the latest window (the tail of each logged feature
//! vector in `served_item`), feature by feature.

use reprise_store::time::parse_rfc3339;
use reprise_store::{FeatureStore, StoreError, Value};
use reprise_trainer::context::{vectorize, CONTEXT_FEATURES};
use reprise_trainer::model_io::{self, RANKER_KIND};
use reprise_validation::distances::numeric;
use reprise_validation::stats::summarise_numeric;
use reprise_validation::ColumnDistances;

use super::alerts::{self, Alert};
use super::drift::{Comparison, DriftConfig};
use crate::error::ActorError;

/// Compares the serving (else newest) ranker's training context with what
/// was served in the last window; raises `skew` alerts like the drift check.
pub fn run(
    store: &FeatureStore,
    config: &DriftConfig,
    recent: &[Alert],
) -> Result<(Vec<Comparison>, Vec<Alert>), ActorError> {
    let version = match store.serving_model(RANKER_KIND)? {
        Some(v) => v,
        None => match model_io::latest(store, RANKER_KIND) {
            Ok(record) => record.version,
            Err(_) => return Ok((Vec::new(), Vec::new())),
        },
    };
    let record = store.load_model(&version)?;
    if record.training_snapshot_id.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let width = CONTEXT_FEATURES.len();
    let mut training: Vec<Vec<f64>> = vec![Vec::new(); width];
    store.read_snapshot(&record.training_snapshot_id, |_, rows| {
        for row in rows {
            for (i, v) in vectorize(&row.values).into_iter().enumerate() {
                training[i].push(v);
            }
        }
        Ok(())
    })?;
    let now = store.clock().now();
    let w = config.window_micros;
    let served = match store.view_history("served_item", store.version()) {
        Ok(rows) => rows,
        Err(StoreError::UnknownView { .. }) => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(e.into()),
    };
    let registry = store.registry();
    let view = registry.view("served_item");
    let (model_slot, features_slot) = (
        view.and_then(|v| v.feature_index("model_version")),
        view.and_then(|v| v.feature_index("features")),
    );
    let mut serving: Vec<Vec<f64>> = vec![Vec::new(); width];
    for row in served
        .iter()
        .filter(|r| r.event_ts > now - w && r.event_ts <= now)
    {
        let model = model_slot.and_then(|i| row.values.get(i).cloned().flatten());
        if model != Some(Value::String(version.clone())) {
            continue;
        }
        if let Some(Some(Value::FloatVector(f))) = features_slot.map(|i| &row.values[i]) {
            if f.len() >= width {
                for (i, v) in f[f.len() - width..].iter().enumerate() {
                    serving[i].push(f64::from(*v));
                }
            }
        }
    }
    let mut comparisons = Vec::new();
    let mut raised = Vec::new();
    for (i, name) in CONTEXT_FEATURES.iter().enumerate() {
        let (a, b) = (&training[i], &serving[i]);
        if a.len() < config.min_rows || b.len() < config.min_rows {
            continue;
        }
        let d = numeric(a, b);
        let fired = d.linf > config.default_threshold;
        let quiet = recent.iter().any(|x| {
            x.check == "skew"
                && x.view == version
                && x.feature == *name
                && (x.is_open() || parse_rfc3339(&x.updated_at).is_some_and(|t| t > now - w))
        });
        if fired && !quiet {
            raised.push(alerts::raise(
                store,
                "skew",
                &version,
                name,
                "linf",
                d.linf,
                config.default_threshold,
                config.blocking,
                serde_json::to_string(&d).unwrap_or_default(),
            )?);
        }
        comparisons.push(Comparison {
            check: "skew".into(),
            view: version.clone(),
            feature: (*name).to_owned(),
            previous_rows: a.len(),
            current_rows: b.len(),
            distances: ColumnDistances::Numeric(d),
            reference: summarise_numeric(a),
            current: summarise_numeric(b),
            threshold: config.default_threshold,
            fired,
        });
    }
    Ok((comparisons, raised))
}
