//! An experiment's per-arm counts kept as store counters, so a report costs
//! a few lookups however long the experiment has run: impressions are added
//! with the served-log rows of each response, plays and skips with the
//! feedback rows that change a served item's label, in the same atomic
//! writes (`FeatureStore::push_all_counting`). The counts equal those of a
//! scan of the served log joined with feedback (`metrics::scan_counts`):
//! a served item's label is its last engaged/skip verdict in event-time
//! order.
//!
//! The counters of a definition live under its name and `defined_at`, so a
//! redefined experiment starts from zero. A definition stored before the
//! tallies existed has no `defined` marker; its report scans the log.

use std::collections::HashMap;

use reprise_store::time::{parse_rfc3339, Micros};
use reprise_store::{FeatureStore, StoreError, Value};
use serde_json::{json, Map};

use super::assign::Experiment;
use crate::error::ActorError;

/// The served-log and feedback views the tallies follow.
const SERVED_VIEW: &str = reprise_trainer::served_log::SERVED_VIEW;
const FEEDBACK_VIEW: &str = reprise_trainer::served_log::FEEDBACK_VIEW;

/// Separates the parts of a counter name (names and arms may hold `/`).
const SEP: char = '\u{1f}';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Impressions,
    Plays,
    Skips,
}

impl Count {
    fn name(self) -> &'static str {
        match self {
            Count::Impressions => "impressions",
            Count::Plays => "plays",
            Count::Skips => "skips",
        }
    }
}

/// Where one definition's counters live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    prefix: String,
}

impl Tally {
    pub fn new(experiment: &str, defined_at: &str) -> Self {
        Tally {
            prefix: format!("experiment{SEP}{experiment}{SEP}{defined_at}{SEP}"),
        }
    }

    pub fn of(experiment: &Experiment) -> Self {
        Tally::new(&experiment.name, &experiment.defined_at)
    }

    /// Set to 1 with the definition: the definition is tallied from its
    /// first request.
    pub fn defined(&self) -> String {
        format!("{}defined", self.prefix)
    }

    pub fn arm(&self, arm: &str, count: Count) -> String {
        format!("{}arm{SEP}{arm}{SEP}{}", self.prefix, count.name())
    }

    /// Whether `store` tallies this definition.
    pub fn exists(&self, store: &FeatureStore) -> Result<bool, ActorError> {
        Ok(store.counter(&self.defined())?.is_some())
    }

    /// (impressions, plays, skips) of `arm`.
    pub fn read(&self, store: &FeatureStore, arm: &str) -> Result<(u64, u64, u64), ActorError> {
        let get = |count| -> Result<u64, ActorError> {
            Ok(store.counter(&self.arm(arm, count))?.unwrap_or(0).max(0) as u64)
        };
        Ok((
            get(Count::Impressions)?,
            get(Count::Plays)?,
            get(Count::Skips)?,
        ))
    }
}

/// The tallied definitions among `definitions` (every definition ever
/// stored: which one routed a request is decided at its time).
pub fn tallied(
    store: &FeatureStore,
    definitions: Vec<Experiment>,
) -> Result<std::sync::Arc<[Experiment]>, ActorError> {
    let mut out = Vec::new();
    for e in definitions {
        if Tally::of(&e).exists(store)? {
            out.push(e);
        }
    }
    Ok(out.into())
}

/// The definition that routed requests at `at`, as `registry::active` would
/// have answered then: among the newest definition of each name at `at`,
/// the most recently defined active one with arms.
fn routing_at(definitions: &[(Experiment, Micros)], at: Micros) -> Option<&Experiment> {
    let mut newest: HashMap<&str, &(Experiment, Micros)> = HashMap::new();
    for d in definitions.iter().filter(|(_, t)| *t <= at) {
        let slot = newest.entry(d.0.name.as_str()).or_insert(d);
        if d.1 >= slot.1 {
            *slot = d;
        }
    }
    newest
        .into_values()
        .filter(|(e, _)| e.active && !e.arms.is_empty())
        .max_by_key(|(_, t)| *t)
        .map(|(e, _)| e)
}

/// When request `id` started: the time in its UUIDv7 id (the routing
/// decision's), when it is one within the logging slack before `served_at`;
/// else `served_at`.
fn routed_at(id: &str, served_at: Micros) -> Micros {
    let millis = (id.len() == 32)
        .then(|| u64::from_str_radix(id.get(..12)?, 16).ok())
        .flatten();
    match millis.map(|ms| (ms as Micros).saturating_mul(1_000)) {
        Some(t)
            if t <= served_at && served_at - t <= reprise_trainer::served_log::ID_SLACK_MICROS =>
        {
            t
        }
        _ => served_at,
    }
}

/// A verdict on a served item: a feedback event with `engaged` set.
#[derive(Debug, Clone, Copy)]
pub struct Verdict<'a> {
    pub request_id: &'a str,
    pub item_id: &'a str,
    pub at: Micros,
    pub engaged: bool,
}

/// The counter deltas of storing `verdicts` (in this order, after what the
/// store holds): for each served item whose label they change, −1 on the
/// old label's count and +1 on the new one's, for the experiment that
/// served it: the definition among `experiments` (tallied definitions, all
/// of them) that routed its request, if the item's arm and model are one of
/// its arms. The caller holds the items' feedback lock until the rows are
/// written.
pub fn verdict_deltas(
    store: &FeatureStore,
    experiments: &[Experiment],
    verdicts: &[Verdict<'_>],
) -> Result<Vec<(String, i64)>, ActorError> {
    if experiments.is_empty() || verdicts.is_empty() {
        return Ok(Vec::new());
    }
    let registry = store.registry();
    let (Some(served_view), Some(feedback_view)) =
        (registry.view(SERVED_VIEW), registry.view(FEEDBACK_VIEW))
    else {
        return Ok(Vec::new());
    };
    let Some(engaged_slot) = feedback_view.feature_index("engaged") else {
        return Ok(Vec::new());
    };
    // Distinct items, in first-seen order.
    let mut items: Vec<(&str, &str)> = Vec::new();
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    for v in verdicts {
        index.entry((v.request_id, v.item_id)).or_insert_with(|| {
            items.push((v.request_id, v.item_id));
            items.len() - 1
        });
    }
    // Which arm and model served each item, and when.
    let keys = &served_view.join_keys;
    let entities: Vec<Map<String, serde_json::Value>> = items
        .iter()
        .map(|(request, item)| {
            let mut entity = Map::new();
            entity.insert(keys[0].clone(), json!(request));
            entity.insert(keys[1].clone(), json!(item));
            entity
        })
        .collect();
    let refs = [
        format!("{SERVED_VIEW}:arm"),
        format!("{SERVED_VIEW}:model_version"),
    ];
    let served = store.online_features(&refs, &entities)?.rows;
    let definitions: Vec<(Experiment, Micros)> = experiments
        .iter()
        .filter_map(|e| Some((e.clone(), parse_rfc3339(&e.defined_at)?)))
        .collect();
    let mut tallies: Vec<Option<(Tally, String)>> = Vec::with_capacity(items.len());
    for ((request, _), row) in items.iter().zip(&served) {
        let (Some(Value::String(arm)), Some(Value::String(model)), Some(served_at)) =
            (&row.values[0], &row.values[1], row.event_timestamps[0])
        else {
            tallies.push(None);
            continue;
        };
        // The tally its impressions went to: the routing definition's, if
        // it has this arm and model.
        let experiment = routing_at(&definitions, routed_at(request, served_at)).filter(|e| {
            e.arms
                .iter()
                .any(|a| &a.name == arm && &a.model_version == model)
        });
        tallies.push(experiment.map(|e| (Tally::of(e), arm.clone())));
    }
    // Each tallied item's label before: its last verdict in key order
    // (event time, then write order).
    let mut labels: Vec<Option<(Micros, bool)>> = vec![None; items.len()];
    let version = store.version();
    for (i, (request, item)) in items.iter().enumerate() {
        if tallies[i].is_none() {
            continue;
        }
        let rows = match store.history_rows(FEEDBACK_VIEW, version, &[request, item]) {
            Ok(rows) => rows,
            Err(StoreError::UnknownView { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        for row in rows {
            let row = row?;
            if row.keys.len() != 2 || row.keys[0] != *request || row.keys[1] != *item {
                break;
            }
            if let Some(Some(Value::Bool(engaged))) = row.values.get(engaged_slot) {
                labels[i] = Some((row.event_ts, *engaged));
            }
        }
    }
    let before = labels.clone();
    // The new rows come after every stored one of the same event time.
    for v in verdicts {
        let i = index[&(v.request_id, v.item_id)];
        if labels[i].is_none_or(|(at, _)| v.at >= at) {
            labels[i] = Some((v.at, v.engaged));
        }
    }
    let mut deltas: HashMap<String, i64> = HashMap::new();
    let count = |label: Option<(Micros, bool)>| match label {
        Some((_, true)) => Some(Count::Plays),
        Some((_, false)) => Some(Count::Skips),
        None => None,
    };
    for (i, tally) in tallies.iter().enumerate() {
        let Some((tally, arm)) = tally else { continue };
        let (old, new) = (count(before[i]), count(labels[i]));
        if old == new {
            continue;
        }
        if let Some(old) = old {
            *deltas.entry(tally.arm(arm, old)).or_default() -= 1;
        }
        if let Some(new) = new {
            *deltas.entry(tally.arm(arm, new)).or_default() += 1;
        }
    }
    let mut deltas: Vec<(String, i64)> = deltas.into_iter().filter(|(_, d)| *d != 0).collect();
    deltas.sort();
    Ok(deltas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::{registry, scan_counts, Arm};
    use reprise_store::time::{format_rfc3339, MICROS_PER_SECOND};

    /// A deterministic stream of numbers below `n`.
    struct Draws(u64);

    impl Draws {
        fn below(&mut self, n: u64) -> u64 {
            self.0 += 1;
            xxhash_rust::xxh3::xxh3_64(&self.0.to_be_bytes()) % n
        }
    }

    /// Random serves and feedback batches (repeats, relabels, out-of-order
    /// times, unserved items, items served before the definition or by a
    /// model outside it): the tallies equal a scan of the log.
    #[test]
    fn tallies_equal_a_scan_of_the_served_log_and_feedback() {
        let (store, clock) = crate::test_store::with_system_views(1_000 * MICROS_PER_SECOND);
        let experiment = |active| Experiment {
            name: "home".into(),
            arms: vec![
                Arm {
                    name: "a".into(),
                    model_version: "ranker-1".into(),
                    traffic: 0.5,
                },
                Arm {
                    name: "b".into(),
                    model_version: "ranker-2".into(),
                    traffic: 0.5,
                },
            ],
            salt: "s".into(),
            active,
            defined_at: String::new(),
        };
        let mut draws = Draws(7);
        let mut served: Vec<(String, String)> = Vec::new();
        let serve = |store: &FeatureStore,
                     draws: &mut Draws,
                     served: &mut Vec<(String, String)>,
                     tally: Option<&Tally>,
                     request: usize| {
            let (arm, model) = match draws.below(5) {
                0 => ("a", "ranker-9"), // a model outside the experiment
                1 | 2 => ("a", "ranker-1"),
                _ => ("b", "ranker-2"),
            };
            let request_id = format!("r{request:04}");
            let now = format_rfc3339(store.clock().now());
            let rows: Vec<serde_json::Value> = (0..1 + draws.below(4))
                .map(|i| {
                    let item = format!("i{}", draws.below(30) * 10 + i);
                    served.push((request_id.clone(), item.clone()));
                    json!({"request_id": request_id, "item_id": item, "event_timestamp": now,
                           "arm": arm, "model_version": model})
                })
                .collect();
            let counters: Vec<(String, i64)> = tally
                .filter(|_| model != "ranker-9")
                .map(|t| (t.arm(arm, Count::Impressions), rows.len() as i64))
                .into_iter()
                .collect();
            store
                .push_all_counting(&[(SERVED_VIEW, &rows)], false, &counters)
                .unwrap();
        };
        for request in 0..20 {
            serve(&store, &mut draws, &mut served, None, request);
        }
        clock.set(2_000 * MICROS_PER_SECOND);
        registry::define(&store, &experiment(true)).unwrap();
        let defined = registry::list(&store).unwrap().pop().unwrap();
        let tallied = tallied(&store, vec![defined.clone()]).unwrap();
        assert_eq!(tallied.len(), 1);
        let tally = Tally::of(&defined);
        clock.set(2_001 * MICROS_PER_SECOND);
        for request in 20..120 {
            serve(&store, &mut draws, &mut served, Some(&tally), request);
        }
        for _ in 0..400 {
            let batch: Vec<(String, String, Micros, bool)> = (0..1 + draws.below(4))
                .map(|_| {
                    let (request, item) = if draws.below(10) == 0 {
                        ("r0050".to_owned(), "never-served".to_owned())
                    } else {
                        served[draws.below(served.len() as u64) as usize].clone()
                    };
                    let at = (3_000 + draws.below(20) as i64) * MICROS_PER_SECOND;
                    (request, item, at, draws.below(2) == 0)
                })
                .collect();
            let verdicts: Vec<Verdict<'_>> = batch
                .iter()
                .map(|(request, item, at, engaged)| Verdict {
                    request_id: request,
                    item_id: item,
                    at: *at,
                    engaged: *engaged,
                })
                .collect();
            let deltas = verdict_deltas(&store, &tallied, &verdicts).unwrap();
            let rows: Vec<serde_json::Value> = batch
                .iter()
                .map(|(request, item, at, engaged)| {
                    json!({"request_id": request, "item_id": item, "user_id": "u",
                           "event_timestamp": format_rfc3339(*at), "type": "play", "engaged": engaged})
                })
                .collect();
            store
                .push_all_counting(&[(FEEDBACK_VIEW, &rows)], false, &deltas)
                .unwrap();
        }
        let scanned = scan_counts(&store, &defined).unwrap();
        let counted: Vec<(u64, u64, u64)> = defined
            .arms
            .iter()
            .map(|arm| tally.read(&store, &arm.name).unwrap())
            .collect();
        assert_eq!(counted, scanned);
        assert!(
            scanned.iter().all(|(i, p, s)| *i > 0 && *p > 0 && *s > 0),
            "{scanned:?}"
        );
        assert!(scanned.iter().all(|(i, p, s)| p + s <= *i));

        // A redefinition starts a tally of its own from zero.
        clock.set(4_000 * MICROS_PER_SECOND);
        registry::define(&store, &experiment(true)).unwrap();
        let redefined = registry::list(&store).unwrap().pop().unwrap();
        assert_ne!(redefined.defined_at, defined.defined_at);
        assert_eq!(Tally::of(&redefined).read(&store, "a").unwrap(), (0, 0, 0));
        assert_eq!(scan_counts(&store, &redefined).unwrap(), vec![(0, 0, 0); 2]);
    }

    #[test]
    fn counter_names_keep_definitions_and_arms_apart() {
        let a = Tally::new("home", "2026-11-01T00:00:00Z");
        let b = Tally::new("home", "2026-11-02T00:00:00Z");
        assert_ne!(a.defined(), b.defined());
        assert_ne!(a.arm("x/y", Count::Plays), a.arm("x", Count::Plays));
        assert_ne!(a.arm("x", Count::Plays), a.arm("x", Count::Skips));
        assert!(a
            .arm("x", Count::Impressions)
            .starts_with("experiment\u{1f}home\u{1f}"));
    }
}
