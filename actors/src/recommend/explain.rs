//! `"explain": true` on a recommendation: per ranked item, the raw values
//! the ranker's declared features read (ref, value, event time, store
//! version; request-context fields as given), the model inputs in order
//! and each input's contribution to the score (log-odds; with the bias
//! they give the served probability through the logistic function).

use reprise_store::time::format_rfc3339;
use serde_json::Value as Json;

use super::catalog::LoadedModel;
use super::ranking::{entity, join_keys, Scored, Shared};
use super::request::RequestContext;
use crate::error::ActorError;

/// The ref prefix under which request-context fields are declared.
const CONTEXT_REF: &str = "request_context";

/// One value the ranker's declared features read for an item.
#[derive(Debug, Clone, PartialEq)]
pub struct RawInput {
    pub reference: String,
    pub value: Option<Json>,
    /// An online read's status (`present`, `not_found`, …), or `request`
    /// for a request-context field.
    pub status: &'static str,
    pub event_timestamp: Option<String>,
    /// The store version the read saw (none for request context).
    pub store_version: Option<u64>,
}

/// One model input: its name, value and contribution in log-odds.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInput {
    pub name: String,
    pub value: f64,
    pub contribution: f64,
}

/// Why an item got its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub raw: Vec<RawInput>,
    pub inputs: Vec<ModelInput>,
    /// The score of an average row, in log-odds.
    pub bias: f64,
}

/// A store value as JSON.
pub(super) fn json_of(value: &reprise_store::Value) -> Json {
    serde_json::to_value(value).unwrap_or(Json::Null)
}

impl Shared {
    /// Explanations of `scored` (ranked for `user` in `context` by
    /// `loaded`), in order: the contributions of the exact inputs each was
    /// scored on, and the raw values of the declared refs from one online
    /// read of every item made now (at the store version it names: equal to
    /// what was scored unless a write landed in between).
    pub fn explain(
        &self,
        loaded: &LoadedModel,
        user: &str,
        context: &RequestContext,
        scored: &[Scored],
    ) -> Result<Vec<Explanation>, ActorError> {
        let _span = tracing::info_span!("recommend.explain", items = scored.len()).entered();
        let model = &loaded.model;
        let refs = &loaded.inputs.refs;
        let read = if refs.is_empty() || scored.is_empty() {
            None
        } else {
            let keys = join_keys(&self.store);
            let entities: Vec<_> = scored
                .iter()
                .map(|s| entity(&keys, user, Some(model.item_id(s.item))))
                .collect();
            Some(self.store.online_features(refs, &entities)?)
        };
        let context_values = loaded.inputs.context_values(|name| context.get(name));
        Ok(scored
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut raw: Vec<RawInput> = Vec::new();
                if let Some(read) = &read {
                    let row = &read.rows[i];
                    for (r, reference) in refs.iter().enumerate() {
                        raw.push(RawInput {
                            reference: reference.clone(),
                            value: row.values[r].as_ref().map(json_of),
                            status: row.statuses[r].as_str(),
                            event_timestamp: row.event_timestamps[r].map(format_rfc3339),
                            store_version: Some(read.store_version),
                        });
                    }
                }
                for (field, value) in loaded.inputs.context.iter().zip(&context_values) {
                    raw.push(RawInput {
                        reference: format!("{CONTEXT_REF}:{}", field.name),
                        value: value.as_ref().map(json_of),
                        status: "request",
                        event_timestamp: None,
                        store_version: None,
                    });
                }
                let (contributions, bias) = model.contributions(&s.features);
                let inputs = model
                    .features
                    .iter()
                    .zip(&s.features)
                    .zip(contributions)
                    .map(|((name, value), contribution)| ModelInput {
                        name: name.clone(),
                        value: *value,
                        contribution,
                    })
                    .collect();
                Explanation { raw, inputs, bias }
            })
            .collect())
    }
}
