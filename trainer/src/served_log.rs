//! Log-and-wait training data: every served item (the `served_item` view:
//! request, user, item, position, model version, arm and the exact feature
//! vector the model saw) joined with the feedback on it (the `feedback`
//! view) by `(request_id, item_id)`. The label is the last engaged/skip
//! verdict; items without feedback have none.

use std::collections::HashMap;

use reprise_store::time::format_rfc3339;
use reprise_store::{FeatureStore, HistoryRow, StoreError, Value};
use serde::Serialize;

use crate::error::Result;

pub const SERVED_VIEW: &str = "served_item";
pub const FEEDBACK_VIEW: &str = "feedback";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServedExample {
    pub request_id: String,
    pub item_id: String,
    pub user_id: Option<String>,
    pub served_at: String,
    pub position: Option<i64>,
    pub model_version: Option<String>,
    pub arm: Option<String>,
    pub source: Option<String>,
    pub score: Option<f64>,
    pub features: Vec<f32>,
    /// Engaged (a long enough play, a click, a like) or not (a skip or a
    /// short play); `None` without feedback.
    pub label: Option<bool>,
    /// Every feedback event type received for the item, in time order.
    pub events: Vec<String>,
}

fn rows(store: &FeatureStore, view: &str, version: u64) -> Result<Vec<HistoryRow>> {
    match store.view_history(view, version) {
        Ok(rows) => Ok(rows),
        Err(StoreError::UnknownView { .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

fn field<'a>(
    store: &FeatureStore,
    view: &str,
    row: &'a HistoryRow,
    name: &str,
) -> Option<&'a Value> {
    let registry = store.registry();
    let index = registry.view(view)?.feature_index(name)?;
    row.values.get(index)?.as_ref()
}

fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The served items with their labels, in serving order, at store version
/// `version`.
pub fn served_examples(store: &FeatureStore, version: u64) -> Result<Vec<ServedExample>> {
    let mut feedback: HashMap<(String, String), (Option<bool>, Vec<String>)> = HashMap::new();
    let mut events = rows(store, FEEDBACK_VIEW, version)?;
    events.sort_by_key(|r| r.event_ts);
    for row in &events {
        let [request, item] = row.keys.as_slice() else {
            continue;
        };
        let entry = feedback.entry((request.clone(), item.clone())).or_default();
        if let Some(Value::Bool(engaged)) = field(store, FEEDBACK_VIEW, row, "engaged") {
            entry.0 = Some(*engaged);
        }
        if let Some(kind) = text(field(store, FEEDBACK_VIEW, row, "type")) {
            entry.1.push(kind);
        }
    }
    let mut served = rows(store, SERVED_VIEW, version)?;
    served.sort_by(|a, b| (a.event_ts, &a.keys).cmp(&(b.event_ts, &b.keys)));
    Ok(served
        .iter()
        .filter_map(|row| {
            let [request, item] = row.keys.as_slice() else {
                return None;
            };
            let (label, events) = feedback
                .get(&(request.clone(), item.clone()))
                .cloned()
                .unwrap_or_default();
            let get = |name: &str| field(store, SERVED_VIEW, row, name);
            Some(ServedExample {
                request_id: request.clone(),
                item_id: item.clone(),
                user_id: text(get("user_id")),
                served_at: format_rfc3339(row.event_ts),
                position: match get("position") {
                    Some(Value::Int64(p)) => Some(*p),
                    _ => None,
                },
                model_version: text(get("model_version")),
                arm: text(get("arm")),
                source: text(get("source")),
                score: match get("score") {
                    Some(Value::Float64(s)) => Some(*s),
                    _ => None,
                },
                features: match get("features") {
                    Some(Value::FloatVector(v)) => v.clone(),
                    _ => Vec::new(),
                },
                label,
                events,
            })
        })
        .collect())
}
