//! The web console in a real browser: headless Chromium (Debian's
//! `chromium`) opens every page against a server with the demo loaded and
//! keys checked. Each page renders without an error, shows the numbers the
//! API gives, draws its charts, and shows admin actions only to an admin
//! key. Screenshots of every page are written and listed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value as Json};

use crate::sdk::add_key;
use crate::server::Server;

const CHROMIUM: &str = "chromium";
const PAGES: [&str; 5] = ["overview", "features", "quality", "models", "debug"];

/// A client that sends the key.
struct Keyed<'a> {
    server: &'a Server,
    key: String,
}

impl Keyed<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Json>) -> Json {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{path}", self.server.url);
        let mut response = match (method, body) {
            ("GET", _) => agent.get(&url).header("x-api-key", &self.key).call(),
            (_, body) => agent
                .post(&url)
                .header("x-api-key", &self.key)
                .send_json(body.unwrap_or(json!({}))),
        }
        .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        assert!(status < 300, "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Json::Null)
    }

    fn get(&self, path: &str) -> Json {
        self.call("GET", path, None)
    }
}

/// Runs headless Chromium on `url` with `extra` arguments; its stdout.
fn chromium(url: &str, extra: &[&str]) -> String {
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1280,1600",
            "--virtual-time-budget=20000",
        ])
        .args(extra)
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!("{CHROMIUM} could not run ({e}): install it with `sudo apt-get install chromium` (./scripts/system-packages --tests does)")
        });
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page's DOM once its scripts ran, opened with `key`.
fn dom(server: &Server, page: &str, key: &str) -> String {
    let separator = if page.contains('?') { '&' } else { '?' };
    chromium(
        &format!("{}/ui/#/{page}{separator}key={key}", server.url),
        &["--dump-dom"],
    )
}

/// The text of every element marked `data-test="name"` (up to its first
/// child tag).
fn texts(dom: &str, name: &str) -> Vec<String> {
    let marker = format!("data-test=\"{name}\"");
    dom.match_indices(&marker)
        .map(|(at, _)| {
            let rest = &dom[at..];
            let start = rest.find('>').unwrap() + 1;
            let end = rest[start..].find('<').unwrap() + start;
            rest[start..end].trim().to_owned()
        })
        .collect()
}

fn count(dom: &str, name: &str) -> usize {
    texts(dom, name).len()
}

/// Checks common to every page: it finished rendering, with no error.
fn rendered(dom: &str, page: &str) {
    let page = page.split('?').next().unwrap();
    assert!(
        dom.contains(&format!("data-ready=\"{page}\"")),
        "the {page} page did not finish rendering:\n{dom}"
    );
    let errors = texts(dom, "errors");
    assert_eq!(errors, [""], "errors on the {page} page:\n{dom}");
}

/// Whether the SVG chart marked `name` has at least one drawn bar or point.
fn drawn(dom: &str, name: &str) -> bool {
    let marker = format!("data-test=\"{name}\"");
    dom.match_indices(&marker).any(|(at, _)| {
        let chart = &dom[at..];
        let end = chart.find("</svg>").unwrap_or(chart.len());
        chart[..end].contains("<rect") || chart[..end].contains("<circle")
    })
}

fn screenshots_dir() -> PathBuf {
    let dir = std::env::var_os("REPRISE_SCREENSHOTS").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_console_page_renders_the_apis_numbers_in_a_real_browser() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (file, admin_key) = add_key(keys.path(), "ops", "read,write,admin");
    let (_, read_key) = add_key(keys.path(), "dashboard", "read");
    let server = Server::start(data.path(), &["--demo", "--keys", &file]);
    let admin = Keyed {
        server: &server,
        key: admin_key.clone(),
    };

    // Traffic, an experiment and a validation run, so that every page has
    // something to show.
    let models = admin.get("/v1/models");
    let ranker = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "ranker" && m["status"] == "serving")
        .unwrap()["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let experiment = json!({"arms": [{"name": "control", "model_version": ranker, "traffic": 0.5},
                                     {"name": "treatment", "model_version": ranker, "traffic": 0.5}]});
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let put = agent
        .put(format!("{}/v1/experiments/weekly", server.url))
        .header("x-api-key", &admin_key)
        .send_json(&experiment)
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let now = crate::server::an_hour_ago();
    for u in 0..60 {
        let user = format!("u{u}");
        let served = admin.call(
            "POST",
            "/v1/recommendations",
            Some(json!({"user_id": user, "context": {"device": "web", "country": "SE"}, "k": 10})),
        );
        // A third of the users play their first item.
        if u % 3 == 0 {
            let event = json!({"request_id": served["request_id"], "user_id": user,
                "item_id": served["items"][0]["item_id"], "type": "play", "timestamp": now,
                "features": {"played_seconds": 300, "device": "web"}});
            admin.call("POST", "/v1/events", Some(json!({"events": [event]})));
        }
    }
    let run = admin.call("POST", "/v1/validation/run", Some(json!({})));
    assert!(
        !run["comparisons"].as_array().unwrap().is_empty(),
        "the demo's served traffic gives skew comparisons: {run}"
    );

    // Overview.
    let before = admin.get("/readyz")["store_version"].as_u64().unwrap();
    let page = dom(&server, "overview", &admin_key);
    let after = admin.get("/readyz")["store_version"].as_u64().unwrap();
    rendered(&page, "overview");
    let shown: u64 = texts(&page, "store-version")[0].parse().unwrap();
    assert!(
        (before..=after).contains(&shown),
        "{shown} not in {before}..={after}"
    );
    assert_eq!(texts(&page, "serving-model"), [ranker]);
    let open = admin.get("/v1/alerts")["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "open")
        .count();
    assert_eq!(texts(&page, "open-alerts"), [open.to_string()]);
    assert_eq!(texts(&page, "arms"), ["weekly: control / treatment"]);
    let rate = &texts(&page, "request-rate")[0];
    assert!(
        rate.ends_with(" req/s"),
        "the request rate is measured: {rate}"
    );

    // Features: one row per view version of the catalogue.
    let page = dom(&server, "features", &admin_key);
    rendered(&page, "features");
    let catalog = admin.get("/v1/catalog");
    assert_eq!(
        count(&page, "view-row"),
        catalog["views"].as_array().unwrap().len()
    );

    // Data quality: every comparison drawn, histograms and distance history.
    let reports = admin.get("/v1/validation/reports");
    let page = dom(&server, "quality", &admin_key);
    rendered(&page, "quality");
    assert_eq!(
        count(&page, "comparison"),
        reports["comparisons"].as_array().unwrap().len()
    );
    assert!(drawn(&page, "histogram") && drawn(&page, "distance-history"));
    assert_eq!(
        count(&page, "alert-row"),
        admin.get("/v1/alerts")["alerts"].as_array().unwrap().len()
    );
    assert!(
        count(&page, "run-validation") == 1,
        "admin actions for an admin key"
    );

    // Models: the registry, the experiment's arms with their play rates.
    let page = dom(&server, "models", &admin_key);
    rendered(&page, "models");
    assert_eq!(
        count(&page, "model-row"),
        admin.get("/v1/models")["models"].as_array().unwrap().len()
    );
    let report = admin.get("/v1/experiments/weekly");
    let rates: Vec<String> = report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{:.4}", a["play_rate"].as_f64().unwrap()))
        .collect();
    assert_eq!(texts(&page, "play-rate"), rates);
    assert!(drawn(&page, "arms-chart"));
    assert_eq!(count(&page, "rollback"), 1);

    // Debug a user: plays, a recommendation explained (the contributions
    // reproduce the served score), and a replay without differences.
    let page = dom(&server, "debug?user=u3", &admin_key);
    rendered(&page, "debug");
    assert!(count(&page, "play-row") > 0, "u3's plays are listed");
    assert_eq!(count(&page, "rec-row"), 10);
    assert_eq!(
        texts(&page, "reproduced-score")[0],
        texts(&page, "served-score")[0]
    );
    assert!(drawn(&page, "contributions"));
    assert!(
        texts(&page, "replay-summary")[0].starts_with("0 differences"),
        "{:?}",
        texts(&page, "replay-summary")
    );

    // A read key sees no admin action.
    for name in ["quality", "models"] {
        let page = dom(&server, name, &read_key);
        rendered(&page, name);
        for action in ["run-validation", "ack", "rollback", "retrain", "promote"] {
            assert_eq!(
                count(&page, action),
                0,
                "`{action}` shown to a read key on {name}"
            );
        }
    }

    // Screenshots of every page, listed in the test's output.
    let dir = screenshots_dir();
    for name in PAGES {
        let target = if name == "debug" {
            "debug?user=u3"
        } else {
            name
        };
        let path = dir.join(format!("{name}.png"));
        let separator = if target.contains('?') { '&' } else { '?' };
        chromium(
            &format!("{}/ui/#/{target}{separator}key={admin_key}", server.url),
            &[&format!("--screenshot={}", path.display())],
        );
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} is {size} bytes", path.display());
        println!("console screenshot: {}", path.display());
    }
}
