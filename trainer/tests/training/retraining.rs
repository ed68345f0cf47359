//! The retraining pipeline over the store: the candidate and the serving
//! ranker scored on the same held-out data, the margin and the alert gate,
//! training data checked against the serving schema, feedback in the
//! interactions, the served-log source, runs stored.

use std::cell::RefCell;

use reprise_models::als::AlsParams;
use reprise_store::time::format_rfc3339;
use reprise_store::FeatureStore;
use reprise_trainer::data::load_interactions;
use reprise_trainer::retrain::{execute, finish, Decision, Promotion, RetrainPolicy};
use reprise_trainer::runs::{self, RetrainRun};
use reprise_trainer::{evaluate, train, TrainError, TrainOptions, TrainingSource};
use reprise_validation::schema::{FeatureSchema, Kind};
use serde_json::json;

use super::{generate, loaded_store, params};

/// Records promotions; an optional open alert.
#[derive(Default)]
struct FakePromotion {
    alert: Option<String>,
    promoted: RefCell<Vec<String>>,
}

impl Promotion for FakePromotion {
    fn blocking_alert(&self) -> reprise_trainer::Result<Option<String>> {
        Ok(self.alert.clone())
    }

    fn promote(&self, version: &str) -> reprise_trainer::Result<()> {
        self.promoted.borrow_mut().push(version.to_owned());
        Ok(())
    }
}

fn policy(options: TrainOptions) -> RetrainPolicy {
    RetrainPolicy {
        margin: 0.0,
        metric: "ndcg@10".into(),
        options,
    }
}

fn options() -> TrainOptions {
    TrainOptions {
        params: params(),
        ..TrainOptions::default()
    }
}

fn run_pipeline(
    store: &FeatureStore,
    policy: &RetrainPolicy,
    serving: Option<&str>,
    promotion: &FakePromotion,
) -> (RetrainRun, reprise_trainer::Result<Decision>) {
    let mut run = RetrainRun::new(
        "test",
        policy.options.source,
        &policy.metric,
        policy.margin,
        format_rfc3339(0),
    );
    let result = execute(store, policy, serving, promotion, &mut run, &mut |_| {});
    (run, result)
}

#[test]
fn a_candidate_trained_on_shuffled_labels_is_rejected_with_the_reason() {
    let data = generate();
    let store = loaded_store(&data);
    let serving = train(&store, &options(), &mut |_| {}).unwrap();
    let mut shuffled = options();
    shuffled.params.shuffle_labels = true;
    let promotion = FakePromotion::default();
    let (run, decision) = run_pipeline(
        &store,
        &policy(shuffled),
        Some(&serving.ranker_version),
        &promotion,
    );
    let decision = decision.unwrap();
    assert!(!decision.promoted, "{decision:?}");
    assert!(promotion.promoted.borrow().is_empty());
    let (new, old) = (
        run.candidate_metrics["ndcg@10"],
        run.serving_metrics["ndcg@10"],
    );
    assert!(new < old, "null model {new} vs serving {old}");
    assert!(
        decision
            .reason
            .contains("does not beat the serving ranker-1")
            && decision.reason.contains("same held-out data"),
        "{}",
        decision.reason
    );
    // The serving model is recorded as serving: the rejected candidate,
    // now the newest, does not serve after a restart.
    assert_eq!(
        store.serving_model("ranker").unwrap().as_deref(),
        Some(serving.ranker_version.as_str())
    );
    // Same data, same split: the serving model re-scored on the
    // candidate's held-out data gives its stored metrics.
    assert_eq!(run.serving_metrics, serving.metrics.as_map());
}

#[test]
fn a_better_candidate_is_promoted_unless_a_blocking_alert_is_open() {
    let data = generate();
    let store = loaded_store(&data);
    let mut weak = options();
    weak.params.als = AlsParams {
        factors: 1,
        iterations: 1,
        ..AlsParams::default()
    };
    weak.params.candidates = 3;
    let serving = train(&store, &weak, &mut |_| {}).unwrap();

    let gated = FakePromotion {
        alert: Some("blocking alert a1 (drift on user_stats:plays_7d)".into()),
        ..FakePromotion::default()
    };
    let (run, decision) = run_pipeline(
        &store,
        &policy(options()),
        Some(&serving.ranker_version),
        &gated,
    );
    let decision = decision.unwrap();
    assert!(
        run.candidate_metrics["ndcg@10"] > run.serving_metrics["ndcg@10"],
        "{run:?}"
    );
    assert!(!decision.promoted);
    assert!(
        decision.reason.contains("blocking alert a1"),
        "{}",
        decision.reason
    );
    assert!(gated.promoted.borrow().is_empty());

    let open = FakePromotion::default();
    let (run, decision) = run_pipeline(
        &store,
        &policy(options()),
        Some(&serving.ranker_version),
        &open,
    );
    let decision = decision.unwrap();
    assert!(decision.promoted, "{}", decision.reason);
    assert_eq!(*open.promoted.borrow(), [run.candidate.clone().unwrap()]);

    // A margin the candidate cannot clear keeps the serving model.
    let mut strict = policy(options());
    strict.margin = 5.0;
    let (_, decision) = run_pipeline(
        &store,
        &strict,
        Some(&serving.ranker_version),
        &FakePromotion::default(),
    );
    assert!(!decision.unwrap().promoted);
}

#[test]
fn training_data_that_breaks_the_serving_schema_stops_the_run_before_saving() {
    let data = generate();
    let store = loaded_store(&data);
    let serving = train(&store, &options(), &mut |_| {}).unwrap();
    let models_before = store.models().unwrap().len();
    let mut breaking = options();
    let mut schema = reprise_validation::schema::Schema::default();
    schema.features.insert(
        "ml_user_stats__plays_removed".into(),
        FeatureSchema {
            kind: Kind::Numeric,
            presence: 1.0,
            domain: None,
            min: None,
            max: None,
        },
    );
    breaking.expected_schema = Some(schema);
    let err = train(&store, &breaking, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, TrainError::InvalidTrainingData(m) if m.contains("ml_user_stats__plays_removed") && m.contains("MissingFeature")),
        "{err}"
    );
    assert_eq!(
        store.models().unwrap().len(),
        models_before,
        "nothing saved"
    );
    // The pipeline reads the serving model's own schema: its data passes.
    let (run, decision) = run_pipeline(
        &store,
        &policy(options()),
        Some(&serving.ranker_version),
        &FakePromotion::default(),
    );
    decision.unwrap();
    assert!(run.steps.iter().any(|s| s.name == "validate"));
}

#[test]
fn engaged_feedback_joins_the_interactions_and_skips_do_not() {
    let data = generate();
    let store = loaded_store(&data);
    let before = load_interactions(&store, store.version()).unwrap();
    let at = "2026-01-01T00:00:00Z";
    let rows = vec![
        // (Plays reach training as rows of the declared interactions view;
        // clicks and likes through the feedback view.)
        json!({"request_id": "r1", "item_id": "3", "event_timestamp": at, "user_id": "newcomer", "type": "like", "engaged": true}),
        json!({"request_id": "r1", "item_id": "4", "event_timestamp": at, "user_id": "newcomer", "type": "skip", "engaged": false}),
        json!({"request_id": "r1", "item_id": "no-such-item", "event_timestamp": at, "user_id": "newcomer", "type": "click", "engaged": true}),
    ];
    store.push("feedback", &rows, false).unwrap();
    let after = load_interactions(&store, store.version()).unwrap();
    assert_eq!(after.from_feedback, 1);
    assert_eq!(
        after.dataset.interactions.len(),
        before.dataset.interactions.len() + 1
    );
    let last = after.dataset.interactions.last().unwrap();
    assert_eq!(
        (
            after.dataset.users[last.user as usize].as_str(),
            after.dataset.items[last.item as usize].as_str()
        ),
        ("newcomer", "3")
    );
    // Pinned to the earlier version, the feedback is not there.
    let pinned = load_interactions(&store, before.store_version).unwrap();
    assert_eq!(pinned.dataset.interactions, before.dataset.interactions);
}

#[test]
fn the_served_log_source_needs_labelled_served_items() {
    let data = generate();
    let store = loaded_store(&data);
    let mut served = options();
    served.source = TrainingSource::ServedLog;
    let err = train(&store, &served, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, TrainError::NotEnoughServedLog(m) if m.contains("0 labelled served items")),
        "{err}"
    );
}

#[test]
fn the_serving_model_is_scored_on_newer_data_it_never_saw() {
    let data = generate();
    let store = loaded_store(&data);
    let serving = train(&store, &options(), &mut |_| {}).unwrap();
    // New users and plays after the serving model was trained.
    let rows: Vec<_> = (0..6)
        .map(|i| {
            json!({"request_id": format!("r{i}"), "item_id": (i + 1).to_string(),
                        "event_timestamp": format!("2026-01-01T00:0{i}:00Z"),
                        "user_id": "newcomer", "type": "click", "engaged": true})
        })
        .collect();
    store.push("feedback", &rows, false).unwrap();
    let (run, decision) = run_pipeline(
        &store,
        &policy(options()),
        Some(&serving.ranker_version),
        &FakePromotion::default(),
    );
    decision.unwrap();
    let held_out = run.held_out.clone().unwrap();
    assert_eq!(held_out.feedback_interactions, 6);
    assert!(
        held_out.users
            > evaluate(&store, Some(&serving.ranker_version))
                .unwrap()
                .users
    );
    assert!(run.serving_metrics["ndcg@10"].is_finite());
}

#[test]
fn runs_are_stored_with_their_newest_state() {
    let data = generate();
    let store = loaded_store(&data);
    let mut run = RetrainRun::new(
        "manual",
        TrainingSource::Snapshot,
        "ndcg@10",
        0.0,
        format_rfc3339(0),
    );
    runs::save(&store, &run).unwrap();
    let other = RetrainRun::new(
        "schedule",
        TrainingSource::Snapshot,
        "auc",
        0.1,
        format_rfc3339(60_000_000),
    );
    runs::save(&store, &other).unwrap();
    finish::<String>(
        &mut run,
        Ok(Decision {
            promoted: false,
            reason: "not better".into(),
        }),
        format_rfc3339(120_000_000),
    );
    runs::save(&store, &run).unwrap();
    let stored = runs::get(&store, &run.run_id).unwrap().unwrap();
    assert_eq!(stored, run);
    assert_eq!(stored.decision.as_deref(), Some("rejected"));
    let all = runs::list(&store).unwrap();
    assert_eq!(
        all.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        [run.run_id.as_str(), other.run_id.as_str()]
    );
}
