//! Explaining a recommendation (CONTRACT v2): `"explain": true` gives per
//! item the raw values read, the model inputs and their contributions, which
//! with the bias reproduce the served score; `GET /v1/served/{id}` returns
//! the logged inputs and, with a replay, the same inputs recomputed from the
//! store point-in-time, which differ exactly where a feature was changed
//! behind the log's back.

use serde_json::json;

use crate::recommendations::trained_server;
use crate::server::declared_inputs;

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[test]
fn contributions_and_bias_reproduce_each_served_score() {
    let (_dir, server) = trained_server();
    let (status, body) = server.post(
        "/v1/recommendations",
        &json!({"user_id": "2", "context": {"device": "tv", "country": "SE", "hour": 21}, "k": 8, "explain": true}),
    );
    assert_eq!(status, 200, "{body}");
    let declared = declared_inputs();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 8);
    for item in items {
        let e = &item["explanation"];
        let inputs = e["inputs"].as_array().unwrap();
        let z = e["bias"].as_f64().unwrap()
            + inputs
                .iter()
                .map(|i| i["contribution"].as_f64().unwrap())
                .sum::<f64>();
        let score = item["score"].as_f64().unwrap();
        // Equal up to the trees' single-precision leaf values.
        assert!(
            (sigmoid(z) - score).abs() < 1e-6,
            "{} vs {score}",
            sigmoid(z)
        );
        // Generator inputs, then the declared ones, named as the model names them.
        let names: Vec<&str> = inputs.iter().map(|i| i["name"].as_str().unwrap()).collect();
        assert!(names.ends_with(
            &declared
                .names()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        ));
        // Every declared stored ref, with the value an online read gives.
        let raw = e["raw"].as_array().unwrap();
        let refs: Vec<&str> = raw.iter().map(|r| r["ref"].as_str().unwrap()).collect();
        for r in &declared.refs {
            assert!(refs.contains(&r.as_str()), "{r} not in {refs:?}");
        }
        let (_, online) = server.post(
            "/v1/online-features",
            &json!({"features": declared.refs, "entities": [{"user_id": "2", "item_id": item["item_id"]}]}),
        );
        for (i, r) in declared.refs.iter().enumerate() {
            let entry = raw.iter().find(|x| x["ref"] == r.as_str()).unwrap();
            assert_eq!(entry["value"], online["rows"][0]["values"][i], "{r}");
            assert_eq!(entry["status"], online["rows"][0]["statuses"][i], "{r}");
            assert!(entry["store_version"].as_u64().is_some());
        }
    }
    // Without the flag there is no explanation.
    let plain = server.recommend("2", 3);
    assert!(plain["items"][0].get("explanation").is_none(), "{plain}");
}

#[test]
fn a_replay_matches_the_log_until_a_feature_changes_behind_its_back() {
    let (_dir, server) = trained_server();
    let body = server.recommend("2", 5);
    let request_id = body["request_id"].as_str().unwrap();

    let (status, served) = server.get(&format!("/v1/served/{request_id}"));
    assert_eq!(status, 200, "{served}");
    assert_eq!(served["user_id"], "2");
    assert_eq!(served["context"]["device"], "mobile");
    assert!(served.get("replay").is_none());
    let items = served["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    for (position, item) in items.iter().enumerate() {
        assert_eq!(item["item_id"], body["items"][position]["item_id"]);
        assert_eq!(item["score"], body["items"][position]["score"]);
    }

    let replay = |query: &str| {
        let (status, r) = server.get(&format!("/v1/served/{request_id}?replay=true{query}"));
        assert_eq!(status, 200, "{r}");
        r
    };
    let fresh = replay("");
    assert_eq!(fresh["replay"]["differences"], 0, "{fresh}");
    assert_eq!(fresh["replay"]["cutoff"], "event");
    let declared_names = declared_inputs().names();
    for item in fresh["items"].as_array().unwrap() {
        for input in item["inputs"].as_array().unwrap() {
            let declared = declared_names.contains(&input["name"].as_str().unwrap().to_owned());
            assert_eq!(!input["replayed"].is_null(), declared, "{input}");
        }
    }

    // The user's age is rewritten, with an event time just before the
    // request: a late write the served log never saw.
    let (_, row) = server.post(
        "/v1/online-features",
        &json!({"features": ["ml_user:age", "ml_user:gender", "ml_user:occupation", "ml_user:zip_prefix"],
                "entities": [{"user_id": "2"}]}),
    );
    let values = &row["rows"][0]["values"];
    let time = reprise_store::time::parse_rfc3339(served["timestamp"].as_str().unwrap()).unwrap();
    let before = reprise_store::time::format_rfc3339(time - 1_000_000);
    let (status, pushed) = server.post(
        "/v1/push",
        &json!({"view": "ml_user", "rows": [{"user_id": "2", "event_timestamp": before,
            "age": values[0].as_i64().unwrap() + 40, "gender": values[1], "occupation": values[2], "zip_prefix": values[3]}]}),
    );
    assert_eq!(status, 200, "{pushed}");
    let skewed = replay("");
    let differing: Vec<String> = skewed["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|item| item["inputs"].as_array().unwrap().clone())
        .filter(|i| i["differs"] == true)
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(differing.len(), 5, "one input per item: {differing:?}");
    assert!(
        differing.iter().all(|n| n == "ml_user:age"),
        "{differing:?}"
    );
    assert_eq!(skewed["replay"]["differences"], 5);
    // What the store knew at the time (the late write was created after the
    // request) still matches the log.
    assert_eq!(replay("&cutoff=created")["replay"]["differences"], 0);

    let (status, missing) = server.get("/v1/served/no-such-request");
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("request_not_found"))
    );
    let (status, bad) = server.get(&format!("/v1/served/{request_id}?replay=yes"));
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (400, Some("replay"))
    );
}
