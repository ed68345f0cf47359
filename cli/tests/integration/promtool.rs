//! Prometheus conventions, checked by Prometheus' own tool (`promtool`,
//! Debian's `prometheus` package): a scrape of a server that has served
//! every route passes `promtool check metrics`; the shipped alerting rules
//! pass `promtool check rules` and their unit tests; every metric the rules
//! and the Grafana dashboard query is one the server exposes.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::server::Server;

fn deploy() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy"))
}

/// Runs promtool with `args` and `stdin`; (success, stdout + stderr).
fn promtool(args: &[&str], stdin: &str, dir: &Path) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs: install Debian's `prometheus` package (./scripts/system-packages --tests does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Metric names a PromQL text refers to (histogram suffixes removed).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("reprise_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        names.insert(base.to_owned());
    }
    names
}

#[test]
fn metrics_rules_and_dashboard_follow_prometheus_conventions() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--demo"]);
    // Every route once, whatever it answers.
    for (method, path) in reprise_api::routes::ROUTES {
        let path = path
            .replace("{id}", "x")
            .replace("{version}", "x")
            .replace("{name}", "x")
            .replace("{request_id}", "x")
            .replace("{user_id}", "u1");
        let (status, body) = if *method == "get" {
            server.get(&path)
        } else {
            server.post(&path, &json!({}))
        };
        assert!(
            status < 500 || status == 503,
            "{method} {path}: {status} {body}"
        );
    }
    // Traffic that gives every labelled series a value: online reads,
    // served recommendations (then a validation run compares them with
    // training), an experiment.
    let (status, _) = server.post(
        "/v1/online-features",
        &json!({"features": ["user_stats:plays_7d"], "entities": [{"user_id": "u1"}]}),
    );
    assert_eq!(status, 200);
    for u in 0..40 {
        server.recommend(&format!("u{u}"), 10);
    }
    let (status, body) = server.post("/v1/validation/run", &json!({}));
    assert_eq!(status, 200, "{body}");
    let ranker = server.recommend("u1", 1)["model_version"].clone();
    let (status, body) = server.put(
        "/v1/experiments/weekly",
        &json!({"arms": [{"name": "a", "model_version": ranker, "traffic": 0.5},
                         {"name": "b", "model_version": ranker, "traffic": 0.5}]}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, scrape) = server.get_text("/metrics");
    assert_eq!(status, 200);

    let (ok, problems) = promtool(&["check", "metrics"], &scrape, deploy());
    assert!(
        ok && problems.trim().is_empty(),
        "promtool check metrics:\n{problems}"
    );

    let (ok, out) = promtool(&["check", "rules", "prometheus/rules.yml"], "", deploy());
    assert!(ok, "{out}");
    let (ok, out) = promtool(
        &["test", "rules", "rules_test.yml"],
        "",
        &deploy().join("prometheus"),
    );
    assert!(ok, "{out}");

    // What the rules and the dashboard query exists.
    let exposed: BTreeSet<String> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    for file in ["prometheus/rules.yml", "grafana/reprise.json"] {
        let text = std::fs::read_to_string(deploy().join(file)).unwrap();
        let used = metric_names(&text);
        assert!(used.len() > 5, "{file} queries {used:?}");
        let missing: Vec<&String> = used.difference(&exposed).collect();
        assert!(
            missing.is_empty(),
            "{file} queries metrics the server lacks: {missing:?}"
        );
    }
}
