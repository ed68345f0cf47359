//! The two-stage recommender: candidates from ALS, item-kNN and popularity,
//! ranked by a logistic-regression model over the generators' scores and
//! ranks plus context features (user, item and user×item features read
//! point-in-time from the feature store through a [`ContextSource`]).
//!
//! The ranker learns what predicts a *future* interaction: it is trained on
//! an inner chronological split of the training data (candidate generators
//! fitted on the earlier 75% of each user's training interactions, labels
//! from the later 25%, context as of one second before the user's last
//! inner-training interaction), then the generators are refitted on all
//! training data.

use std::collections::{HashMap, HashSet};

use ndarray::Array2;

use crate::als::{Als, AlsParams};
use crate::baselines::{user_histories, ItemKnn, MostPopular};
use crate::context::{ContextError, ContextRequest, ContextSource, Occasions};
use crate::dataset::{chronological_split, Interaction};
use crate::ranker::{Ranker, RankerKind, TreesParams};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PipelineParams {
    pub als: AlsParams,
    pub knn_neighbours: usize,
    /// Candidates taken from ALS and from item-kNN, each.
    pub candidates: usize,
    /// Candidates taken from the most popular items.
    pub popular_candidates: usize,
    pub ranker_l2: f64,
    pub ranker_iterations: usize,
    pub ranker_learning_rate: f64,
    /// Which ranker is fitted (the declaration's `ranker`).
    #[serde(default)]
    pub ranker_kind: RankerKind,
    /// The gradient-boosted trees' parameters (kind `gbdt`).
    #[serde(default)]
    pub trees: TreesParams,
    /// Trains the ranker on randomly permuted labels: a null model, for
    /// checking that evaluation and the promotion gate reject it.
    #[serde(default)]
    pub shuffle_labels: bool,
}

impl Default for PipelineParams {
    fn default() -> Self {
        PipelineParams {
            als: AlsParams::default(),
            knn_neighbours: 50,
            candidates: 100,
            popular_candidates: 50,
            ranker_l2: 1e-4,
            ranker_iterations: 300,
            ranker_learning_rate: 0.5,
            ranker_kind: RankerKind::default(),
            trees: TreesParams::default(),
            shuffle_labels: false,
        }
    }
}

impl PipelineParams {
    /// The ranker fitted on feature rows `x` and their labels with these
    /// parameters (snapshot rows or served-log vectors alike).
    pub fn fit_ranker(&self, x: &Array2<f64>, labels: &[bool]) -> Ranker {
        crate::ranker::fit(
            self.ranker_kind,
            x,
            labels,
            (
                self.ranker_l2,
                self.ranker_iterations,
                self.ranker_learning_rate,
            ),
            &self.trees,
        )
    }
}

/// Names of the candidate generators' features, in order; context features
/// follow them.
pub const GENERATOR_FEATURES: [&str; 7] = [
    "als_score",
    "knn_score",
    "log_popularity",
    "als_rank_inverse",
    "knn_rank_inverse",
    "popularity_rank_inverse",
    "log_user_history",
];

/// The last training interaction time of each user: recommendations for a
/// user are made as of then.
pub fn user_cutoffs(train: &[Interaction]) -> HashMap<u32, i64> {
    let mut cutoffs: HashMap<u32, i64> = HashMap::new();
    for i in train {
        let t = cutoffs.entry(i.user).or_insert(i.timestamp);
        *t = (*t).max(i.timestamp);
    }
    cutoffs
}

/// Context is read as of one second before the cutoff, so nothing that
/// happened in the cutoff's second (held-out interactions can share it)
/// reaches a feature.
pub fn context_time(cutoff: i64) -> i64 {
    cutoff - 1
}

/// The candidate generators.
pub struct Generators {
    pub als: Als,
    pub knn: ItemKnn,
    pub popular: MostPopular,
    history_sizes: HashMap<u32, usize>,
}

/// One user's candidates with their feature rows.
pub struct Candidates {
    pub user: u32,
    pub items: Vec<u32>,
    pub features: Vec<Vec<f64>>,
}

impl Generators {
    pub fn fit(train: &[Interaction], users: usize, items: usize, params: &PipelineParams) -> Self {
        Generators {
            als: Als::fit(train, users, items, &params.als),
            knn: ItemKnn::fit(train, users, items, params.knn_neighbours),
            popular: MostPopular::fit(train),
            history_sizes: sizes(train),
        }
    }

    /// Generators from stored parts; `train` gives the users' histories.
    pub fn from_parts(
        als: Als,
        neighbours: Vec<Vec<(u32, f32)>>,
        popularity: HashMap<u32, usize>,
        train: &[Interaction],
    ) -> Self {
        Generators {
            als,
            knn: ItemKnn::from_parts(neighbours, user_histories(train)),
            popular: MostPopular::from_counts(popularity),
            history_sizes: sizes(train),
        }
    }

    /// Candidates for `user` (none of `exclude`) with the generators'
    /// features.
    fn candidates(&self, user: u32, exclude: &HashSet<u32>, params: &PipelineParams) -> Candidates {
        let als_scores = self.als.scores(user);
        let mut als_ranked: Vec<(u32, f32)> = als_scores
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32, *s))
            .filter(|(i, _)| !exclude.contains(i))
            .collect();
        als_ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        als_ranked.truncate(params.candidates);
        let lists = CandidateLists::new(
            als_ranked.into_iter().map(|(i, _)| i).collect(),
            self.knn.scores(user, exclude),
            crate::baselines::Recommender::recommend(
                &self.popular,
                user,
                params.popular_candidates,
                exclude,
            ),
            params,
        );
        let history = self.history_sizes.get(&user).copied().unwrap_or(0);
        let items = lists.items();
        let features = items
            .iter()
            .map(|item| {
                lists.features(
                    *item,
                    als_scores[*item as usize],
                    self.popular.count(*item),
                    history,
                )
            })
            .collect();
        Candidates {
            user,
            items,
            features,
        }
    }

    /// Candidates for each `(user, cutoff)`, with context features as of
    /// [`context_time`]`(cutoff)` (request context: of the candidate's
    /// occasion) appended, fetched in one call.
    pub fn candidates_with_context(
        &self,
        users: &[(u32, i64)],
        exclude: &HashMap<u32, HashSet<u32>>,
        params: &PipelineParams,
        context: &dyn ContextSource,
        occasions: &Occasions,
    ) -> Result<Vec<Candidates>, ContextError> {
        let empty = HashSet::new();
        let mut all: Vec<Candidates> = users
            .iter()
            .map(|(user, _)| self.candidates(*user, exclude.get(user).unwrap_or(&empty), params))
            .collect();
        let requests: Vec<ContextRequest> = all
            .iter()
            .zip(users)
            .flat_map(|(c, (user, cutoff))| {
                c.items.iter().map(move |item| ContextRequest {
                    user: *user,
                    item: *item,
                    as_of: context_time(*cutoff),
                    occasion: occasions.of(*user, *item),
                })
            })
            .collect();
        let mut fetched = context.fetch(&requests)?.into_iter();
        for candidates in &mut all {
            for row in &mut candidates.features {
                row.extend(
                    fetched
                        .next()
                        .ok_or("context source returned too few rows")?,
                );
            }
        }
        Ok(all)
    }
}

/// The candidate generators' top lists for one user, and the features they
/// give an item. Training (exact ALS top list) and serving (the ALS top list
/// from the ANN index) both build one of these, so a candidate's generator
/// features are computed by this one function.
pub struct CandidateLists {
    /// ALS's best `params.candidates` items, best first.
    pub als_top: Vec<u32>,
    /// Every item with a non-zero item-kNN score.
    pub knn_scores: HashMap<u32, f32>,
    /// item-kNN's best `params.candidates` items, best first.
    pub knn_top: Vec<u32>,
    /// The most popular `params.popular_candidates` items, best first.
    pub popular_top: Vec<u32>,
    als_rank: HashMap<u32, usize>,
    knn_rank: HashMap<u32, usize>,
    popular_rank: HashMap<u32, usize>,
}

impl CandidateLists {
    pub fn new(
        als_top: Vec<u32>,
        knn_scores: HashMap<u32, f32>,
        popular_top: Vec<u32>,
        params: &PipelineParams,
    ) -> Self {
        let mut knn_ranked: Vec<(u32, f32)> = knn_scores.iter().map(|(i, s)| (*i, *s)).collect();
        knn_ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let knn_top: Vec<u32> = knn_ranked
            .into_iter()
            .take(params.candidates)
            .map(|(i, _)| i)
            .collect();
        let rank_of = |list: &[u32]| -> HashMap<u32, usize> {
            list.iter().enumerate().map(|(r, i)| (*i, r)).collect()
        };
        CandidateLists {
            als_rank: rank_of(&als_top),
            knn_rank: rank_of(&knn_top),
            popular_rank: rank_of(&popular_top),
            als_top,
            knn_scores,
            knn_top,
            popular_top,
        }
    }

    /// The union of the top lists, in item order.
    pub fn items(&self) -> Vec<u32> {
        let mut items: Vec<u32> = self
            .als_top
            .iter()
            .chain(&self.knn_top)
            .chain(&self.popular_top)
            .copied()
            .collect();
        items.sort_unstable();
        items.dedup();
        items
    }

    /// Which generator put `item` forward: ALS, else item-kNN, else
    /// popularity.
    pub fn source(&self, item: u32) -> Source {
        if self.als_rank.contains_key(&item) {
            Source::Embedding
        } else if self.knn_rank.contains_key(&item) {
            Source::Neighbours
        } else {
            Source::Popular
        }
    }

    /// [`GENERATOR_FEATURES`] of `item`: scores, log popularity, inverse
    /// ranks within the top lists (0 outside them), log history size.
    pub fn features(
        &self,
        item: u32,
        als_score: f32,
        popularity: usize,
        history: usize,
    ) -> Vec<f64> {
        let inverse = |rank: Option<&usize>| rank.map_or(0.0, |r| 1.0 / (1.0 + *r as f64));
        vec![
            f64::from(als_score),
            f64::from(self.knn_scores.get(&item).copied().unwrap_or(0.0)),
            (1.0 + popularity as f64).ln(),
            inverse(self.als_rank.get(&item)),
            inverse(self.knn_rank.get(&item)),
            inverse(self.popular_rank.get(&item)),
            (1.0 + history as f64).ln(),
        ]
    }
}

/// The generator a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Embedding,
    Neighbours,
    Popular,
}

fn sizes(train: &[Interaction]) -> HashMap<u32, usize> {
    user_histories(train)
        .into_iter()
        .map(|(user, items)| (user, items.len()))
        .collect()
}

/// Items each user interacted with in `interactions`.
pub fn item_sets(interactions: &[Interaction]) -> HashMap<u32, HashSet<u32>> {
    let mut sets: HashMap<u32, HashSet<u32>> = HashMap::new();
    for i in interactions {
        sets.entry(i.user).or_default().insert(i.item);
    }
    sets
}

pub struct TwoStage {
    pub generators: Generators,
    pub ranker: Ranker,
    pub params: PipelineParams,
    /// Generator then context feature names, in the ranker's input order.
    pub features: Vec<String>,
}

/// What the ranker was trained on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankerTraining {
    pub rows: usize,
    pub positives: usize,
}

/// The ranker's training data: the candidates of an inner chronological
/// split of the training interactions with their features, labelled by
/// whether the user interacted with them later.
pub struct RankerData {
    pub rows: Vec<Vec<f64>>,
    pub labels: Vec<bool>,
    /// Generator then context feature names, in the rows' order.
    pub features: Vec<String>,
}

impl RankerData {
    /// Builds the rows: generators fitted on the first 75% of each user's
    /// training interactions propose candidates, `context` adds features
    /// as of each user's cutoff, the later 25% label them.
    pub fn build(
        train: &[Interaction],
        users: usize,
        items: usize,
        params: &PipelineParams,
        context: &dyn ContextSource,
    ) -> Result<Self, ContextError> {
        let inner = chronological_split(train, 0.75);
        let inner_generators = Generators::fit(&inner.train, users, items, params);
        let future = item_sets(&inner.test);
        let cutoffs = user_cutoffs(&inner.train);
        let mut user_ids: Vec<(u32, i64)> = future
            .keys()
            .filter_map(|u| cutoffs.get(u).map(|c| (*u, *c)))
            .collect();
        user_ids.sort_unstable();
        let seen = item_sets(&inner.train);
        let occasions = Occasions::per_candidate(&inner.test);
        let candidates = inner_generators
            .candidates_with_context(&user_ids, &seen, params, context, &occasions)?;
        let mut rows: Vec<Vec<f64>> = Vec::new();
        let mut labels: Vec<bool> = Vec::new();
        for c in candidates {
            for (item, features) in c.items.iter().zip(c.features) {
                rows.push(features);
                labels.push(future[&c.user].contains(item));
            }
        }
        let mut features: Vec<String> = GENERATOR_FEATURES.iter().map(|s| s.to_string()).collect();
        features.extend(context.names());
        Ok(RankerData {
            rows,
            labels,
            features,
        })
    }

    /// The ranker fitted on these rows (on permuted labels when
    /// `params.shuffle_labels`).
    pub fn fit(mut self, params: &PipelineParams) -> (Ranker, RankerTraining) {
        if params.shuffle_labels {
            use rand::seq::SliceRandom;
            use rand::SeedableRng;
            self.labels
                .shuffle(&mut rand::rngs::StdRng::seed_from_u64(params.als.seed));
        }
        let rows = &self.rows;
        let x = Array2::from_shape_fn((rows.len(), self.features.len()), |(r, c)| rows[r][c]);
        let training = RankerTraining {
            rows: rows.len(),
            positives: self.labels.iter().filter(|l| **l).count(),
        };
        (params.fit_ranker(&x, &self.labels), training)
    }
}

impl TwoStage {
    /// Builds the ranker's training data, fits the ranker on it and the
    /// generators on all of `train`.
    pub fn fit(
        train: &[Interaction],
        users: usize,
        items: usize,
        params: PipelineParams,
        context: &dyn ContextSource,
    ) -> Result<(Self, RankerTraining), ContextError> {
        let data = RankerData::build(train, users, items, &params, context)?;
        let features = data.features.clone();
        let (ranker, training) = data.fit(&params);
        Ok((
            TwoStage::assemble(train, users, items, params, ranker, features),
            training,
        ))
    }

    /// The pipeline from a fitted ranker: the generators are fitted on all
    /// of `train`.
    pub fn assemble(
        train: &[Interaction],
        users: usize,
        items: usize,
        params: PipelineParams,
        ranker: Ranker,
        features: Vec<String>,
    ) -> Self {
        TwoStage {
            generators: Generators::fit(train, users, items, &params),
            ranker,
            params,
            features,
        }
    }

    /// For each `(user, cutoff)`: candidates (none of `exclude`) with their
    /// engagement probabilities, best first.
    pub fn rank(
        &self,
        users: &[(u32, i64)],
        exclude: &HashMap<u32, HashSet<u32>>,
        context: &dyn ContextSource,
        occasions: &Occasions,
    ) -> Result<HashMap<u32, Vec<(u32, f64)>>, ContextError> {
        let candidates = self.generators.candidates_with_context(
            users,
            exclude,
            &self.params,
            context,
            occasions,
        )?;
        Ok(candidates
            .into_iter()
            .map(|c| {
                let rows: Vec<&[f64]> = c.features.iter().map(Vec::as_slice).collect();
                let mut scored: Vec<(u32, f64)> = c
                    .items
                    .iter()
                    .copied()
                    .zip(self.ranker.predict_rows(&rows))
                    .collect();
                scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                (c.user, scored)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines::{evaluate, Precomputed};
    use crate::context::{NoContext, Occasions};
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

    fn params() -> PipelineParams {
        PipelineParams {
            als: AlsParams {
                factors: 4,
                iterations: 8,
                ..AlsParams::default()
            },
            knn_neighbours: 10,
            candidates: 10,
            popular_candidates: 5,
            ..PipelineParams::default()
        }
    }

    /// A context feature that says whether the item is in the user's
    /// community, recording the times it was asked for.
    struct Community(std::sync::Mutex<Vec<ContextRequest>>);

    impl ContextSource for Community {
        fn names(&self) -> Vec<String> {
            vec!["same_community".into()]
        }

        fn fetch(&self, requests: &[ContextRequest]) -> Result<Vec<Vec<f64>>, ContextError> {
            self.0.lock().unwrap().extend_from_slice(requests);
            Ok(requests
                .iter()
                .map(|r| vec![f64::from(u8::from((r.user < 20) == (r.item < 10)))])
                .collect())
        }
    }

    #[test]
    fn the_pipeline_recommends_within_the_community_and_beats_popularity() {
        let data = communities();
        let split = chronological_split(&data.interactions, 0.75);
        let (model, training) = TwoStage::fit(
            &split.train,
            data.user_count(),
            data.item_count(),
            params(),
            &NoContext,
        )
        .unwrap();
        assert!(training.rows > 0 && training.positives > 0);
        let seen = item_sets(&split.train);
        let cutoffs = user_cutoffs(&split.train);
        let ranked = model
            .rank(&[(0, cutoffs[&0])], &seen, &NoContext, &Occasions::none())
            .unwrap();
        let ranked = &ranked[&0];
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
        let users: Vec<(u32, i64)> = cutoffs.iter().map(|(u, c)| (*u, *c)).collect();
        let all = model
            .rank(&users, &seen, &NoContext, &Occasions::none())
            .unwrap();
        let pipeline = evaluate(&Precomputed::from_scored(&all), &split, 3);
        let popular = evaluate(&MostPopular::fit(&split.train), &split, 3);
        assert!(pipeline.ndcg > popular.ndcg, "{pipeline:?} vs {popular:?}");
        // Deterministic for fixed seeds.
        let (again, _) = TwoStage::fit(
            &split.train,
            data.user_count(),
            data.item_count(),
            params(),
            &NoContext,
        )
        .unwrap();
        assert_eq!(again.ranker, model.ranker);
    }

    #[test]
    fn context_features_are_asked_for_before_the_labels_and_learned() {
        let data = communities();
        let split = chronological_split(&data.interactions, 0.75);
        let context = Community(Default::default());
        let (model, _) = TwoStage::fit(
            &split.train,
            data.user_count(),
            data.item_count(),
            params(),
            &context,
        )
        .unwrap();
        assert_eq!(model.features.len(), GENERATOR_FEATURES.len() + 1);
        let Ranker::Logistic(linear) = &model.ranker else {
            panic!("the default ranker is logistic");
        };
        assert!(
            *linear.weights.last().unwrap() > 0.0,
            "being in the user's community predicts a play: {:?}",
            linear.weights
        );
        // Every request during training was for a time before the user's
        // inner held-out (label) interactions.
        let inner = chronological_split(&split.train, 0.75);
        let requests = context.0.lock().unwrap();
        assert!(!requests.is_empty());
        for r in requests.iter() {
            let first_label = inner
                .test
                .iter()
                .filter(|i| i.user == r.user)
                .map(|i| i.timestamp)
                .min()
                .expect("only users with labels are asked for");
            assert!(r.as_of < first_label, "{r:?} vs label at {first_label}");
        }
    }
}
