//! The recommender is declared, not coded: a generated podcast catalogue
//! whose entities, views, aggregations and `[recommender]` declaration are
//! written by this test (no name of it appears in the serving or training
//! code), with planted taste groups. Events go in with the CLI, the CLI
//! trains, the server serves: listeners who arrive after training get
//! top-10 lists in their own topic far above what popularity gives, and a
//! live play moves the next ranking.

use std::path::Path;

use serde_json::{json, Value as Json};

use crate::server::{reprise_with, Server};

const DEFINITIONS: &str = r#"
[[entity]]
name = "listener"
join_key = "listener_id"

[[entity]]
name = "episode"
join_key = "episode_id"

[[feature_view]]
name = "episodes"
version = 1
entities = ["episode"]
ttl = "0"

[[feature_view.feature]]
name = "topic"
type = "string"

[[feature_view]]
name = "audition"
version = 1
kind = "events"
entities = ["listener", "episode"]
ttl = "0"

[[feature_view.feature]]
name = "minutes"
type = "int64"

[[feature_view.lookup]]
name = "topic"
ref = "episodes:topic"

[[aggregation]]
name = "listener_taste"
version = 1
source = "audition"
entities = ["listener"]

[[aggregation.feature]]
name = "topic_listens"
op = "count"
bucket_by = "topic"
vocabulary = ["crime", "comedy", "science"]
windows = ["0"]

[[aggregation]]
name = "episode_reach"
version = 1
source = "audition"
entities = ["episode"]

[[aggregation.feature]]
name = "listens"
op = "count"
windows = ["0"]

[[aggregation.derived]]
name = "listens_log"
type = "float64"
transform = { kind = "log1p", input = "listens_all" }

[[aggregation]]
name = "pair_listens"
version = 1
source = "audition"
entities = ["listener", "episode"]

[[aggregation.feature]]
name = "listens"
op = "count"
windows = ["0"]

[recommender]
interactions = "audition"
engaged = { feature = "minutes", op = ">=", value = 5 }
items = "episodes"
segment = "episodes:topic"
ranker_features = [
  "episode_reach:listens_log",
  "affinity(listener_taste:topic_listens_all, episodes:topic)",
  "pair_listens:listens_all",
]
"#;

const TOPICS: [&str; 3] = ["crime", "comedy", "science"];
const PER_TOPIC: usize = 30;
/// Listeners in the training data; `HELD_OUT` more arrive after training.
const LISTENERS: usize = 90;
const HELD_OUT: usize = 15;

fn topic_of(episode: &str) -> usize {
    episode[1..].parse::<usize>().unwrap() / PER_TOPIC
}

/// `n` auditions of listener `l` (taste group `l % 3`), an hour apart from
/// `start` (Unix seconds): mostly episodes of their topic, one in six of
/// another.
fn auditions(l: usize, n: usize, start: i64) -> Vec<Json> {
    let own = l % 3;
    (0..n)
        .map(|step| {
            let topic = if step % 6 == 5 { (own + 1) % 3 } else { own };
            let episode = topic * PER_TOPIC + (l * 7 + step * 3) % PER_TOPIC;
            json!({"listener_id": format!("l{l}"), "episode_id": format!("e{episode}"),
                   "event_timestamp": reprise_store::time::format_rfc3339((start + step as i64 * 3600) * 1_000_000),
                   "minutes": 5 + (step % 20) as i64})
        })
        .collect()
}

pub(crate) fn write_jsonl(path: &Path, rows: &[Json]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// The catalogue pushed with the CLI and trained: (temp dir, migrations,
/// data).
fn trained() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(migrations.join("0001_podcasts.toml"), DEFINITIONS).unwrap();
    let data = dir.path().join("data");

    // Catalogue and training events, through the CLI.
    let episodes: Vec<Json> = (0..3 * PER_TOPIC)
        .map(|e| json!({"episode_id": format!("e{e}"), "event_timestamp": "2026-01-01T00:00:00Z", "topic": TOPICS[e / PER_TOPIC]}))
        .collect();
    let mut listens: Vec<Json> = (0..LISTENERS)
        .flat_map(|l| auditions(l, 12, 1_780_000_000 + l as i64 * 7))
        .collect();
    // Crime is the popular topic: popularity alone serves crime to everyone.
    listens.extend((0..40).flat_map(|x| {
        (0..8).map(move |k| json!({"listener_id": format!("fan{x}"), "episode_id": format!("e{}", (x + k) % PER_TOPIC),
                                    "event_timestamp": reprise_store::time::format_rfc3339((1_780_000_000 + k as i64 * 600 + x as i64) * 1_000_000),
                                    "minutes": 30}))
    }));
    let (episodes_file, listens_file) = (
        dir.path().join("episodes.jsonl"),
        dir.path().join("listens.jsonl"),
    );
    write_jsonl(&episodes_file, &episodes);
    write_jsonl(&listens_file, &listens);
    reprise_with(
        &migrations,
        &data,
        &[
            "push",
            "--view",
            "episodes",
            episodes_file.to_str().unwrap(),
            "--backfill",
        ],
    );
    reprise_with(
        &migrations,
        &data,
        &[
            "push",
            "--view",
            "audition",
            listens_file.to_str().unwrap(),
            "--backfill",
        ],
    );
    let trained = reprise_with(
        &migrations,
        &data,
        &["train", "--factors", "8", "--iterations", "5"],
    );
    assert!(String::from_utf8_lossy(&trained.stdout).contains("trained ranker-1"));

    (dir, migrations, data)
}

pub(crate) fn start(migrations: &Path, data: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Server::start_with(migrations, data, port, &[])
}

#[test]
fn a_declared_catalogue_is_trained_and_served_without_code() {
    // No name of the catalogue is written in the serving or training code.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["actors/src", "trainer/src"] {
        for name in [
            "listener_taste",
            "episode_reach",
            "audition",
            "episodes:",
            "listener_id",
            "episode_id",
        ] {
            assert!(
                !contains(&root.join(dir), name),
                "`{name}` is written in {dir}"
            );
        }
    }

    let (_dir, migrations, data) = trained();
    let server = start(&migrations, &data);
    // Listeners the model never saw arrive and play six episodes each
    // (`user_id` and `item_id` are the wire names of the declared entities).
    for l in LISTENERS..LISTENERS + HELD_OUT {
        let events: Vec<Json> = auditions(l, 6, 1_790_000_000 + l as i64)
            .into_iter()
            .map(|a| json!({"user_id": a["listener_id"], "item_id": a["episode_id"], "type": "play",
                            "timestamp": a["event_timestamp"], "features": {"minutes": a["minutes"]}}))
            .collect();
        let (status, body) = server.post("/v1/events", &json!({"events": events}));
        assert_eq!(status, 200, "{body}");
    }
    let top10 = |listener: &str| -> Vec<String> {
        let body = server.recommend(listener, 10);
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let share = |l: usize, items: &[String]| {
        items.iter().filter(|e| topic_of(e) == l % 3).count() as f64 / items.len().max(1) as f64
    };
    let (status, reach) = server.post("/v1/online-features", &json!({
        "features": ["episode_reach:listens_all"],
        "entities": (0..3 * PER_TOPIC).map(|e| json!({"episode_id": format!("e{e}")})).collect::<Vec<_>>()}));
    assert_eq!(status, 200, "{reach}");
    let mut popular: Vec<(i64, String)> = reach["rows"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(e, r)| (r["values"][0].as_i64().unwrap(), format!("e{e}")))
        .collect();
    popular.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let popular: Vec<String> = popular.into_iter().take(10).map(|(_, e)| e).collect();
    let (mut ours, mut baseline) = (0.0, 0.0);
    for l in LISTENERS..LISTENERS + HELD_OUT {
        ours += share(l, &top10(&format!("l{l}")));
        baseline += share(l, &popular);
    }
    let (ours, baseline) = (ours / HELD_OUT as f64, baseline / HELD_OUT as f64);
    eprintln!(
        "own-topic share of the top 10 for new listeners: {ours:.2} (popularity: {baseline:.2})"
    );
    assert!(
        ours > 0.6 && ours > baseline + 0.25,
        "{ours} vs popularity {baseline}"
    );

    // A live play moves the next ranking: a science listener binges comedy.
    let listener = (LISTENERS..LISTENERS + HELD_OUT)
        .find(|l| l % 3 == 2)
        .unwrap();
    let name = format!("l{listener}");
    let before = top10(&name);
    let binge: Vec<Json> = (0..8)
        .map(|k| json!({"user_id": name, "item_id": format!("e{}", PER_TOPIC + k), "type": "play",
                        "timestamp": reprise_store::time::format_rfc3339((1_795_000_000 + k as i64) * 1_000_000),
                        "features": {"minutes": 40}}))
        .collect();
    let (status, body) = server.post("/v1/events", &json!({"events": binge}));
    assert_eq!(status, 200, "{body}");
    let after = top10(&name);
    assert_ne!(before, after, "the plays moved the ranking");
    let comedy = |items: &[String]| items.iter().filter(|e| topic_of(e) == 1).count();
    assert!(comedy(&after) > comedy(&before), "{before:?} -> {after:?}");
}

/// A listener×episode feature is never shared across listeners: the
/// served-feature log of one listener's response holds their own value for
/// an episode, whoever's request read that episode's values first.
#[test]
fn a_user_by_item_feature_is_read_for_each_user() {
    let (_dir, migrations, data) = trained();
    let server = start(&migrations, &data);
    // l0 (crime) first, then l1 (comedy, with science on the side), who has
    // heard no crime episode.
    let responses = [server.recommend("l0", 200), server.recommend("l1", 200)];
    let items = |body: &Json| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (first, second) = (items(&responses[0]), items(&responses[1]));
    let shared: Vec<&String> = first.iter().filter(|e| second.contains(e)).collect();
    let entities: Vec<Json> = shared
        .iter()
        .flat_map(|e| ["l0", "l1"].map(|l| json!({"listener_id": l, "episode_id": e})))
        .collect();
    let (status, pair) = server.post(
        "/v1/online-features",
        &json!({"features": ["pair_listens:listens_all"], "entities": entities}),
    );
    assert_eq!(status, 200, "{pair}");
    let value = |k: usize| pair["rows"][k]["values"][0].as_i64().unwrap();
    let (episode, heard) = (0..shared.len())
        .find(|&k| value(2 * k) > 0 && value(2 * k + 1) == 0)
        .map(|k| (shared[k].clone(), value(2 * k)))
        .expect("an episode served to both that only l0 heard");
    // The logged value of pair_listens: after the 7 generator inputs, the
    // declared ones in order (it is the third).
    let logged = |body: &Json| {
        let (_, row) = server.post(
            "/v1/online-features",
            &json!({"features": ["served_item:features"],
            "entities": [{"request_id": body["request_id"], "item_id": episode}]}),
        );
        row["rows"][0]["values"][0][9].as_f64().unwrap()
    };
    assert_eq!(logged(&responses[0]), heard as f64);
    assert_eq!(
        logged(&responses[1]),
        0.0,
        "l1 was served l0's listens of {episode}"
    );
}

/// Whether any `.rs` file under `dir` contains `needle`.
fn contains(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            contains(&path, needle)
        } else {
            path.extension().is_some_and(|e| e == "rs")
                && std::fs::read_to_string(&path).unwrap().contains(needle)
        }
    })
}
