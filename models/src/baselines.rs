//! Baseline recommenders and the top-k evaluator they share with the
//! two-stage pipeline.

use std::collections::{HashMap, HashSet};

use crate::dataset::{Interaction, Split};
use crate::metrics::{ndcg_at_k, precision_at_k, recall_at_k, TopK};

/// Anything that ranks items for a user.
pub trait Recommender {
    /// The best `k` items for `user`, best first, none of `exclude`.
    fn recommend(&self, user: u32, k: usize, exclude: &HashSet<u32>) -> Vec<u32>;
}

/// Items by number of training interactions.
pub struct MostPopular {
    ranked: Vec<u32>,
    counts: HashMap<u32, usize>,
}

impl MostPopular {
    pub fn fit(train: &[Interaction]) -> Self {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for i in train {
            *counts.entry(i.item).or_default() += 1;
        }
        Self::from_counts(counts)
    }

    /// A model with these interaction counts per item.
    pub fn from_counts(counts: HashMap<u32, usize>) -> Self {
        let mut ranked: Vec<(u32, usize)> = counts.iter().map(|(i, c)| (*i, *c)).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        MostPopular {
            ranked: ranked.into_iter().map(|(item, _)| item).collect(),
            counts,
        }
    }

    /// Training interactions of `item`.
    pub fn count(&self, item: u32) -> usize {
        self.counts.get(&item).copied().unwrap_or(0)
    }
}

impl Recommender for MostPopular {
    fn recommend(&self, _user: u32, k: usize, exclude: &HashSet<u32>) -> Vec<u32> {
        self.ranked
            .iter()
            .copied()
            .filter(|i| !exclude.contains(i))
            .take(k)
            .collect()
    }
}

/// Item-based k-nearest neighbours: cosine similarity of items' binary
/// interaction vectors, each item keeping its `neighbours` most similar;
/// a user's score for an item sums its similarity to the user's items.
pub struct ItemKnn {
    /// For each item, (neighbour, similarity), most similar first.
    neighbours: Vec<Vec<(u32, f32)>>,
    history: HashMap<u32, Vec<u32>>,
}

impl ItemKnn {
    /// `_users` is accepted for symmetry with the other models; the
    /// co-occurrence is built sparsely from the interactions.
    pub fn fit(train: &[Interaction], _users: usize, items: usize, neighbours: usize) -> Self {
        let history = user_histories(train);
        // Sparse co-occurrence: for each item, count the other items of its
        // users (Σ over users of |history|² work, never items² memory).
        let mut by_item: Vec<Vec<u32>> = vec![Vec::new(); items];
        for (user, list) in &history {
            for item in list {
                by_item[*item as usize].push(*user);
            }
        }
        let norms: Vec<f32> = by_item.iter().map(|u| (u.len() as f32).sqrt()).collect();
        let mut counts = vec![0u32; items];
        let mut touched: Vec<u32> = Vec::new();
        let neighbours = (0..items)
            .map(|i| {
                for user in &by_item[i] {
                    for &j in &history[user] {
                        if j as usize != i {
                            if counts[j as usize] == 0 {
                                touched.push(j);
                            }
                            counts[j as usize] += 1;
                        }
                    }
                }
                let mut row: Vec<(u32, f32)> = touched
                    .drain(..)
                    .map(|j| {
                        let c = std::mem::take(&mut counts[j as usize]) as f32;
                        (j, c / (norms[i] * norms[j as usize]))
                    })
                    .collect();
                row.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                row.truncate(neighbours);
                row
            })
            .collect();
        ItemKnn {
            neighbours,
            history,
        }
    }
}

impl ItemKnn {
    /// A model from stored neighbour lists (by item index) and the users'
    /// histories it scores from.
    pub fn from_parts(neighbours: Vec<Vec<(u32, f32)>>, history: HashMap<u32, Vec<u32>>) -> Self {
        ItemKnn {
            neighbours,
            history,
        }
    }

    /// Each item's neighbours, most similar first, by item index.
    pub fn neighbours(&self) -> &[Vec<(u32, f32)>] {
        &self.neighbours
    }

    /// Every item with a non-zero score for `user` (summed similarity to the
    /// user's items), none of `exclude`.
    pub fn scores(&self, user: u32, exclude: &HashSet<u32>) -> HashMap<u32, f32> {
        self.scores_for(
            self.history.get(&user).map_or(&[][..], Vec::as_slice),
            exclude,
        )
    }

    /// Every item with a non-zero score for a user whose items are
    /// `history` (in order of first interaction), none of `exclude`.
    pub fn scores_for(&self, history: &[u32], exclude: &HashSet<u32>) -> HashMap<u32, f32> {
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for &item in history {
            let Some(neighbours) = self.neighbours.get(item as usize) else {
                continue;
            };
            for &(neighbour, similarity) in neighbours {
                if !exclude.contains(&neighbour) {
                    *scores.entry(neighbour).or_default() += similarity;
                }
            }
        }
        scores
    }
}

impl Recommender for ItemKnn {
    fn recommend(&self, user: u32, k: usize, exclude: &HashSet<u32>) -> Vec<u32> {
        let mut ranked: Vec<(u32, f32)> = self.scores(user, exclude).into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.into_iter().take(k).map(|(item, _)| item).collect()
    }
}

/// Rankings computed elsewhere (the two-stage pipeline scores users in
/// batches), served to [`evaluate`].
pub struct Precomputed(pub HashMap<u32, Vec<u32>>);

impl Precomputed {
    pub fn from_scored(scored: &HashMap<u32, Vec<(u32, f64)>>) -> Self {
        Precomputed(
            scored
                .iter()
                .map(|(user, items)| (*user, items.iter().map(|(i, _)| *i).collect()))
                .collect(),
        )
    }
}

impl Recommender for Precomputed {
    fn recommend(&self, user: u32, k: usize, exclude: &HashSet<u32>) -> Vec<u32> {
        self.0.get(&user).map_or(Vec::new(), |items| {
            items
                .iter()
                .copied()
                .filter(|i| !exclude.contains(i))
                .take(k)
                .collect()
        })
    }
}

/// Each user's distinct items, in the order of their first interaction.
pub fn user_histories(train: &[Interaction]) -> HashMap<u32, Vec<u32>> {
    let mut history: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut seen: HashSet<(u32, u32)> = HashSet::new();
    for i in train {
        if seen.insert((i.user, i.item)) {
            history.entry(i.user).or_default().push(i.item);
        }
    }
    history
}

/// Mean precision, recall and NDCG at `k` over users with held-out items;
/// each user's training items are excluded from their recommendations.
pub fn evaluate(recommender: &dyn Recommender, split: &Split, k: usize) -> TopK {
    let mut seen: HashMap<u32, HashSet<u32>> = HashMap::new();
    for i in &split.train {
        seen.entry(i.user).or_default().insert(i.item);
    }
    let mut relevant: HashMap<u32, HashSet<u32>> = HashMap::new();
    for i in &split.test {
        relevant.entry(i.user).or_default().insert(i.item);
    }
    let mut users: Vec<u32> = relevant.keys().copied().collect();
    users.sort_unstable();
    let empty = HashSet::new();
    let mut total = TopK::default();
    for user in &users {
        let ranked = recommender.recommend(*user, k, seen.get(user).unwrap_or(&empty));
        let rel = &relevant[user];
        total.precision += precision_at_k(&ranked, rel, k);
        total.recall += recall_at_k(&ranked, rel, k);
        total.ndcg += ndcg_at_k(&ranked, rel, k);
    }
    let n = users.len().max(1) as f64;
    TopK {
        precision: total.precision / n,
        recall: total.recall / n,
        ndcg: total.ndcg / n,
        users: users.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interaction(user: u32, item: u32, timestamp: i64) -> Interaction {
        Interaction {
            user,
            item,
            timestamp,
            rating: 5.0,
        }
    }

    #[test]
    fn most_popular_ranks_by_count_and_skips_seen_items() {
        let train = [
            interaction(0, 2, 1),
            interaction(1, 2, 1),
            interaction(1, 0, 2),
            interaction(2, 1, 1),
        ];
        let model = MostPopular::fit(&train);
        assert_eq!(
            model.recommend(9, 3, &HashSet::new()),
            [2, 0, 1],
            "ties by item index"
        );
        assert_eq!(model.recommend(0, 2, &HashSet::from([2])), [0, 1]);
    }

    #[test]
    fn item_knn_recommends_items_liked_by_similar_users() {
        // Users 0 and 1 both like items 0 and 1; user 1 also likes 2.
        // User 2 likes only item 3. So for user 0, item 2 beats item 3.
        let train = [
            interaction(0, 0, 1),
            interaction(0, 1, 2),
            interaction(1, 0, 1),
            interaction(1, 1, 2),
            interaction(1, 2, 3),
            interaction(2, 3, 1),
        ];
        let model = ItemKnn::fit(&train, 3, 4, 10);
        let seen = HashSet::from([0, 1]);
        assert_eq!(
            model.recommend(0, 2, &seen),
            [2],
            "item 3 shares no user with 0 or 1"
        );
    }

    #[test]
    fn evaluate_averages_over_users_with_held_out_items() {
        let split = Split {
            train: vec![
                interaction(0, 0, 1),
                interaction(1, 0, 1),
                interaction(1, 1, 1),
            ],
            test: vec![interaction(0, 1, 2), interaction(1, 2, 2)],
        };
        // Popularity: item 0 (2), item 1 (1). User 0 gets [1]: a hit. User 1 gets []: nothing.
        let result = evaluate(&MostPopular::fit(&split.train), &split, 10);
        assert_eq!(result.users, 2);
        assert!((result.precision - (0.1 + 0.0) / 2.0).abs() < 1e-12);
        assert!((result.recall - (1.0 + 0.0) / 2.0).abs() < 1e-12);
        assert!((result.ndcg - (1.0 + 0.0) / 2.0).abs() < 1e-12);
    }
}
