//! Log-and-wait training data: every served item (the `served_item` view:
//! request, user, item, position, model version, arm and the exact feature
//! vector the model saw) joined with the feedback on it (the `feedback`
//! view) by `(request_id, item_id)`. The label is the last engaged/skip
//! verdict; items without feedback have none.

use reprise_store::codec;
use reprise_store::time::{format_rfc3339, Micros};
use reprise_store::{FeatureStore, StoreError, Value};
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

/// Where each field sits in the two views (looked up once).
struct Slots {
    served: [Option<usize>; 7],
    engaged: Option<usize>,
    kind: Option<usize>,
}

impl Slots {
    fn new(store: &FeatureStore) -> Self {
        let registry = store.registry();
        let slot = |view: &str, name: &str| registry.view(view)?.feature_index(name);
        Slots {
            served: [
                "user_id",
                "position",
                "model_version",
                "arm",
                "source",
                "score",
                "features",
            ]
            .map(|name| slot(SERVED_VIEW, name)),
            engaged: slot(FEEDBACK_VIEW, "engaged"),
            kind: slot(FEEDBACK_VIEW, "type"),
        }
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The lowest request id of a request served at or after `since`: request
/// ids are UUIDv7 in simple form, whose first 12 hex digits are the Unix
/// time in milliseconds.
pub fn first_request_id_at(since: Micros) -> String {
    let millis = since.div_euclid(1_000).max(0) as u64;
    format!("{:012x}{}", millis & 0xffff_ffff_ffff, "0".repeat(20))
}

/// The service-state record of when request ids became time-ordered
/// (UUIDv7) in this store: saved once by the server at its first start with
/// them, as Unix microseconds (8 bytes, big-endian).
pub const TIME_ORDERED_IDS_STATE: &str = "request_ids_time_ordered_since";

/// How long before a window's start its key range begins: a request's id
/// is taken when it starts and its rows are stamped when they are logged
/// (the request timeout bounds the gap).
pub const ID_SLACK_MICROS: Micros = 10 * 60 * 1_000_000;

/// Records, unless already recorded, that request ids are time-ordered
/// from now on.
pub fn mark_time_ordered_ids(store: &FeatureStore) -> Result<()> {
    if store.service_state(TIME_ORDERED_IDS_STATE)?.is_none() {
        let now = store.clock().now();
        store.save_service_state(TIME_ORDERED_IDS_STATE, now.to_be_bytes().to_vec())?;
    }
    Ok(())
}

/// Where a read of the served log from `since` starts: the first request id
/// of `since` minus the slack, or the beginning when the window reaches
/// back before request ids were time-ordered (older random ids sort
/// anywhere).
pub fn window_start(store: &FeatureStore, since: Micros) -> Result<String> {
    let marked = store
        .service_state(TIME_ORDERED_IDS_STATE)?
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
        .map(i64::from_be_bytes);
    Ok(match marked {
        Some(marked) if since.saturating_sub(ID_SLACK_MICROS) >= marked => {
            first_request_id_at(since - ID_SLACK_MICROS)
        }
        _ => String::new(),
    })
}

/// Rows of `view` from request `from`, or none when the view is unknown.
fn rows_from<'a>(
    store: &'a FeatureStore,
    view: &str,
    version: u64,
    from: &str,
) -> Result<Option<reprise_store::history::HistoryRows<'a>>> {
    let start: Vec<&str> = if from.is_empty() {
        Vec::new()
    } else {
        vec![from]
    };
    match store.history_rows(view, version, &start) {
        Ok(rows) => Ok(Some(rows)),
        Err(StoreError::UnknownView { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Every served item with its label, at store version `version`, served at
/// or after `since` (all when `None`), in key order — (request id, item):
/// serving order for the time-ordered request ids. Both views are keyed by
/// (request id, item id), so this is one merge of two cursors: memory stays
/// flat and, with `since`, the cost follows the window (plus a slack), not
/// the log, once request ids are time-ordered ([`window_start`]).
pub fn for_each_served(
    store: &FeatureStore,
    version: u64,
    since: Option<Micros>,
    mut visit: impl FnMut(ServedExample) -> Result<()>,
) -> Result<()> {
    let from = match since {
        Some(since) => window_start(store, since)?,
        None => String::new(),
    };
    let Some(served) = rows_from(store, SERVED_VIEW, version, &from)? else {
        return Ok(());
    };
    let mut feedback = rows_from(store, FEEDBACK_VIEW, version, &from)?.map(|rows| rows.peekable());
    let slots = Slots::new(store);
    for row in served {
        let row = row?;
        if since.is_some_and(|t| row.event_ts < t) {
            continue;
        }
        let key = codec::entity_key(&row.keys);
        // Feedback rows sort by the same keys; skip those before this item
        // (feedback on items never served), take this item's (in time order).
        let mut label = None;
        let mut events = Vec::new();
        if let Some(feedback) = feedback.as_mut() {
            loop {
                let next_key = match feedback.peek() {
                    None => break,
                    Some(Err(_)) => {
                        return Err(feedback.next().expect("peeked").unwrap_err().into())
                    }
                    Some(Ok(next)) => codec::entity_key(&next.keys),
                };
                if next_key > key {
                    break;
                }
                let event = feedback.next().expect("peeked")?;
                if next_key < key {
                    continue;
                }
                if let Some(Some(Value::Bool(engaged))) = slots.engaged.map(|i| &event.values[i]) {
                    label = Some(*engaged);
                }
                if let Some(kind) = text(slots.kind.and_then(|i| event.values[i].as_ref())) {
                    events.push(kind);
                }
            }
        }
        let [request, item] = <[String; 2]>::try_from(row.keys).map_err(|keys| {
            StoreError::Corrupt(format!("{SERVED_VIEW} row with {} keys", keys.len()))
        })?;
        let mut values = row.values;
        let mut take = |slot: usize| slots.served[slot].and_then(|i| values.get_mut(i)?.take());
        let user_id = text(take(0).as_ref());
        let position = match take(1) {
            Some(Value::Int64(p)) => Some(p),
            _ => None,
        };
        let model_version = text(take(2).as_ref());
        let arm = text(take(3).as_ref());
        let source = text(take(4).as_ref());
        let score = match take(5) {
            Some(Value::Float64(s)) => Some(s),
            _ => None,
        };
        let features = match take(6) {
            Some(Value::FloatVector(v)) => v,
            _ => Vec::new(),
        };
        visit(ServedExample {
            request_id: request,
            item_id: item,
            user_id,
            served_at: format_rfc3339(row.event_ts),
            position,
            model_version,
            arm,
            source,
            score,
            features,
            label,
            events,
        })?;
    }
    Ok(())
}

/// The served items with their labels, in serving order (time, then
/// request and item), at store version `version`. Holds the whole log in
/// memory: for a window use [`for_each_served`].
pub fn served_examples(store: &FeatureStore, version: u64) -> Result<Vec<ServedExample>> {
    let mut out: Vec<(Micros, ServedExample)> = Vec::new();
    for_each_served(store, version, None, |example| {
        let at = reprise_store::time::parse_rfc3339(&example.served_at).unwrap_or(Micros::MIN);
        out.push((at, example));
        Ok(())
    })?;
    out.sort_by(|a, b| {
        (a.0, &a.1.request_id, &a.1.item_id).cmp(&(b.0, &b.1.request_id, &b.1.item_id))
    });
    Ok(out.into_iter().map(|(_, e)| e).collect())
}
