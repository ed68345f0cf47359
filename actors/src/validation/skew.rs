//! The skew check: the serving ranker's context features as it was trained
//! (its training snapshot, through the same `vectorize`) against the same
//! features as served in the latest window (the tail of each logged feature
//! vector in `served_item`), feature by feature.

use reprise_store::time::parse_rfc3339;
use reprise_store::{FeatureStore, Value};
use reprise_trainer::context::SCHEMA_ATTACHMENT;
use reprise_trainer::model_io::{self, RANKER_KIND};
use reprise_validation::distances::numeric;
use reprise_validation::schema::{check, Anomaly, AnomalyKind, Schema};
use reprise_validation::stats::summarise_numeric;
use reprise_validation::ColumnDistances;

use super::alerts::{self, Alert};
use super::drift::{Comparison, DriftConfig};
use super::reservoir::Reservoir;
use crate::error::ActorError;

/// Compares the serving (else newest) ranker's training context with what
/// was served in the last window; raises `skew` alerts like the drift check.
pub fn run(
    store: &FeatureStore,
    config: &DriftConfig,
    recent: &[Alert],
) -> Result<SkewRun, ActorError> {
    let version = match store.serving_model(RANKER_KIND)? {
        Some(v) => v,
        None => match model_io::latest(store, RANKER_KIND) {
            Ok(record) => record.version,
            Err(_) => return Ok(SkewRun::default()),
        },
    };
    let record = store.load_model(&version)?;
    if record.training_snapshot_id.is_empty() {
        return Ok(SkewRun::default());
    }
    let inputs = match model_io::ranker_inputs(store, &record) {
        Ok(inputs) => inputs,
        Err(e) => {
            tracing::warn!(%version, error = %e, "skew check skipped");
            return Ok(SkewRun::default());
        }
    };
    let names = inputs.names();
    let width = names.len();
    let mut training: Vec<Vec<f64>> = vec![Vec::new(); width];
    store.read_snapshot(&record.training_snapshot_id, |_, rows| {
        for row in rows {
            for (i, v) in inputs
                .vectorize_owned(&row.values, &[])
                .into_iter()
                .enumerate()
            {
                training[i].push(v);
            }
        }
        Ok(())
    })?;
    let now = store.clock().now();
    let w = config.window_micros;
    let registry = store.registry();
    let view = registry.view("served_item");
    let Some(served_view) = view else {
        return Ok(SkewRun::default());
    };
    let (model_slot, features_slot, user_slot) = (
        served_view.feature_index("model_version"),
        served_view.feature_index("features"),
        served_view.feature_index("user_id"),
    );
    // The window of the served log only: its keys start with time-ordered
    // request ids, so the window is a key range (older random ids in it are
    // read and skipped by time).
    let from = reprise_trainer::served_log::window_start(store, now - w)?;
    // A bounded uniform sample of the window: the served vectors' model
    // inputs, and the (user, item) pairs for the schema check.
    let mut vectors: Reservoir<Vec<f32>> = Reservoir::new(config.sample_rows);
    let mut sampled_pairs: Reservoir<(String, String)> = Reservoir::new(MAX_SCHEMA_PAIRS * 8);
    for row in store.history_rows("served_item", store.version(), &[from.as_str()])? {
        let row = row?;
        if !(row.event_ts > now - w && row.event_ts <= now) {
            continue;
        }
        if let (Some(Some(Value::String(user))), Some(item)) =
            (user_slot.map(|i| &row.values[i]), row.keys.get(1))
        {
            sampled_pairs.push((user.clone(), item.clone()));
        }
        let model = model_slot.and_then(|i| row.values.get(i).cloned().flatten());
        if model != Some(Value::String(version.clone())) {
            continue;
        }
        if let Some(Some(Value::FloatVector(f))) = features_slot.map(|i| &row.values[i]) {
            if f.len() >= width {
                vectors.push(f[f.len() - width..].to_vec());
            }
        }
    }
    let mut serving: Vec<Vec<f64>> = vec![Vec::new(); width];
    for vector in vectors.into_items() {
        for (i, v) in vector.into_iter().enumerate() {
            serving[i].push(f64::from(v));
        }
    }
    let mut pairs = sampled_pairs.into_items();
    let mut comparisons = Vec::new();
    let mut raised = Vec::new();
    // Serving values against the training schema: the context of the
    // (user, item) pairs served in the window, as the store has it now.
    let mut anomalies = Vec::new();
    if let Some(bytes) =
        store.snapshot_attachment(&record.training_snapshot_id, SCHEMA_ATTACHMENT)?
    {
        let schema: Schema = serde_json::from_slice(&bytes)
            .map_err(|e| ActorError::invalid("schema", e.to_string()))?;
        pairs.sort();
        pairs.dedup();
        pairs.truncate(MAX_SCHEMA_PAIRS);
        if pairs.len() >= config.min_rows {
            let (user_key, item_key) = reprise_store::recommender::join_keys(&store.registry());
            let entities: Vec<serde_json::Map<String, serde_json::Value>> = pairs
                .iter()
                .map(|(u, i)| {
                    serde_json::json!({user_key.as_str(): u, item_key.as_str(): i})
                        .as_object()
                        .cloned()
                        .unwrap_or_default()
                })
                .collect();
            let refs = inputs.refs.clone();
            let online = store.online_features(&refs, &entities)?;
            let mut columns: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
                refs.iter().map(|r| (r.clone(), Vec::new())).collect();
            for row in online.rows {
                for (r, v) in refs.iter().zip(row.values) {
                    let cell = v.map_or(serde_json::Value::Null, |v| {
                        serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
                    });
                    columns.get_mut(r).expect("one column per ref").push(cell);
                }
            }
            for anomaly in check(&schema, &columns) {
                let blocking = matches!(
                    anomaly.kind,
                    AnomalyKind::MissingFeature | AnomalyKind::TypeMismatch
                ) && config.blocks("schema");
                let kind = serde_json::to_value(anomaly.kind)
                    .ok()
                    .and_then(|k| k.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let quiet = recent.iter().any(|x| {
                    x.check == "schema"
                        && x.view == version
                        && x.feature == anomaly.feature
                        && x.metric == kind
                        && (x.is_open()
                            || parse_rfc3339(&x.updated_at).is_some_and(|t| t > now - w))
                });
                if !quiet {
                    raised.push(alerts::raise(
                        store,
                        "schema",
                        &version,
                        &anomaly.feature,
                        &kind,
                        1.0,
                        0.0,
                        blocking,
                        serde_json::to_string(&anomaly).unwrap_or_default(),
                    )?);
                }
                anomalies.push(anomaly);
            }
        }
    }
    // Request-context inputs are not in the training snapshot.
    let from_context = inputs.from_context();
    for (i, name) in names.iter().enumerate() {
        if from_context[i] {
            continue;
        }
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
                config.blocks("skew"),
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
    Ok(SkewRun {
        comparisons,
        raised,
        anomalies,
    })
}

/// Pairs of the window whose context is checked against the schema, at most.
const MAX_SCHEMA_PAIRS: usize = 5_000;

/// What the skew check found.
#[derive(Default)]
pub struct SkewRun {
    pub comparisons: Vec<Comparison>,
    pub raised: Vec<Alert>,
    /// Serving context values that break the training schema.
    pub anomalies: Vec<Anomaly>,
}
