//! A replica's served-feature log on its way to the leader: the replica
//! ranks, the leader writes the log (it owns the store), so feedback on an
//! item a replica served finds its row. JSON cannot carry a non-finite
//! number, so a missing model input (NaN) travels as `null` and comes back
//! as NaN; a non-finite score travels as `null` and is logged as absent,
//! as on the leader.

use reprise_store::time::Micros;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::ranking::ServedLog;
use super::request::{RequestContext, ScoredItem};
use crate::error::ActorError;

/// The sources a ranked item may name.
const SOURCES: [&str; 5] = ["history", "ann", "popular", "trending", "segment"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardedLog {
    pub request_id: String,
    pub user_id: String,
    pub country: String,
    pub device: String,
    pub hour: i64,
    pub context: Map<String, Json>,
    pub model_version: String,
    pub arm: String,
    pub items: Vec<ForwardedItem>,
    pub features: Vec<Vec<Option<f64>>>,
    pub at: Micros,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardedItem {
    pub item_id: String,
    pub score: Option<f64>,
    pub source: String,
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

impl From<&ServedLog> for ForwardedLog {
    fn from(log: &ServedLog) -> Self {
        ForwardedLog {
            request_id: log.request_id.clone(),
            user_id: log.user_id.clone(),
            country: log.context.country.clone(),
            device: log.context.device.clone(),
            hour: log.context.hour,
            context: log.context.raw.clone(),
            model_version: log.model_version.clone(),
            arm: log.arm.clone(),
            items: log
                .items
                .iter()
                .map(|i| ForwardedItem {
                    item_id: i.item_id.clone(),
                    score: finite(i.score),
                    source: i.source.to_owned(),
                })
                .collect(),
            features: log
                .features
                .iter()
                .map(|row| row.iter().map(|v| finite(*v)).collect())
                .collect(),
            at: log.at,
        }
    }
}

impl ForwardedLog {
    /// The log to write, checked: every field a replica fills in.
    pub fn into_served(self) -> Result<ServedLog, ActorError> {
        let invalid = |field: &str, why: &str| ActorError::invalid(field, why);
        if self.request_id.is_empty() {
            return Err(invalid("request_id", "must not be empty"));
        }
        if self.user_id.is_empty() {
            return Err(invalid("user_id", "must not be empty"));
        }
        if self.model_version.is_empty() {
            return Err(invalid("model_version", "must not be empty"));
        }
        if self.features.len() > self.items.len() {
            return Err(invalid("features", "has more rows than items"));
        }
        let items = self
            .items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let source = SOURCES.iter().find(|s| **s == item.source).ok_or_else(|| {
                    ActorError::invalid(
                        format!("items[{i}].source"),
                        format!("`{}` is not one of {}", item.source, SOURCES.join(", ")),
                    )
                })?;
                Ok(ScoredItem {
                    item_id: item.item_id,
                    score: item.score.unwrap_or(f64::NAN),
                    source,
                })
            })
            .collect::<Result<Vec<_>, ActorError>>()?;
        Ok(ServedLog {
            request_id: self.request_id,
            user_id: self.user_id,
            context: RequestContext {
                country: self.country,
                device: self.device,
                hour: self.hour,
                raw: self.context,
            },
            model_version: self.model_version,
            arm: self.arm,
            // Requests in an experiment are the leader's own.
            tally: None,
            items,
            features: self
                .features
                .into_iter()
                .map(|row| row.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
                .collect(),
            at: self.at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> ServedLog {
        ServedLog {
            request_id: "r1".into(),
            user_id: "u1".into(),
            context: RequestContext {
                country: "SE".into(),
                device: "tv".into(),
                hour: 7,
                raw: Map::new(),
            },
            model_version: "ranker-2".into(),
            arm: "control".into(),
            tally: None,
            items: vec![
                ScoredItem {
                    item_id: "i1".into(),
                    score: 0.25,
                    source: "ann",
                },
                ScoredItem {
                    item_id: "i2".into(),
                    score: f64::NAN,
                    source: "history",
                },
            ],
            features: vec![vec![1.5, f64::NAN], vec![-2.0, 0.0]],
            at: 1_700_000_000_000_000,
        }
    }

    #[test]
    fn a_forwarded_log_comes_back_as_it_left_through_json() {
        let wire = serde_json::to_string(&ForwardedLog::from(&log())).unwrap();
        let back = serde_json::from_str::<ForwardedLog>(&wire)
            .unwrap()
            .into_served()
            .unwrap();
        let sent = log();
        assert_eq!(back.request_id, sent.request_id);
        assert_eq!(back.items[0], sent.items[0]);
        assert!(back.items[1].score.is_nan(), "a NaN score stays missing");
        assert_eq!(back.features[0][0], 1.5);
        assert!(
            back.features[0][1].is_nan(),
            "a missing input stays missing"
        );
        assert_eq!(back.features[1], sent.features[1]);
        assert_eq!((back.context.hour, back.at), (7, sent.at));
    }

    #[test]
    fn a_forwarded_log_names_what_it_lacks() {
        let mut wire = ForwardedLog::from(&log());
        wire.items[1].source = "elsewhere".into();
        let err = wire.clone().into_served().unwrap_err().to_string();
        assert!(err.contains("items[1].source"), "{err}");
        wire.items[1].source = "history".into();
        wire.request_id.clear();
        let err = wire.into_served().unwrap_err().to_string();
        assert!(err.contains("request_id"), "{err}");
    }
}
