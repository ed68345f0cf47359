//! The two-stage recommender: candidates from ALS, item-kNN and popularity,
//! ranked by a logistic-regression model over their scores and ranks.
//!
//! The ranker learns what predicts a *future* interaction: it is trained on
//! an inner chronological split of the training data (base models fitted on
//! the earlier 75% of each user's training interactions, labels from the
//! later 25%), then the base models are refitted on all training data.

use std::collections::{HashMap, HashSet};

use ndarray::Array2;

use crate::als::{Als, AlsParams};
use crate::baselines::{ItemKnn, MostPopular, Recommender};
use crate::dataset::{chronological_split, Interaction};
use crate::ranker::LogisticRegression;

#[derive(Debug, Clone, serde::Serialize)]
pub struct PipelineParams {
    pub als: AlsParams,
    pub knn_neighbours: usize,
    /// Candidates taken from ALS and from item-kNN, each.
    pub candidates: usize,
    /// Candidates taken from the most popular items.
    pub popular_candidates: usize,
}

impl Default for PipelineParams {
    fn default() -> Self {
        PipelineParams {
            als: AlsParams::default(),
            knn_neighbours: 50,
            candidates: 100,
            popular_candidates: 50,
        }
    }
}

/// Names of the ranker's features, in order.
pub const FEATURES: [&str; 7] = [
    "als_score",
    "knn_score",
    "log_popularity",
    "als_rank_inverse",
    "knn_rank_inverse",
    "popularity_rank_inverse",
    "log_user_history",
];

/// Base models fitted on one set of interactions.
struct Base {
    als: Als,
    knn: ItemKnn,
    popular: MostPopular,
    history: HashMap<u32, HashSet<u32>>,
}

impl Base {
    fn fit(train: &[Interaction], users: usize, items: usize, params: &PipelineParams) -> Self {
        let mut history: HashMap<u32, HashSet<u32>> = HashMap::new();
        for i in train {
            history.entry(i.user).or_default().insert(i.item);
        }
        Base {
            als: Als::fit(train, users, items, &params.als),
            knn: ItemKnn::fit(train, users, items, params.knn_neighbours),
            popular: MostPopular::fit(train),
            history,
        }
    }

    /// Candidates for `user` (none of `exclude`) with their feature rows.
    fn candidates(
        &self,
        user: u32,
        exclude: &HashSet<u32>,
        params: &PipelineParams,
    ) -> Vec<(u32, [f64; 7])> {
        let als_scores = self.als.scores(user);
        let mut als_ranked: Vec<(u32, f32)> = als_scores
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32, *s))
            .filter(|(i, _)| !exclude.contains(i))
            .collect();
        als_ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let knn_scores = self.knn.scores(user, exclude);
        let mut knn_ranked: Vec<(u32, f32)> = knn_scores.iter().map(|(i, s)| (*i, *s)).collect();
        knn_ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let popular = self
            .popular
            .recommend(user, params.popular_candidates, exclude);

        let rank_of = |list: &[u32]| -> HashMap<u32, usize> {
            list.iter().enumerate().map(|(r, i)| (*i, r)).collect()
        };
        let als_rank = rank_of(&als_ranked.iter().map(|(i, _)| *i).collect::<Vec<_>>());
        let knn_rank = rank_of(&knn_ranked.iter().map(|(i, _)| *i).collect::<Vec<_>>());
        let popular_rank = rank_of(&popular);

        let mut items: Vec<u32> = als_ranked
            .iter()
            .take(params.candidates)
            .map(|(i, _)| *i)
            .collect();
        items.extend(knn_ranked.iter().take(params.candidates).map(|(i, _)| *i));
        items.extend(popular.iter().copied());
        items.sort_unstable();
        items.dedup();
        let history = self.history.get(&user).map_or(0, HashSet::len) as f64;
        let inverse = |rank: Option<&usize>| rank.map_or(0.0, |r| 1.0 / (1.0 + *r as f64));
        items
            .into_iter()
            .map(|item| {
                (
                    item,
                    [
                        f64::from(als_scores[item as usize]),
                        f64::from(knn_scores.get(&item).copied().unwrap_or(0.0)),
                        (1.0 + self.popular.count(item) as f64).ln(),
                        inverse(als_rank.get(&item)),
                        inverse(knn_rank.get(&item)),
                        inverse(popular_rank.get(&item)),
                        (1.0 + history).ln(),
                    ],
                )
            })
            .collect()
    }
}

pub struct TwoStage {
    base: Base,
    pub ranker: LogisticRegression,
    params: PipelineParams,
}

impl TwoStage {
    pub fn fit(train: &[Interaction], users: usize, items: usize, params: PipelineParams) -> Self {
        let inner = chronological_split(train, 0.75);
        let inner_base = Base::fit(&inner.train, users, items, &params);
        let mut future: HashMap<u32, HashSet<u32>> = HashMap::new();
        for i in &inner.test {
            future.entry(i.user).or_default().insert(i.item);
        }
        let mut user_ids: Vec<u32> = future.keys().copied().collect();
        user_ids.sort_unstable();
        let mut rows: Vec<[f64; 7]> = Vec::new();
        let mut labels: Vec<bool> = Vec::new();
        let empty = HashSet::new();
        for user in user_ids {
            let seen = inner_base.history.get(&user).unwrap_or(&empty);
            for (item, features) in inner_base.candidates(user, seen, &params) {
                rows.push(features);
                labels.push(future[&user].contains(&item));
            }
        }
        let x = Array2::from_shape_fn((rows.len(), FEATURES.len()), |(r, c)| rows[r][c]);
        let ranker = LogisticRegression::fit(&x, &labels, 1e-4, 300, 0.5);
        TwoStage {
            base: Base::fit(train, users, items, &params),
            ranker,
            params,
        }
    }

    /// Ranked candidates with their probabilities.
    pub fn rank(&self, user: u32, exclude: &HashSet<u32>) -> Vec<(u32, f64)> {
        let mut scored: Vec<(u32, f64)> = self
            .base
            .candidates(user, exclude, &self.params)
            .into_iter()
            .map(|(item, features)| (item, self.ranker.predict(&features)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored
    }
}

impl Recommender for TwoStage {
    fn recommend(&self, user: u32, k: usize, exclude: &HashSet<u32>) -> Vec<u32> {
        self.rank(user, exclude)
            .into_iter()
            .take(k)
            .map(|(i, _)| i)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines::evaluate;
    use crate::dataset::Dataset;

    /// Two communities of 20 users over 10 items each; every user plays six
    /// of their community's items over time, in a user-specific order.
    fn communities() -> Dataset {
        let mut data = Dataset::default();
        for u in 0..40u32 {
            let base = if u < 20 { 0 } else { 10 };
            for step in 0..6u32 {
                let item = base + (u * 3 + step * 7) % 10;
                data.push(&format!("u{u}"), &format!("i{item}"), i64::from(step), 5.0);
            }
        }
        data
    }

    #[test]
    fn the_pipeline_recommends_within_the_community_and_beats_popularity() {
        let data = communities();
        let split = chronological_split(&data.interactions, 0.75);
        let params = PipelineParams {
            als: AlsParams {
                factors: 4,
                iterations: 8,
                ..AlsParams::default()
            },
            knn_neighbours: 10,
            candidates: 10,
            popular_candidates: 5,
        };
        let model = TwoStage::fit(
            &split.train,
            data.user_count(),
            data.item_count(),
            params.clone(),
        );
        let seen: HashSet<u32> = split
            .train
            .iter()
            .filter(|i| i.user == 0)
            .map(|i| i.item)
            .collect();
        let ranked = model.rank(0, &seen);
        assert!(ranked.iter().all(|(_, p)| (0.0..=1.0).contains(p)));
        assert!(
            ranked.windows(2).all(|w| w[0].1 >= w[1].1),
            "sorted by probability"
        );
        let top: Vec<&str> = ranked
            .iter()
            .take(3)
            .map(|(i, _)| data.items[*i as usize].as_str())
            .collect();
        for id in &top {
            let n: u32 = id[1..].parse().unwrap();
            assert!(
                n < 10,
                "user 0's top items come from their community: {top:?}"
            );
        }
        let pipeline = evaluate(&model, &split, 3);
        let popular = evaluate(&MostPopular::fit(&split.train), &split, 3);
        assert!(pipeline.ndcg > popular.ndcg, "{pipeline:?} vs {popular:?}");
        // Deterministic for fixed seeds.
        let again = TwoStage::fit(&split.train, data.user_count(), data.item_count(), params);
        assert_eq!(again.ranker, model.ranker);
    }
}
