//! Offline evaluation on the per-user chronological 75/25 split: the
//! two-stage pipeline (retrieve → rank → top 10) and, with the same
//! evaluator, the most-popular and item-kNN baselines.

use std::collections::HashMap;

use reprise_models::baselines::{evaluate as top_k, ItemKnn, MostPopular, Precomputed};
use reprise_models::context::{ContextSource, Occasions};
use reprise_models::dataset::{chronological_split, Split};
use reprise_models::metrics::{auc, log_loss, TopK};
use reprise_models::pipeline::{item_sets, user_cutoffs, TwoStage};
use reprise_store::FeatureStore;
use serde::Serialize;

use crate::context::SnapshotContext;
use crate::data::load_interactions;
use crate::error::{Result, TrainError};
use crate::model_io::{self, RANKER_KIND};

/// The share of each user's interactions (the earliest) that trains.
pub const TRAIN_FRACTION: f64 = 0.75;
/// Recommendations per user that are scored.
pub const K: usize = 10;

/// Top-k metrics of the pipeline plus its ranker's classification metrics
/// over every retrieved candidate (label: the item is among the user's
/// held-out items).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PipelineMetrics {
    #[serde(flatten)]
    pub top_k: TopK,
    pub auc: f64,
    pub log_loss: f64,
    /// Candidates scored, and how many of them were held-out items.
    pub candidates: usize,
    pub candidate_hits: usize,
}

impl PipelineMetrics {
    /// As stored with a model in the registry.
    pub fn as_map(&self) -> HashMap<String, f64> {
        HashMap::from([
            ("precision@10".to_owned(), self.top_k.precision),
            ("recall@10".to_owned(), self.top_k.recall),
            ("ndcg@10".to_owned(), self.top_k.ndcg),
            ("auc".to_owned(), self.auc),
            ("log_loss".to_owned(), self.log_loss),
        ])
    }
}

/// Scores `model` on `split`'s held-out interactions, with context as of
/// each user's last training interaction.
pub fn score_pipeline(
    model: &TwoStage,
    split: &Split,
    context: &dyn ContextSource,
) -> Result<PipelineMetrics> {
    let held_out = item_sets(&split.test);
    let cutoffs = user_cutoffs(&split.train);
    let mut users: Vec<(u32, i64)> = held_out
        .keys()
        .filter_map(|u| cutoffs.get(u).map(|c| (*u, *c)))
        .collect();
    users.sort_unstable();
    let seen = item_sets(&split.train);
    let rank = |occasions: &Occasions| {
        model
            .rank(&users, &seen, context, occasions)
            .map_err(|e| TrainError::Context(e.to_string()))
    };
    // One ranking per user in the context of their next play; with request
    // context among the inputs, the classification metrics see each
    // held-out item in the context it was played in (and the others in
    // contexts the user was in), as the ranker was trained.
    let ranked = rank(&Occasions::next_play(&split.test))?;
    let per_candidate = if context.uses_occasions() {
        Some(rank(&Occasions::per_candidate(&split.test))?)
    } else {
        None
    };
    let mut scores = Vec::new();
    let mut labels = Vec::new();
    // In user order, so sums (log-loss) come out bit-identical run to run.
    for (user, _) in &users {
        let scored = per_candidate.as_ref().unwrap_or(&ranked).get(user);
        for (item, p) in scored.map_or(&[][..], Vec::as_slice) {
            scores.push(*p);
            labels.push(held_out[user].contains(item));
        }
    }
    Ok(PipelineMetrics {
        top_k: top_k(&Precomputed::from_scored(&ranked), split, K),
        auc: auc(&scores, &labels).unwrap_or(f64::NAN),
        log_loss: log_loss(&scores, &labels),
        candidates: scores.len(),
        candidate_hits: labels.iter().filter(|l| **l).count(),
    })
}

/// An evaluation of a stored ranker against the baselines.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub model: String,
    pub store_version: u64,
    pub pipeline: PipelineMetrics,
    pub most_popular: TopK,
    pub item_knn: TopK,
    pub users: usize,
    pub items: usize,
    pub train_interactions: usize,
    pub held_out_interactions: usize,
}

/// Evaluates the stored ranker `version` (the newest when `None`) on the
/// interactions at the store version it was trained at, and the baselines on
/// the same split.
pub fn evaluate(store: &FeatureStore, version: Option<&str>) -> Result<Evaluation> {
    let record = match version {
        Some(v) => store.load_model(v)?,
        None => model_io::latest(store, RANKER_KIND)?,
    };
    let data = load_interactions(store, record.store_version)?;
    let dataset = &data.dataset;
    let split = chronological_split(&dataset.interactions, TRAIN_FRACTION);
    let model = crate::remap::load_ranker_onto(store, &record, dataset, &split.train)?;
    let inputs = model_io::ranker_inputs(store, &record)?;
    let context = SnapshotContext::new(store, dataset, &inputs, data.store_version)?;
    let pipeline = score_pipeline(&model, &split, &context)?;
    let most_popular = top_k(&MostPopular::fit(&split.train), &split, K);
    let knn = ItemKnn::fit(
        &split.train,
        dataset.user_count(),
        dataset.item_count(),
        model.params.knn_neighbours,
    );
    Ok(Evaluation {
        model: record.version,
        store_version: data.store_version,
        pipeline,
        most_popular,
        item_knn: top_k(&knn, &split, K),
        users: dataset.user_count(),
        items: dataset.item_count(),
        train_interactions: split.train.len(),
        held_out_interactions: split.test.len(),
    })
}
