//! The ranker: a model of engagement probability over a candidate's
//! feature row. Two kinds, chosen in the `[recommender]` declaration
//! (`ranker = "logistic"` or `"gbdt"`), trained, saved, served and explained
//! through this one type.

mod flat_forest;
mod logistic;
mod trees;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

pub use logistic::LogisticRegression;
pub use trees::{BoostedTrees, TreesParams};

/// Which model the ranker is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankerKind {
    /// L2-regularised logistic regression on standardised inputs.
    #[default]
    Logistic,
    /// Gradient-boosted trees (log-loss), which learn interactions between
    /// inputs (hour × genre) that a linear model cannot.
    Gbdt,
}

impl RankerKind {
    /// The kind named in a declaration.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "logistic" => Some(RankerKind::Logistic),
            "gbdt" => Some(RankerKind::Gbdt),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RankerKind::Logistic => "logistic",
            RankerKind::Gbdt => "gbdt",
        }
    }
}

/// A fitted ranker.
#[derive(Debug, Clone, PartialEq)]
pub enum Ranker {
    Logistic(LogisticRegression),
    Gbdt(BoostedTrees),
}

impl Ranker {
    pub fn kind(&self) -> RankerKind {
        match self {
            Ranker::Logistic(_) => RankerKind::Logistic,
            Ranker::Gbdt(_) => RankerKind::Gbdt,
        }
    }

    /// Engagement probability of one feature row.
    pub fn predict(&self, features: &[f64]) -> f64 {
        match self {
            Ranker::Logistic(m) => m.predict(features),
            Ranker::Gbdt(m) => m.predict_rows(&[features])[0],
        }
    }

    /// Engagement probabilities of many rows (of equal length) at once.
    pub fn predict_rows(&self, rows: &[&[f64]]) -> Vec<f64> {
        match self {
            Ranker::Logistic(m) => rows.iter().map(|r| m.predict(r)).collect(),
            Ranker::Gbdt(m) => m.predict_rows(rows),
        }
    }

    /// Each input's contribution to the row's score in log-odds, and the
    /// base (the score of an average row): they sum to the row's log-odds.
    pub fn contributions(&self, features: &[f64]) -> (Vec<f64>, f64) {
        match self {
            Ranker::Logistic(m) => m.contributions(features),
            Ranker::Gbdt(m) => m.contributions(features),
        }
    }
}

/// Fits a ranker of `kind` on rows `x` labelled `y`.
pub fn fit(
    kind: RankerKind,
    x: &Array2<f64>,
    y: &[bool],
    logistic: (f64, usize, f64),
    trees: &TreesParams,
) -> Ranker {
    match kind {
        RankerKind::Logistic => {
            let (l2, iterations, learning_rate) = logistic;
            Ranker::Logistic(LogisticRegression::fit(x, y, l2, iterations, learning_rate))
        }
        RankerKind::Gbdt => Ranker::Gbdt(BoostedTrees::fit(x, y, trees)),
    }
}

pub(crate) fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}
