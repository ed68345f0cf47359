//! The skew check: the serving ranker's context features as it was trained
//! (its training snapshot, through the same `vectorize`) against the same
//! features as served in the latest window (the tail of each logged feature
//! vector in `served_item`), feature by feature.

use std::sync::Arc;

use reprise_store::time::{parse_rfc3339, Micros};
use reprise_store::{FeatureStore, HistoryRow, Value};
use reprise_trainer::context::SCHEMA_ATTACHMENT;
use reprise_trainer::model_io::{self, RANKER_KIND};
use reprise_validation::distances::numeric;
use reprise_validation::histogram::numeric_histogram;
use reprise_validation::schema::{check, Anomaly, AnomalyKind, Schema};
use reprise_validation::stats::summarise_numeric;
use reprise_validation::ColumnDistances;

use super::alerts::{self, Alert};
use super::drift::{Comparison, DriftConfig};
use super::reservoir::Reservoir;
use crate::error::ActorError;

/// Served-log rows read in key order before a window is sampled by seeks
/// instead (its cost then follows the sample, not the traffic).
const FULL_READ_ROWS: usize = 20_000;
/// Requests a sampled window reads: one per stratum of equal time.
const SEEK_SAMPLES: u64 = 2_000;

/// Visits the served-log rows stamped in `(from, to]`: all of them while
/// the window holds at most `full_read_rows` ([`FULL_READ_ROWS`]), else
/// the rows of `seek_samples` ([`SEEK_SAMPLES`]) requests, one at a random time in each of
/// as many equal slices of the window (request ids are UUIDv7, so a time is
/// a key: one seek per request). A stratified sample of requests is near
/// uniform over the rows while the traffic is steady within the window.
fn read_window(
    store: &FeatureStore,
    from: Micros,
    to: Micros,
    full_read_rows: usize,
    seek_samples: u64,
    visit: &mut dyn FnMut(&HistoryRow),
) -> Result<(), ActorError> {
    use reprise_trainer::served_log::{first_request_id_at, window_start};
    // The window is a key range (older random ids in it are read and
    // skipped by time).
    let start = window_start(store, from)?;
    let mut rows = store.history_rows("served_item", store.version(), &[start.as_str()])?;
    let mut seen = Vec::new();
    for row in rows.by_ref() {
        let row = row?;
        if !(row.event_ts > from && row.event_ts <= to) {
            continue;
        }
        seen.push(row);
        if seen.len() > full_read_rows {
            break;
        }
    }
    if seen.len() <= full_read_rows {
        for row in &seen {
            visit(row);
        }
        return Ok(());
    }
    if start.is_empty() {
        // A window reaching back before ids were time-ordered is no key
        // range: all of it is read (the caller's reservoir samples it).
        for row in seen.into_iter().map(Ok).chain(rows) {
            let row = row?;
            if row.event_ts > from && row.event_ts <= to {
                visit(&row);
            }
        }
        return Ok(());
    }
    drop(seen);
    let slice = ((to - from) as u64 / seek_samples.max(1)).max(1);
    let mut last_request = String::new();
    for stratum in 0..seek_samples {
        let jitter = xxhash_rust::xxh3::xxh3_64(&(stratum ^ to as u64).to_be_bytes()) % slice;
        let at = from + (stratum * slice + jitter) as Micros;
        rows.seek(&[first_request_id_at(at).as_str()]);
        let mut request = None;
        for row in rows.by_ref() {
            let row = row?;
            let id = row.keys.first().cloned().unwrap_or_default();
            match &request {
                None if id == last_request => break,
                None => request = Some(id),
                Some(r) if *r != id => break,
                Some(_) => {}
            }
            if row.event_ts > from && row.event_ts <= to {
                visit(&row);
            }
        }
        if let Some(r) = request {
            last_request = r;
        }
    }
    Ok(())
}

/// The training side of the skew check: the model inputs of every row of
/// a ranker's training snapshot, by input. A snapshot never changes, so
/// they are read once per snapshot, not once per check (the read computes
/// the snapshot's features: seconds for a large one).
/// A uniform sample of at most `DriftConfig::sample_rows` rows is kept
/// (exact below it), per (ranker, snapshot).
#[derive(Debug, Default)]
pub struct TrainingReference {
    key: (String, String),
    columns: Arc<Vec<Vec<f64>>>,
}

impl TrainingReference {
    fn columns(
        &mut self,
        store: &FeatureStore,
        (ranker, snapshot): (&str, &str),
        inputs: &reprise_trainer::features::RankerInputs,
        limit: usize,
    ) -> Result<Arc<Vec<Vec<f64>>>, ActorError> {
        let key = (ranker.to_owned(), snapshot.to_owned());
        if self.key != key {
            let mut rows: Reservoir<Vec<f64>> = Reservoir::new(limit);
            store.read_snapshot(snapshot, |_, chunk| {
                for row in chunk {
                    rows.push(inputs.vectorize_owned(&row.values, &[]));
                }
                Ok(())
            })?;
            let mut training: Vec<Vec<f64>> = vec![Vec::new(); inputs.names().len()];
            for row in rows.into_items() {
                for (column, v) in training.iter_mut().zip(row) {
                    column.push(v);
                }
            }
            self.columns = Arc::new(training);
            self.key = key;
        }
        Ok(Arc::clone(&self.columns))
    }
}

/// Compares the serving (else newest) ranker's training context with what
/// was served in the last window; raises `skew` alerts like the drift check.
pub fn run(
    store: &FeatureStore,
    config: &DriftConfig,
    recent: &[Alert],
    reference: &mut TrainingReference,
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
    let training = reference.columns(
        store,
        (&version, &record.training_snapshot_id),
        &inputs,
        config.sample_rows,
    )?;
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
    // A bounded uniform sample of the window: the served vectors' model
    // inputs, and the (user, item) pairs for the schema check.
    let mut vectors: Reservoir<Vec<f32>> = Reservoir::new(config.sample_rows);
    let mut sampled_pairs: Reservoir<(String, String)> = Reservoir::new(MAX_SCHEMA_PAIRS * 8);
    let mut visit = |row: &HistoryRow| {
        if let (Some(Some(Value::String(user))), Some(item)) =
            (user_slot.map(|i| &row.values[i]), row.keys.get(1))
        {
            sampled_pairs.push((user.clone(), item.clone()));
        }
        let model = model_slot.and_then(|i| row.values.get(i).as_ref().and_then(|v| v.as_ref()));
        if !matches!(model, Some(Value::String(m)) if *m == version) {
            return;
        }
        if let Some(Some(Value::FloatVector(f))) = features_slot.map(|i| &row.values[i]) {
            if f.len() >= width {
                vectors.push(f[f.len() - width..].to_vec());
            }
        }
    };
    read_window(
        store,
        now - w,
        now,
        FULL_READ_ROWS,
        SEEK_SAMPLES,
        &mut visit,
    )?;
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
            histogram: numeric_histogram(a, b),
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

#[cfg(test)]
mod tests {
    use super::*;
    use reprise_store::time::{format_rfc3339, MICROS_PER_SECOND};
    use reprise_trainer::served_log::{first_request_id_at, mark_time_ordered_ids};

    /// A store with 4,000 requests of 3 served items, one every 900 ms
    /// over an hour, with time-ordered ids.
    fn served_hour() -> (FeatureStore, Micros) {
        let start = 10_000 * MICROS_PER_SECOND;
        let (store, clock) = crate::test_store::with_system_views(start);
        mark_time_ordered_ids(&store).unwrap();
        let start = start + 3_600 * MICROS_PER_SECOND;
        clock.set(start + 3_600 * MICROS_PER_SECOND);
        let rows: Vec<serde_json::Value> = (0..4_000i64)
            .flat_map(|r| {
                let at = start + r * 900_000;
                let id = format!("{}{r:08x}", &first_request_id_at(at)[..24]);
                (0..3).map(move |i| {
                    serde_json::json!({"request_id": id, "item_id": format!("i{i}"),
                        "event_timestamp": format_rfc3339(at + 1_000), "model_version": "m"})
                })
            })
            .collect();
        store.push("served_item", &rows, true).unwrap();
        (store, start)
    }

    #[test]
    fn a_small_window_is_read_whole_and_a_large_one_by_a_spread_sample_of_requests() {
        let (store, start) = served_hour();
        let hour = 3_600 * MICROS_PER_SECOND;
        let mut all = Vec::new();
        read_window(&store, start, start + hour, 20_000, 500, &mut |row| {
            all.push(row.keys.clone())
        })
        .unwrap();
        assert_eq!(all.len(), 12_000, "under the threshold: every row");

        let mut sampled: Vec<(Vec<String>, Micros)> = Vec::new();
        read_window(&store, start, start + hour, 5_000, 500, &mut |row| {
            sampled.push((row.keys.clone(), row.event_ts))
        })
        .unwrap();
        let requests: std::collections::BTreeSet<&String> =
            sampled.iter().map(|(k, _)| &k[0]).collect();
        // One request per stratum (7.2 s slices of 900 ms requests): whole
        // requests, none twice.
        assert_eq!(requests.len(), 500, "{}", requests.len());
        assert_eq!(sampled.len(), 1_500);
        let mut quarters = [0usize; 4];
        for (_, at) in &sampled {
            quarters[((at - start) * 4 / hour).clamp(0, 3) as usize] += 1;
        }
        assert!(
            quarters.iter().all(|q| (300..=450).contains(q)),
            "{quarters:?}"
        );

        // A window that is only part of the log reads only its part.
        let mut half = 0;
        read_window(
            &store,
            start + hour / 2,
            start + hour,
            1_000,
            100,
            &mut |row| {
                assert!(row.event_ts > start + hour / 2);
                half += 1;
            },
        )
        .unwrap();
        assert_eq!(half, 300);
    }
}
