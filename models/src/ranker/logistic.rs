//! A logistic-regression ranker: standardised features, L2-regularised,
//! fitted by full-batch gradient descent (deterministic). Scoring is a dot
//! product and a sigmoid.

use ndarray::{Array1, Array2, Axis};

use super::sigmoid;

#[derive(Debug, Clone, PartialEq)]
pub struct LogisticRegression {
    pub weights: Array1<f64>,
    pub bias: f64,
    pub means: Array1<f64>,
    pub stds: Array1<f64>,
}

impl LogisticRegression {
    /// Fits on rows of `x` with labels `y`.
    pub fn fit(
        x: &Array2<f64>,
        y: &[bool],
        l2: f64,
        iterations: usize,
        learning_rate: f64,
    ) -> Self {
        let n = x.nrows().max(1) as f64;
        let means = x
            .mean_axis(Axis(0))
            .unwrap_or_else(|| Array1::zeros(x.ncols()));
        let stds = x
            .std_axis(Axis(0), 0.0)
            .mapv(|s| if s > 1e-12 { s } else { 1.0 });
        let z = (x - &means) / &stds;
        let labels = Array1::from_iter(y.iter().map(|&b| if b { 1.0 } else { 0.0 }));
        let mut weights = Array1::<f64>::zeros(x.ncols());
        let positive_rate = labels.sum() / n;
        let mut bias = (positive_rate.clamp(1e-6, 1.0 - 1e-6)
            / (1.0 - positive_rate.clamp(1e-6, 1.0 - 1e-6)))
        .ln();
        for _ in 0..iterations {
            let p = (z.dot(&weights) + bias).mapv(sigmoid);
            let error = &p - &labels;
            let gradient = z.t().dot(&error) / n + &weights * l2;
            weights.scaled_add(-learning_rate, &gradient);
            bias -= learning_rate * error.sum() / n;
        }
        LogisticRegression {
            weights,
            bias,
            means,
            stds,
        }
    }

    /// Probability of the positive class for one feature row.
    pub fn predict(&self, features: &[f64]) -> f64 {
        let z: f64 = features
            .iter()
            .zip(self.means.iter().zip(self.stds.iter()))
            .zip(self.weights.iter())
            .map(|((x, (m, s)), w)| (x - m) / s * w)
            .sum();
        sigmoid(z + self.bias)
    }

    /// Each input's term of the log-odds (weight × standardised value) and
    /// the bias.
    pub fn contributions(&self, features: &[f64]) -> (Vec<f64>, f64) {
        let terms = features
            .iter()
            .zip(self.means.iter().zip(self.stds.iter()))
            .zip(self.weights.iter())
            .map(|((x, (m, s)), w)| (x - m) / s * w)
            .collect();
        (terms, self.bias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::auc;

    #[test]
    fn separates_a_linearly_separable_signal() {
        // Label = feature 0 > 0.5; feature 1 is noise.
        let rows: Vec<[f64; 2]> = (0..200)
            .map(|i| [(i % 100) as f64 / 100.0, ((i * 37) % 11) as f64])
            .collect();
        let x = Array2::from_shape_fn((rows.len(), 2), |(r, c)| rows[r][c]);
        let y: Vec<bool> = rows.iter().map(|r| r[0] > 0.5).collect();
        let model = LogisticRegression::fit(&x, &y, 1e-4, 500, 0.5);
        let scores: Vec<f64> = rows.iter().map(|r| model.predict(r)).collect();
        assert!(auc(&scores, &y).unwrap() > 0.99);
        assert!(model.weights[0].abs() > 10.0 * model.weights[1].abs());
        assert_eq!(
            model,
            LogisticRegression::fit(&x, &y, 1e-4, 500, 0.5),
            "deterministic"
        );
    }
}
