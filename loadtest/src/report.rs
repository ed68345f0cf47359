//! What a run measured, printed as a table and written as JSON.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::scenario::Scenario;

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: Scenario,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub throughput_rps: f64,
    pub latency: Latency,
    /// Throughput as a fraction of the `baseline` scenario's in the same run.
    pub ratio_to_baseline: Option<f64>,
}

impl ScenarioReport {
    pub fn new(
        scenario: Scenario,
        requests: u64,
        errors: u64,
        first_error: Option<String>,
        elapsed: Duration,
        histogram: &Histogram<u64>,
    ) -> Self {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let q = |quantile: f64| {
            if histogram.is_empty() {
                0
            } else {
                histogram.value_at_quantile(quantile)
            }
        };
        ScenarioReport {
            scenario,
            requests,
            errors,
            first_error,
            seconds,
            throughput_rps: requests as f64 / seconds,
            latency: Latency {
                p50_us: q(0.5),
                p90_us: q(0.9),
                p99_us: q(0.99),
                p999_us: q(0.999),
                max_us: histogram.max(),
                mean_us: histogram.mean(),
            },
            ratio_to_baseline: None,
        }
    }

    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            1.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    pub connections: usize,
    pub rate: Option<f64>,
    pub scenarios: Vec<ScenarioReport>,
}

impl Report {
    /// Fills each scenario's ratio to the baseline run, if one ran.
    pub fn with_baseline_ratios(mut self) -> Self {
        let baseline = self
            .scenarios
            .iter()
            .find(|s| s.scenario == Scenario::Baseline)
            .map(|s| s.throughput_rps);
        if let Some(base) = baseline.filter(|b| *b > 0.0) {
            for s in &mut self.scenarios {
                s.ratio_to_baseline = Some(s.throughput_rps / base);
            }
        }
        self
    }

    /// Scenarios whose error rate is above `bound` (or that ran no request).
    pub fn over_error_bound(&self, bound: f64) -> Vec<&ScenarioReport> {
        self.scenarios
            .iter()
            .filter(|s| s.error_rate() > bound)
            .collect()
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<14} {:>9} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}\n",
            "scenario",
            "requests",
            "errors",
            "req/s",
            "p50 us",
            "p90 us",
            "p99 us",
            "p99.9 us",
            "max us",
            "vs base"
        );
        for s in &self.scenarios {
            out.push_str(&format!(
                "{:<14} {:>9} {:>7} {:>10.0} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}\n",
                s.scenario.name(),
                s.requests,
                s.errors,
                s.throughput_rps,
                s.latency.p50_us,
                s.latency.p90_us,
                s.latency.p99_us,
                s.latency.p999_us,
                s.latency.max_us,
                s.ratio_to_baseline
                    .map_or("-".to_owned(), |r| format!("{:.0}%", r * 100.0)),
            ));
        }
        out
    }
}
