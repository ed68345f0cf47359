//! Alerts, kept in the `alert` view (migrations/0008_validation.toml): one
//! row per state change, the newest row is the alert's state.

use std::collections::BTreeMap;

use reprise_store::time::format_rfc3339;
use reprise_store::{FeatureStore, StoreError, Value};
use serde::Serialize;
use serde_json::json;

use crate::error::ActorError;

pub const ALERT_VIEW: &str = "alert";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub id: String,
    pub check: String,
    pub view: String,
    pub feature: String,
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    pub blocking: bool,
    /// `open` or `acknowledged`.
    pub status: String,
    /// Every distance of the comparison, as JSON.
    pub detail: String,
    pub raised_at: String,
    pub updated_at: String,
}

impl Alert {
    pub fn is_open(&self) -> bool {
        self.status == "open"
    }
}

fn write(store: &FeatureStore, alert: &Alert) -> Result<(), ActorError> {
    let row = json!({"alert_id": alert.id, "event_timestamp": format_rfc3339(store.clock().now()),
        "check": alert.check, "view": alert.view, "feature": alert.feature, "metric": alert.metric,
        "value": alert.value, "threshold": alert.threshold, "blocking": alert.blocking,
        "status": alert.status, "detail": alert.detail});
    store.push(ALERT_VIEW, &[row], false)?;
    Ok(())
}

/// Stores a new open alert and logs it. Returns its id.
#[allow(clippy::too_many_arguments)]
pub fn raise(
    store: &FeatureStore,
    check: &str,
    view: &str,
    feature: &str,
    metric: &str,
    value: f64,
    threshold: f64,
    blocking: bool,
    detail: String,
) -> Result<Alert, ActorError> {
    let now = format_rfc3339(store.clock().now());
    let alert = Alert {
        id: uuid::Uuid::new_v4().simple().to_string(),
        check: check.into(),
        view: view.into(),
        feature: feature.into(),
        metric: metric.into(),
        value,
        threshold,
        blocking,
        status: "open".into(),
        detail,
        raised_at: now.clone(),
        updated_at: now,
    };
    write(store, &alert)?;
    tracing::warn!(id = %alert.id, check, view, feature, metric, value, threshold, blocking, "alert raised");
    Ok(alert)
}

/// Every alert, newest state each, oldest first.
pub fn list(store: &FeatureStore) -> Result<Vec<Alert>, ActorError> {
    let rows = match store.view_history(ALERT_VIEW, store.version()) {
        Ok(rows) => rows,
        Err(StoreError::UnknownView { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let registry = store.registry();
    let Some(view) = registry.view(ALERT_VIEW) else {
        return Ok(Vec::new());
    };
    let slot = |name: &str| view.feature_index(name);
    let mut alerts: BTreeMap<String, Alert> = BTreeMap::new();
    for row in rows {
        let Some(id) = row.keys.first().cloned() else {
            continue;
        };
        let get = |name: &str| slot(name).and_then(|i| row.values.get(i).cloned().flatten());
        let text = |name: &str| match get(name) {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        let number = |name: &str| match get(name) {
            Some(Value::Float64(v)) => v,
            _ => f64::NAN,
        };
        let at = format_rfc3339(row.event_ts);
        let raised_at = alerts
            .get(&id)
            .map_or_else(|| at.clone(), |a| a.raised_at.clone());
        alerts.insert(
            id.clone(),
            Alert {
                id,
                check: text("check"),
                view: text("view"),
                feature: text("feature"),
                metric: text("metric"),
                value: number("value"),
                threshold: number("threshold"),
                blocking: matches!(get("blocking"), Some(Value::Bool(true))),
                status: text("status"),
                detail: text("detail"),
                raised_at,
                updated_at: at,
            },
        );
    }
    let mut out: Vec<Alert> = alerts.into_values().collect();
    out.sort_by(|a, b| (&a.raised_at, &a.id).cmp(&(&b.raised_at, &b.id)));
    Ok(out)
}

/// Acknowledges alert `id` (no change when already acknowledged).
pub fn acknowledge(store: &FeatureStore, id: &str) -> Result<Alert, ActorError> {
    let mut alert = list(store)?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| ActorError::UnknownAlert(id.to_owned()))?;
    if alert.is_open() {
        alert.status = "acknowledged".into();
        alert.updated_at = format_rfc3339(store.clock().now());
        write(store, &alert)?;
        tracing::info!(id, "alert acknowledged");
    }
    Ok(alert)
}

/// The open blocking alerts: while there is one, no model is promoted.
pub fn open_blocking(store: &FeatureStore) -> Result<Vec<Alert>, ActorError> {
    Ok(list(store)?
        .into_iter()
        .filter(|a| a.is_open() && a.blocking)
        .collect())
}
