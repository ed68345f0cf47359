//! Models in the store's registry: the ALS factors as `embeddings-N` and the
//! two-stage pipeline as `ranker-N` (naming its embeddings), prost-encoded,
//! each with its store version, training snapshot, feature refs,
//! hyper-parameters, metrics and code version.

use std::collections::HashMap;

use ndarray::{Array1, Array2};
use prost::Message;
use reprise_models::als::Als;
use reprise_models::dataset::Dataset;
use reprise_models::pipeline::{PipelineParams, TwoStage};
use reprise_models::ranker::{BoostedTrees, LogisticRegression, Ranker};
use reprise_store::proto::{
    Embeddings, ItemNeighbours, LinearModel, Matrix, ModelRecord, TwoStageModel,
};
use reprise_store::FeatureStore;

use crate::error::{Result, TrainError};
use crate::features::RankerInputs;

pub const EMBEDDINGS_KIND: &str = "embeddings";
pub const RANKER_KIND: &str = "ranker";

/// What the trainer records about where a model came from.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub store_version: u64,
    pub training_snapshot_id: String,
    pub feature_refs: Vec<String>,
    pub metrics: HashMap<String, f64>,
}

pub fn code_version() -> String {
    format!("reprise-trainer {}", env!("CARGO_PKG_VERSION"))
}

fn matrix(values: &Array2<f32>, row_ids: &[String]) -> Matrix {
    Matrix {
        rows: values.nrows() as u32,
        cols: values.ncols() as u32,
        values: values.iter().copied().collect(),
        row_ids: row_ids.to_vec(),
    }
}

fn array(m: Option<&Matrix>, version: &str) -> Result<Array2<f32>> {
    let m = m.ok_or_else(|| TrainError::bad_model(version, "a factor matrix is missing"))?;
    Array2::from_shape_vec((m.rows as usize, m.cols as usize), m.values.clone())
        .map_err(|e| TrainError::bad_model(version, e.to_string()))
}

/// Stores the ALS factors; returns `embeddings-N`.
pub fn save_embeddings(
    store: &FeatureStore,
    als: &Als,
    dataset: &Dataset,
    params: &PipelineParams,
    provenance: Provenance,
) -> Result<String> {
    let payload = Embeddings {
        users: Some(matrix(&als.users, &dataset.users)),
        items: Some(matrix(&als.items, &dataset.items)),
    };
    Ok(store.save_model(record(
        EMBEDDINGS_KIND,
        serde_json::to_string(&params.als).unwrap_or_default(),
        provenance,
        payload.encode_to_vec(),
    ))?)
}

/// Stores the pipeline and the ranker inputs it was trained with (the
/// declared entries); returns `ranker-N`.
pub fn save_ranker(
    store: &FeatureStore,
    model: &TwoStage,
    dataset: &Dataset,
    embeddings_version: &str,
    ranker_inputs: &[String],
    provenance: Provenance,
) -> Result<String> {
    let generators = &model.generators;
    let items = dataset.item_count();
    let payload = TwoStageModel {
        embeddings_version: embeddings_version.to_owned(),
        items: dataset.items.clone(),
        neighbours: generators
            .knn
            .neighbours()
            .iter()
            .map(|list| ItemNeighbours {
                items: list.iter().map(|(i, _)| *i).collect(),
                similarities: list.iter().map(|(_, s)| *s).collect(),
            })
            .collect(),
        popularity: (0..items as u32)
            .map(|i| generators.popular.count(i) as u32)
            .collect(),
        ranker: Some(match &model.ranker {
            Ranker::Logistic(linear) => LinearModel {
                features: model.features.clone(),
                weights: linear.weights.to_vec(),
                means: linear.means.to_vec(),
                stds: linear.stds.to_vec(),
                bias: linear.bias,
            },
            Ranker::Gbdt(_) => LinearModel {
                features: model.features.clone(),
                ..LinearModel::default()
            },
        }),
        params_json: serde_json::to_string(&model.params).unwrap_or_default(),
        ranker_inputs: ranker_inputs.to_vec(),
        ranker_kind: model.ranker.kind().name().to_owned(),
        trees_json: match &model.ranker {
            Ranker::Gbdt(trees) => trees.to_json().to_owned(),
            Ranker::Logistic(_) => String::new(),
        },
    };
    Ok(store.save_model(record(
        RANKER_KIND,
        payload.params_json.clone(),
        provenance,
        payload.encode_to_vec(),
    ))?)
}

/// The ranker of a stored pipeline and its input names, whatever its kind.
pub fn decode_ranker(version: &str, payload: &TwoStageModel) -> Result<(Ranker, Vec<String>)> {
    let linear = payload
        .ranker
        .as_ref()
        .ok_or_else(|| TrainError::bad_model(version, "the ranker is missing"))?;
    let ranker = match payload.ranker_kind.as_str() {
        "" | "logistic" => Ranker::Logistic(LogisticRegression {
            weights: Array1::from(linear.weights.clone()),
            bias: linear.bias,
            means: Array1::from(linear.means.clone()),
            stds: Array1::from(linear.stds.clone()),
        }),
        "gbdt" => Ranker::Gbdt(
            BoostedTrees::from_json(&payload.trees_json)
                .map_err(|e| TrainError::bad_model(version, format!("trees: {e}")))?,
        ),
        other => {
            return Err(TrainError::bad_model(
                version,
                format!("unknown ranker kind `{other}`"),
            ))
        }
    };
    Ok((ranker, linear.features.clone()))
}

fn record(
    kind: &str,
    hyperparameters_json: String,
    p: Provenance,
    payload: Vec<u8>,
) -> ModelRecord {
    ModelRecord {
        kind: kind.to_owned(),
        training_snapshot_id: p.training_snapshot_id,
        store_version: p.store_version,
        feature_refs: p.feature_refs,
        hyperparameters_json,
        metrics: p.metrics,
        code_version: code_version(),
        payload,
        ..ModelRecord::default()
    }
}

/// The ranker inputs a stored ranker was trained with, compiled against
/// the registry as it is now (a ranker is served with its own inputs only).
pub fn ranker_inputs(store: &FeatureStore, record: &ModelRecord) -> Result<RankerInputs> {
    let payload = TwoStageModel::decode(record.payload.as_slice())
        .map_err(|e| TrainError::bad_model(&record.version, e.to_string()))?;
    if payload.ranker_inputs.is_empty() {
        return Err(TrainError::bad_model(
            &record.version,
            "records no ranker features (trained before they were declared); train again",
        ));
    }
    RankerInputs::compile(&store.registry(), &payload.ranker_inputs)
}

/// The input names of stored ranker `version` (generator inputs, then the
/// declared ones) and its declared inputs compiled: what reading its served
/// log needs, without loading its embeddings.
pub fn ranker_signature(
    store: &FeatureStore,
    version: &str,
) -> Result<(Vec<String>, RankerInputs)> {
    let record = store.load_model(version)?;
    let payload = TwoStageModel::decode(record.payload.as_slice())
        .map_err(|e| TrainError::bad_model(version, e.to_string()))?;
    let names = payload
        .ranker
        .as_ref()
        .map(|r| r.features.clone())
        .ok_or_else(|| TrainError::bad_model(version, "the ranker is missing"))?;
    Ok((names, ranker_inputs(store, &record)?))
}

/// The ranker features the `[recommender]` declaration names now.
pub fn declared_inputs(store: &FeatureStore) -> Result<RankerInputs> {
    let registry = store.registry();
    let declared = registry.recommender().ok_or(TrainError::NoDeclaration)?;
    RankerInputs::compile(&registry, &declared.ranker_features)
}

/// The newest stored model of `kind`.
pub fn latest(store: &FeatureStore, kind: &str) -> Result<ModelRecord> {
    store
        .models()?
        .into_iter()
        .filter(|m| m.kind == kind)
        .max_by_key(|m| {
            m.version
                .rsplit_once('-')
                .and_then(|(_, n)| n.parse::<u64>().ok())
        })
        .ok_or_else(|| TrainError::NoModel {
            kind: kind.to_owned(),
        })
}

/// The embeddings version ranker `record` reads (none if it is not a
/// ranker that decodes).
pub fn embeddings_of(record: &ModelRecord) -> Option<String> {
    (record.kind == RANKER_KIND)
        .then(|| TwoStageModel::decode(record.payload.as_slice()).ok())
        .flatten()
        .map(|payload| payload.embeddings_version)
}

/// Loads the ALS factors of `version`, checking they index `dataset`'s ids.
pub fn load_embeddings(store: &FeatureStore, version: &str, dataset: &Dataset) -> Result<Als> {
    let record = store.load_model(version)?;
    if record.kind != EMBEDDINGS_KIND {
        return Err(TrainError::bad_model(version, "is not an embeddings model"));
    }
    let payload = Embeddings::decode(record.payload.as_slice())
        .map_err(|e| TrainError::bad_model(version, e.to_string()))?;
    let same = |m: &Option<Matrix>, ids: &[String]| m.as_ref().is_some_and(|m| m.row_ids == ids);
    if !same(&payload.users, &dataset.users) || !same(&payload.items, &dataset.items) {
        return Err(TrainError::bad_model(
            version,
            "its user or item ids differ from the interactions it is loaded with",
        ));
    }
    Ok(Als {
        users: array(payload.users.as_ref(), version)?,
        items: array(payload.items.as_ref(), version)?,
    })
}
