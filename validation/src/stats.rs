//! Per-feature statistics kept in mergeable sketches, so windows of serving
//! data combine without re-reading rows: count, missing, zeros, mean and
//! standard deviation (exactly mergeable moments, Chan et al.), min, max,
//! quantiles (t-digest, `tdigest` crate), an equal-width histogram over
//! fixed edges, distinct count (HyperLogLog++, `hyperloglogplus` crate),
//! top-k values and average length (strings and lists).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use serde::Serialize;
use tdigest::TDigest;

/// Centroids kept by a t-digest; rank error is about 1/size at the tails
/// and a few times that in the middle.
pub const DIGEST_SIZE: usize = 200;
/// HyperLogLog++ precision: 2^14 registers, ~0.8% standard error.
pub const HLL_PRECISION: u8 = 14;
/// Distinct values counted exactly for top-k (beyond, new values only
/// reach the distinct-count sketch).
pub const MAX_TRACKED_VALUES: usize = 10_000;

/// A fixed hasher, so sketches built anywhere merge.
type Hasher = BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// Exactly mergeable moments of a numeric feature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Moments {
    pub count: u64,
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl Moments {
    pub fn add(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Chan, Golub & LeVeque's pairwise update.
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let n = (self.count + other.count) as f64;
        let delta = other.mean - self.mean;
        self.m2 += other.m2 + delta * delta * self.count as f64 * other.count as f64 / n;
        self.mean += delta * other.count as f64 / n;
        self.count += other.count;
    }

    /// Population standard deviation.
    pub fn std(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.m2 / self.count as f64).sqrt()
        }
    }
}

/// Statistics of a numeric feature.
#[derive(Debug, Clone)]
pub struct NumericSketch {
    pub missing: u64,
    pub zeros: u64,
    pub nan: u64,
    pub moments: Moments,
    pub min: f64,
    pub max: f64,
    digest: TDigest,
    buffer: Vec<f64>,
    /// Equal-width bin edges (e.g. from the training schema) and counts.
    pub edges: Vec<f64>,
    pub histogram: Vec<u64>,
}

impl NumericSketch {
    /// A sketch whose histogram uses `edges` (none: no histogram).
    pub fn new(edges: Vec<f64>) -> Self {
        NumericSketch {
            missing: 0,
            zeros: 0,
            nan: 0,
            moments: Moments::default(),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            digest: TDigest::new_with_size(DIGEST_SIZE),
            buffer: Vec::new(),
            histogram: vec![0; edges.len().saturating_sub(1)],
            edges,
        }
    }

    pub fn add(&mut self, value: Option<f64>) {
        let Some(x) = value else {
            self.missing += 1;
            return;
        };
        if x.is_nan() {
            self.nan += 1;
            return;
        }
        self.zeros += u64::from(x == 0.0);
        self.moments.add(x);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        if let Some(bin) = crate::distances::bin_of(x, &self.edges) {
            self.histogram[bin] += 1;
        }
        self.buffer.push(x);
        if self.buffer.len() >= 50 * DIGEST_SIZE {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.buffer.is_empty() {
            let values = std::mem::take(&mut self.buffer);
            self.digest = self.digest.merge_unsorted(values);
        }
    }

    /// Combines `other` (a sketch with the same edges) into this one.
    pub fn merge(&mut self, other: &NumericSketch) {
        self.flush();
        let mut theirs = other.clone();
        theirs.flush();
        self.missing += theirs.missing;
        self.zeros += theirs.zeros;
        self.nan += theirs.nan;
        self.moments.merge(&theirs.moments);
        self.min = self.min.min(theirs.min);
        self.max = self.max.max(theirs.max);
        for (a, b) in self.histogram.iter_mut().zip(&theirs.histogram) {
            *a += b;
        }
        self.digest = TDigest::merge_digests(vec![self.digest.clone(), theirs.digest]);
    }

    /// The estimated `q` quantile (0 ≤ q ≤ 1).
    pub fn quantile(&mut self, q: f64) -> Option<f64> {
        self.flush();
        self.digest.estimate_quantile(q)
    }

    pub fn count(&self) -> u64 {
        self.moments.count + self.missing + self.nan
    }
}

/// Statistics of a categorical (string or list) feature.
#[derive(Debug, Clone)]
pub struct CategoricalSketch {
    pub count: u64,
    pub missing: u64,
    /// Exact counts of up to [`MAX_TRACKED_VALUES`] values.
    pub values: HashMap<String, u64>,
    /// Values not tracked once the table was full.
    pub untracked: u64,
    distinct: HyperLogLogPlus<String, Hasher>,
    total_length: u64,
}

impl Default for CategoricalSketch {
    fn default() -> Self {
        CategoricalSketch {
            count: 0,
            missing: 0,
            values: HashMap::new(),
            untracked: 0,
            distinct: HyperLogLogPlus::new(HLL_PRECISION, Hasher::default())
                .expect("a valid precision"),
            total_length: 0,
        }
    }
}

impl CategoricalSketch {
    /// Adds a value; `length` is its length in characters (strings) or
    /// elements (lists).
    pub fn add(&mut self, value: Option<&str>, length: usize) {
        let Some(v) = value else {
            self.missing += 1;
            return;
        };
        self.count += 1;
        self.total_length += length as u64;
        self.distinct.insert(v);
        if let Some(c) = self.values.get_mut(v) {
            *c += 1;
        } else if self.values.len() < MAX_TRACKED_VALUES {
            self.values.insert(v.to_owned(), 1);
        } else {
            self.untracked += 1;
        }
    }

    pub fn merge(&mut self, other: &CategoricalSketch) {
        self.count += other.count;
        self.missing += other.missing;
        self.total_length += other.total_length;
        self.untracked += other.untracked;
        self.distinct
            .merge(&other.distinct)
            .expect("sketches of one precision");
        for (v, c) in &other.values {
            if let Some(mine) = self.values.get_mut(v) {
                *mine += c;
            } else if self.values.len() < MAX_TRACKED_VALUES {
                self.values.insert(v.clone(), *c);
            } else {
                self.untracked += c;
            }
        }
    }

    /// Estimated number of distinct values.
    pub fn distinct(&mut self) -> f64 {
        self.distinct.count()
    }

    /// The `k` most frequent values, most frequent first (ties by value).
    pub fn top_k(&self, k: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.values.iter().map(|(s, c)| (s.clone(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(k);
        v
    }

    pub fn average_length(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_length as f64 / self.count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic, skewed sample.
    fn sample(n: usize) -> Vec<f64> {
        let mut state = 42u64;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                (-u.max(1e-12).ln() * 10.0).floor() // exponential, rounded: zeros and ties
            })
            .collect()
    }

    #[test]
    fn ten_merged_chunks_equal_one_pass() {
        let values = sample(100_000);
        let edges: Vec<f64> = (0..=10).map(|i| f64::from(i) * 10.0).collect();
        let mut whole = NumericSketch::new(edges.clone());
        for (i, v) in values.iter().enumerate() {
            whole.add((i % 97 != 0).then_some(*v));
        }
        let mut merged = NumericSketch::new(edges.clone());
        for (c, chunk) in values.chunks(10_000).enumerate() {
            let mut part = NumericSketch::new(edges.clone());
            for (j, v) in chunk.iter().enumerate() {
                part.add(((c * 10_000 + j) % 97 != 0).then_some(*v));
            }
            merged.merge(&part);
        }
        assert_eq!(merged.count(), whole.count());
        assert_eq!(merged.moments.count, whole.moments.count);
        assert_eq!((merged.missing, merged.zeros), (whole.missing, whole.zeros));
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-300);
        assert!(rel(merged.moments.mean, whole.moments.mean) < 1e-12);
        assert!(rel(merged.moments.std(), whole.moments.std()) < 1e-12);
        assert_eq!((merged.min, merged.max), (whole.min, whole.max));
        assert_eq!(merged.histogram, whole.histogram);
        // Quantiles within the sketch's error bound: the estimate's true
        // rank is within 1% of the asked one.
        let mut sorted: Vec<f64> = values
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 97 != 0)
            .map(|(_, v)| *v)
            .collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        for q in [0.01, 0.1, 0.5, 0.9, 0.99] {
            let estimate = merged.quantile(q).unwrap();
            let below = sorted.partition_point(|x| *x < estimate) as f64 / n;
            let at_or_below = sorted.partition_point(|x| *x <= estimate) as f64 / n;
            assert!(
                below - 0.01 <= q && q <= at_or_below + 0.01,
                "q {q}: estimate {estimate} has rank [{below}, {at_or_below}]"
            );
        }
    }

    #[test]
    fn categorical_sketches_merge_counts_distinct_and_lengths() {
        let mut whole = CategoricalSketch::default();
        let mut parts: Vec<CategoricalSketch> = vec![CategoricalSketch::default(); 10];
        for i in 0..50_000u32 {
            let v = format!("v{}", (i * 7919) % 3000);
            let value = (i % 50 != 0).then_some(v.as_str());
            whole.add(value, v.len());
            parts[(i % 10) as usize].add(value, v.len());
        }
        let mut merged = CategoricalSketch::default();
        for p in &parts {
            merged.merge(p);
        }
        assert_eq!((merged.count, merged.missing), (whole.count, whole.missing));
        assert_eq!(merged.top_k(5), whole.top_k(5));
        assert!((merged.average_length() - whole.average_length()).abs() < 1e-12);
        let distinct = merged.distinct();
        assert!(
            (distinct - 3000.0).abs() / 3000.0 < 0.03,
            "distinct {distinct}"
        );
    }
}

/// What a report shows of one window of one feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Summary {
    Numeric {
        count: u64,
        missing: u64,
        zeros: u64,
        mean: f64,
        std: f64,
        min: f64,
        max: f64,
        p50: Option<f64>,
        p99: Option<f64>,
    },
    Categorical {
        count: u64,
        missing: u64,
        distinct: f64,
        top: Vec<(String, u64)>,
        average_length: f64,
    },
}

/// The summary of a numeric sample.
pub fn summarise_numeric(values: &[f64]) -> Summary {
    let mut sketch = NumericSketch::new(Vec::new());
    for v in values {
        sketch.add(Some(*v));
    }
    Summary::Numeric {
        count: sketch.count(),
        missing: sketch.missing,
        zeros: sketch.zeros,
        mean: sketch.moments.mean,
        std: sketch.moments.std(),
        min: sketch.min,
        max: sketch.max,
        p50: sketch.quantile(0.5),
        p99: sketch.quantile(0.99),
    }
}

/// The summary of a categorical sample.
pub fn summarise_categorical(values: &[String]) -> Summary {
    let mut sketch = CategoricalSketch::default();
    for v in values {
        sketch.add(Some(v), v.chars().count());
    }
    Summary::Categorical {
        count: sketch.count,
        missing: sketch.missing,
        distinct: sketch.distinct(),
        top: sketch.top_k(5),
        average_length: sketch.average_length(),
    }
}
