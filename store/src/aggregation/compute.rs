//! The one implementation of an aggregate: entity (group key), time `at`,
//! store version, cutoff. Online reads, snapshots and everything built on
//! them (served-feature log, training data, validation) call [`aggregate`].
//!
//! Value at `at` = the aggregate of the group's source events with
//! `at - window < event_timestamp <= at`, store version `<= max_version`
//! and, with the created cutoff, `created_timestamp <= at`. Empty window:
//! `count` and `sum` are 0 (a zero vector when bucketed), the other ops
//! null. Exact: the group's events are read from the aggregation index
//! back to the widest window's edge ([`load_group`]), decoded once, and
//! every read at a time in the loaded range aggregates them in memory
//! ([`aggregate_loaded`]): a snapshot loads each group once per chunk of
//! entity rows, however many rows ask for it.

use std::collections::HashSet;

use super::spec::{AggregationSpec, Column, Op};
use crate::codec::{self, HistoryPosition};
use crate::engine::Cursor;
use crate::error::Result;
use crate::row::RawRow;
use crate::snapshot::Cutoff;
use crate::time::Micros;
use crate::types::Value;

/// One stored event of a group, decoded: its position and its source
/// features (derived ones computed).
#[derive(Debug, Clone)]
pub struct GroupEvent {
    pub event_ts: Micros,
    pub created_ts: Micros,
    pub values: Vec<Option<Value>>,
}

/// Reads the events of `group_key` that a read at any time in `from..=to`
/// can see: event time `<= to` and, unless the widest window is all time,
/// `> from - horizon`; store version `<= max_version`. Oldest first (key
/// order: event time, store version, sequence).
pub fn load_group(
    cursor: &mut dyn Cursor,
    spec: &AggregationSpec,
    group_key: &[u8],
    from: Micros,
    to: Micros,
    max_version: u64,
) -> Result<Vec<GroupEvent>> {
    let prefix = codec::agg_index_prefix(spec.source.id, spec.group_mask(), group_key);
    let source_features = spec.source.features.len();
    let needs_compute = spec.source.features.iter().any(|f| f.is_derived());
    let mut events = Vec::new();
    cursor.seek_for_prev(&codec::history_key(&prefix, HistoryPosition::last_at(to)));
    while let Some((key, value)) = cursor.entry() {
        let Some(position) = codec::history_position(&prefix, key) else {
            break;
        };
        if spec.horizon != 0 && position.event_ts <= from.saturating_sub(spec.horizon) {
            break;
        }
        if position.store_version <= max_version {
            let row = RawRow::decode(value, source_features)?;
            let values = if needs_compute {
                spec.source.compute(&row)
            } else {
                row.values
            };
            events.push(GroupEvent {
                event_ts: position.event_ts,
                created_ts: row.created_ts,
                values,
            });
        }
        cursor.prev();
    }
    events.reverse();
    Ok(events)
}

/// The aggregates of `spec` at `at` over a group's loaded events (from
/// [`load_group`] with `from <= at <= to`): a row of the aggregation view
/// whose aggregated features hold their values (derived ones are left to
/// `FeatureView::compute`) and whose event time is `at`.
pub fn aggregate_loaded(
    spec: &AggregationSpec,
    feature_count: usize,
    events: &[GroupEvent],
    at: Micros,
    store_version: u64,
    cutoff: Cutoff,
) -> RawRow {
    let mut accumulators: Vec<Accumulator> = spec.columns.iter().map(Accumulator::new).collect();
    let end = events.partition_point(|e| e.event_ts <= at);
    for event in events[..end].iter().rev() {
        if spec.horizon != 0 && event.event_ts <= at.saturating_sub(spec.horizon) {
            break;
        }
        if cutoff == Cutoff::Created && event.created_ts > at {
            continue;
        }
        for (column, accumulator) in spec.columns.iter().zip(&mut accumulators) {
            if column.covers(event.event_ts, at) {
                accumulator.add(column, &event.values);
            }
        }
    }
    let mut values: Vec<Option<Value>> =
        accumulators.into_iter().map(Accumulator::finish).collect();
    values.resize(feature_count, None);
    RawRow {
        event_ts: at,
        created_ts: at,
        store_version,
        values,
    }
}

/// The aggregates of `spec` for the group `group_key` (an entity key of
/// the grouping entities) at `at`, as [`aggregate_loaded`] computes them.
pub fn aggregate(
    cursor: &mut dyn Cursor,
    spec: &AggregationSpec,
    feature_count: usize,
    group_key: &[u8],
    at: Micros,
    max_version: u64,
    cutoff: Cutoff,
) -> Result<RawRow> {
    let events = load_group(cursor, spec, group_key, at, at, max_version)?;
    Ok(aggregate_loaded(
        spec,
        feature_count,
        &events,
        at,
        max_version,
        cutoff,
    ))
}

/// An aggregated input as a number: int64, float64, or a bool as 0 or 1.
fn numeric(value: &Value) -> Option<f64> {
    match value {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        other => other.as_f64(),
    }
}

/// The running state of one column. Events arrive newest first.
enum Accumulator {
    Count(i64),
    Sum(f64),
    Buckets(Vec<f64>),
    Mean { sum: f64, n: u64 },
    Min(Option<f64>),
    Max(Option<f64>),
    Last(Option<Value>),
    Distinct(HashSet<String>),
}

impl Accumulator {
    fn new(column: &Column) -> Self {
        if let Some(buckets) = &column.buckets {
            return Accumulator::Buckets(vec![0.0; buckets.len]);
        }
        match column.op {
            Op::Count => Accumulator::Count(0),
            Op::Sum => Accumulator::Sum(0.0),
            Op::Mean => Accumulator::Mean { sum: 0.0, n: 0 },
            Op::Min => Accumulator::Min(None),
            Op::Max => Accumulator::Max(None),
            Op::Last => Accumulator::Last(None),
            Op::DistinctCount => Accumulator::Distinct(HashSet::new()),
        }
    }

    fn add(&mut self, column: &Column, event: &[Option<Value>]) {
        if let Some(filter) = &column.filter {
            if !filter.passes(event[filter.feature].as_ref()) {
                return;
            }
        }
        let input = column.input.and_then(|i| event[i].as_ref());
        match self {
            Accumulator::Count(n) => *n += 1,
            Accumulator::Sum(sum) => {
                if let Some(x) = input.and_then(numeric) {
                    *sum += x;
                }
            }
            Accumulator::Buckets(counts) => {
                let buckets = column.buckets.as_ref().expect("bucketed column");
                let amount = match column.op {
                    Op::Count => 1.0,
                    _ => match input.and_then(numeric) {
                        Some(x) => x,
                        None => return,
                    },
                };
                let mut credit = |word: &str| {
                    if let Some(&i) = buckets.positions.get(word) {
                        counts[i] += amount;
                    }
                };
                match event[buckets.column].as_ref() {
                    Some(Value::String(word)) => credit(word),
                    Some(Value::StringList(words)) => words.iter().for_each(|w| credit(w)),
                    _ => {}
                }
            }
            Accumulator::Mean { sum, n } => {
                if let Some(x) = input.and_then(numeric) {
                    *sum += x;
                    *n += 1;
                }
            }
            Accumulator::Min(min) => {
                if let Some(x) = input.and_then(numeric) {
                    *min = Some(min.map_or(x, |m| m.min(x)));
                }
            }
            Accumulator::Max(max) => {
                if let Some(x) = input.and_then(numeric) {
                    *max = Some(max.map_or(x, |m| m.max(x)));
                }
            }
            Accumulator::Last(last) => {
                // The first event seen with a value is the newest.
                if last.is_none() {
                    *last = input.cloned();
                }
            }
            Accumulator::Distinct(seen) => {
                let key = match input {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Int64(i)) => i.to_string(),
                    Some(Value::Bool(b)) => b.to_string(),
                    _ => return,
                };
                seen.insert(key);
            }
        }
    }

    fn finish(self) -> Option<Value> {
        match self {
            Accumulator::Count(n) => Some(Value::Int64(n)),
            Accumulator::Sum(sum) => Some(Value::Float64(sum)),
            Accumulator::Buckets(values) => Some(Value::FloatVector(
                values.into_iter().map(|v| v as f32).collect(),
            )),
            Accumulator::Mean { n: 0, .. } => None,
            Accumulator::Mean { sum, n } => Some(Value::Float64(sum / n as f64)),
            Accumulator::Min(x) | Accumulator::Max(x) => x.map(Value::Float64),
            Accumulator::Last(value) => value,
            Accumulator::Distinct(seen) if seen.is_empty() => None,
            Accumulator::Distinct(seen) => Some(Value::Int64(seen.len() as i64)),
        }
    }
}
