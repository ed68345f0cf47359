//! Runs one scenario: `connections` threads, each with its own keep-alive
//! HTTP client, for `warmup + duration` (or until `max_requests`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::report::ScenarioReport;
use crate::scenario::Scenario;

#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// `http://127.0.0.1:8080`
    pub url: String,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Requests per second for the whole run (open model); `None` = as fast
    /// as the connections go (closed model).
    pub rate: Option<f64>,
    /// Stop after this many measured requests.
    pub max_requests: Option<u64>,
    /// User ids `1..=users` for the `recommendations` scenario.
    pub users: u32,
}

struct WorkerResult {
    histogram: Histogram<u64>,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `scenario` and returns what was measured after the warm-up.
pub fn run(config: &LoadConfig, scenario: Scenario) -> ScenarioReport {
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    let next = Arc::new(AtomicU64::new(0));
    let measured = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..config.connections.max(1))
        .map(|w| {
            let config = config.clone();
            let (next, measured) = (Arc::clone(&next), Arc::clone(&measured));
            std::thread::spawn(move || {
                worker(
                    &config,
                    scenario,
                    w as u64,
                    start,
                    measure_from,
                    end,
                    &next,
                    &measured,
                )
            })
        })
        .collect();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let (mut requests, mut errors, mut first_error) = (0, 0, None);
    for w in workers {
        let result = w.join().expect("load worker panicked");
        histogram.add(&result.histogram).expect("same bounds");
        requests += result.requests;
        errors += result.errors;
        first_error = first_error.or(result.first_error);
    }
    let elapsed = Instant::now()
        .min(end)
        .saturating_duration_since(measure_from);
    ScenarioReport::new(scenario, requests, errors, first_error, elapsed, &histogram)
}

#[allow(clippy::too_many_arguments)]
fn worker(
    config: &LoadConfig,
    scenario: Scenario,
    seed: u64,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    next: &AtomicU64,
    measured: &AtomicU64,
) -> WorkerResult {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut result = WorkerResult {
        histogram: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        requests: 0,
        errors: 0,
        first_error: None,
    };
    loop {
        let intended = match config.rate {
            Some(rate) => {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let at = start + Duration::from_secs_f64(k as f64 / rate);
                if at >= end {
                    break;
                }
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                at
            }
            None => Instant::now(),
        };
        if intended >= end {
            break;
        }
        let counted = intended >= measure_from;
        if counted {
            if let Some(max) = config.max_requests {
                if measured.fetch_add(1, Ordering::Relaxed) >= max {
                    break;
                }
            }
        }
        let request = scenario.request(&mut rng, config.users);
        let url = format!("{}{}", config.url, request.path);
        let outcome = match request.body {
            None => agent.get(&url).call(),
            Some(body) => agent
                .post(&url)
                .header("content-type", "application/json")
                .send(&body[..]),
        };
        let error = match outcome {
            Ok(mut response) => {
                let status = response.status().as_u16();
                // Read the body so the connection is reused.
                let _ = response.body_mut().read_to_vec();
                (status >= 400).then(|| format!("HTTP {status} from {}", request.path))
            }
            Err(e) => Some(format!("{e}")),
        };
        if counted {
            let micros = intended.elapsed().as_micros().max(1) as u64;
            result.histogram.saturating_record(micros);
            result.requests += 1;
            if let Some(e) = error {
                result.errors += 1;
                result.first_error.get_or_insert(e);
            }
        }
    }
    result
}
