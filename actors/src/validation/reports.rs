//! The validation runs a server remembers: the latest report whole, and each
//! feature's distance over its recent runs, for the console's
//! distance-over-time chart. Bounded: [`POINTS_PER_SERIES`] points per
//! (check, view, feature), and at most [`MAX_SERIES`] series (the longest
//! unseen go first, e.g. an old ranker version's skew).

use std::collections::{HashMap, VecDeque};

use reprise_store::time::{format_rfc3339, Micros};
use serde::Serialize;

use super::drift::DriftRun;

pub const POINTS_PER_SERIES: usize = 96;
pub const MAX_SERIES: usize = 2_000;

/// One feature's distance in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistancePoint {
    pub at: String,
    pub check: String,
    pub view: String,
    pub feature: String,
    pub linf: f64,
    pub threshold: f64,
}

type SeriesKey = (String, String, String);

#[derive(Debug, Default)]
pub struct Reports {
    last: Option<DriftRun>,
    /// Each series' points, oldest first, and the run it was last seen in.
    series: HashMap<SeriesKey, (u64, VecDeque<DistancePoint>)>,
    runs: u64,
}

impl Reports {
    /// Keeps `run` (made at `at`) as the latest and adds its distances.
    pub fn record(&mut self, run: &DriftRun, at: Micros) {
        self.runs += 1;
        let at = format_rfc3339(at);
        for c in &run.comparisons {
            let linf = c.linf();
            let key = (c.check.clone(), c.view.clone(), c.feature.clone());
            let (seen, points) = self.series.entry(key).or_default();
            *seen = self.runs;
            points.push_back(DistancePoint {
                at: at.clone(),
                check: c.check.clone(),
                view: c.view.clone(),
                feature: c.feature.clone(),
                linf,
                threshold: c.threshold,
            });
            if points.len() > POINTS_PER_SERIES {
                points.pop_front();
            }
        }
        if self.series.len() > MAX_SERIES {
            let mut by_age: Vec<(u64, SeriesKey)> = self
                .series
                .iter()
                .map(|(k, (seen, _))| (*seen, k.clone()))
                .collect();
            by_age.sort();
            for (_, key) in by_age.into_iter().take(self.series.len() - MAX_SERIES) {
                self.series.remove(&key);
            }
        }
        self.last = Some(run.clone());
    }

    pub fn last(&self) -> Option<&DriftRun> {
        self.last.as_ref()
    }

    /// Every kept point, by series, oldest first within each.
    pub fn history(&self) -> Vec<DistancePoint> {
        let mut keys: Vec<&SeriesKey> = self.series.keys().collect();
        keys.sort();
        keys.into_iter()
            .flat_map(|k| self.series[k].1.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::drift::Comparison;
    use reprise_validation::distances::numeric;
    use reprise_validation::histogram::numeric_histogram;
    use reprise_validation::stats::summarise_numeric;
    use reprise_validation::ColumnDistances;

    fn run(views: &[&str]) -> DriftRun {
        let (a, b) = ([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]);
        DriftRun {
            comparisons: views
                .iter()
                .map(|v| Comparison {
                    check: "drift".into(),
                    view: (*v).to_owned(),
                    feature: "f".into(),
                    previous_rows: 3,
                    current_rows: 3,
                    distances: ColumnDistances::Numeric(numeric(&a, &b)),
                    reference: summarise_numeric(&a),
                    current: summarise_numeric(&b),
                    histogram: numeric_histogram(&a, &b),
                    threshold: 0.2,
                    fired: true,
                })
                .collect(),
            raised: Vec::new(),
            anomalies: Vec::new(),
        }
    }

    #[test]
    fn each_series_keeps_its_newest_points_and_old_series_go() {
        let mut reports = Reports::default();
        for i in 0..POINTS_PER_SERIES as i64 + 10 {
            reports.record(&run(&["a"]), i * 1_000_000);
        }
        let history = reports.history();
        assert_eq!(history.len(), POINTS_PER_SERIES);
        assert_eq!(history[0].at, format_rfc3339(10 * 1_000_000));
        // Series beyond the bound: the least recently seen are dropped.
        let many: Vec<String> = (0..MAX_SERIES).map(|i| format!("v{i}")).collect();
        let names: Vec<&str> = many.iter().map(String::as_str).collect();
        reports.record(&run(&names), 0);
        assert_eq!(reports.series.len(), MAX_SERIES);
        assert!(!reports
            .series
            .contains_key(&("drift".into(), "a".into(), "f".into())));
        assert_eq!(reports.last().unwrap().comparisons.len(), MAX_SERIES);
    }
}
