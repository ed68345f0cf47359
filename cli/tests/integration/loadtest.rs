//! The load tester against a real server: measures, and reports errors.

use std::time::Duration;

use reprise_loadtest::{run, LoadConfig, Report, Scenario};

use crate::server::{run_cli, Server};

fn config(url: &str) -> LoadConfig {
    LoadConfig {
        url: url.to_owned(),
        connections: 4,
        duration: Duration::from_secs(2),
        warmup: Duration::from_millis(300),
        rate: None,
        max_requests: None,
        users: 943,
    }
}

#[test]
fn load_runs_report_throughput_and_latency_without_errors() {
    let data = tempfile::tempdir().unwrap();
    // The demo data (no training: these scenarios read and write features).
    let out = run_cli(data.path(), &["demo-data"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start(data.path(), &[]);
    let config = config(&server.url);
    let scenarios = [Scenario::Baseline, Scenario::Online1x10, Scenario::Push];
    let report = Report {
        url: server.url.clone(),
        connections: config.connections,
        rate: None,
        scenarios: scenarios.iter().map(|s| run(&config, *s)).collect(),
    }
    .with_baseline_ratios();
    for s in &report.scenarios {
        assert!(
            s.requests > 10,
            "{} ran only {} requests",
            s.scenario.name(),
            s.requests
        );
        assert_eq!(s.errors, 0, "{}: {:?}", s.scenario.name(), s.first_error);
        assert!(s.throughput_rps > 0.0);
        assert!(
            s.latency.p50_us > 0
                && s.latency.p50_us <= s.latency.p99_us
                && s.latency.p99_us <= s.latency.max_us
        );
        assert!(s.ratio_to_baseline.is_some());
    }
    assert!(report.over_error_bound(0.0).is_empty());
    assert!(report.table().contains("online_1x10"));

    // Open model: a fixed rate is held, not exceeded.
    let paced = run(
        &LoadConfig {
            rate: Some(200.0),
            ..config
        },
        Scenario::Online1x10,
    );
    assert!(
        (250.0..=450.0).contains(&(paced.requests as f64)),
        "200/s for 2 s gave {}",
        paced.requests
    );
}

#[test]
fn errors_above_the_bound_are_reported() {
    // Nothing listens on this port: every request fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = LoadConfig {
        duration: Duration::from_millis(300),
        warmup: Duration::ZERO,
        ..config(&format!("http://127.0.0.1:{port}"))
    };
    let report = Report {
        url: config.url.clone(),
        connections: config.connections,
        rate: None,
        scenarios: vec![run(&config, Scenario::Baseline)],
    };
    let failed = report.over_error_bound(0.01);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].errors, failed[0].requests);
    assert!(failed[0].first_error.is_some());
}
