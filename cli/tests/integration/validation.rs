//! The drift monitor on the real server: a shift pushed into one feature
//! raises exactly that feature's alert, an unchanged one none; the open
//! blocking alert stops promotion until it is acknowledged.

use serde_json::{json, Value as Json};

use std::path::{Path, PathBuf};

use crate::server::{http_sink, movielens_migrations, reprise_with, trained_data_with, Server};

/// The MovieLens catalogue plus the demo catalogue's `user_stats` view (a
/// view a stream aggregator pushes, whose drift these tests provoke), in a
/// folder under `dir`.
fn catalogue_with_stats(dir: &Path) -> PathBuf {
    let out = dir.join("migrations");
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(movielens_migrations()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, out.join(path.file_name().unwrap())).unwrap();
    }
    let stats = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/0002_user_features.toml");
    std::fs::copy(stats, out.join("0009_user_features.toml")).unwrap();
    out
}

/// A trained server over generated MovieLens-format data, with `user_stats`.
fn trained_server(extra: &[&str]) -> ((tempfile::TempDir, tempfile::TempDir), Server) {
    let base = tempfile::tempdir().unwrap();
    let migrations = catalogue_with_stats(base.path());
    let (dir, data) = trained_data_with(
        &migrations,
        40,
        15,
        &["--factors", "4", "--iterations", "3"],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server::start_with(&migrations, &data, port, extra);
    ((base, dir), server)
}

#[test]
fn a_shift_in_one_feature_raises_its_alert_and_blocks_promotion_until_ack() {
    let (webhook, posted) = http_sink("/alerts");
    let (_dir, server) = trained_server(&["--drift-window", "1h", "--alert-webhook", &webhook]);

    // Two windows of user_stats: plays_7d shifts by +40, the genre mix and
    // skips stay as they were.
    let now = chrono::Utc::now();
    let rows: Vec<Json> = (0..120)
        .map(|i| {
            let current = i >= 60;
            let at = now - chrono::Duration::minutes(if current { 10 } else { 90 });
            let plays = (i % 20) + if current { 40 } else { 0 };
            let genre = ["jazz", "rock", "pop"][i as usize % 3];
            json!({"user_id": format!("d{i}"), "event_timestamp": at.to_rfc3339(),
                   "plays_7d": plays, "skips_7d": i % 7,
                   "favourite_genre": genre})
        })
        .collect();
    let (status, body) = server.post("/v1/push", &json!({"view": "user_stats", "rows": rows}));
    assert_eq!(status, 200, "{body}");

    let (status, run) = server.post("/v1/validation/run", &json!({}));
    assert_eq!(status, 200, "{run}");
    let raised = run["raised"].as_array().unwrap();
    assert_eq!(raised.len(), 1, "exactly one alert: {run}");
    assert_eq!(raised[0]["view"], "user_stats");
    assert_eq!(raised[0]["feature"], "plays_7d");
    assert_eq!(raised[0]["blocking"], true);
    assert!(
        raised[0]["value"].as_f64().unwrap() > 0.9,
        "KS of a 40-play shift"
    );
    // The drift alert triggered a retraining run: a new ranker appears.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, models) = server.client.get("/v1/models").unwrap();
        if String::from_utf8_lossy(&models).contains("ranker-2") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no retraining after the drift alert"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The webhook got the alert.
    let sent: Json = serde_json::from_slice(
        &posted
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (sent["id"].clone(), sent["feature"].clone()),
        (raised[0]["id"].clone(), json!("plays_7d"))
    );
    // Every comparison is reported, fired or not, with all distances.
    let compared: Vec<(&str, bool)> = run["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["view"] == "user_stats")
        .map(|c| {
            (
                c["feature"].as_str().unwrap(),
                c["fired"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(
        compared.contains(&("favourite_genre", false)),
        "{compared:?}"
    );
    assert!(compared.contains(&("skips_7d", false)), "{compared:?}");
    assert!(compared.contains(&("plays_7d", true)), "{compared:?}");
    let plays = run["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["feature"] == "plays_7d")
        .unwrap();
    for key in [
        "ks",
        "ks_pvalue",
        "js_log2",
        "psi",
        "wasserstein_norm",
        "linf",
    ] {
        assert!(plays["distances"][key].is_number(), "{key} in {plays}");
    }

    // The report shows statistics side by side.
    let (_, report) = server.client.get("/v1/validation/reports").unwrap();
    let report: Json = serde_json::from_slice(&report).unwrap();
    let plays = report["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["feature"] == "plays_7d")
        .unwrap();
    assert_eq!(plays["reference"]["count"], 60);
    let (before, after) = (
        plays["reference"]["mean"].as_f64().unwrap(),
        plays["current"]["mean"].as_f64().unwrap(),
    );
    assert!((after - before - 40.0).abs() < 1e-9, "{before} → {after}");

    // The open blocking alert stops promotion...
    let id = raised[0]["id"].as_str().unwrap().to_owned();
    let (status, err) = server.post("/v1/models/ranker-1/promote", &json!({}));
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "promotion_blocked");
    assert!(err["error"]["message"].as_str().unwrap().contains(&id));
    let (_, listing) = server.client.get("/v1/alerts").unwrap();
    let listing: Json = serde_json::from_slice(&listing).unwrap();
    assert_eq!(listing["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(listing["alerts"][0]["status"], "open");

    // ...until acknowledged; a second run does not raise it again.
    let (status, acked) = server.post(&format!("/v1/alerts/{id}/ack"), &json!({}));
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    let (status, body) = server.post("/v1/models/ranker-1/promote", &json!({}));
    assert_eq!(status, 200, "{body}");
    let (_, again) = server.post("/v1/validation/run", &json!({}));
    assert_eq!(again["raised"].as_array().unwrap().len(), 0, "{again}");
    let (status, err) = server.post("/v1/alerts/nope/ack", &json!({}));
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("alert_not_found"))
    );
}

/// The skew check compares the serving ranker's training context with the
/// context logged for what it served, feature by feature.
#[test]
fn training_serving_skew_is_compared_per_context_feature() {
    let (_dir, server) = trained_server(&["--drift-window", "1h"]);
    for user in 1..=10 {
        let (status, body) = server.post("/v1/recommendations",
            &json!({"user_id": user.to_string(), "context": {"device": "web", "country": "SE"}, "k": 5}),
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, run) = server.post("/v1/validation/run", &json!({}));
    assert_eq!(status, 200, "{run}");
    let skew: Vec<&Json> = run["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "skew")
        .collect();
    let names: Vec<&str> = skew
        .iter()
        .map(|c| c["feature"].as_str().unwrap())
        .collect();
    assert_eq!(names, crate::server::declared_inputs().names());
    for c in &skew {
        assert_eq!(c["view"], "ranker-1");
        assert_eq!(c["current_rows"], 50, "10 responses of 5 items");
        assert!(
            c["previous_rows"].as_u64().unwrap() > 50,
            "the training snapshot's rows"
        );
        let linf = c["distances"]["linf"].as_f64().unwrap();
        assert_eq!(c["fired"], linf > 0.2, "{c}");
    }
    // Serving context is also checked against the training schema stored
    // with the ranker's snapshot; every anomaly is typed.
    let kinds = [
        "missing_feature",
        "low_presence",
        "out_of_domain",
        "out_of_range",
        "type_mismatch",
        "nan",
        "new_feature",
    ];
    for anomaly in run["anomalies"].as_array().unwrap() {
        assert!(
            kinds.contains(&anomaly["kind"].as_str().unwrap()),
            "{anomaly}"
        );
    }
    // Alerts raised name the ranker and the feature.
    for alert in run["raised"].as_array().unwrap() {
        assert!(
            ["skew", "schema"].contains(&alert["check"].as_str().unwrap()),
            "{alert}"
        );
        assert_eq!(alert["view"], "ranker-1");
    }
}

/// A burst of requests without mandatory context raises an anomaly spike.
#[test]
fn a_burst_of_missing_context_raises_an_anomaly_spike() {
    let (_dir, server) = trained_server(&["--drift-window", "1h"]);
    for _ in 0..12 {
        let (status, _) = server.post(
            "/v1/recommendations",
            &json!({"user_id": "1", "context": {"device": "web"}, "k": 3}),
        );
        assert_eq!(status, 422);
    }
    let (_, run) = server.post("/v1/validation/run", &json!({}));
    let spikes: Vec<&Json> = run["raised"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["check"] == "anomaly_spike")
        .collect();
    assert_eq!(spikes.len(), 1, "{run}");
    assert_eq!(spikes[0]["value"], 12.0);
}

/// `reprise validate` runs the same checks offline and prints and writes
/// the side-by-side report.
#[test]
fn reprise_validate_reports_the_shifted_feature() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let migrations = catalogue_with_stats(dir.path());
    let now = chrono::Utc::now();
    let rows: String = (0..100)
        .map(|i| {
            let current = i >= 50;
            let at = now - chrono::Duration::minutes(if current { 5 } else { 65 });
            let plays = (i % 10) + if current { 25 } else { 0 };
            format!(
                "{}\n",
                json!({"user_id": format!("v{i}"), "event_timestamp": at.to_rfc3339(), "plays_7d": plays, "skips_7d": i % 4})
            )
        })
        .collect();
    let file = dir.path().join("rows.jsonl");
    std::fs::write(&file, rows).unwrap();
    reprise_with(
        &migrations,
        &data,
        &["push", "--view", "user_stats", file.to_str().unwrap()],
    );
    let report_file = dir.path().join("report.json");
    let out = reprise_with(
        &migrations,
        &data,
        &[
            "validate",
            "--window",
            "1h",
            "--json",
            report_file.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("plays_7d") && stdout.contains("alert"),
        "{stdout}"
    );
    let report: Json =
        serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    let fired: Vec<&str> = report["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["fired"] == true)
        .map(|c| c["feature"].as_str().unwrap())
        .collect();
    assert_eq!(fired, ["plays_7d"]);
}

/// Which checks block promotion is configurable: with drift left out, a
/// drift alert is raised but does not block.
#[test]
fn a_check_left_out_of_blocking_checks_does_not_block_promotion() {
    let (_dir, server) =
        trained_server(&["--drift-window", "1h", "--blocking-checks", "skew,schema"]);
    let now = chrono::Utc::now();
    let rows: Vec<Json> = (0..80)
        .map(|i| {
            let at = now - chrono::Duration::minutes(if i >= 40 { 5 } else { 70 });
            json!({"user_id": format!("b{i}"), "event_timestamp": at.to_rfc3339(),
                   "plays_7d": (i % 10) + if i >= 40 { 30 } else { 0 }})
        })
        .collect();
    let (status, _) = server.post("/v1/push", &json!({"view": "user_stats", "rows": rows}));
    assert_eq!(status, 200);
    let (_, run) = server.post("/v1/validation/run", &json!({}));
    let drift: Vec<&Json> = run["raised"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["check"] == "drift")
        .collect();
    assert_eq!(drift.len(), 1, "{run}");
    assert_eq!(drift[0]["blocking"], false);
    let (status, body) = server.post("/v1/models/ranker-1/promote", &json!({}));
    assert_eq!(status, 200, "{body}");
}
