//! One training run: interactions at a pinned store version → split →
//! the ranker's training data (candidates with point-in-time snapshot
//! context) → validated against the serving model's schema → ranker (from
//! those rows or from the served-feature log) and generators fitted →
//! evaluation → registry and embedding views.

use std::time::Instant;

use reprise_models::dataset::chronological_split;
use reprise_models::pipeline::{PipelineParams, RankerData, RankerTraining, TwoStage};
use reprise_models::ranker::RankerKind;
use reprise_store::FeatureStore;
use reprise_validation::schema::{check, infer, AnomalyKind, Schema};
use serde::{Deserialize, Serialize};

use crate::context::SnapshotContext;
use crate::data::load_interactions;
use crate::embeddings_view::{self, EmbeddingViews};
use crate::error::{Result, TrainError};
use crate::evaluate::{score_pipeline, PipelineMetrics, TRAIN_FRACTION};
use crate::model_io::{self, Provenance};
use crate::served_training::fit_ranker;

/// What the ranker learns from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainingSource {
    /// Candidates of the training interactions with point-in-time snapshot
    /// context, labelled by the held-back later interactions.
    #[default]
    Snapshot,
    /// The served-feature log joined with the feedback on it.
    ServedLog,
}

impl std::str::FromStr for TrainingSource {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "snapshot" => Ok(TrainingSource::Snapshot),
            "served-log" | "served_log" => Ok(TrainingSource::ServedLog),
            other => Err(format!("`{other}` is not `snapshot` or `served-log`")),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub params: PipelineParams,
    /// Train on the data as of this store version (default: the newest).
    pub as_of_version: Option<u64>,
    pub source: TrainingSource,
    /// Size the embeddings by the declaration's `embedding_dim` (instead of
    /// `params.als.factors`): what `reprise train` and the server do unless
    /// told a size.
    pub declared_dimension: bool,
    /// The schema the training context must keep to (the serving model's):
    /// a missing feature, a type change or NaNs stop the run before anything
    /// is saved; other anomalies are reported as warnings.
    pub expected_schema: Option<Schema>,
}

/// Anomalies that stop a run: the data no longer has the shape the ranker
/// reads. New ranges and categories are what new data looks like.
const BLOCKING: [AnomalyKind; 3] = [
    AnomalyKind::MissingFeature,
    AnomalyKind::TypeMismatch,
    AnomalyKind::Nan,
];

/// How long a step took.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainOutcome {
    pub embeddings_version: String,
    pub ranker_version: String,
    pub store_version: u64,
    pub training_snapshot_id: String,
    pub user_embedding_view: String,
    pub item_embedding_view: String,
    pub source: TrainingSource,
    pub ranker_rows: usize,
    pub ranker_positives: usize,
    /// Interactions that came from feedback events.
    pub feedback_interactions: usize,
    /// Non-blocking schema anomalies of the training context.
    pub schema_warnings: Vec<String>,
    pub metrics: PipelineMetrics,
    pub steps: Vec<Step>,
}

/// Checks the training context (snapshot `id`) against `expected`: a
/// blocking anomaly is an error, the others come back as warnings. The
/// context's own inferred schema is kept with the snapshot: the validation
/// monitors and the next run check data against it.
fn validate(
    store: &FeatureStore,
    id: &str,
    refs: &[String],
    expected: Option<&Schema>,
) -> Result<Vec<String>> {
    if id.is_empty() {
        return Ok(Vec::new());
    }
    let columns = crate::context::snapshot_columns(store, id, refs)?;
    let (blocking, warnings): (Vec<_>, Vec<_>) = expected
        .map(|schema| check(schema, &columns))
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            (
                BLOCKING.contains(&a.kind),
                format!("{} {:?}: {}", a.feature, a.kind, a.detail),
            )
        })
        .partition(|(b, _)| *b);
    if !blocking.is_empty() {
        let list: Vec<String> = blocking.into_iter().map(|(_, a)| a).collect();
        return Err(TrainError::InvalidTrainingData(list.join("; ")));
    }
    store.put_snapshot_attachment(
        id,
        crate::context::SCHEMA_ATTACHMENT,
        serde_json::to_vec(&infer(&columns)).unwrap_or_default(),
    )?;
    Ok(warnings.into_iter().map(|(_, a)| a).collect())
}

/// The ranker kind the `[recommender]` declaration names.
fn declared_kind(store: &FeatureStore) -> Result<RankerKind> {
    let registry = store.registry();
    let spec = registry.recommender().ok_or(TrainError::NoDeclaration)?;
    RankerKind::parse(&spec.ranker)
        .ok_or_else(|| TrainError::Context(format!("unknown ranker kind `{}`", spec.ranker)))
}

/// Runs one training run; `progress` hears of each step as it ends.
pub fn train(
    store: &FeatureStore,
    options: &TrainOptions,
    progress: &mut dyn FnMut(&Step),
) -> Result<TrainOutcome> {
    let mut steps = Vec::new();
    let mut clock = Instant::now();
    let mut step = |name: &'static str, steps: &mut Vec<Step>, progress: &mut dyn FnMut(&Step)| {
        let done = Step {
            name,
            seconds: clock.elapsed().as_secs_f64(),
        };
        progress(&done);
        steps.push(done);
        clock = Instant::now();
    };
    let store_version = options.as_of_version.unwrap_or_else(|| store.version());
    let data = load_interactions(store, store_version)?;
    let dataset = &data.dataset;
    let split = chronological_split(&dataset.interactions, TRAIN_FRACTION);
    step("load interactions", &mut steps, progress);

    let inputs = model_io::declared_inputs(store)?;
    let context = SnapshotContext::new(store, dataset, &inputs, store_version)?;
    let (users, items) = (dataset.user_count(), dataset.item_count());
    let mut params = options.params.clone();
    params.ranker_kind = declared_kind(store)?;
    if options.declared_dimension {
        if let Some(spec) = store.registry().recommender() {
            params.als.factors = spec.embedding_dim;
        }
    }
    let ranker_data = RankerData::build(&split.train, users, items, &params, &context)
        .map_err(|e| TrainError::Context(e.to_string()))?;
    step("build training data", &mut steps, progress);

    let training_snapshot_id = context.snapshot_ids().pop().unwrap_or_default();
    let schema_warnings = validate(
        store,
        &training_snapshot_id,
        &inputs.refs,
        options.expected_schema.as_ref(),
    )?;
    step("validate", &mut steps, progress);

    let features = ranker_data.features.clone();
    let (ranker, RankerTraining { rows, positives }) = match options.source {
        TrainingSource::Snapshot => ranker_data.fit(&params),
        TrainingSource::ServedLog => fit_ranker(store, store_version, &features, &params)?,
    };
    let model = TwoStage::assemble(&split.train, users, items, params, ranker, features);
    step(
        match options.source {
            TrainingSource::Snapshot => "train",
            TrainingSource::ServedLog => "train on served log",
        },
        &mut steps,
        progress,
    );

    let metrics = score_pipeline(&model, &split, &context)?;
    step("evaluate", &mut steps, progress);

    let trained_until = split.train.iter().map(|i| i.timestamp).max().unwrap_or(0);
    let als = &model.generators.als;
    // The views are numbered before the model is saved, so the model can
    // name them; the model's name goes into the views' description.
    let embeddings_version = model_io::save_embeddings(
        store,
        als,
        dataset,
        &model.params,
        Provenance {
            store_version,
            training_snapshot_id: String::new(),
            feature_refs: vec![data.view.clone()],
            metrics: Default::default(),
        },
    )?;
    let EmbeddingViews { users, items } = embeddings_view::write(
        store,
        &embeddings_version,
        (&dataset.users, &als.users),
        (&dataset.items, &als.items),
        trained_until,
    )?;
    let mut feature_refs: Vec<String> = inputs.refs.clone();
    feature_refs.push(format!("{users}:vector"));
    feature_refs.push(format!("{items}:vector"));
    let ranker_version = model_io::save_ranker(
        store,
        &model,
        dataset,
        &embeddings_version,
        &inputs.declared,
        Provenance {
            store_version,
            training_snapshot_id: training_snapshot_id.clone(),
            feature_refs,
            metrics: metrics.as_map(),
        },
    )?;
    // The model records this one (skew checks and retraining read it); the
    // context deletes its other snapshots when the run ends, and all of
    // them when the run fails before the model is stored.
    context.keep_snapshot(&training_snapshot_id);
    step("save", &mut steps, progress);
    tracing::info!(%ranker_version, %embeddings_version, ndcg = metrics.top_k.ndcg, "training run finished");
    Ok(TrainOutcome {
        embeddings_version,
        ranker_version,
        store_version,
        training_snapshot_id,
        user_embedding_view: users,
        item_embedding_view: items,
        source: options.source,
        ranker_rows: rows,
        ranker_positives: positives,
        feedback_interactions: data.from_feedback,
        schema_warnings,
        metrics,
        steps,
    })
}
