//! Gradient-boosted trees on log-loss, from the `forust-ml` crate: an
//! XGBoost-style histogram booster in safe, stable Rust with exact Shapley
//! contributions and a JSON model format. (`perpetual`, its maintained
//! successor, needs a nightly compiler; `gbdt` has no missing-value handling
//! and no contributions.) The fitted booster is kept as its JSON so a model
//! compares, clones and saves like the logistic one.

use std::sync::Arc;

use forust_ml::gradientbooster::{ContributionsMethod, GradientBooster};
use forust_ml::objective::ObjectiveType;
use forust_ml::Matrix;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::flat_forest::FlatForest;
use super::sigmoid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TreesParams {
    pub iterations: usize,
    pub learning_rate: f32,
    pub max_depth: usize,
    pub l2: f32,
    pub min_leaf_weight: f32,
    pub seed: u64,
}

impl Default for TreesParams {
    fn default() -> Self {
        TreesParams {
            iterations: 120,
            learning_rate: 0.1,
            max_depth: 5,
            l2: 1.0,
            min_leaf_weight: 5.0,
            seed: 0,
        }
    }
}

/// A fitted booster.
#[derive(Clone)]
pub struct BoostedTrees {
    booster: Arc<GradientBooster>,
    /// The same trees laid out for serving (`None`: predict through forust).
    flat: Option<Arc<FlatForest>>,
    /// The booster's JSON: its identity (what is saved and compared).
    json: String,
}

impl std::fmt::Debug for BoostedTrees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoostedTrees")
            .field("trees", &self.booster.trees.len())
            .finish()
    }
}

impl PartialEq for BoostedTrees {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl BoostedTrees {
    /// Fits on rows of `x` labelled `y`.
    pub fn fit(x: &Array2<f64>, y: &[bool], params: &TreesParams) -> Self {
        let (rows, cols) = x.dim();
        // forust reads a column-major matrix.
        let columns: Vec<f64> = x.t().iter().copied().collect();
        let labels: Vec<f64> = y.iter().map(|&b| f64::from(u8::from(b))).collect();
        let mut booster = GradientBooster::default()
            .set_objective_type(ObjectiveType::LogLoss)
            .set_iterations(params.iterations)
            .set_learning_rate(params.learning_rate)
            .set_max_depth(params.max_depth)
            .set_l2(params.l2)
            .set_min_leaf_weight(params.min_leaf_weight)
            .set_seed(params.seed)
            .set_initialize_base_score(true);
        if rows > 0 && cols > 0 {
            // Errors only on inconsistent shapes, which cannot happen here;
            // an unfitted booster predicts its base score.
            let fitted = booster.fit_unweighted(&Matrix::new(&columns, rows, cols), &labels, None);
            debug_assert!(fitted.is_ok(), "{fitted:?}");
        }
        Self::from_booster(booster)
    }

    fn from_booster(booster: GradientBooster) -> Self {
        let json = booster.json_dump().unwrap_or_default();
        BoostedTrees {
            flat: FlatForest::of(&booster).map(Arc::new),
            booster: Arc::new(booster),
            json,
        }
    }

    /// The model as JSON (forust's format).
    pub fn to_json(&self) -> &str {
        &self.json
    }

    /// A model saved by [`BoostedTrees::to_json`].
    pub fn from_json(json: &str) -> Result<Self, String> {
        GradientBooster::from_json(json)
            .map(Self::from_booster)
            .map_err(|e| e.to_string())
    }

    /// Engagement probabilities of rows of equal length.
    pub fn predict_rows(&self, rows: &[&[f64]]) -> Vec<f64> {
        let Some(cols) = rows.first().map(|r| r.len()) else {
            return Vec::new();
        };
        if let Some(scores) = self.flat.as_ref().and_then(|f| f.predict(rows)) {
            return scores.into_iter().map(sigmoid).collect();
        }
        self.predict_through_forust(rows, cols)
    }

    /// [`BoostedTrees::predict_rows`] by forust's own walk.
    fn predict_through_forust(&self, rows: &[&[f64]], cols: usize) -> Vec<f64> {
        let columns: Vec<f64> = (0..cols)
            .flat_map(|c| rows.iter().map(move |r| r.get(c).copied().unwrap_or(0.0)))
            .collect();
        self.booster
            .predict(&Matrix::new(&columns, rows.len(), cols), false)
            .into_iter()
            .map(sigmoid)
            .collect()
    }

    /// Exact Shapley contributions in log-odds and the base score.
    pub fn contributions(&self, features: &[f64]) -> (Vec<f64>, f64) {
        let mut all = self.booster.predict_contributions(
            &Matrix::new(features, 1, features.len()),
            ContributionsMethod::Shapley,
            false,
        );
        let base = all.pop().unwrap_or(0.0);
        (all, base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::auc;

    /// Label = (a > 0.5) XOR (b > 0.5): no linear model separates it.
    fn xor() -> (Array2<f64>, Vec<bool>) {
        let n = 400;
        let x = Array2::from_shape_fn((n, 3), |(r, c)| match c {
            0 => ((r * 7) % 20) as f64 / 20.0,
            1 => ((r * 13) % 17) as f64 / 17.0,
            _ => ((r * 31) % 11) as f64,
        });
        let y = (0..n)
            .map(|r| (x[[r, 0]] > 0.5) != (x[[r, 1]] > 0.5))
            .collect();
        (x, y)
    }

    #[test]
    fn learns_an_interaction_a_linear_model_cannot() {
        let (x, y) = xor();
        let trees = BoostedTrees::fit(&x, &y, &TreesParams::default());
        let rows: Vec<Vec<f64>> = x.outer_iter().map(|r| r.to_vec()).collect();
        let refs: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
        let scores = trees.predict_rows(&refs);
        assert!(auc(&scores, &y).unwrap() > 0.95, "trees learn XOR");
        let linear = super::super::LogisticRegression::fit(&x, &y, 1e-4, 300, 0.5);
        let linear_scores: Vec<f64> = rows.iter().map(|r| linear.predict(r)).collect();
        assert!(auc(&linear_scores, &y).unwrap() < 0.7, "a line cannot");
        // Saved and loaded, it predicts the same; contributions add up.
        let loaded = BoostedTrees::from_json(trees.to_json()).unwrap();
        assert_eq!(loaded.predict_rows(&refs), scores);
        let (terms, base) = trees.contributions(&rows[3]);
        assert_eq!(terms.len(), 3);
        let logit = (scores[3] / (1.0 - scores[3])).ln();
        assert!((terms.iter().sum::<f64>() + base - logit).abs() < 1e-6);
        assert_eq!(
            trees,
            BoostedTrees::fit(&x, &y, &TreesParams::default()),
            "deterministic"
        );
    }
}
