//! The online-metric trigger: the play rate of served items (engaged
//! feedback / all verdicts on them) over consecutive windows of
//! `window` verdicts. The baseline is the pooled rate of the windows seen
//! since the serving model last changed; a window more than `drop` (a
//! fraction) under it is a drop.

use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayRateDrop {
    pub rate: f64,
    pub baseline: f64,
}

#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct State {
    model: Option<String>,
    window_plays: u64,
    window_total: u64,
    baseline_plays: u64,
    baseline_total: u64,
    last_rate: Option<f64>,
}

#[derive(Debug)]
pub struct PlayRateMonitor {
    window: u64,
    drop: f64,
    state: Mutex<State>,
}

/// Sampled for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlayRateSnapshot {
    pub last_window: Option<f64>,
    pub baseline: Option<f64>,
}

impl PlayRateMonitor {
    pub fn new(window: u64, drop: f64) -> Self {
        PlayRateMonitor {
            window: window.max(1),
            drop,
            state: Mutex::new(State::default()),
        }
    }

    /// Counts the verdicts (engaged or not) on items served by `model`;
    /// returns a drop when a window closes more than the margin under the
    /// baseline.
    pub fn observe(&self, model: Option<&str>, verdicts: &[bool]) -> Option<PlayRateDrop> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.model.as_deref() != model {
            *s = State {
                model: model.map(str::to_owned),
                ..State::default()
            };
        }
        let mut dropped = None;
        for engaged in verdicts {
            s.window_total += 1;
            s.window_plays += u64::from(*engaged);
            if s.window_total < self.window {
                continue;
            }
            let rate = s.window_plays as f64 / s.window_total as f64;
            s.last_rate = Some(rate);
            let baseline =
                (s.baseline_total > 0).then(|| s.baseline_plays as f64 / s.baseline_total as f64);
            match baseline {
                Some(b) if rate < b * (1.0 - self.drop) => {
                    dropped = Some(PlayRateDrop { rate, baseline: b });
                }
                _ => {
                    s.baseline_plays += s.window_plays;
                    s.baseline_total += s.window_total;
                }
            }
            s.window_plays = 0;
            s.window_total = 0;
        }
        dropped
    }

    /// The counters as a checkpoint (JSON).
    pub fn checkpoint(&self) -> Vec<u8> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::to_vec(&*s).expect("plain counters serialise")
    }

    /// Resumes from a [`checkpoint`](Self::checkpoint); an unreadable one
    /// (from another version) is ignored and the monitor starts afresh.
    pub fn resume(&self, checkpoint: &[u8]) -> bool {
        match serde_json::from_slice::<State>(checkpoint) {
            Ok(state) => {
                *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
                true
            }
            Err(_) => false,
        }
    }

    pub fn snapshot(&self) -> PlayRateSnapshot {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        PlayRateSnapshot {
            last_window: s.last_rate,
            baseline: (s.baseline_total > 0)
                .then(|| s.baseline_plays as f64 / s.baseline_total as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(plays: usize, total: usize) -> Vec<bool> {
        (0..total).map(|i| i < plays).collect()
    }

    #[test]
    fn a_window_under_the_baseline_by_the_margin_is_a_drop() {
        let m = PlayRateMonitor::new(100, 0.2);
        assert_eq!(m.observe(Some("ranker-1"), &verdicts(50, 100)), None);
        // 0.42 is 16% under 0.5: no drop; it joins the baseline.
        assert_eq!(m.observe(Some("ranker-1"), &verdicts(42, 100)), None);
        assert_eq!(m.snapshot().baseline, Some(0.46));
        // 0.30 is 35% under 0.46.
        let drop = m.observe(Some("ranker-1"), &verdicts(30, 100)).unwrap();
        assert_eq!((drop.rate, drop.baseline), (0.3, 0.46));
        // Dropped windows stay out of the baseline.
        assert_eq!(m.snapshot().baseline, Some(0.46));
    }

    #[test]
    fn a_new_serving_model_starts_a_new_baseline() {
        let m = PlayRateMonitor::new(10, 0.2);
        m.observe(Some("ranker-1"), &verdicts(9, 10));
        assert_eq!(m.observe(Some("ranker-2"), &verdicts(3, 10)), None);
        assert_eq!(m.snapshot().baseline, Some(0.3));
    }

    #[test]
    fn a_resumed_monitor_continues_where_the_checkpoint_left_off() {
        let m = PlayRateMonitor::new(10, 0.2);
        m.observe(Some("ranker-1"), &verdicts(8, 10));
        m.observe(Some("ranker-1"), &verdicts(2, 5));
        let resumed = PlayRateMonitor::new(10, 0.2);
        assert!(resumed.resume(&m.checkpoint()));
        assert_eq!(resumed.snapshot(), m.snapshot());
        // The half-filled window closes after 5 more verdicts, as it would have.
        assert!(resumed.observe(Some("ranker-1"), &verdicts(0, 4)).is_none());
        assert!(resumed.observe(Some("ranker-1"), &[false]).is_some());
        assert!(!resumed.resume(b"not json"));
    }

    #[test]
    fn partial_windows_do_not_decide() {
        let m = PlayRateMonitor::new(10, 0.2);
        m.observe(None, &verdicts(10, 10));
        assert_eq!(m.observe(None, &verdicts(0, 9)), None);
        assert!(m.observe(None, &[false]).is_some());
    }
}
