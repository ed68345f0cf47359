//! Training runs over a store loaded with a small generated data set in
//! MovieLens' format: no leakage, reproducible runs, models that load back
//! and score identically, embeddings written back as a new view version.

use std::collections::HashMap;
use std::path::Path;

use reprise_models::als::AlsParams;
use reprise_models::context::Occasions;
use reprise_models::dataset::chronological_split;
use reprise_models::pipeline::{item_sets, user_cutoffs, PipelineParams, TwoStage};
use reprise_store::{FeatureStore, StoreConfig, Value};
use reprise_trainer::context::SnapshotContext;
use reprise_trainer::data::load_interactions;
use reprise_trainer::model_io::{self, Provenance};
use reprise_trainer::{evaluate, movielens, synthetic, train, TrainOptions};
use serde_json::{json, Map};

/// The generated data set and its ratings (user, item, rating, time).
struct Generated {
    dir: tempfile::TempDir,
    ratings: Vec<(u32, u32, u32, i64)>,
}

fn generate() -> Generated {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_movielens(dir.path(), 60, 20).unwrap();
    let ratings = movielens::read_ratings(dir.path())
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.user.parse().unwrap(),
                r.item.parse().unwrap(),
                r.rating as u32,
                r.timestamp,
            )
        })
        .collect();
    Generated { dir, ratings }
}

fn loaded_store(data: &Generated) -> FeatureStore {
    let store = FeatureStore::in_memory(StoreConfig::default()).unwrap();
    store
        .migrate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalogs/movielens/migrations"))
        .unwrap();
    // The server's own views (feedback, served log, runs), as the server
    // registers them.
    store
        .ensure_definitions(
            "system-views-v2",
            include_str!("../../actors/src/system_views.toml"),
        )
        .unwrap();
    movielens::import(&store, data.dir.path(), &mut |_, _| {}).unwrap();
    store
}

fn params() -> PipelineParams {
    PipelineParams {
        als: AlsParams {
            factors: 8,
            iterations: 6,
            ..AlsParams::default()
        },
        knn_neighbours: 10,
        candidates: 15,
        popular_candidates: 10,
        ..PipelineParams::default()
    }
}

/// The two-stage model on `split`'s training part, context from `context`.
fn fit(
    split: &reprise_models::dataset::Split,
    dataset: &reprise_models::dataset::Dataset,
    context: &SnapshotContext,
) -> TwoStage {
    TwoStage::fit(
        &split.train,
        dataset.user_count(),
        dataset.item_count(),
        params(),
        context,
    )
    .unwrap()
    .0
}

#[test]
fn every_training_row_sees_only_values_from_before_its_labels() {
    let data = generate();
    let store = loaded_store(&data);
    let interactions = load_interactions(&store, store.version()).unwrap();
    let dataset = &interactions.dataset;
    assert_eq!(dataset.interactions.len(), data.ratings.len());
    let split = chronological_split(&dataset.interactions, 0.75);
    let inputs = model_io::declared_inputs(&store).unwrap();
    let slot = |name: &str| inputs.refs.iter().position(|r| r == name).unwrap();
    let context = SnapshotContext::new(&store, dataset, &inputs, store.version())
        .unwrap()
        .keeping_rows();
    fit(&split, dataset, &context);
    let rows = context.kept_rows();
    assert!(rows.len() > 100, "{} training rows", rows.len());

    // The labels of the ranker's training rows: each user's inner held-out
    // interactions.
    let inner = chronological_split(&split.train, 0.75);
    let first_label: HashMap<u32, i64> = inner.test.iter().fold(HashMap::new(), |mut m, i| {
        let t = m.entry(i.user).or_insert(i.timestamp);
        *t = (*t).min(i.timestamp);
        m
    });
    let mut non_empty = 0;
    for (request, values) in &rows {
        let user: u32 = dataset.users[request.user as usize].parse().unwrap();
        let item: u32 = dataset.items[request.item as usize].parse().unwrap();
        assert!(
            request.as_of < first_label[&request.user],
            "row for user {user} at {} is not before its labels",
            request.as_of
        );
        // Recompute the aggregates from the raw ratings up to the row's
        // time: any future rating in a feature would make them differ.
        let user_plays = data
            .ratings
            .iter()
            .filter(|r| r.0 == user && r.3 <= request.as_of)
            .count();
        let item_plays = data
            .ratings
            .iter()
            .filter(|r| r.1 == item && r.3 <= request.as_of)
            .count();
        let item_likes = data
            .ratings
            .iter()
            .filter(|r| r.1 == item && r.3 <= request.as_of && r.2 >= 4)
            .count();
        assert_eq!(
            values[slot("ml_user_ratings:plays_log")],
            Some(Value::Float64((user_plays as f64).ln_1p())),
            "user {user} plays_log at {}",
            request.as_of
        );
        assert_eq!(
            values[slot("ml_item_ratings:plays_log")],
            Some(Value::Float64((item_plays as f64).ln_1p())),
            "item {item} plays at {}",
            request.as_of
        );
        let like_rate = if item_plays > 0 {
            item_likes as f64 / item_plays as f64
        } else {
            0.5
        };
        assert_eq!(
            values[slot("ml_item_ratings:like_rate")],
            Some(Value::Float64(like_rate)),
            "item {item} like rate at {}",
            request.as_of
        );
        non_empty += usize::from(user_plays > 0);
    }
    assert!(non_empty > rows.len() / 2, "most rows have user history");
}

#[test]
fn a_run_is_reproducible_and_evaluating_its_model_gives_its_metrics() {
    let data = generate();
    let store = loaded_store(&data);
    let options = TrainOptions {
        params: params(),
        ..TrainOptions::default()
    };
    let mut steps = Vec::new();
    let first = train(&store, &options, &mut |s| steps.push(s.name)).unwrap();
    assert_eq!(
        steps,
        [
            "load interactions",
            "build training data",
            "validate",
            "train",
            "evaluate",
            "save"
        ]
    );
    assert_eq!(
        (
            first.ranker_version.as_str(),
            first.embeddings_version.as_str()
        ),
        ("ranker-1", "embeddings-1")
    );
    // The run's evaluation snapshots are gone; the one its model records
    // stays.
    assert_eq!(
        store.snapshot_ids().unwrap(),
        vec![first.training_snapshot_id.clone()]
    );
    assert!(store.snapshot_info(&first.training_snapshot_id).is_ok());
    let second = train(&store, &options, &mut |_| {}).unwrap();
    assert_eq!(second.ranker_version, "ranker-2");
    assert!(
        second.store_version > first.store_version,
        "the first run wrote embeddings"
    );
    assert_eq!(
        first.metrics, second.metrics,
        "same data, same seed, same metrics"
    );
    assert!(first.metrics.top_k.users > 0 && first.metrics.candidates > 0);
    assert!((0.0..=1.0).contains(&first.metrics.auc));

    let evaluation = evaluate(&store, None).unwrap();
    assert_eq!(evaluation.model, "ranker-2");
    assert_eq!(evaluation.pipeline, second.metrics);
    assert_eq!(
        evaluate(&store, Some("ranker-1")).unwrap().pipeline,
        first.metrics
    );
    assert!(
        evaluation.pipeline.top_k.ndcg > evaluation.most_popular.ndcg,
        "two groups of taste: the pipeline beats popularity ({:?} vs {:?})",
        evaluation.pipeline.top_k,
        evaluation.most_popular
    );

    let record = store.load_model("ranker-1").unwrap();
    assert_eq!(record.store_version, first.store_version);
    assert_eq!(record.training_snapshot_id, first.training_snapshot_id);
    assert!(store.snapshot_info(&record.training_snapshot_id).is_ok());
    // The training context's schema is stored with its snapshot.
    let schema: reprise_validation::schema::Schema = serde_json::from_slice(
        &store
            .snapshot_attachment(&record.training_snapshot_id, "schema")
            .unwrap()
            .expect("a schema attachment"),
    )
    .unwrap();
    assert!(schema
        .features
        .contains_key("ml_user_ratings:genre_likes_all"));
    assert!(schema.features["ml_item_ratings:plays_log"].max.unwrap() > 0.0);
    assert!(record
        .feature_refs
        .iter()
        .any(|r| r == "ml_user_ratings:genre_likes_all"));
    assert!(record
        .feature_refs
        .iter()
        .any(|r| r == "item_factors@1:vector"));
    assert_eq!(record.metrics["ndcg@10"], first.metrics.top_k.ndcg);
    assert!(record.code_version.starts_with("reprise-trainer"));
    assert!(evaluate(&store, Some("ranker-9")).is_err());
}

#[test]
fn a_saved_ranker_loads_by_version_and_scores_identically() {
    let data = generate();
    let store = loaded_store(&data);
    let interactions = load_interactions(&store, store.version()).unwrap();
    let dataset = &interactions.dataset;
    let split = chronological_split(&dataset.interactions, 0.75);
    let inputs = model_io::declared_inputs(&store).unwrap();
    let context = SnapshotContext::new(&store, dataset, &inputs, store.version()).unwrap();
    let model = fit(&split, dataset, &context);
    let embeddings = model_io::save_embeddings(
        &store,
        &model.generators.als,
        dataset,
        &model.params,
        Provenance::default(),
    )
    .unwrap();
    let version = model_io::save_ranker(
        &store,
        &model,
        dataset,
        &embeddings,
        &inputs.declared,
        Provenance::default(),
    )
    .unwrap();
    let loaded = reprise_trainer::remap::load_ranker_onto(
        &store,
        &store.load_model(&version).unwrap(),
        dataset,
        &split.train,
    )
    .unwrap();
    assert_eq!(loaded.ranker, model.ranker);
    assert_eq!(loaded.features, model.features);
    let users: Vec<(u32, i64)> = user_cutoffs(&split.train).into_iter().collect();
    let seen = item_sets(&split.train);
    let none = Occasions::none();
    let before = model.rank(&users, &seen, &context, &none).unwrap();
    let after = loaded.rank(&users, &seen, &context, &none).unwrap();
    assert!(!before.is_empty());
    assert_eq!(before, after, "bit-identical scores");
}

#[test]
fn each_run_writes_its_factors_as_a_new_embedding_view_version() {
    let data = generate();
    let store = loaded_store(&data);
    let options = TrainOptions {
        params: params(),
        ..TrainOptions::default()
    };
    let first = train(&store, &options, &mut |_| {}).unwrap();
    let second = train(&store, &options, &mut |_| {}).unwrap();
    assert_eq!(first.item_embedding_view, "item_factors@1");
    assert_eq!(second.item_embedding_view, "item_factors@2");
    assert_eq!(second.user_embedding_view, "user_factors@2");

    let interactions = load_interactions(&store, store.version()).unwrap();
    let als = model_io::load_embeddings(&store, &first.embeddings_version, &interactions.dataset)
        .unwrap();
    let item = &interactions.dataset.items[3];
    let entity: Map<String, serde_json::Value> =
        json!({"item_id": item}).as_object().unwrap().clone();
    let online = store
        .online_features(&["item_factors@1:vector".to_owned()], &[entity])
        .unwrap();
    assert_eq!(
        online.rows[0].values[0],
        Some(Value::FloatVector(als.items.row(3).to_vec())),
        "the stored vector is the model's factor row"
    );
    let registry = store.registry();
    assert_eq!(registry.view("item_factors").unwrap().version, 2);
}

#[path = "training/retraining.rs"]
mod retraining;
