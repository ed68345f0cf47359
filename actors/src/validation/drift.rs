//! The drift check: for every feature of every monitored view, the rows of
//! the latest window (event time in `(now − w, now]`) against the window
//! before it, by the distances of `reprise-validation`; an alert when the
//! L-infinity distance (numeric: the KS statistic) exceeds the feature's
//! `drift_threshold` (or the default). Every comparison is returned,
//! whether or not it fired.

use std::collections::BTreeMap;

use reprise_store::time::{parse_rfc3339, Micros};
use reprise_store::{FeatureStore, Value};
use reprise_validation::distances::{categorical, numeric};
use reprise_validation::histogram::{categorical_histogram, numeric_histogram, Histogram};
use reprise_validation::stats::{summarise_categorical, summarise_numeric, Summary};
use reprise_validation::ColumnDistances;
use serde::Serialize;

use super::alerts::{self, Alert};
use super::reservoir::Reservoir;
use super::skew::TrainingReference;
use crate::error::ActorError;

/// Views the serving path and the monitors write themselves.
const NOT_MONITORED: [&str; 5] = [
    "served_item",
    "feedback",
    "request_context",
    "serving_anomaly",
    alerts::ALERT_VIEW,
];

#[derive(Debug, Clone)]
pub struct DriftConfig {
    pub window_micros: Micros,
    pub default_threshold: f64,
    /// Fewer rows than this in either window: no comparison.
    pub min_rows: usize,
    /// The checks whose alerts block model promotion (`drift`, `skew`,
    /// `schema` — its `missing_feature` and `type_mismatch` anomalies —,
    /// `anomaly_spike`).
    pub blocking_checks: Vec<String>,
    /// Every raised alert is POSTed here as JSON, when set.
    pub webhook: Option<String>,
    /// Rows kept per window (a uniform sample beyond it), so a check costs
    /// bounded memory however busy a view; windows up to this size are
    /// compared exactly.
    pub sample_rows: usize,
}

impl DriftConfig {
    /// Whether alerts of `check` block promotion.
    pub fn blocks(&self, check: &str) -> bool {
        self.blocking_checks.iter().any(|c| c == check)
    }
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            window_micros: 3_600 * 1_000_000,
            default_threshold: 0.2,
            min_rows: 30,
            blocking_checks: ["drift", "skew", "schema", "anomaly_spike"]
                .map(String::from)
                .to_vec(),
            webhook: None,
            sample_rows: 1_000_000,
        }
    }
}

/// One feature's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// `drift` (previous vs latest window of a view) or `skew` (a ranker's
    /// training context vs the context it was served with).
    pub check: String,
    /// The view (drift) or the ranker version (skew).
    pub view: String,
    pub feature: String,
    pub previous_rows: usize,
    pub current_rows: usize,
    pub distances: ColumnDistances,
    /// Statistics of the reference (previous window, or training) and the
    /// current window, side by side.
    pub reference: Summary,
    pub current: Summary,
    /// Both samples binned alike, as shares (what a report draws).
    pub histogram: Histogram,
    pub threshold: f64,
    pub fired: bool,
}

impl Comparison {
    /// The distance alerts are judged on (L-infinity).
    pub fn linf(&self) -> f64 {
        match &self.distances {
            ColumnDistances::Numeric(d) => d.linf,
            ColumnDistances::Categorical(d) => d.linf,
        }
    }
}

/// The outcome of one run.
#[derive(Debug, Clone, Serialize)]
pub struct DriftRun {
    pub comparisons: Vec<Comparison>,
    pub raised: Vec<Alert>,
    /// Serving context values that break the serving ranker's training
    /// schema.
    pub anomalies: Vec<reprise_validation::schema::Anomaly>,
}

enum Sample {
    Numeric(Vec<f64>),
    Categorical(Vec<String>),
}

fn sample(values: &[&Value]) -> Option<Sample> {
    let first = values.first()?;
    match first {
        Value::Int64(_) | Value::Float64(_) => Some(Sample::Numeric(
            values
                .iter()
                .filter_map(|v| match v {
                    Value::Int64(i) => Some(*i as f64),
                    Value::Float64(f) => Some(*f),
                    _ => None,
                })
                .collect(),
        )),
        Value::String(_) | Value::Bool(_) => Some(Sample::Categorical(
            values
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                })
                .collect(),
        )),
        Value::FloatVector(_) | Value::StringList(_) => None,
    }
}

/// Runs the check at the store clock's now (`reference`: the skew check's
/// training side, kept between runs).
pub fn run(
    store: &FeatureStore,
    config: &DriftConfig,
    reference: &mut TrainingReference,
) -> Result<DriftRun, ActorError> {
    let now = store.clock().now();
    let (w, version) = (config.window_micros, store.version());
    let registry = store.registry();
    let recent: Vec<Alert> = alerts::list(store)?;
    // The newest version of every view name.
    let mut latest: BTreeMap<&str, &std::sync::Arc<reprise_store::registry::FeatureView>> =
        BTreeMap::new();
    for view in registry.views() {
        latest.insert(&view.name, registry.view(&view.name).unwrap_or(view));
    }
    let mut run = DriftRun {
        comparisons: Vec::new(),
        raised: Vec::new(),
        anomalies: Vec::new(),
    };
    for (name, view) in latest {
        if NOT_MONITORED.contains(&name) {
            continue;
        }
        // Streamed: each window's values, a uniform sample beyond
        // `sample_rows`. An events view's two windows are one range of its
        // time index; a state view's history is read whole.
        let mut current = Reservoir::new(config.sample_rows);
        let mut previous = Reservoir::new(config.sample_rows);
        let mut keep = |event_ts: Micros, values| {
            if event_ts > now - w && event_ts <= now {
                current.push(values);
            } else if event_ts > now - 2 * w && event_ts <= now - w {
                previous.push(values);
            }
            Ok(())
        };
        let label = view.label();
        if !store.for_each_event_between(&label, version, now - 2 * w, now, &mut keep)? {
            store.for_each_history_row(&label, version, |row| keep(row.event_ts, row.values))?;
        }
        let (current, previous) = (current.into_items(), previous.into_items());
        if current.len() < config.min_rows || previous.len() < config.min_rows {
            continue;
        }
        // Derived features are functions of raw ones: the raw ones are watched.
        for (index, feature) in view.features.iter().enumerate() {
            if feature.is_derived() {
                continue;
            }
            let values = |window: &[Vec<Option<Value>>]| -> Vec<Value> {
                window
                    .iter()
                    .filter_map(|r| r.get(index).cloned().flatten())
                    .collect()
            };
            let (cur, prev) = (values(&current), values(&previous));
            if cur.len() < config.min_rows || prev.len() < config.min_rows {
                continue;
            }
            let (prev_refs, cur_refs): (Vec<&Value>, Vec<&Value>) =
                (prev.iter().collect(), cur.iter().collect());
            let (distances, reference, current_summary, histogram) =
                match (sample(&prev_refs), sample(&cur_refs)) {
                    (Some(Sample::Numeric(a)), Some(Sample::Numeric(b))) => (
                        ColumnDistances::Numeric(numeric(&a, &b)),
                        summarise_numeric(&a),
                        summarise_numeric(&b),
                        numeric_histogram(&a, &b),
                    ),
                    (Some(Sample::Categorical(a)), Some(Sample::Categorical(b))) => (
                        ColumnDistances::Categorical(categorical(&a, &b)),
                        summarise_categorical(&a),
                        summarise_categorical(&b),
                        categorical_histogram(&a, &b),
                    ),
                    _ => continue,
                };
            let linf = match &distances {
                ColumnDistances::Numeric(d) => d.linf,
                ColumnDistances::Categorical(d) => d.linf,
            };
            let threshold = feature.drift_threshold.unwrap_or(config.default_threshold);
            let fired = linf > threshold;
            // One alert at a time per feature: none while one is open or
            // was acknowledged within the last window.
            let quiet = recent.iter().any(|a| {
                a.check == "drift"
                    && a.view == name
                    && a.feature == feature.name
                    && (a.is_open() || parse_rfc3339(&a.updated_at).is_some_and(|t| t > now - w))
            });
            if fired && !quiet {
                run.raised.push(alerts::raise(
                    store,
                    "drift",
                    name,
                    &feature.name,
                    "linf",
                    linf,
                    threshold,
                    config.blocks("drift"),
                    serde_json::to_string(&distances).unwrap_or_default(),
                )?);
            }
            run.comparisons.push(Comparison {
                check: "drift".into(),
                view: name.to_owned(),
                feature: feature.name.clone(),
                previous_rows: prev.len(),
                current_rows: cur.len(),
                distances,
                reference,
                current: current_summary,
                histogram,
                threshold,
                fired,
            });
        }
    }
    if let Some(alert) = anomaly_spike(store, config, &recent, now)? {
        run.raised.push(alert);
    }
    let skew = super::skew::run(store, config, &recent, reference)?;
    run.comparisons.extend(skew.comparisons);
    run.raised.extend(skew.raised);
    run.anomalies = skew.anomalies;
    Ok(run)
}

/// Windows of history the anomaly baseline averages.
const SPIKE_BASELINE_WINDOWS: i64 = 6;
/// A spike: at least this many anomalies in the window...
const SPIKE_MIN_COUNT: usize = 10;
/// ...and this many times the baseline's mean per window.
const SPIKE_FACTOR: f64 = 3.0;

/// The anomaly spike detector: requests refused for missing mandatory
/// context (`serving_anomaly`) in the latest window against their mean
/// over the windows before it.
fn anomaly_spike(
    store: &FeatureStore,
    config: &DriftConfig,
    recent: &[Alert],
    now: Micros,
) -> Result<Option<Alert>, ActorError> {
    let w = config.window_micros;
    let (mut current, mut before) = (0usize, 0usize);
    let counted = store.for_each_history_row("serving_anomaly", store.version(), |r| {
        if r.event_ts > now - w && r.event_ts <= now {
            current += 1;
        } else if r.event_ts > now - (SPIKE_BASELINE_WINDOWS + 1) * w && r.event_ts <= now - w {
            before += 1;
        }
        Ok(())
    });
    match counted {
        Ok(()) => {}
        Err(reprise_store::StoreError::UnknownView { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let baseline = before as f64 / SPIKE_BASELINE_WINDOWS as f64;
    let quiet = recent.iter().any(|a| {
        a.check == "anomaly_spike"
            && (a.is_open() || parse_rfc3339(&a.updated_at).is_some_and(|t| t > now - w))
    });
    if current < SPIKE_MIN_COUNT || (current as f64) <= SPIKE_FACTOR * baseline.max(1.0) || quiet {
        return Ok(None);
    }
    let detail =
        serde_json::json!({"current": current, "baseline_per_window": baseline}).to_string();
    Ok(Some(alerts::raise(
        store,
        "anomaly_spike",
        "serving_anomaly",
        "missing_field",
        "count",
        current as f64,
        SPIKE_FACTOR * baseline.max(1.0),
        config.blocks("anomaly_spike"),
        detail,
    )?))
}
