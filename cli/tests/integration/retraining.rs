//! Retraining on the real server over generated MovieLens-format data: the
//! run record, the margin and the null model, promotion served on the next
//! request, runs kept across restarts and read by the CLI, and a simulated
//! preference shift that the play-rate trigger catches.

use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::server::{free_port, movielens_migrations, reprise_with, trained_data_with, Server};

/// These tests are about the retraining mechanics, on a small generated
/// MovieLens data set (60 users): they train the catalogue's first
/// declaration (a logistic ranker). Gradient-boosted trees overfit so few
/// rows: a ranker trained on shuffled labels can score as well.
fn catalogue() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("movielens-logistic");
        std::fs::create_dir_all(&dir).unwrap();
        for file in [
            "0001_entities.toml",
            "0002_movielens.toml",
            "0003_ratings.toml",
        ] {
            std::fs::copy(movielens_migrations().join(file), dir.join(file)).unwrap();
        }
        dir
    })
}

fn trained_data(
    users: u32,
    items_per_group: u32,
    args: &[&str],
) -> (tempfile::TempDir, std::path::PathBuf) {
    trained_data_with(catalogue(), users, items_per_group, args)
}

fn reprise_ml(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    reprise_with(catalogue(), data, args)
}

fn start_ml(data: &std::path::Path, extra: &[&str]) -> Server {
    Server::start_with(catalogue(), data, free_port(), extra)
}

/// Polls a retraining run until it ends.
fn finished_run(server: &Server, id: &str) -> Json {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, run) = server.get(&format!("/v1/retrain/runs/{id}"));
        assert_eq!(status, 200, "{run}");
        if run["status"] != "running" {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_run(server: &Server, body: &Json) -> String {
    let (status, started) = server.post("/v1/retrain", body);
    assert_eq!(status, 202, "{started}");
    started["run_id"].as_str().unwrap().to_owned()
}

fn step_names(run: &Json) -> Vec<&str> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

/// A null ranker serves (trained on shuffled labels); no schedule.
fn null_model_server() -> (tempfile::TempDir, Server) {
    let (dir, data) = trained_data(
        60,
        20,
        &["--factors", "8", "--iterations", "5", "--shuffle-labels"],
    );
    let server = start_ml(&data, &["--retrain-every", "0"]);
    (dir, server)
}

/// A better candidate is promoted and serves the next request; a worse one
/// (trained on shuffled labels) is rejected and the run says why; both runs
/// are kept across a restart and read by the CLI.
#[test]
fn a_better_candidate_serves_the_next_request_and_a_worse_one_is_rejected() {
    let (dir, server) = null_model_server();
    let (status, bad) = server.post("/v1/retrain", &json!({"metric": "mrr"}));
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["field"], "metric");

    let better = finished_run(
        &server,
        &start_run(&server, &json!({"factors": 8, "iterations": 5})),
    );
    assert_eq!(better["decision"], "promoted", "{better}");
    assert_eq!(better["candidate"], "ranker-2");
    assert_eq!(
        step_names(&better),
        [
            "load interactions",
            "build training data",
            "validate",
            "train",
            "evaluate",
            "save",
            "evaluate serving model",
            "promote"
        ]
    );
    assert!(
        better["candidate_metrics"]["ndcg@10"].as_f64()
            > better["serving_metrics"]["ndcg@10"].as_f64()
    );
    assert_eq!(server.recommend("1", 3)["model_version"], "ranker-2");

    let null = finished_run(
        &server,
        &start_run(
            &server,
            &json!({"shuffle_labels": true, "factors": 8, "iterations": 5}),
        ),
    );
    assert_eq!(
        (null["status"].as_str(), null["decision"].as_str()),
        (Some("succeeded"), Some("rejected")),
        "{null}"
    );
    let reason = null["reason"].as_str().unwrap();
    assert!(
        reason.contains("does not beat the serving ranker-2")
            && reason.contains("same held-out data"),
        "{reason}"
    );
    assert!(
        null["candidate_metrics"]["ndcg@10"].as_f64() < null["serving_metrics"]["ndcg@10"].as_f64()
    );
    assert_eq!(server.recommend("1", 3)["model_version"], "ranker-2");
    assert_eq!(server.metric("reprise_retrain_runs_promoted_total"), 1.0);
    assert_eq!(server.metric("reprise_retrain_runs_rejected_total"), 1.0);

    let (status, listed) = server.get("/v1/retrain/runs");
    assert_eq!(status, 200);
    assert_eq!(listed["runs"].as_array().unwrap().len(), 2);
    server.kill();

    let data = dir.path().join("data");
    let server = start_ml(&data, &["--retrain-every", "0"]);
    let (status, kept) = server.get(&format!(
        "/v1/retrain/runs/{}",
        null["run_id"].as_str().unwrap()
    ));
    assert_eq!(status, 200);
    assert_eq!(kept, null, "the run survives the restart unchanged");
    assert_eq!(server.recommend("1", 3)["model_version"], "ranker-2");
    let (status, _) = server.get("/v1/retrain/runs/nope");
    assert_eq!(status, 404);
    drop(server);

    let out = reprise_ml(
        &data,
        &["retrain", "show", better["run_id"].as_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("promoted") && text.contains("ndcg@10"),
        "{text}"
    );
    let out = reprise_ml(&data, &["retrain", "list", "--json"]);
    let runs: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2);
}

/// `reprise retrain run` runs the same pipeline against the store and
/// moves the serving pointer the next server start follows.
#[test]
fn the_cli_runs_the_pipeline_and_the_next_server_serves_its_decision() {
    let (dir, server) = null_model_server();
    drop(server);
    let data = dir.path().join("data");
    let json = dir.path().join("run.json");
    reprise_ml(
        &data,
        &[
            "retrain",
            "run",
            "--factors",
            "8",
            "--iterations",
            "5",
            "--retrain-margin",
            "0.01",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    let run: Json = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        (run["trigger"].as_str(), run["decision"].as_str()),
        (Some("cli"), Some("promoted")),
        "{run}"
    );
    let server = start_ml(&data, &["--retrain-every", "0"]);
    assert_eq!(server.recommend("1", 3)["model_version"], run["candidate"]);
}

const ITEMS_PER_GROUP: u32 = 60;

/// Which taste group an item of the generated catalogue is in (Action
/// first, then Romance).
fn group(item: &str) -> u32 {
    u32::from(item.parse::<u32>().unwrap() > ITEMS_PER_GROUP)
}

/// Play rate and serving models of one round: every user gets 5
/// recommendations and plays those of the group `prefers(user)`, skipping
/// the rest, and plays two more items of that group found elsewhere
/// (browsing: events without a request).
fn round(server: &Server, prefers: impl Fn(u32) -> u32, clock: &mut i64) -> (f64, Vec<String>) {
    let (mut plays, mut total, mut models) = (0, 0, Vec::new());
    let salt = (*clock % 97) as u32;
    let mut timestamp = || {
        *clock += 1;
        reprise_store::time::format_rfc3339(*clock * 1_000_000)
    };
    for user in 1..=60u32 {
        let body = server.recommend(&user.to_string(), 5);
        models.push(body["model_version"].as_str().unwrap_or("").to_owned());
        let mut events: Vec<Json> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let id = item["item_id"].as_str().unwrap();
                let liked = group(id) == prefers(user);
                plays += usize::from(liked);
                total += 1;
                json!({"request_id": body["request_id"], "user_id": user.to_string(), "item_id": id,
                       "type": if liked { "play" } else { "skip" }, "timestamp": timestamp()})
            })
            .collect();
        for j in 0..2 {
            let item =
                1 + prefers(user) * ITEMS_PER_GROUP + (user * 7 + salt + j * 5) % ITEMS_PER_GROUP;
            events.push(
                json!({"user_id": user.to_string(), "item_id": item.to_string(),
                               "type": "play", "timestamp": timestamp()}),
            );
        }
        let (status, accepted) = server.post("/v1/events", &json!({"events": events}));
        assert_eq!(status, 200, "{accepted}");
    }
    models.sort();
    models.dedup();
    (plays as f64 / total as f64, models)
}

/// Users' tastes flip at time T: the play rate of the serving model drops,
/// the play-rate monitor triggers a retrain, the retrained model (which
/// learned from the feedback since) is promoted and its play rate on the
/// post-shift tastes recovers.
#[test]
fn a_preference_shift_drops_the_play_rate_triggers_a_retrain_and_recovers() {
    let (_dir, data) = trained_data(
        60,
        ITEMS_PER_GROUP,
        &["--factors", "8", "--iterations", "5"],
    );
    let server = start_ml(
        &data,
        &[
            "--retrain-every",
            "0",
            "--retrain-debounce",
            "0",
            "--play-rate-window",
            "100",
            "--play-rate-drop",
            "0.25",
        ],
    );
    let own = |user: u32| 1 - user % 2; // odd users: Action (0)
    let mut clock = 1_780_000_000i64;
    let mut before = Vec::new();
    for _ in 0..2 {
        before.push(round(&server, own, &mut clock).0);
    }
    // From T on, Action fans want Romance and Romance fans Action.
    let shifted = |user: u32| user % 2;
    let mut after: Vec<(f64, Vec<String>)> = Vec::new();
    let mut promoted: Option<String> = None;
    let mut runs_seen = Vec::new();
    for _ in 0..10 {
        let (rate, models) = round(&server, shifted, &mut clock);
        after.push((rate, models.clone()));
        if promoted.as_ref().is_some_and(|p| models == [p.clone()]) {
            break;
        }
        let (_, runs) = server.get("/v1/retrain/runs");
        for run in runs["runs"].as_array().unwrap() {
            let run = finished_run(&server, run["run_id"].as_str().unwrap());
            if run["trigger"]
                .as_str()
                .unwrap()
                .starts_with("play_rate_drop")
                && run["decision"] == "promoted"
            {
                promoted = run["candidate"].as_str().map(str::to_owned);
            }
            runs_seen.push(format!("{}: {}", run["trigger"], run["reason"]));
        }
    }
    // Shown with --nocapture: the figures of the issue note.
    eprintln!(
        "play rate per round: before the shift {before:?}, after {after:?}; runs {runs_seen:#?}"
    );
    let baseline = before.iter().sum::<f64>() / before.len() as f64;
    let trough = after.iter().map(|(r, _)| *r).fold(f64::INFINITY, f64::min);
    // The drop is shallower than with features frozen at import: plays
    // posted since the shift move the users' genre likes (all-time and
    // last-30-days aggregations) under the old ranker too.
    assert!(
        trough < baseline * 0.8,
        "the shift drops the play rate: {after:?} vs {baseline}"
    );
    let promoted = promoted.unwrap_or_else(|| {
        panic!("no play-rate-triggered run promoted its candidate: {after:?} {runs_seen:#?}")
    });
    let (recovered, models) = after.last().unwrap();
    assert_eq!(models, std::slice::from_ref(&promoted), "{after:?}");
    assert!(
        *recovered > 0.5 && *recovered > trough + 0.15,
        "{promoted} recovered to {recovered} from {trough} (baseline {baseline}): {after:?}"
    );
}

/// With `"source": "served_log"` the ranker learns from the served-feature
/// log joined with the feedback: the vectors the serving model scored.
#[test]
fn a_run_can_train_the_ranker_on_the_served_feature_log() {
    let (_dir, data) = trained_data(
        60,
        ITEMS_PER_GROUP,
        &["--factors", "8", "--iterations", "5"],
    );
    let server = start_ml(&data, &["--retrain-every", "0", "--play-rate-drop", "0"]);
    let (status, early) = server.post("/v1/retrain", &json!({"source": "served_log"}));
    assert_eq!(status, 202, "{early}");
    let early = finished_run(&server, early["run_id"].as_str().unwrap());
    assert_eq!(early["status"], "failed");
    assert!(
        early["reason"]
            .as_str()
            .unwrap()
            .contains("not enough served-feature log"),
        "{early}"
    );

    let mut clock = 1_780_000_000i64;
    // Everybody wants Romance: plays and skips on the served items.
    round(&server, |_| 1, &mut clock);
    let run = finished_run(
        &server,
        &start_run(
            &server,
            &json!({"source": "served_log", "factors": 8, "iterations": 5}),
        ),
    );
    assert_eq!(
        (run["status"].as_str(), run["source"].as_str()),
        (Some("succeeded"), Some("served_log")),
        "{run}"
    );
    assert!(step_names(&run).contains(&"train on served log"), "{run}");
    let (status, bad) = server.post("/v1/retrain", &json!({"source": "tea_leaves"}));
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (400, Some("source")),
        "{bad}"
    );
}

/// The play-rate windows and baseline are rebuilt from the stored log
/// after a restart.
#[test]
fn the_play_rate_baseline_survives_a_restart() {
    let (dir, data) = trained_data(
        60,
        ITEMS_PER_GROUP,
        &["--factors", "8", "--iterations", "5"],
    );
    let args = ["--retrain-every", "0", "--play-rate-window", "100"];
    let server = start_ml(&data, &args);
    let mut clock = 1_780_000_000i64;
    let own = |user: u32| 1 - user % 2;
    let (rate, _) = round(&server, own, &mut clock);
    let baseline = server.metric("reprise_play_rate_baseline");
    let last = server.metric("reprise_play_rate_last_window");
    assert!(
        (baseline - rate).abs() < 1e-9,
        "three windows pooled: {baseline} vs {rate}"
    );
    // The windows are checkpointed every second while verdicts change them
    // (start-up reads the checkpoint, not the served log): a SIGKILL after
    // that loses nothing.
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    server.kill();
    let server = start_ml(&data, &args);
    assert_eq!(server.metric("reprise_play_rate_baseline"), baseline);
    assert_eq!(server.metric("reprise_play_rate_last_window"), last);
    drop(dir);
}

/// A run killed by SIGKILL is marked failed at the next start, the serving
/// model is unchanged and what the run had stored is collected.
#[test]
fn a_run_killed_by_sigkill_is_marked_failed_and_the_serving_model_is_unchanged() {
    let (dir, data) = trained_data(
        60,
        ITEMS_PER_GROUP,
        &["--factors", "8", "--iterations", "5"],
    );
    let args = ["--retrain-every", "0"];
    let server = start_ml(&data, &args);
    let serving = server.recommend("1", 5)["model_version"].clone();
    let count = |server: &Server, kind: &str| {
        let (_, list) = server.get("/v1/models");
        list["models"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == kind)
            .count()
    };
    let embeddings = count(&server, "embeddings");
    let id = start_run(&server, &json!({}));
    // Killed as soon as the run has stored its embeddings, before (most
    // likely) its ranker: they would be left behind.
    let started = Instant::now();
    while count(&server, "embeddings") == embeddings && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();

    let server = start_ml(&data, &args);
    // Collected at start: every embeddings model left is a ranker's.
    assert_eq!(count(&server, "embeddings"), count(&server, "ranker"));
    let (status, run) = server.get(&format!("/v1/retrain/runs/{id}"));
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["reason"].as_str().unwrap().contains("interrupted"),
        "{run}"
    );
    assert_eq!(server.recommend("1", 5)["model_version"], serving);
    drop(dir);
}
