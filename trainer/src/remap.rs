//! A stored ranker re-indexed onto other interactions than the ones it was
//! trained on, so two models can be scored on the same held-out data: the
//! serving model on a newer candidate's split. Items and users are matched
//! by id; an item the model never saw gets zero factors, no neighbours and
//! no popularity (it cannot be retrieved, as online); a user it never saw is
//! folded in from their training interactions, as online.

use std::collections::HashMap;

use ndarray::Array2;
use prost::Message;
use reprise_models::als::{fold_in, Als};
use reprise_models::baselines::user_histories;
use reprise_models::dataset::{Dataset, Interaction};
use reprise_models::pipeline::{Generators, PipelineParams, TwoStage};
use reprise_store::proto::{Embeddings, Matrix, ModelRecord, TwoStageModel};
use reprise_store::FeatureStore;

use crate::error::{Result, TrainError};
use crate::model_io::RANKER_KIND;

/// The rows of `matrix` for `ids` (zeros for ids it lacks), and which ids
/// were found.
fn rows_for(matrix: &Matrix, ids: &[String]) -> (Array2<f32>, Vec<bool>) {
    let cols = matrix.cols as usize;
    let index: HashMap<&str, usize> = matrix
        .row_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut out = Array2::<f32>::zeros((ids.len(), cols));
    let mut found = vec![false; ids.len()];
    for (row, id) in ids.iter().enumerate() {
        if let Some(&i) = index.get(id.as_str()) {
            let values = &matrix.values[i * cols..(i + 1) * cols];
            out.row_mut(row)
                .iter_mut()
                .zip(values)
                .for_each(|(o, v)| *o = *v);
            found[row] = true;
        }
    }
    (out, found)
}

/// Loads ranker `record` indexed like `dataset`; `train` (indexed like
/// `dataset`) gives histories and the interactions unknown users are folded
/// in from.
pub fn load_ranker_onto(
    store: &FeatureStore,
    record: &ModelRecord,
    dataset: &Dataset,
    train: &[Interaction],
) -> Result<TwoStage> {
    let version = record.version.as_str();
    if record.kind != RANKER_KIND {
        return Err(TrainError::bad_model(version, "is not a ranker model"));
    }
    let payload = TwoStageModel::decode(record.payload.as_slice())
        .map_err(|e| TrainError::bad_model(version, e.to_string()))?;
    let params: PipelineParams = serde_json::from_str(&payload.params_json)
        .map_err(|e| TrainError::bad_model(version, format!("parameters: {e}")))?;
    let (ranker, features) = crate::model_io::decode_ranker(version, &payload)?;
    let embeddings = store.load_model(&payload.embeddings_version)?;
    let factors = Embeddings::decode(embeddings.payload.as_slice())
        .map_err(|e| TrainError::bad_model(&payload.embeddings_version, e.to_string()))?;
    let missing =
        || TrainError::bad_model(&payload.embeddings_version, "a factor matrix is missing");
    let (items, _) = rows_for(factors.items.as_ref().ok_or_else(missing)?, &dataset.items);
    let (mut users, known) = rows_for(factors.users.as_ref().ok_or_else(missing)?, &dataset.users);
    let histories = user_histories(train);
    for (user, _) in known.iter().enumerate().filter(|(_, k)| !**k) {
        if let Some(played) = histories.get(&(user as u32)) {
            users
                .row_mut(user)
                .assign(&fold_in(&items, played, &params.als));
        }
    }

    // Old item index → new item index.
    let new_index: HashMap<&str, u32> = dataset
        .items
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u32))
        .collect();
    let moved: Vec<Option<u32>> = payload
        .items
        .iter()
        .map(|id| new_index.get(id.as_str()).copied())
        .collect();
    let mut neighbours = vec![Vec::new(); dataset.items.len()];
    for (old, lists) in payload.neighbours.into_iter().enumerate() {
        let Some(Some(new)) = moved.get(old) else {
            continue;
        };
        neighbours[*new as usize] = lists
            .items
            .into_iter()
            .zip(lists.similarities)
            .filter_map(|(n, s)| moved.get(n as usize).copied().flatten().map(|n| (n, s)))
            .collect();
    }
    let popularity = payload
        .popularity
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .filter_map(|(old, c)| moved[old].map(|new| (new, *c as usize)))
        .collect();
    Ok(TwoStage {
        generators: Generators::from_parts(Als { users, items }, neighbours, popularity, train),
        ranker,
        params,
        features,
    })
}
