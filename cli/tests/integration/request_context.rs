//! Request context reaches the ranker (issue: "context in the ranker"). A
//! generated radio catalogue where engagement depends on hour × genre: fans
//! play news in the morning and jazz in the evening. The hour is logged with
//! every play (a declared `hour_of_day` transform of the event time) and
//! read by the ranker as `request_context:hour`: trained with it, the ranker
//! beats the same declaration without it on held-out AUC, and the same fan
//! is served news at 8:00 and jazz at 22:00. The served-feature log of a
//! response equals a point-in-time recomputation, at the request's time, of
//! every declared input kind (raw, derived, aggregation, context).

use std::path::PathBuf;

use serde_json::{json, Value as Json};

use crate::declared_catalogue::{start, write_jsonl};
use crate::server::reprise_with;

const CATALOGUE: &str = r#"
[[entity]]
name = "fan"
join_key = "fan_id"

[[entity]]
name = "track"
join_key = "track_id"

[[feature_view]]
name = "tracks"
version = 1
entities = ["track"]
ttl = "0"

[[feature_view.feature]]
name = "genre"
type = "string"

[[feature_view.feature]]
name = "tempo"
type = "int64"

[[feature_view.feature]]
name = "tempo_log"
type = "float64"
transform = { kind = "log1p", input = "tempo" }

[[feature_view]]
name = "spin"
version = 1
kind = "events"
entities = ["fan", "track"]
ttl = "0"

[[feature_view.feature]]
name = "seconds"
type = "int64"

[[feature_view.feature]]
name = "hour"
type = "int64"
transform = { kind = "hour_of_day", input = "event_timestamp" }

[[feature_view.feature]]
name = "device"
type = "string"

[[aggregation]]
name = "track_spins"
version = 1
source = "spin"
entities = ["track"]

[[aggregation.feature]]
name = "spins"
op = "count"
windows = ["0"]
"#;

/// The declaration; `context` adds the request's hour to the ranker.
fn declaration(context: bool) -> String {
    let hour = if context {
        r#", "request_context:hour""#
    } else {
        ""
    };
    format!(
        r#"
[recommender]
interactions = "spin"
engaged = {{ feature = "seconds", op = ">=", value = 30 }}
items = "tracks"
segment = "tracks:genre"
ranker = "gbdt"
ranker_features = ["tracks:genre", "tracks:tempo_log", "track_spins:spins_all"{hour}]
"#
    )
}

const PER_GENRE: usize = 20;
const FANS: usize = 80;
const DAYS: i64 = 8;
/// 2026-06-01T00:00:00Z.
const START: i64 = 1_780_272_000;

fn is_news(track: &str) -> bool {
    track[1..].parse::<usize>().unwrap() < PER_GENRE
}

/// Fan `f`'s plays: every day a news track in the morning (7–9 h) and a
/// jazz track in the evening (20–22 h).
fn spins(f: usize) -> Vec<Json> {
    (0..DAYS)
        .flat_map(|d| {
            let shift = (f % 3) as i64;
            let day = START + d * 86_400;
            let news = (f * 7 + d as usize * 3) % PER_GENRE;
            let jazz = PER_GENRE + (f * 5 + d as usize * 7) % PER_GENRE;
            [
                (day + (7 + shift) * 3600, news),
                (day + (20 + shift) * 3600, jazz),
            ]
        })
        .map(|(at, track)| {
            json!({"fan_id": format!("f{f}"), "track_id": format!("t{track}"),
                   "event_timestamp": reprise_store::time::format_rfc3339(at * 1_000_000),
                   "seconds": 60 + (at % 120)})
        })
        .collect()
}

/// The catalogue with or without context, pushed with the CLI and
/// trained: (temp dir, migrations, data, the training outcome).
fn trained(context: bool) -> (tempfile::TempDir, PathBuf, PathBuf, Json) {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(migrations.join("0001_radio.toml"), CATALOGUE).unwrap();
    std::fs::write(
        migrations.join("0002_recommender.toml"),
        declaration(context),
    )
    .unwrap();
    let data = dir.path().join("data");
    let tracks: Vec<Json> = (0..2 * PER_GENRE)
        .map(|t| {
            json!({"track_id": format!("t{t}"), "event_timestamp": "2026-01-01T00:00:00Z",
                   "genre": if t < PER_GENRE { "news" } else { "jazz" }, "tempo": 60 + (t * 13) % 90})
        })
        .collect();
    let plays: Vec<Json> = (0..FANS).flat_map(spins).collect();
    let (tracks_file, plays_file) = (
        dir.path().join("tracks.jsonl"),
        dir.path().join("spins.jsonl"),
    );
    write_jsonl(&tracks_file, &tracks);
    write_jsonl(&plays_file, &plays);
    for (view, file) in [("tracks", &tracks_file), ("spin", &plays_file)] {
        reprise_with(
            &migrations,
            &data,
            &["push", "--view", view, file.to_str().unwrap(), "--backfill"],
        );
    }
    let outcome = dir.path().join("outcome.json");
    reprise_with(
        &migrations,
        &data,
        &[
            "train",
            "--factors",
            "8",
            "--iterations",
            "5",
            "--json",
            outcome.to_str().unwrap(),
        ],
    );
    let outcome: Json = serde_json::from_str(&std::fs::read_to_string(outcome).unwrap()).unwrap();
    (dir, migrations, data, outcome)
}

fn recommend(server: &crate::server::Server, fan: &str, hour: i64) -> Json {
    let (status, body) = server.post(
        "/v1/recommendations",
        &json!({"user_id": fan, "context": {"device": "mobile", "country": "SE", "hour": hour}, "k": 10}),
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn items(body: &Json) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_request_hour_is_learned_and_served() {
    let (_a, _, _, without) = trained(false);
    let (_b, migrations, data, with) = trained(true);
    let auc = |o: &Json| o["metrics"]["auc"].as_f64().unwrap();
    eprintln!(
        "held-out AUC with the request hour {:.3}, without {:.3}",
        auc(&with),
        auc(&without)
    );
    assert!(
        auc(&with) > auc(&without) + 0.05,
        "with {} vs without {}",
        auc(&with),
        auc(&without)
    );

    let server = start(&migrations, &data);
    let news = |items: &[String]| items.iter().filter(|t| is_news(t)).count();
    let (mut morning, mut evening) = (0, 0);
    for f in 0..10 {
        let fan = format!("f{f}");
        morning += news(&items(&recommend(&server, &fan, 8)));
        evening += news(&items(&recommend(&server, &fan, 22)));
    }
    eprintln!("news in 100 recommendations at 8:00: {morning}, at 22:00: {evening}");
    // Half the catalogue is news: the hour moves the lists both ways.
    assert!(
        morning >= evening + 30 && evening <= 30,
        "morning {morning}, evening {evening}"
    );

    // A play logs the context it happened in: its own `context`, else the
    // served request's (named by `request_id`).
    let served = recommend(&server, "f1", 8);
    let play = |item: &str, extra: Json| {
        let mut event = json!({"user_id": "f1", "item_id": item, "type": "play",
                               "timestamp": "2026-06-20T08:30:00Z", "features": {"seconds": 90}});
        event
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, body) = server.post("/v1/events", &json!({"events": [event]}));
        assert_eq!(status, 200, "{body}");
    };
    play("t3", json!({"request_id": served["request_id"]}));
    play("t4", json!({"context": {"device": "tv", "hour": 8}}));
    let (status, logged) = server.post(
        "/v1/online-features",
        &json!({"features": ["spin:device", "spin:hour"],
                "entities": [{"fan_id": "f1", "track_id": "t3"}, {"fan_id": "f1", "track_id": "t4"}]}),
    );
    assert_eq!(status, 200, "{logged}");
    assert_eq!(
        logged["rows"][0]["values"],
        json!(["mobile", 8]),
        "{logged}"
    );
    assert_eq!(logged["rows"][1]["values"], json!(["tv", 8]), "{logged}");
    let (status, body) = server.post(
        "/v1/recommendations",
        &json!({"user_id": "f1", "context": {"device": "mobile", "country": "SE", "hour": 25}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("context.hour"), "{body}");
}

/// The served-feature log equals the same declared inputs recomputed
/// point-in-time at the request's time, after later writes moved them.
#[test]
fn the_served_log_equals_a_point_in_time_recomputation() {
    let (_dir, migrations, data, _) = trained(true);
    let server = start(&migrations, &data);
    let body = recommend(&server, "f4", 9);
    let request_id = body["request_id"].as_str().unwrap().to_owned();
    let served = items(&body);
    // Later writes: every served track's tempo changes and gains a spin.
    let now = reprise_store::time::format_rfc3339(reprise_store::time::now_micros());
    let (status, pushed) = server.post(
        "/v1/push",
        &json!({"view": "tracks", "rows": served.iter().map(|t| json!({"track_id": t, "event_timestamp": now, "genre": "news", "tempo": 500})).collect::<Vec<_>>()}),
    );
    assert_eq!(status, 200, "{pushed}");
    let events: Vec<Json> = served
        .iter()
        .map(|t| json!({"user_id": "f9", "item_id": t, "type": "play", "timestamp": now, "features": {"seconds": 90}}))
        .collect();
    let (status, body) = server.post("/v1/events", &json!({"events": events}));
    assert_eq!(status, 200, "{body}");

    let inputs = crate::server::declared_inputs_in(&migrations);
    assert_eq!(inputs.context.len(), 1, "the hour is a context input");
    let (status, logged) = server.post(
        "/v1/online-features",
        &json!({"features": ["served_item:features"],
                "entities": served.iter().map(|t| json!({"request_id": request_id, "item_id": t})).collect::<Vec<_>>()}),
    );
    assert_eq!(status, 200, "{logged}");
    let at = logged["rows"][0]["event_timestamps"][0].clone();
    let (status, snapshot) = server.post(
        "/v1/snapshots",
        &json!({"features": inputs.refs,
                "entity_rows": served.iter().map(|t| json!({"fan_id": "f4", "track_id": t, "event_timestamp": at})).collect::<Vec<_>>()}),
    );
    assert_eq!(status, 201, "{snapshot}");
    let (status, rows) = server.get_text(&format!(
        "/v1/snapshots/{}/rows?format=jsonl",
        snapshot["snapshot_id"].as_str().unwrap()
    ));
    assert_eq!(status, 200, "{rows}");
    let hour = [Some(reprise_store::Value::Int64(9))];
    for (k, line) in rows.lines().enumerate() {
        let row: Json = serde_json::from_str(line).unwrap();
        let values: Vec<Option<reprise_store::Value>> = inputs
            .refs
            .iter()
            .map(|r| {
                let column = r.replace(':', "__");
                crate::recommendations::value(&row[column.as_str()])
            })
            .collect();
        let expected = inputs.vectorize_owned(&values, &hour);
        let features: Vec<f64> = logged["rows"][k]["values"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let tail = &features[features.len() - expected.len()..];
        for (logged, recomputed) in tail.iter().zip(&expected) {
            assert!(
                (logged - recomputed).abs() <= 1e-5 * recomputed.abs().max(1.0),
                "{}: logged {tail:?}, recomputed {expected:?}",
                served[k]
            );
        }
        assert!(
            expected.contains(&9.0),
            "the request's hour is among the inputs: {expected:?}"
        );
    }
}
