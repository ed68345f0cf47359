//! The ranker learned from the served-feature log instead of a snapshot:
//! the exact vectors the serving models scored, labelled by the feedback on
//! them (log-and-wait). Only vectors of rankers with the same feature names
//! as the candidate's are used.

use std::collections::HashMap;

use ndarray::Array2;
use prost::Message;
use reprise_models::pipeline::{PipelineParams, RankerTraining};
use reprise_models::ranker::Ranker;
use reprise_store::proto::TwoStageModel;
use reprise_store::FeatureStore;

use crate::error::{Result, TrainError};
use crate::served_log::served_examples;

/// Labelled examples of each class needed before the log is trained on.
pub const MIN_PER_CLASS: usize = 10;

/// The ranker's feature names of `version` (none when it is not a ranker).
fn feature_names(store: &FeatureStore, version: &str) -> Vec<String> {
    store
        .load_model(version)
        .ok()
        .and_then(|r| TwoStageModel::decode(r.payload.as_slice()).ok())
        .and_then(|m| m.ranker)
        .map(|l| l.features)
        .unwrap_or_default()
}

/// Fits the ranker on the labelled served items at `store_version` whose
/// vectors follow `features`.
pub fn fit_ranker(
    store: &FeatureStore,
    store_version: u64,
    features: &[String],
    params: &PipelineParams,
) -> Result<(Ranker, RankerTraining)> {
    let mut layouts: HashMap<String, bool> = HashMap::new();
    let mut rows: Vec<Vec<f32>> = Vec::new();
    let mut labels: Vec<bool> = Vec::new();
    for example in served_examples(store, store_version)? {
        let (Some(label), Some(model)) = (example.label, example.model_version.as_deref()) else {
            continue;
        };
        let same = *layouts
            .entry(model.to_owned())
            .or_insert_with(|| feature_names(store, model) == features);
        if same && example.features.len() == features.len() {
            rows.push(example.features);
            labels.push(label);
        }
    }
    let positives = labels.iter().filter(|l| **l).count();
    let negatives = labels.len() - positives;
    if positives < MIN_PER_CLASS || negatives < MIN_PER_CLASS {
        return Err(TrainError::NotEnoughServedLog(format!(
            "{} labelled served items with this ranker's features ({positives} engaged, {negatives} not); at least {MIN_PER_CLASS} of each are needed",
            labels.len()
        )));
    }
    let x = Array2::from_shape_fn((rows.len(), features.len()), |(r, c)| f64::from(rows[r][c]));
    let ranker = params.fit_ranker(&x, &labels);
    Ok((
        ranker,
        RankerTraining {
            rows: rows.len(),
            positives,
        },
    ))
}
