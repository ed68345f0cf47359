//! The two-stage recommendation path end to end on the real server, over
//! generated MovieLens-format data: import, train, serve; personalised and
//! cold-start responses, missing context, feedback events, the candidate
//! cache and the served-feature log.

use serde_json::{json, Value as Json};

use crate::server::{reprise_ml, run_cli_ml, trained_data, Server};

/// A JSON value of an online read back as a store value.
pub(crate) fn value(v: &Json) -> Option<reprise_store::Value> {
    use reprise_store::Value;
    Some(match v {
        Json::Null => return None,
        Json::Bool(b) => Value::Bool(*b),
        Json::String(s) => Value::String(s.clone()),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int64(i),
            None => Value::Float64(n.as_f64().unwrap()),
        },
        Json::Array(a) if a.iter().all(Json::is_string) => {
            Value::StringList(a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        }
        Json::Array(a) => {
            Value::FloatVector(a.iter().map(|x| x.as_f64().unwrap() as f32).collect())
        }
        Json::Object(_) => panic!("no object values"),
    })
}

pub(crate) fn trained_server() -> (tempfile::TempDir, Server) {
    // Short generator lists, so that over 40 items every source shows.
    let (dir, data) = trained_data(
        60,
        20,
        &[
            "--factors",
            "8",
            "--iterations",
            "5",
            "--candidates",
            "5",
            "--popular-candidates",
            "3",
        ],
    );
    let server = Server::start_ml(&data, &[]);
    (dir, server)
}

fn item_ids(body: &Json) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn personalised_and_cold_start_recommendations_with_feedback() {
    let (dir, server) = trained_server();

    // A known user: k distinct items, probabilities in [0, 1], best first.
    let body = server.recommend("1", 8);
    assert_eq!(body["cold_start"], false);
    assert_eq!(body["model_version"], "ranker-1");
    assert_eq!(body["arm"], "control");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 8);
    let ids = item_ids(&body);
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 8, "distinct items: {ids:?}");
    let scores: Vec<f64> = items.iter().map(|i| i["score"].as_f64().unwrap()).collect();
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)), "{scores:?}");
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "sorted: {scores:?}"
    );
    for item in items {
        let source = item["source"].as_str().unwrap();
        assert!(["history", "ann", "popular", "trending", "segment"].contains(&source));
    }

    // All candidates: every generator contributes, each item once.
    let all = server.recommend("1", 200);
    let sources: std::collections::HashSet<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap())
        .collect();
    for source in ["ann", "history", "popular", "segment"] {
        assert!(
            sources.contains(source),
            "{source} missing from {sources:?}"
        );
    }
    let all_ids = item_ids(&all);
    let distinct: std::collections::HashSet<&String> = all_ids.iter().collect();
    assert_eq!(distinct.len(), all_ids.len());

    // A user nobody has seen: cold start, from popularity.
    let cold = server.recommend("newcomer", 5);
    assert_eq!(cold["cold_start"], true);
    assert_eq!(item_ids(&cold).len(), 5);

    // Missing mandatory context: 422 naming the field, an anomaly counted.
    let before = server.metric("reprise_missing_context_anomalies_total");
    let (status, err) = server.post(
        "/v1/recommendations",
        &json!({"user_id": "1", "context": {"device": "tv"}, "k": 3}),
    );
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["code"], "missing_context");
    assert_eq!(err["error"]["field"], "context.country");
    assert_eq!(
        server.metric("reprise_missing_context_anomalies_total"),
        before + 1.0
    );

    // The newcomer plays three items: next time they are on the main path.
    let request_id = cold["request_id"].as_str().unwrap();
    let played: Vec<String> = item_ids(&cold).into_iter().take(3).collect();
    let events: Vec<Json> = played
        .iter()
        .map(|item| json!({"request_id": request_id, "user_id": "newcomer", "item_id": item,
                           "type": "play", "timestamp": "2026-11-01T10:00:00Z", "played_seconds": 200.0}))
        .collect();
    let (status, accepted) = server.post("/v1/events", &json!({"events": events}));
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["accepted"], 3);
    let warm = server.recommend("newcomer", 5);
    assert_eq!(warm["cold_start"], false, "{warm}");
    // Folded in from their plays: the newcomer gets embedding (ANN)
    // candidates without a retrain.
    let all = server.recommend("newcomer", 40);
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["source"] == "ann"),
        "{all}"
    );

    // A bad event is refused with its field named, and nothing is written.
    let (status, err) = server.post("/v1/events",
        &json!({"events": [{"user_id": "1", "item_id": "2", "type": "play", "timestamp": "2026-11-01T10:00:00Z"},
                           {"user_id": "1", "item_id": "2", "type": "teleport", "timestamp": "2026-11-01T10:00:00Z"}]}),
    );
    assert_eq!(status, 400);
    assert_eq!(err["error"]["field"], "events[1].type");

    // After a restart the plays still count (replayed from the store)...
    drop(server);
    let data = dir.path().join("data");
    let server = Server::start_ml(&data, &[]);
    assert_eq!(server.recommend("newcomer", 5)["cold_start"], false);
    drop(server);

    // ...and the served-feature log joined with the feedback is training
    // data: the three played items of the cold-start response, labelled.
    let out_file = dir.path().join("served.jsonl");
    reprise_ml(
        &data,
        &[
            "export-served",
            "--labelled-only",
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    let labelled: Vec<Json> = std::fs::read_to_string(&out_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(labelled.len(), 3, "{labelled:?}");
    for row in &labelled {
        assert_eq!(row["request_id"], request_id);
        assert_eq!(row["label"], true);
        assert_eq!(row["events"], json!(["play"]));
        assert!(played.contains(&row["item_id"].as_str().unwrap().to_owned()));
    }
    let out = run_cli_ml(&data, &["export-served"]);
    let all_rows = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(
        all_rows > 3,
        "unlabelled served items are exported too ({all_rows})"
    );
}

#[test]
fn the_candidate_cache_serves_repeat_requests_until_the_user_plays() {
    let (_dir, server) = trained_server();
    // The most active users' candidates are precomputed at start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.metric("reprise_candidate_cache_entries") < 60.0 {
        assert!(std::time::Instant::now() < deadline, "cache not warmed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.recommend("3", 5);
    let hits = server.metric("reprise_candidate_cache_hits_total");
    let misses = server.metric("reprise_candidate_cache_misses_total");
    server.recommend("3", 5);
    assert_eq!(
        server.metric("reprise_candidate_cache_hits_total"),
        hits + 1.0
    );
    assert_eq!(
        server.metric("reprise_candidate_cache_misses_total"),
        misses
    );

    let (status, _) = server.post("/v1/events",
        &json!({"events": [{"user_id": "3", "item_id": "40", "type": "play", "timestamp": "2026-11-01T10:00:00Z"}]}),
    );
    assert_eq!(status, 200);
    server.recommend("3", 5);
    assert_eq!(
        server.metric("reprise_candidate_cache_misses_total"),
        misses + 1.0,
        "the play invalidated the user's candidates"
    );
}

#[test]
fn the_served_feature_log_holds_what_the_model_saw() {
    let (_dir, server) = trained_server();
    check_served_log(&server, &server.recommend("2", 4));
    // Item features change (new rating events move the item's
    // aggregations): the next response's log, and the model, see the new
    // values, not cached ones.
    let item = item_ids(&server.recommend("2", 200))[0].clone();
    let ratings: Vec<Json> = (0..5)
        .map(|u| json!({"user_id": format!("new{u}"), "item_id": item, "event_timestamp": "2026-11-01T00:00:00Z", "rating": 1.0, "liked": false}))
        .collect();
    let (status, pushed) = server.post(
        "/v1/push",
        &json!({"view": "ml_rating", "backfill": true, "rows": ratings}),
    );
    assert_eq!(status, 200, "{pushed}");
    let body = server.recommend("2", 200);
    assert!(item_ids(&body).contains(&item));
    check_served_log(&server, &body);
}

/// A play posted to `/v1/events` is appended to the declared interactions
/// view, so the user's and the item's aggregations move in the next online
/// read, and the next recommendation logs (and ranks with) the new values.
#[test]
fn a_play_event_moves_the_aggregates_and_the_next_logged_vector() {
    let (_dir, server) = trained_server();
    let first = server.recommend("2", 200);
    let item = item_ids(&first)[0].clone();
    let refs = [
        "ml_user_ratings:plays_all",
        "ml_item_ratings:plays_all",
        "ml_item_ratings:likes_all",
    ];
    let read = |user: &str| {
        let (status, body) = server.post(
            "/v1/online-features",
            &json!({"features": refs, "entities": [{"user_id": user, "item_id": item}]}),
        );
        assert_eq!(status, 200, "{body}");
        body["rows"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let before = read("listener");
    let (status, body) = server.post("/v1/events", &json!({"events": [
        {"user_id": "listener", "item_id": item, "type": "play", "timestamp": "2026-11-01T10:00:00Z",
         "features": {"rating": 5.0, "liked": true}}]}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        read("listener"),
        vec![before[0] + 1, before[1] + 1, before[2] + 1]
    );
    // A feature the interactions view does not have is refused, naming it.
    let (status, body) = server.post("/v1/events", &json!({"events": [
        {"user_id": "listener", "item_id": item, "type": "play", "timestamp": "2026-11-01T10:00:00Z",
         "features": {"volume": 3}}]}));
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("events[0].features.volume")),
        "{body}"
    );

    let logged = |body: &Json| {
        let request_id = body["request_id"].as_str().unwrap();
        let (_, row) = server.post("/v1/online-features",
            &json!({"features": ["served_item:features"], "entities": [{"request_id": request_id, "item_id": item}]}));
        row["rows"][0]["values"][0].clone()
    };
    let second = server.recommend("2", 200);
    assert!(item_ids(&second).contains(&item));
    assert_ne!(
        logged(&first),
        logged(&second),
        "the item's new aggregates reach the logged vector"
    );
    check_served_log(&server, &second);
}

/// Every item of `body` was logged with position, model, score and the
/// exact feature vector, whose context part equals an online read now.
fn check_served_log(server: &Server, body: &Json) {
    let request_id = body["request_id"].as_str().unwrap();
    let ids = item_ids(body);
    let inputs = crate::server::declared_inputs();
    let context_refs = &inputs.refs;
    for (position, item) in ids.iter().enumerate() {
        let (status, logged) = server.post("/v1/online-features",
            &json!({"features": ["served_item:features", "served_item:position", "served_item:model_version", "served_item:score"],
                    "entities": [{"request_id": request_id, "item_id": item}]}),
        );
        assert_eq!(status, 200, "{logged}");
        let row = &logged["rows"][0]["values"];
        assert_eq!(row[1], position as i64);
        assert_eq!(row[2], "ranker-1");
        assert_eq!(row[3], body["items"][position]["score"]);
        let features: Vec<f64> = row[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        // The context part equals the same refs read online now, through
        // the same vectorize function.
        let (_, online) = server.post(
            "/v1/online-features",
            &json!({"features": context_refs, "entities": [{"user_id": "2", "item_id": item}]}),
        );
        let values: Vec<Option<reprise_store::Value>> = online["rows"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(value)
            .collect();
        let expected = inputs.vectorize_owned(&values, &[]);
        let tail = &features[features.len() - expected.len()..];
        assert_eq!(features.len(), 7 + expected.len());
        for (got, want) in tail.iter().zip(&expected) {
            assert!(
                (got - want).abs() <= want.abs() * 1e-6 + 1e-6,
                "logged {tail:?} vs online {expected:?}"
            );
        }
    }
}

/// The load tester's `recommendations` scenario against a trained server:
/// every request answered.
#[test]
fn the_load_tester_drives_recommendations_without_errors() {
    let (_dir, server) = trained_server();
    let config = reprise_loadtest::LoadConfig {
        url: server.url.clone(),
        connections: 4,
        duration: std::time::Duration::from_secs(1),
        warmup: std::time::Duration::from_millis(200),
        rate: None,
        max_requests: None,
        users: 70,
    };
    let report = reprise_loadtest::run(&config, reprise_loadtest::Scenario::Recommendations);
    assert!(report.requests > 0);
    assert_eq!(report.errors, 0, "{:?}", report.first_error);
}

/// A server over two rankers (`ranker-1` and, newest, `ranker-2`, another
/// seed); also returns the data directory.
fn two_rankers() -> (tempfile::TempDir, std::path::PathBuf, Server) {
    let (dir, server) = trained_server();
    drop(server);
    let data = dir.path().join("data");
    reprise_ml(
        &data,
        &[
            "train",
            "--factors",
            "8",
            "--iterations",
            "5",
            "--seed",
            "7",
        ],
    );
    let server = Server::start_ml(&data, &[]);
    (dir, data, server)
}

/// Promoting another ranker serves it from the next request on, shows in
/// the registry listing, and survives a restart.
#[test]
fn a_promoted_ranker_serves_the_next_request_and_after_a_restart() {
    let (_dir, data, server) = two_rankers();
    assert_eq!(
        server.recommend("1", 3)["model_version"],
        "ranker-2",
        "newest by default"
    );

    let (status, body) = server.post("/v1/models/ranker-1/promote", &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["serving"], "ranker-1");
    assert_eq!(server.recommend("1", 3)["model_version"], "ranker-1");
    let (_, listing) = server.client.get("/v1/models").unwrap();
    let listing: Json = serde_json::from_slice(&listing).unwrap();
    let status_of = |v: &str| {
        listing["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["version"] == v)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status_of("ranker-1"), "serving");
    assert_eq!(status_of("embeddings-1"), "serving");
    assert_eq!(status_of("ranker-2"), "candidate");

    // Swaps under load fail no request.
    let config = reprise_loadtest::LoadConfig {
        url: server.url.clone(),
        connections: 4,
        duration: std::time::Duration::from_secs(2),
        warmup: std::time::Duration::ZERO,
        rate: None,
        max_requests: None,
        users: 60,
    };
    let load = std::thread::spawn(move || {
        reprise_loadtest::run(&config, reprise_loadtest::Scenario::Recommendations)
    });
    for version in ["ranker-2", "ranker-1", "ranker-2", "ranker-1"] {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let (status, body) = server.post(&format!("/v1/models/{version}/promote"), &json!({}));
        assert_eq!(status, 200, "{body}");
    }
    let report = load.join().unwrap();
    assert!(report.requests > 0);
    assert_eq!(report.errors, 0, "{:?}", report.first_error);
    assert_eq!(server.metric("reprise_model_swaps_total"), 5.0);

    let (status, err) = server.post("/v1/models/ranker-9/promote", &json!({}));
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );
    let (status, err) = server.post("/v1/models/embeddings-1/promote", &json!({}));
    assert_eq!(status, 400, "{err}");

    drop(server);
    let server = Server::start_ml(&data, &[]);
    assert_eq!(
        server.recommend("1", 3)["model_version"],
        "ranker-1",
        "kept across a restart"
    );
}

/// An A/B experiment routes users to arms by model version, sticky, says
/// the arm in the response, and reports per-arm metrics from events: a
/// served item's label is its last verdict in event time, so a later skip
/// turns a play into a skip and an earlier one changes nothing; the counts
/// are the same after a restart.
#[test]
fn an_experiment_routes_users_to_arms_and_reports_per_arm_metrics() {
    let (_dir, data, server) = two_rankers();

    let (status, err) = post_put(
        &server,
        "/v1/experiments/bad",
        &json!({"arms": [{"name": "a", "model_version": "ranker-1", "traffic": 0.7}]}),
    );
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("arms"))
    );
    let (status, body) = post_put(
        &server,
        "/v1/experiments/home",
        &json!({"arms": [{"name": "control", "model_version": "ranker-1", "traffic": 0.5},
                         {"name": "treatment", "model_version": "ranker-2", "traffic": 0.5}]}),
    );
    assert_eq!(status, 200, "{body}");

    let event = |response: &Json, user: &str, item: usize, kind: &str, at: &str| {
        let item = response["items"][item]["item_id"].clone();
        let (status, body) = server.post("/v1/events",
            &json!({"events": [{"request_id": response["request_id"], "user_id": user, "item_id": item,
                                "type": kind, "timestamp": at}]}),
        );
        assert_eq!(status, 200, "{body}");
    };
    let mut arms = std::collections::HashMap::new();
    let mut treated = Vec::new();
    for user in 1..=40 {
        let user = user.to_string();
        let first = server.recommend(&user, 3);
        let again = server.recommend(&user, 3);
        assert_eq!(first["arm"], again["arm"], "sticky");
        let expected = if first["arm"] == "control" {
            "ranker-1"
        } else {
            "ranker-2"
        };
        assert_eq!(first["model_version"], expected);
        arms.insert(user.clone(), first.clone());
        // One play per response in the treatment arm only.
        if first["arm"] == "treatment" {
            event(&first, &user, 0, "play", "2026-11-01T10:00:00Z");
            treated.push((user, first));
        }
    }
    let treated_users = treated.len();
    assert!(
        (8..=32).contains(&treated_users),
        "{treated_users} of 40 in treatment"
    );
    // A skip of another item; a later skip relabels a play; a repeated
    // play and an earlier skip change nothing.
    for (user, item, kind, at) in [
        (0, 1, "skip", "2026-11-01T10:00:00Z"),
        (1, 0, "skip", "2026-11-01T10:05:00Z"),
        (2, 0, "play", "2026-11-01T10:06:00Z"),
        (2, 0, "skip", "2026-11-01T09:00:00Z"),
    ] {
        event(&treated[user].1, &treated[user].0, item, kind, at);
    }

    let report = |server: &Server| {
        let (_, report) = server.client.get("/v1/experiments/home").unwrap();
        serde_json::from_slice::<Json>(&report).unwrap()
    };
    let before = report(&server);
    let by_name = |report: &Json, n: &str| {
        report["arms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["arm"] == n)
            .unwrap()
            .clone()
    };
    let (control, treatment) = (by_name(&before, "control"), by_name(&before, "treatment"));
    assert_eq!(
        treatment["impressions"],
        json!(treated_users * 6),
        "two responses of 3 items"
    );
    assert_eq!(treatment["plays"], json!(treated_users - 1));
    assert_eq!(treatment["skips"], 2);
    assert_eq!(control["impressions"], json!((40 - treated_users) * 6));
    assert_eq!(
        (control["plays"].clone(), control["skips"].clone()),
        (json!(0), json!(0))
    );
    assert!(treatment["z"].as_f64().unwrap() > 0.0 && treatment["p_value"].is_number());
    let (status, _) = server.client.get("/v1/experiments/nope").unwrap();
    assert_eq!(status, 404);
    // Feedback goes through /v1/events: a generic push behind the tallies'
    // back is refused.
    let (status, err) = server.post(
        "/v1/push",
        &json!({"view": "feedback", "rows": [{"request_id": "r", "item_id": "i", "user_id": "u",
                "event_timestamp": "2026-11-01T10:00:00Z", "type": "play", "engaged": true}]}),
    );
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("view")),
        "{err}"
    );

    drop(server);
    let server = Server::start_ml(&data, &[]);
    assert_eq!(
        report(&server)["arms"],
        before["arms"],
        "the same after a restart"
    );
}

fn post_put(server: &Server, path: &str, body: &Json) -> (u16, Json) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .put(format!("{}{path}", server.url))
        .header("content-type", "application/json")
        .send(body.to_string())
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Json::Null))
}
