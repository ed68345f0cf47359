//! Distances between two samples of one feature.
//!
//! Numeric: the two-sample Kolmogorov–Smirnov statistic (the Chebyshev
//! distance between the empirical CDFs) with its asymptotic p-value,
//! Jensen–Shannon divergence (log base 2) and PSI on shared equal-width bins
//! (numpy's `sturges` edges over both samples together), and the Wasserstein
//! distance divided by `max(reference population std, 0.001)`.
//! Categorical: the L-infinity (Chebyshev) distance between the normalised
//! frequency vectors over the union of values, with the value responsible,
//! and Jensen–Shannon divergence (log base 2).

use std::collections::BTreeMap;

use serde::Serialize;

/// Proportion given to empty bins by PSI.
pub const PSI_EMPTY_BIN: f64 = 1e-4;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NumericDistances {
    pub ks: f64,
    pub ks_pvalue: f64,
    pub js_log2: f64,
    pub psi: f64,
    pub wasserstein_norm: f64,
    /// The Chebyshev distance between the empirical CDFs (= `ks`).
    pub linf: f64,
    /// `linf` less what the sample sizes explain ([`linf_sample_corrected`]).
    pub linf_corrected: f64,
    pub reference_count: usize,
    pub current_count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoricalDistances {
    pub linf: f64,
    /// The value whose frequency moved the most.
    pub linf_value: String,
    /// `linf` less what the sample sizes explain ([`linf_sample_corrected`]).
    pub linf_corrected: f64,
    pub js_log2: f64,
    pub reference_count: usize,
    pub current_count: usize,
}

/// `max(0, d − 1.8·sqrt((n+m)/(n·m)))`: an L-infinity distance less what
/// samples of sizes `n` and `m` would show by chance.
pub fn linf_sample_corrected(d: f64, n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return d;
    }
    let (n, m) = (n as f64, m as f64);
    (d - 1.8 * ((n + m) / (n * m)).sqrt()).max(0.0)
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// The two-sample KS statistic, as scipy's `ks_2samp`: the largest gap
/// between the empirical CDFs, evaluated at every observed value.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    ks_sorted(&sorted(a), &sorted(b))
}

fn ks_sorted(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut d: f64 = 0.0;
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// The p-value of a two-sample KS statistic: the Kolmogorov distribution's
/// survival function at `(√e + 0.12 + 0.11/√e)·d`, `e = n·m/(n+m)`
/// (Stephens' small-sample correction). scipy's `method="asymp"` uses the
/// exact one-sample distribution at `n = round(e)`; the two agree within
/// 0.01 (tested), the statistic itself exactly.
pub fn ks_pvalue(d: f64, n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return 1.0;
    }
    let en = ((n * m) as f64 / (n + m) as f64).sqrt();
    let lambda = (en + 0.12 + 0.11 / en) * d;
    if lambda < 1e-3 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=200 {
        let k = f64::from(k);
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sum += if k as i64 % 2 == 1 { term } else { -term };
        if term < 1e-17 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// numpy's `histogram_bin_edges(x, bins="sturges")` over both samples:
/// `ceil(log2(n) + 1)` equal-width bins from the minimum to the maximum.
pub fn sturges_edges(a: &[f64], b: &[f64]) -> Vec<f64> {
    let all: Vec<f64> = a
        .iter()
        .chain(b)
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if all.is_empty() {
        return vec![0.0, 1.0];
    }
    let (mut lo, mut hi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
            (l.min(*x), h.max(*x))
        });
    // numpy: width = ptp / (log2(n) + 1), bins = ceil(range / width), with a
    // degenerate range widened by 0.5 on each side and then one bin.
    let ptp = hi - lo;
    let width = ptp / ((all.len() as f64).log2() + 1.0);
    if lo == hi {
        lo -= 0.5;
        hi += 0.5;
    }
    let bins = if width > 0.0 {
        ((hi - lo) / width).ceil() as usize
    } else {
        1
    };
    // numpy.linspace(lo, hi, bins + 1)
    let step = (hi - lo) / bins as f64;
    let mut edges: Vec<f64> = (0..=bins).map(|i| lo + i as f64 * step).collect();
    edges[bins] = hi;
    edges
}

/// The bin of `x` among uniform `edges`, as numpy's `histogram` assigns it
/// (the last bin includes its right edge); `None` outside or without bins.
pub fn bin_of(x: f64, edges: &[f64]) -> Option<usize> {
    let bins = edges.len().checked_sub(1).filter(|b| *b > 0)?;
    let (first, last) = (edges[0], edges[bins]);
    if !(first..=last).contains(&x) {
        return None;
    }
    let mut i = ((x - first) / (last - first) * bins as f64) as usize;
    if i == bins {
        i -= 1;
    }
    if x < edges[i] {
        i -= 1;
    } else if i != bins - 1 && x >= edges[i + 1] {
        i += 1;
    }
    Some(i)
}

/// Counts per bin exactly as numpy's `histogram` with uniform `edges`
/// (the last bin includes its right edge; values outside are dropped).
pub fn histogram(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut counts = vec![0.0; edges.len().saturating_sub(1)];
    for &x in values {
        if let Some(i) = bin_of(x, edges) {
            counts[i] += 1.0;
        }
    }
    counts
}

/// Counts as shares of their total (all zeros stay zeros).
pub fn normalise(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    if total == 0.0 {
        return counts.to_vec();
    }
    counts.iter().map(|c| c / total).collect()
}

/// Jensen–Shannon divergence (log base 2) of two probability vectors, as
/// `scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2`.
pub fn js_divergence_log2(p: &[f64], q: &[f64]) -> f64 {
    let kl = |a: &[f64], m: &[f64]| -> f64 {
        a.iter()
            .zip(m)
            .filter(|(x, _)| **x > 0.0)
            .map(|(x, y)| x * (x / y).log2())
            .sum()
    };
    let m: Vec<f64> = p.iter().zip(q).map(|(a, b)| (a + b) / 2.0).collect();
    ((kl(p, &m) + kl(q, &m)) / 2.0).max(0.0)
}

/// PSI of `current` against `reference` proportions, empty bins set to
/// [`PSI_EMPTY_BIN`]: `Σ (c − r)·ln(c / r)`.
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    reference
        .iter()
        .zip(current)
        .map(|(r, c)| {
            let r = if *r == 0.0 { PSI_EMPTY_BIN } else { *r };
            let c = if *c == 0.0 { PSI_EMPTY_BIN } else { *c };
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// The 1-Wasserstein distance between two samples, as scipy's
/// `wasserstein_distance`: the area between the empirical CDFs.
pub fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    wasserstein_sorted(&sorted(a), &sorted(b))
}

fn wasserstein_sorted(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    // Merge the two sorted samples.
    let mut all: Vec<f64> = Vec::with_capacity(a.len() + b.len());
    let (mut x, mut y) = (0, 0);
    while x < a.len() || y < b.len() {
        if y == b.len() || (x < a.len() && a[x] <= b[y]) {
            all.push(a[x]);
            x += 1;
        } else {
            all.push(b[y]);
            y += 1;
        }
    }
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0;
    for w in all.windows(2) {
        while i < a.len() && a[i] <= w[0] {
            i += 1;
        }
        while j < b.len() && b[j] <= w[0] {
            j += 1;
        }
        total += (i as f64 / n - j as f64 / m).abs() * (w[1] - w[0]);
    }
    total
}

/// Population standard deviation (numpy's default `ddof=0`).
pub fn population_std(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// Every numeric distance between `reference` and `current`.
pub fn numeric(reference: &[f64], current: &[f64]) -> NumericDistances {
    let (ref_sorted, cur_sorted) = std::thread::scope(|s| {
        let r = s.spawn(|| sorted(reference));
        (r.join().expect("sorting does not panic"), sorted(current))
    });
    let ks = ks_sorted(&ref_sorted, &cur_sorted);
    let edges = sturges_edges(reference, current);
    let r = normalise(&histogram(reference, &edges));
    let c = normalise(&histogram(current, &edges));
    NumericDistances {
        ks,
        ks_pvalue: ks_pvalue(ks, reference.len(), current.len()),
        js_log2: js_divergence_log2(&r, &c),
        psi: psi(&r, &c),
        wasserstein_norm: wasserstein(reference, current) / population_std(reference).max(0.001),
        linf: ks,
        linf_corrected: linf_sample_corrected(ks, reference.len(), current.len()),
        reference_count: reference.len(),
        current_count: current.len(),
    }
}

/// Every categorical distance between `reference` and `current`.
pub fn categorical(reference: &[String], current: &[String]) -> CategoricalDistances {
    let mut counts: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for v in reference {
        counts.entry(v).or_default().0 += 1.0;
    }
    for v in current {
        counts.entry(v).or_default().1 += 1.0;
    }
    let (n, m) = (reference.len().max(1) as f64, current.len().max(1) as f64);
    let p: Vec<f64> = counts.values().map(|(a, _)| a / n).collect();
    let q: Vec<f64> = counts.values().map(|(_, b)| b / m).collect();
    let (mut linf, mut linf_value) = (0.0, String::new());
    for ((value, _), (a, b)) in counts.iter().zip(p.iter().zip(&q)) {
        let d = (a - b).abs();
        if d > linf {
            linf = d;
            linf_value = (*value).to_owned();
        }
    }
    CategoricalDistances {
        linf,
        linf_value,
        linf_corrected: linf_sample_corrected(linf, reference.len(), current.len()),
        js_log2: js_divergence_log2(&p, &q),
        reference_count: reference.len(),
        current_count: current.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_cases() {
        // CDFs of {1,2,3} and {2,3,4} differ by 1/3 at most.
        assert!((ks_statistic(&[1.0, 2.0, 3.0], &[2.0, 3.0, 4.0]) - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(ks_statistic(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        // Shifting a sample by 1 moves every unit of mass by 1.
        assert!((wasserstein(&[0.0, 1.0, 2.0], &[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-15);
        assert_eq!(js_divergence_log2(&[1.0, 0.0], &[0.0, 1.0]), 1.0);
        assert_eq!(js_divergence_log2(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        let c = categorical(
            &["a".into(), "a".into(), "b".into(), "b".into()],
            &["a".into(), "b".into(), "b".into(), "c".into()],
        );
        assert_eq!((c.linf, c.linf_value.as_str()), (0.25, "a"));
        assert!(
            (linf_sample_corrected(0.5, 100, 100) - (0.5 - 1.8 * 0.02f64.sqrt())).abs() < 1e-15
        );
        assert_eq!(linf_sample_corrected(0.01, 100, 100), 0.0);
    }

    #[test]
    fn histogram_counts_like_numpy() {
        let edges = sturges_edges(&[0.0, 1.0, 2.0, 3.0], &[4.0]);
        // 5 values: ceil(log2(5) + 1) = 4 bins of width 1 from 0 to 4.
        assert_eq!(edges, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(
            histogram(&[0.0, 1.0, 2.0, 3.0, 4.0], &edges),
            vec![1.0, 1.0, 1.0, 2.0]
        );
        assert!(ks_pvalue(0.0, 10, 10) == 1.0 && ks_pvalue(1.0, 50, 50) < 1e-10);
    }
}
