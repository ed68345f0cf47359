//! The models ready to serve: each loaded ranker with the ANN index over its
//! item embeddings (read from the store's embedding view), and which version
//! serves by default. Loading builds everything off to the side; a swap
//! replaces one `Arc`, so in-flight requests finish on the model they
//! started with and none waits.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use reprise_store::{FeatureStore, Value};
use reprise_trainer::embeddings_view::{ITEM_FACTORS_VIEW, USER_FACTORS_VIEW};
use reprise_trainer::features::RankerInputs;
use reprise_trainer::model_io::{self, RANKER_KIND};

use reprise_trainer::serving::ServingModel;

use super::ann::AnnIndex;
use crate::error::ActorError;

/// A ranker ready to serve.
pub struct LoadedModel {
    pub model: ServingModel,
    pub index: AnnIndex,
    /// `user_factors@N:vector`: where users' vectors are read online.
    pub user_vector_ref: String,
    /// Each item's segments (the declared segment feature), by item index.
    pub item_genres: Vec<Vec<String>>,
    /// Items of each segment, newest catalogue row first (then most
    /// popular).
    pub by_genre: HashMap<String, Vec<u32>>,
    /// Item-level context values by item index, each tagged with the write
    /// versions of the views it was read from (see `ranking.rs`).
    pub item_context: RwLock<Vec<Option<Arc<ItemContext>>>>,
    /// The declared ranker inputs it was trained with (it is served with
    /// these only).
    pub inputs: RankerInputs,
}

/// An item's context values as read online, and the write versions of
/// their views at the time: valid while those versions are unchanged.
pub struct ItemContext {
    pub versions: Vec<u64>,
    pub values: Vec<Option<Value>>,
}

/// Each item's segments, and the items of each segment (newest first).
type ItemMetadata = (Vec<Vec<String>>, HashMap<String, Vec<u32>>);

/// Item metadata for the segment candidates: each item's segments (the
/// declared `[recommender] segment` feature, a string or string_list of the
/// items' view; latest row per item) and the items of each segment, newest
/// catalogue row first (then most popular).
fn item_metadata(store: &FeatureStore, model: &ServingModel) -> Result<ItemMetadata, ActorError> {
    let mut segments = vec![Vec::new(); model.item_count()];
    let mut times = vec![i64::MIN; model.item_count()];
    let registry = store.registry();
    let segment = registry
        .recommender()
        .and_then(|spec| spec.segment.clone())
        .filter(|s| s.view.entities.len() == 1);
    if let Some(segment) = segment {
        // Ordered by item, then time: the last row of an item wins.
        for row in item_rows(store, &segment.view.label(), model)? {
            let Some(i) = model.item_index(&row.item_id) else {
                continue;
            };
            segments[i as usize] = match &row.values[segment.feature] {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::StringList(list)) => list.clone(),
                _ => Vec::new(),
            };
            times[i as usize] = row.event_ts;
        }
    }
    let mut by_segment: HashMap<String, Vec<u32>> = HashMap::new();
    for (i, list) in segments.iter().enumerate() {
        for g in list {
            by_segment.entry(g.clone()).or_default().push(i as u32);
        }
    }
    for items in by_segment.values_mut() {
        items.sort_by(|a, b| {
            times[*b as usize]
                .cmp(&times[*a as usize])
                .then(model.popularity(*b).cmp(&model.popularity(*a)))
                .then(a.cmp(b))
        });
    }
    Ok((segments, by_segment))
}

/// One row of an item-keyed view.
struct ItemRow {
    item_id: String,
    event_ts: reprise_store::time::Micros,
    /// One value per feature of the view, in declaration order.
    values: Vec<Option<Value>>,
}

/// Items read online per request on a replica.
const ITEM_READ_CHUNK: usize = 1_000;

/// The rows of the item-keyed view `label` a model is loaded from, in item
/// order, an item's newest row last: on the leader its history; on a
/// replica (which holds no history) each of the model's items' latest row
/// as the leader published it.
fn item_rows(
    store: &FeatureStore,
    label: &str,
    model: &ServingModel,
) -> Result<Vec<ItemRow>, ActorError> {
    if !store.is_replica() {
        return Ok(store
            .view_history(label, store.version())?
            .into_iter()
            .filter_map(|row| {
                Some(ItemRow {
                    item_id: row.keys.into_iter().next()?,
                    event_ts: row.event_ts,
                    values: row.values,
                })
            })
            .collect());
    }
    let registry = store.registry();
    let view = registry
        .view(label)
        .ok_or_else(|| ActorError::invalid("model", format!("view `{label}` is not defined")))?;
    let Some(join_key) = view.join_keys.first() else {
        return Ok(Vec::new());
    };
    let refs: Vec<String> = view
        .features
        .iter()
        .map(|f| format!("{label}:{}", f.name))
        .collect();
    let ids: Vec<&str> = (0..model.item_count() as u32)
        .map(|i| model.item_id(i))
        .collect();
    let mut rows = Vec::new();
    for chunk in ids.chunks(ITEM_READ_CHUNK) {
        let entities: Vec<serde_json::Map<String, serde_json::Value>> = chunk
            .iter()
            .map(|id| {
                let mut entity = serde_json::Map::new();
                entity.insert(join_key.clone(), serde_json::Value::from(*id));
                entity
            })
            .collect();
        let read = store.online_features(&refs, &entities)?;
        for (id, row) in chunk.iter().zip(read.rows) {
            let Some(event_ts) = row.event_timestamps.iter().flatten().max().copied() else {
                continue;
            };
            rows.push(ItemRow {
                item_id: (*id).to_owned(),
                event_ts,
                values: row.values,
            });
        }
    }
    Ok(rows)
}

/// The embedding view (`name@N`) of `view_name` among a model's refs.
fn embedding_view(refs: &[String], view_name: &str) -> Option<String> {
    refs.iter()
        .filter_map(|r| r.strip_suffix(":vector"))
        .find(|v| v.split('@').next() == Some(view_name))
        .map(str::to_owned)
}

impl LoadedModel {
    /// Loads ranker `version` and builds its ANN index from the item vectors
    /// stored in its embedding view version.
    pub fn load(store: &FeatureStore, version: &str) -> Result<Self, ActorError> {
        let record = store.load_model(version)?;
        let model = ServingModel::load(store, version)?;
        let inputs = model_io::ranker_inputs(store, &record)?;
        let item_view = embedding_view(&record.feature_refs, ITEM_FACTORS_VIEW);
        let user_view = embedding_view(&record.feature_refs, USER_FACTORS_VIEW);
        let (Some(item_view), Some(user_view)) = (item_view, user_view) else {
            return Err(ActorError::invalid(
                "model",
                format!("{version} names no embedding views"),
            ));
        };
        // The latest stored vector of every item, in the model's item order.
        let mut vectors = model.item_factors.clone();
        let mut found = 0usize;
        for row in item_rows(store, &item_view, &model)? {
            let Some(Some(Value::FloatVector(v))) = row.values.first() else {
                continue;
            };
            if let Some(i) = model.item_index(&row.item_id) {
                if v.len() == vectors.ncols() {
                    vectors
                        .row_mut(i as usize)
                        .assign(&ndarray::ArrayView1::from(v.as_slice()));
                    found += 1;
                }
            }
        }
        if found == 0 && model.item_count() > 0 {
            return Err(ActorError::invalid(
                "model",
                format!("{item_view} holds no vectors for {version}'s items"),
            ));
        }
        let index = AnnIndex::build(&vectors)?;
        let (item_genres, by_genre) = item_metadata(store, &model)?;
        tracing::info!(%version, items = index.len(), %item_view, "model loaded for serving");
        Ok(LoadedModel {
            model,
            index,
            user_vector_ref: format!("{user_view}:vector"),
            item_context: RwLock::new(vec![None; item_genres.len()]),
            item_genres,
            by_genre,
            inputs,
        })
    }
}

#[derive(Default)]
pub struct Catalog {
    models: RwLock<HashMap<String, Arc<LoadedModel>>>,
    serving: RwLock<Option<String>>,
}

impl Catalog {
    /// A catalog serving the ranker recorded as serving, else the newest
    /// stored one, if there is one.
    pub fn load_latest(store: &FeatureStore) -> Result<Self, ActorError> {
        let catalog = Catalog::default();
        if let Some(version) = store.serving_model(RANKER_KIND)? {
            catalog.promote(store, &version)?;
            return Ok(catalog);
        }
        match model_io::latest(store, RANKER_KIND) {
            Ok(record) => catalog.promote(store, &record.version)?,
            Err(reprise_trainer::TrainError::NoModel { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(catalog)
    }

    /// Loads `version` (if not loaded) and makes it the default.
    pub fn promote(&self, store: &FeatureStore, version: &str) -> Result<(), ActorError> {
        self.get_or_load(store, version)?;
        *self.serving.write().unwrap_or_else(|p| p.into_inner()) = Some(version.to_owned());
        Ok(())
    }

    /// A loaded model, loading it on first use (so A/B arms can name any
    /// stored version).
    pub fn get_or_load(
        &self,
        store: &FeatureStore,
        version: &str,
    ) -> Result<Arc<LoadedModel>, ActorError> {
        if let Some(m) = self
            .models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(version)
        {
            return Ok(Arc::clone(m));
        }
        let loaded = Arc::new(LoadedModel::load(store, version)?);
        self.models
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(version.to_owned())
            .or_insert_with(|| Arc::clone(&loaded));
        Ok(loaded)
    }

    /// Lets every loaded model but `version` go (a replica keeps only the
    /// one serving).
    pub fn keep_only(&self, version: &str) {
        self.models
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|v, _| v == version);
    }

    /// Model `version` if the catalogue holds it loaded.
    pub fn loaded(&self, version: &str) -> Option<Arc<LoadedModel>> {
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(version)
            .cloned()
    }

    /// The default model.
    pub fn serving(&self) -> Result<Arc<LoadedModel>, ActorError> {
        let version = self
            .serving
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(ActorError::NoServingModel)?;
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&version)
            .cloned()
            .ok_or(ActorError::NoServingModel)
    }

    pub fn serving_version(&self) -> Option<String> {
        self.serving
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
