//! Per-arm online metrics from the served-feature log joined with feedback:
//! impressions (served items), plays (engaged), skips, play rate, and a
//! two-proportion z-test of each arm's play rate against the first arm's.

use reprise_store::time::parse_rfc3339;
use reprise_store::FeatureStore;
use serde::Serialize;

use super::assign::Experiment;
use super::tally::Tally;
use crate::error::ActorError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmMetrics {
    pub arm: String,
    pub model_version: String,
    pub impressions: u64,
    pub plays: u64,
    pub skips: u64,
    pub play_rate: f64,
    /// Against the first arm (none for the first arm itself).
    pub z: Option<f64>,
    pub p_value: Option<f64>,
    /// 95% confidence interval of this arm's play rate minus the first's.
    pub diff_ci95: Option<(f64, f64)>,
}

/// Two-sided p-value of a standard normal statistic.
fn normal_two_sided(z: f64) -> f64 {
    // erfc(|z|/√2), by the Abramowitz–Stegun 7.1.26 rational approximation.
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    (poly * (-x * x).exp()).clamp(0.0, 1.0)
}

/// The two-proportion z statistic and the 95% CI of `p2 − p1`.
pub fn two_proportion(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<(f64, f64, (f64, f64))> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let (p1, p2) = (x1 as f64 / n1f, x2 as f64 / n2f);
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    let z = if se > 0.0 { (p2 - p1) / se } else { 0.0 };
    let se_diff = (p1 * (1.0 - p1) / n1f + p2 * (1.0 - p2) / n2f).sqrt();
    Some((
        z,
        normal_two_sided(z),
        (p2 - p1 - 1.96 * se_diff, p2 - p1 + 1.96 * se_diff),
    ))
}

/// Metrics of every arm of `experiment` since it was defined: from its
/// tally (a few lookups) when it has one, else by a scan of the served log.
pub fn arm_metrics(
    store: &FeatureStore,
    experiment: &Experiment,
) -> Result<Vec<ArmMetrics>, ActorError> {
    let tally = Tally::of(experiment);
    let counts = if tally.exists(store)? {
        experiment
            .arms
            .iter()
            .map(|arm| tally.read(store, &arm.name))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        scan_counts(store, experiment)?
    };
    Ok(with_tests(experiment, counts))
}

/// (impressions, plays, skips) per arm, counted over the served log since
/// the experiment was defined: a key range of the time-ordered request ids,
/// streamed (what the tallies keep up to date as they go).
pub fn scan_counts(
    store: &FeatureStore,
    experiment: &Experiment,
) -> Result<Vec<(u64, u64, u64)>, ActorError> {
    let since = parse_rfc3339(&experiment.defined_at).unwrap_or(i64::MIN);
    let mut counts = vec![(0u64, 0u64, 0u64); experiment.arms.len()];
    reprise_trainer::served_log::for_each_served(store, store.version(), Some(since), |example| {
        let arm = experiment.arms.iter().position(|arm| {
            example.arm.as_deref() == Some(arm.name.as_str())
                && example.model_version.as_deref() == Some(arm.model_version.as_str())
        });
        if let Some(a) = arm {
            counts[a].0 += 1;
            counts[a].1 += u64::from(example.label == Some(true));
            counts[a].2 += u64::from(example.label == Some(false));
        }
        Ok(())
    })?;
    Ok(counts)
}

/// The arms' rates and their tests against the first arm.
fn with_tests(experiment: &Experiment, counts: Vec<(u64, u64, u64)>) -> Vec<ArmMetrics> {
    let mut out: Vec<ArmMetrics> = experiment
        .arms
        .iter()
        .zip(counts)
        .map(|(arm, (impressions, plays, skips))| ArmMetrics {
            arm: arm.name.clone(),
            model_version: arm.model_version.clone(),
            impressions,
            plays,
            skips,
            play_rate: if impressions == 0 {
                0.0
            } else {
                plays as f64 / impressions as f64
            },
            z: None,
            p_value: None,
            diff_ci95: None,
        })
        .collect();
    if let Some((first, rest)) = out.split_first_mut() {
        for arm in rest {
            if let Some((z, p, ci)) =
                two_proportion(first.plays, first.impressions, arm.plays, arm.impressions)
            {
                arm.z = Some(z);
                arm.p_value = Some(p);
                arm.diff_ci95 = Some(ci);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_proportion_test_matches_a_hand_computation() {
        // 100/1000 vs 130/1000: pooled 0.115, se = sqrt(.115·.885·.002) = 0.014267;
        // z = 0.03 / 0.014267 = 2.1027; two-sided p ≈ 0.0355.
        let (z, p, (lo, hi)) = two_proportion(100, 1000, 130, 1000).unwrap();
        assert!((z - 2.1027).abs() < 1e-3, "{z}");
        assert!((p - 0.0355).abs() < 1e-3, "{p}");
        let se = (0.1 * 0.9 / 1000.0 + 0.13 * 0.87 / 1000.0f64).sqrt();
        assert!((lo - (0.03 - 1.96 * se)).abs() < 1e-12 && (hi - (0.03 + 1.96 * se)).abs() < 1e-12);
        assert!(two_proportion(1, 0, 1, 10).is_none());
        assert!((normal_two_sided(0.0) - 1.0).abs() < 1e-6);
        assert!((normal_two_sided(1.959964) - 0.05).abs() < 1e-4);
    }
}
