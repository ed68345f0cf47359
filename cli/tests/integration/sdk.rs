//! The async Rust SDK against the real server (and scripted stand-ins for
//! failures): typed round trips, streamed snapshot downloads, error codes,
//! the API key, bounded retries with backoff, timeouts.

use std::time::{Duration, Instant};

use reprise_sdk::{
    Arm, Client, Error, Event, RankRequest, RecommendRequest, RetrainRequest, RetryPolicy,
    SnapshotFormat, SnapshotRequest,
};
use serde_json::json;

use crate::server::{stub_http, trained_data, Server};

/// Runs the async part of a test (servers start outside it: their
/// helpers block).
fn run<F: std::future::Future>(test: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test)
}

fn client(server: &Server) -> Client {
    Client::new(&server.url).unwrap()
}

#[test]
fn push_online_snapshot_and_streamed_download_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let now = reprise_store::time::format_rfc3339(reprise_store::time::now_micros());
    let later =
        reprise_store::time::format_rfc3339(reprise_store::time::now_micros() + 86_400_000_000);
    run(async {
        let c = client(&server);
        let rows: Vec<_> = (0..300)
            .map(|i| {
                json!({"user_id": format!("u{i}"), "event_timestamp": now,
                        "plays_7d": i, "favourite_genre": if i % 2 == 0 { "jazz" } else { "rock" }})
            })
            .collect();
        let pushed = c.push("user_stats", &rows, true).await.unwrap();
        assert_eq!(pushed.written, 300);

        let online = c
            .online_features(
                &["user_stats:plays_7d", "user_stats:favourite_genre"],
                &[json!({"user_id": "u7"}), json!({"user_id": "nobody"})],
            )
            .await
            .unwrap();
        assert_eq!(online.rows[0].values, [json!(7), json!("rock")]);
        assert_eq!(online.rows[1].statuses, ["NOT_FOUND", "NOT_FOUND"]);

        let entity_rows: Vec<_> = (0..300)
            .map(|i| json!({"user_id": format!("u{i}"), "event_timestamp": later, "label": i % 3}))
            .collect();
        let snapshot = c
            .create_snapshot(&SnapshotRequest {
                features: vec!["user_stats:plays_7d".into()],
                entity_rows,
                as_of_version: Some(pushed.store_version),
                cutoff: Some("event".into()),
            })
            .await
            .unwrap();
        assert_eq!(snapshot.rows, 300);
        assert_eq!(
            c.snapshot(&snapshot.snapshot_id)
                .await
                .unwrap()
                .store_version,
            pushed.store_version
        );
        let rows = c.snapshot_rows(&snapshot.snapshot_id).await.unwrap();
        assert_eq!(rows.len(), 300);
        assert_eq!(
            (
                rows[42]["user_stats__plays_7d"].clone(),
                rows[42]["label"].clone()
            ),
            (json!(42), json!(0))
        );

        // Streamed to a file, chunk by chunk.
        let path = dir.path().join("rows.parquet");
        let mut file = tokio::fs::File::create(&path).await.unwrap();
        let written = c
            .download_snapshot(&snapshot.snapshot_id, SnapshotFormat::Parquet, &mut file)
            .await
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(written, bytes.len() as u64);
        assert_eq!(&bytes[..4], b"PAR1");

        let err = c.snapshot("no-such-snapshot").await.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(404), Some("snapshot_not_found")),
            "{err}"
        );
    })
}

#[test]
fn errors_carry_the_servers_code_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    run(async {
        let c = client(&server);
        let rows = [
            json!({"user_id": "u1", "event_timestamp": "2026-01-01T00:00:00Z", "plays_7d": "many"}),
        ];
        match c.push("user_stats", &rows, false).await.unwrap_err() {
            Error::Api {
                status,
                code,
                field,
                ..
            } => {
                assert_eq!(
                    (status, code.as_str(), field.as_deref()),
                    (400, "wrong_type", Some("rows[0].plays_7d"))
                );
            }
            other => panic!("{other}"),
        }
    })
}

/// A key made with `reprise keys add` into `dir/keys.toml`: (the keys
/// file, the key printed once).
pub(crate) fn add_key(dir: &std::path::Path, name: &str, scopes: &str) -> (String, String) {
    let file = dir.join("keys.toml");
    let out = std::process::Command::new(crate::server::binary())
        .args(["keys", "add", "--name", name, "--scopes", scopes, "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(!stored.contains(&key), "the keys file holds the key itself");
    (file.to_str().unwrap().to_owned(), key)
}

#[test]
fn the_api_key_is_sent_and_required_when_the_server_has_one() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (file, key) = add_key(keys.path(), "ops", "read,write,admin");
    let (_, reader) = add_key(keys.path(), "dashboard", "read");
    let server = Server::start(dir.path(), &["--keys", &file]);
    run(async {
        let anonymous = client(&server);
        let err = anonymous.models().await.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(401), Some("unauthorized")),
            "{err}"
        );
        // Health and readiness stay open.
        assert!(anonymous.ready().await.is_ok());
        let wrong = Client::builder(&server.url)
            .api_key("guess")
            .build()
            .unwrap();
        assert_eq!(
            wrong.models().await.unwrap_err().code(),
            Some("unauthorized")
        );
        let keyed = Client::builder(&server.url).api_key(&key).build().unwrap();
        assert!(keyed.models().await.unwrap().is_empty());
        // A read key may read, not promote.
        let reading = Client::builder(&server.url)
            .api_key(&reader)
            .build()
            .unwrap();
        assert!(reading.models().await.unwrap().is_empty());
        let err = reading.rollback().await.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(403), Some("forbidden")),
            "{err}"
        );
    })
}

/// Without a keys file the server stays on loopback unless told
/// `--insecure`.
#[test]
fn without_keys_only_loopback_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::server::binary())
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--migrations")
        .arg(crate::server::migrations_dir())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--insecure") && stderr.contains("--keys"),
        "{stderr}"
    );
}

/// The attack from the security report: a percent-encoded spelling of a
/// protected path, sent as is over a raw socket (no client normalises it),
/// must not reach the handler without the key.
#[test]
fn percent_encoded_paths_do_not_bypass_the_api_key() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (file, _) = add_key(keys.path(), "ops", "read,write,admin");
    let server = Server::start(dir.path(), &["--keys", &file]);
    let version = server.store_version();
    let addr = server.url.trim_start_matches("http://").to_owned();
    let body = r#"{"view": "user_stats", "rows": [{"user_id": "evil", "event_timestamp": "2026-01-01T00:00:00Z", "plays_7d": 1}]}"#;
    for (method, target) in [
        ("POST", "/%761/push"),
        ("POST", "/%76%31/%70ush"),
        ("POST", "//v1/push"),
        ("POST", "/v1/./push"),
        ("POST", "/x/../v1/push"),
        ("POST", "/v1/online-features"),
        ("POST", "/%761/online-features"),
        ("GET", "/%761/models"),
    ] {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "{method} {target} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer.split_whitespace().nth(1).unwrap_or("");
        assert!(
            status == "401" || status == "404",
            "{method} {target} answered {status} without a key:\n{answer}"
        );
    }
    assert_eq!(
        server.store_version(),
        version,
        "a request without the key wrote"
    );
}

/// A raw HTTP/1.1 response with a JSON body.
fn response(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn unavailable() -> String {
    response(
        "503 Service Unavailable",
        r#"{"error": {"code": "overloaded", "message": "the store queue is full; retry later"}}"#,
    )
}

#[test]
fn a_503_is_retried_with_backoff_until_it_passes_or_the_retries_run_out() {
    run(async {
        let ok = response("200 OK", r#"{"written": 1, "store_version": 9}"#);
        let (url, requests) = stub_http("", move |n| {
            Some(if n < 2 { unavailable() } else { ok.clone() })
        });
        let policy = RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        };
        let c = Client::builder(&url).retry(policy.clone()).build().unwrap();
        let start = Instant::now();
        let pushed = c.push("v", &[json!({})], false).await.unwrap();
        assert_eq!(pushed.store_version, 9);
        assert_eq!(
            requests.try_iter().count(),
            3,
            "two refusals, then the answer"
        );
        // Backoff: at least half of 50 ms, then half of 100 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(75),
            "{:?}",
            start.elapsed()
        );

        let (url, requests) = stub_http("", |_| Some(unavailable()));
        let c = Client::builder(&url).retry(policy).build().unwrap();
        let err = c.push("v", &[json!({})], false).await.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(503), Some("overloaded")),
            "{err}"
        );
        assert_eq!(
            requests.try_iter().count(),
            4,
            "the first attempt and three retries"
        );
    })
}

#[test]
fn a_refused_connection_is_retried_but_a_timeout_is_not() {
    // Nothing listens on the port until the server starts, 300 ms later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let no_retries = Client::builder(&url)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let refused = run(no_retries.ready());
    assert!(matches!(refused, Err(Error::Transport(_))), "{refused:?}");
    let patient = Client::builder(&url)
        .retry(RetryPolicy {
            max_retries: 20,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
        })
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        Server::start_on(&data, port, &[])
    });
    let version = run(patient.ready());
    let _server = starter.join().unwrap();
    assert!(version.is_ok(), "{version:?}");

    let (url, requests) = stub_http("", |_| None);
    let impatient = Client::builder(&url)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = run(impatient.push("v", &[json!({})], false)).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert_eq!(
        requests.try_iter().count(),
        1,
        "a write that may have landed is not repeated"
    );
}

/// Every serving, model, retraining, experiment and alert endpoint through
/// the SDK on a trained server.
#[test]
fn the_serving_and_model_endpoints_round_trip() {
    let (_dir, data) = trained_data(40, 20, &["--factors", "8", "--iterations", "5"]);
    let server = Server::start_ml(&data, &["--retrain-every", "0"]);
    run(async {
        let c = client(&server);
        let context = json!({"device": "mobile", "country": "SE"});
        let recs = c
            .recommendations(&RecommendRequest {
                user_id: "1".into(),
                context: context.clone(),
                k: Some(5),
            })
            .await
            .unwrap();
        assert_eq!(recs.items.len(), 5);
        assert_eq!(recs.model_version.as_deref(), Some("ranker-1"));
        let missing = c
            .recommendations(&RecommendRequest {
                user_id: "1".into(),
                context: json!({"device": "tv"}),
                k: None,
            })
            .await
            .unwrap_err();
        assert_eq!(
            (missing.code(), missing.status()),
            (Some("missing_context"), Some(422))
        );

        let ids: Vec<String> = recs.items.iter().map(|i| i.item_id.clone()).collect();
        let ranked = c
            .rank(&RankRequest {
                user_id: "1".into(),
                context,
                item_ids: ids.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            ranked.scores.iter().map(|s| &s.item_id).collect::<Vec<_>>(),
            ids.iter().collect::<Vec<_>>()
        );

        let accepted = c
            .events(&[Event {
                request_id: Some(recs.request_id.clone()),
                user_id: "1".into(),
                item_id: ids[0].clone(),
                kind: "play".into(),
                timestamp: "2026-11-29T10:00:00Z".into(),
                played_seconds: Some(200.0),
                ..Event::default()
            }])
            .await
            .unwrap();
        assert_eq!(accepted, 1);

        let started = c
            .retrain(&RetrainRequest {
                factors: Some(8),
                iterations: Some(5),
                ..Default::default()
            })
            .await
            .unwrap();
        let run = c
            .wait_for_run(&started.run_id, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(run.status, "succeeded", "{run:?}");
        assert_eq!(c.retrain_runs().await.unwrap().len(), 1);
        let models = c.models().await.unwrap();
        assert_eq!(models.iter().filter(|m| m.kind == "ranker").count(), 2);
        assert_eq!(c.promote("ranker-2").await.unwrap(), "ranker-2");
        assert_eq!(c.rollback().await.unwrap(), "ranker-1");

        let arms = [
            Arm {
                name: "control".into(),
                model_version: "ranker-1".into(),
                traffic: 0.5,
            },
            Arm {
                name: "treatment".into(),
                model_version: "ranker-2".into(),
                traffic: 0.5,
            },
        ];
        c.put_experiment("home", &arms).await.unwrap();
        assert_eq!(c.experiments().await.unwrap().len(), 1);
        let report = c.experiment("home").await.unwrap();
        assert_eq!(report["arms"].as_array().unwrap().len(), 2, "{report}");
        assert!(c.alerts().await.unwrap().is_empty());
        let err = c.acknowledge_alert("nope").await.unwrap_err();
        assert_eq!(err.code(), Some("alert_not_found"));
    })
}
