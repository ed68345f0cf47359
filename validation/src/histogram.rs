//! Reference and current samples binned the same way, as shares of each
//! sample: what a report draws side by side. Numeric samples share the
//! Sturges edges the distances are computed on; categorical ones the most
//! frequent categories of both, the rest summed as "other".

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::distances::{histogram, normalise, sturges_edges};

/// Bins beyond this are merged (a very large sample would otherwise draw
/// hundreds of bars).
const MAX_NUMERIC_BINS: usize = 30;
/// Categories shown; the rest are one "other" bar.
const TOP_CATEGORIES: usize = 12;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// One label per bin: `[lo, hi)` for numbers, the category otherwise.
    pub labels: Vec<String>,
    /// Each bin's share of the reference sample (sums to 1 unless empty).
    pub reference: Vec<f64>,
    /// Each bin's share of the current sample.
    pub current: Vec<f64>,
}

/// At most [`MAX_NUMERIC_BINS`] equal-width bins over the same range
/// (equal widths: `histogram` assumes them).
fn thin(edges: Vec<f64>) -> Vec<f64> {
    let bins = edges.len().saturating_sub(1);
    if bins <= MAX_NUMERIC_BINS {
        return edges;
    }
    let (lo, hi) = (edges[0], edges[bins]);
    let step = (hi - lo) / MAX_NUMERIC_BINS as f64;
    let mut out: Vec<f64> = (0..=MAX_NUMERIC_BINS)
        .map(|i| lo + i as f64 * step)
        .collect();
    out[MAX_NUMERIC_BINS] = hi;
    out
}

fn label(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

/// Both samples over the same equal-width bins.
pub fn numeric_histogram(reference: &[f64], current: &[f64]) -> Histogram {
    let edges = thin(sturges_edges(reference, current));
    let labels = edges
        .windows(2)
        .map(|w| format!("[{}, {})", label(w[0]), label(w[1])))
        .collect();
    Histogram {
        labels,
        reference: normalise(&histogram(reference, &edges)),
        current: normalise(&histogram(current, &edges)),
    }
}

/// Both samples over the most frequent categories of the two together.
pub fn categorical_histogram(reference: &[String], current: &[String]) -> Histogram {
    let mut counts: HashMap<&str, (f64, f64)> = HashMap::new();
    for r in reference {
        counts.entry(r).or_default().0 += 1.0;
    }
    for c in current {
        counts.entry(c).or_default().1 += 1.0;
    }
    let mut ranked: Vec<(&str, (f64, f64))> = counts.into_iter().collect();
    ranked.sort_by(|a, b| {
        (b.1 .0 + b.1 .1)
            .total_cmp(&(a.1 .0 + a.1 .1))
            .then(a.0.cmp(b.0))
    });
    let mut labels = Vec::new();
    let (mut r, mut c) = (Vec::new(), Vec::new());
    let mut other = (0.0, 0.0);
    for (i, (name, (a, b))) in ranked.into_iter().enumerate() {
        if i < TOP_CATEGORIES {
            labels.push(name.to_owned());
            r.push(a);
            c.push(b);
        } else {
            other.0 += a;
            other.1 += b;
        }
    }
    if other != (0.0, 0.0) {
        labels.push("other".to_owned());
        r.push(other.0);
        c.push(other.1);
    }
    Histogram {
        labels,
        reference: normalise(&r),
        current: normalise(&c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_bins_are_shared_and_sum_to_one() {
        let a: Vec<f64> = (0..100).map(f64::from).collect();
        let b: Vec<f64> = (50..150).map(f64::from).collect();
        let h = numeric_histogram(&a, &b);
        assert_eq!(h.labels.len(), h.reference.len());
        assert_eq!(h.labels.len(), h.current.len());
        assert!((h.reference.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((h.current.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // The reference fills the low bins, the current sample the high ones.
        assert_eq!(h.current[0], 0.0);
        assert_eq!(*h.reference.last().unwrap(), 0.0);
        assert!(h.labels[0].starts_with("[0, "));
    }

    #[test]
    fn many_bins_are_thinned_to_equal_widths_over_the_same_range() {
        let edges: Vec<f64> = (0..=100).map(f64::from).collect();
        let thinned = thin(edges);
        assert_eq!(thinned.len(), MAX_NUMERIC_BINS + 1);
        assert_eq!((thinned[0], thinned[MAX_NUMERIC_BINS]), (0.0, 100.0));
        let widths: Vec<f64> = thinned.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(widths
            .iter()
            .all(|w| (w - 100.0 / MAX_NUMERIC_BINS as f64).abs() < 1e-9));
        let few: Vec<f64> = (0..=5).map(f64::from).collect();
        assert_eq!(thin(few.clone()), few);
    }

    #[test]
    fn rare_categories_are_one_other_bar() {
        let a: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        let b = vec!["c0".to_owned(); 20];
        let h = categorical_histogram(&a, &b);
        assert_eq!(h.labels[0], "c0");
        assert_eq!(h.labels.last().unwrap(), "other");
        assert_eq!(h.labels.len(), TOP_CATEGORIES + 1);
        assert_eq!(h.current[0], 1.0);
        assert!((h.reference.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
