//! A stored ranker loaded for serving: everything needed to turn a user's
//! candidate lists and context into the same feature vectors the ranker was
//! trained on, and those into engagement probabilities. Unlike
//! [`crate::remap::load_ranker_onto`] it needs no training interactions: users'
//! histories come from the caller (the store and live events).

use std::collections::{HashMap, HashSet};

use ndarray::{Array2, ArrayView1};
use prost::Message;
use reprise_models::baselines::ItemKnn;
use reprise_models::pipeline::{CandidateLists, PipelineParams};
use reprise_models::ranker::Ranker;
use reprise_store::proto::{Embeddings, Matrix, TwoStageModel};
use reprise_store::FeatureStore;

use crate::error::{Result, TrainError};
use crate::model_io::{EMBEDDINGS_KIND, RANKER_KIND};

pub struct ServingModel {
    pub version: String,
    pub embeddings_version: String,
    pub params: PipelineParams,
    /// The ranker's input names, generator features then context.
    pub features: Vec<String>,
    items: Vec<String>,
    item_index: HashMap<String, u32>,
    /// Item factors, by item index.
    pub item_factors: Array2<f32>,
    user_index: HashMap<String, u32>,
    user_factors: Array2<f32>,
    knn: ItemKnn,
    popularity: Vec<u32>,
    /// Items by popularity, most popular first.
    popular_ranked: Vec<u32>,
    ranker: Ranker,
}

fn array(m: Option<Matrix>, version: &str) -> Result<(Array2<f32>, Vec<String>)> {
    let m = m.ok_or_else(|| TrainError::bad_model(version, "a factor matrix is missing"))?;
    let values = Array2::from_shape_vec((m.rows as usize, m.cols as usize), m.values)
        .map_err(|e| TrainError::bad_model(version, e.to_string()))?;
    Ok((values, m.row_ids))
}

fn index(ids: &[String]) -> HashMap<String, u32> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), i as u32))
        .collect()
}

impl ServingModel {
    /// Loads ranker `version` and the embeddings it names.
    pub fn load(store: &FeatureStore, version: &str) -> Result<Self> {
        let record = store.load_model(version)?;
        if record.kind != RANKER_KIND {
            return Err(TrainError::bad_model(version, "is not a ranker model"));
        }
        let payload = TwoStageModel::decode(record.payload.as_slice())
            .map_err(|e| TrainError::bad_model(version, e.to_string()))?;
        let embeddings = store.load_model(&payload.embeddings_version)?;
        if embeddings.kind != EMBEDDINGS_KIND {
            return Err(TrainError::bad_model(
                version,
                format!("{} is not an embeddings model", payload.embeddings_version),
            ));
        }
        let factors = Embeddings::decode(embeddings.payload.as_slice())
            .map_err(|e| TrainError::bad_model(&payload.embeddings_version, e.to_string()))?;
        let (user_factors, users) = array(factors.users, &payload.embeddings_version)?;
        let (item_factors, items) = array(factors.items, &payload.embeddings_version)?;
        if items != payload.items {
            return Err(TrainError::bad_model(
                version,
                "its item ids differ from its embeddings'",
            ));
        }
        let params: PipelineParams = serde_json::from_str(&payload.params_json)
            .map_err(|e| TrainError::bad_model(version, format!("parameters: {e}")))?;
        let (ranker, features) = crate::model_io::decode_ranker(version, &payload)?;
        let neighbours = payload
            .neighbours
            .into_iter()
            .map(|n| n.items.into_iter().zip(n.similarities).collect())
            .collect();
        let mut popular_ranked: Vec<u32> = (0..payload.popularity.len() as u32)
            .filter(|i| payload.popularity[*i as usize] > 0)
            .collect();
        popular_ranked.sort_by(|a, b| {
            payload.popularity[*b as usize]
                .cmp(&payload.popularity[*a as usize])
                .then(a.cmp(b))
        });
        Ok(ServingModel {
            version: record.version,
            embeddings_version: payload.embeddings_version,
            params,
            features,
            item_index: index(&items),
            items,
            item_factors,
            user_index: index(&users),
            user_factors,
            knn: ItemKnn::from_parts(neighbours, HashMap::new()),
            popularity: payload.popularity,
            popular_ranked,
            ranker,
        })
    }

    pub fn item_count(&self) -> usize {
        self.items.len()
    }

    pub fn item_id(&self, item: u32) -> &str {
        &self.items[item as usize]
    }

    pub fn item_index(&self, id: &str) -> Option<u32> {
        self.item_index.get(id).copied()
    }

    /// The user's factors as trained (users unknown at training have none).
    pub fn user_vector(&self, user_id: &str) -> Option<ArrayView1<'_, f32>> {
        self.user_index
            .get(user_id)
            .map(|u| self.user_factors.row(*u as usize))
    }

    pub fn popularity(&self, item: u32) -> usize {
        self.popularity.get(item as usize).copied().unwrap_or(0) as usize
    }

    /// The generator lists for a user: `als_top` (their best items by
    /// embedding, e.g. from the ANN index), item-kNN over `history`, and
    /// the most popular items, none of `exclude`.
    pub fn candidate_lists(
        &self,
        mut als_top: Vec<u32>,
        history: &[u32],
        exclude: &HashSet<u32>,
    ) -> CandidateLists {
        als_top.retain(|i| !exclude.contains(i));
        als_top.truncate(self.params.candidates);
        let popular: Vec<u32> = self
            .popular_ranked
            .iter()
            .copied()
            .filter(|i| !exclude.contains(i))
            .take(self.params.popular_candidates)
            .collect();
        CandidateLists::new(
            als_top,
            self.knn.scores_for(history, exclude),
            popular,
            &self.params,
        )
    }

    /// The `n` most popular items (by training interactions), most popular
    /// first.
    pub fn most_popular(&self, n: usize) -> &[u32] {
        &self.popular_ranked[..n.min(self.popular_ranked.len())]
    }

    /// The dot product of a user vector and an item's factors.
    pub fn als_score(&self, user_vector: Option<&[f32]>, item: u32) -> f32 {
        user_vector.map_or(0.0, |v| {
            self.item_factors
                .row(item as usize)
                .dot(&ArrayView1::from(v))
        })
    }

    /// Each input's contribution to a row's score in log-odds, and the base:
    /// the row's probability is `sigmoid(base + Σ contributions)`.
    pub fn contributions(&self, row: &[f64]) -> (Vec<f64>, f64) {
        self.ranker.contributions(row)
    }

    /// The ranker's probabilities for full feature vectors (one batch).
    pub fn probabilities(&self, rows: &[&[f64]]) -> Vec<f64> {
        self.ranker.predict_rows(rows)
    }
}
