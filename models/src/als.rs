//! Implicit-feedback matrix factorisation: alternating least squares with
//! conjugate-gradient solves (Hu, Koren & Volinsky 2008; Takács, Pilászy &
//! Tikk 2011). Confidence of an observed pair is `1 + alpha`; every
//! unobserved pair has preference 0 and confidence 1.
//!
//! Per user `u` (and symmetrically per item) it solves
//! `(YᵀY + Σ_{i∈I(u)} alpha·y_i y_iᵀ + λI) x_u = (1 + alpha) Σ_{i∈I(u)} y_i`
//! with a few conjugate-gradient steps warm-started from the current `x_u`.

use ndarray::{Array1, Array2, ArrayView1, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::dataset::Interaction;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlsParams {
    pub factors: usize,
    pub iterations: usize,
    pub regularization: f32,
    pub alpha: f32,
    pub cg_steps: usize,
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        AlsParams {
            factors: 64,
            iterations: 15,
            regularization: 0.1,
            alpha: 10.0,
            cg_steps: 3,
            seed: 42,
        }
    }
}

/// User and item factors.
#[derive(Debug, Clone, PartialEq)]
pub struct Als {
    pub users: Array2<f32>,
    pub items: Array2<f32>,
}

impl Als {
    /// Fits on the distinct (user, item) pairs of `train`.
    pub fn fit(train: &[Interaction], users: usize, items: usize, params: &AlsParams) -> Self {
        let mut by_user: Vec<Vec<u32>> = vec![Vec::new(); users];
        let mut by_item: Vec<Vec<u32>> = vec![Vec::new(); items];
        for i in train {
            let list = &mut by_user[i.user as usize];
            if !list.contains(&i.item) {
                list.push(i.item);
                by_item[i.item as usize].push(i.user);
            }
        }
        let mut rng = StdRng::seed_from_u64(params.seed);
        let scale = 0.01;
        let mut init = |rows: usize| {
            Array2::from_shape_fn((rows, params.factors), |_| rng.random_range(-scale..scale))
        };
        let mut model = Als {
            users: init(users),
            items: init(items),
        };
        for _ in 0..params.iterations {
            solve_side(&mut model.users, &model.items, &by_user, params);
            solve_side(&mut model.items, &model.users, &by_item, params);
        }
        model
    }

    /// Predicted preference of `user` for `item`.
    pub fn score(&self, user: u32, item: u32) -> f32 {
        self.users
            .row(user as usize)
            .dot(&self.items.row(item as usize))
    }

    /// All items' scores for `user`.
    pub fn scores(&self, user: u32) -> Array1<f32> {
        self.items.dot(&self.users.row(user as usize))
    }
}

impl crate::baselines::Recommender for Als {
    fn recommend(&self, user: u32, k: usize, exclude: &std::collections::HashSet<u32>) -> Vec<u32> {
        let scores = self.scores(user);
        let mut ranked: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32, *s))
            .filter(|(i, _)| !exclude.contains(i))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.into_iter().take(k).map(|(i, _)| i).collect()
    }
}

/// Fold-in: the factors of a user who played `played` (item indices), the
/// item factors fixed — one half-step of ALS for a user the model never saw,
/// solved by conjugate gradient from zero with enough steps to converge.
pub fn fold_in(items: &Array2<f32>, played: &[u32], params: &AlsParams) -> Array1<f32> {
    let mut x = Array2::<f32>::zeros((1, items.ncols()));
    let solve = AlsParams {
        cg_steps: params.cg_steps.max(items.ncols()),
        ..params.clone()
    };
    solve_side(&mut x, items, &[played.to_vec()], &solve);
    x.row(0).to_owned()
}

/// Updates every row of `x` given the fixed factors `y` and each row's
/// observed partners.
fn solve_side(x: &mut Array2<f32>, y: &Array2<f32>, observed: &[Vec<u32>], params: &AlsParams) {
    let gram = y.t().dot(y);
    let k = params.factors;
    for (row, partners) in observed.iter().enumerate() {
        let mut xu = x.row(row).to_owned();
        // A·v = gram·v + Σ alpha (y_i·v) y_i + λ v
        let apply = |v: &Array1<f32>| -> Array1<f32> {
            let mut out = gram.dot(v) + &(v * params.regularization);
            for &i in partners {
                let yi: ArrayView1<f32> = y.row(i as usize);
                out.scaled_add(params.alpha * yi.dot(v), &yi);
            }
            out
        };
        // r = b − A·x, with b = (1 + alpha) Σ y_i
        let mut b = Array1::<f32>::zeros(k);
        for &i in partners {
            b.scaled_add(1.0 + params.alpha, &y.row(i as usize));
        }
        let mut r = &b - &apply(&xu);
        let mut p = r.clone();
        let mut rs_old = r.dot(&r);
        for _ in 0..params.cg_steps {
            if rs_old < 1e-10 {
                break;
            }
            let ap = apply(&p);
            let step = rs_old / p.dot(&ap);
            xu.scaled_add(step, &p);
            r.scaled_add(-step, &ap);
            let rs_new = r.dot(&r);
            p = &r + &(p * (rs_new / rs_old));
            rs_old = rs_new;
        }
        x.index_axis_mut(Axis(0), row).assign(&xu);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interaction(user: u32, item: u32) -> Interaction {
        Interaction {
            user,
            item,
            timestamp: 0,
            rating: 5.0,
        }
    }

    /// Two communities: users 0–4 play items 0–4, users 5–9 items 5–9,
    /// each user missing one item of their community.
    fn communities() -> Vec<Interaction> {
        let mut train = Vec::new();
        for u in 0..10u32 {
            let base = if u < 5 { 0 } else { 5 };
            for i in base..base + 5 {
                if i != base + u % 5 {
                    train.push(interaction(u, i));
                }
            }
        }
        train
    }

    #[test]
    fn held_out_items_of_the_users_community_score_above_the_other_community() {
        let params = AlsParams {
            factors: 4,
            iterations: 10,
            ..AlsParams::default()
        };
        let model = Als::fit(&communities(), 10, 10, &params);
        for u in 0..10u32 {
            let own = if u < 5 { u % 5 } else { 5 + u % 5 };
            let other = if u < 5 { 5..10 } else { 0..5 };
            for i in other {
                assert!(
                    model.score(u, own) > model.score(u, i),
                    "user {u}: own {own} vs {i}"
                );
            }
        }
    }

    #[test]
    fn a_folded_in_user_ranks_like_the_trained_one() {
        let params = AlsParams {
            factors: 4,
            iterations: 10,
            ..AlsParams::default()
        };
        let train = communities();
        let model = Als::fit(&train, 10, 10, &params);
        for u in 0..10u32 {
            let played: Vec<u32> = train
                .iter()
                .filter(|i| i.user == u)
                .map(|i| i.item)
                .collect();
            let folded = fold_in(&model.items, &played, &params);
            let scores = model.items.dot(&folded);
            // The held-out item of the user's community beats every item
            // of the other community, as for the trained user.
            let own = if u < 5 { u % 5 } else { 5 + u % 5 };
            let other = if u < 5 { 5..10 } else { 0..5 };
            for i in other {
                assert!(scores[own as usize] > scores[i], "user {u}: {own} vs {i}");
            }
        }
    }

    #[test]
    fn training_is_deterministic_for_a_seed() {
        let params = AlsParams {
            factors: 4,
            iterations: 3,
            ..AlsParams::default()
        };
        let a = Als::fit(&communities(), 10, 10, &params);
        let b = Als::fit(&communities(), 10, 10, &params);
        assert_eq!(a, b);
        let c = Als::fit(&communities(), 10, 10, &AlsParams { seed: 7, ..params });
        assert_ne!(a, c);
    }
}
