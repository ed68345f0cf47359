//! The models ready to serve: each loaded ranker with the ANN index over its
//! item embeddings (read from the store's embedding view), and which version
//! serves by default. Loading builds everything off to the side; a swap
//! replaces one `Arc`, so in-flight requests finish on the model they
//! started with and none waits.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use reprise_store::{FeatureStore, Value};
use reprise_trainer::model_io::{self, RANKER_KIND};
use reprise_trainer::movielens::{ITEM_EMBEDDING_VIEW, USER_EMBEDDING_VIEW};

/// Where items' genres and release years are read.
const ITEM_METADATA_VIEW: &str = "ml_item";
use reprise_trainer::serving::ServingModel;

use super::ann::AnnIndex;
use crate::error::ActorError;

/// A ranker ready to serve.
pub struct LoadedModel {
    pub model: ServingModel,
    pub index: AnnIndex,
    /// `ml_user_embedding@N:vector`: where users' vectors are read online.
    pub user_vector_ref: String,
    /// Each item's genres (from the store's item metadata), by item index.
    pub item_genres: Vec<Vec<String>>,
    /// Items of each genre, newest release first (then most popular).
    pub by_genre: HashMap<String, Vec<u32>>,
    /// Item-level context values by item index, each tagged with the write
    /// versions of the views it was read from (see `ranking.rs`).
    pub item_context: RwLock<Vec<Option<Arc<ItemContext>>>>,
}

/// An item's context values as read online, and the write versions of
/// their views at the time: valid while those versions are unchanged.
pub struct ItemContext {
    pub versions: Vec<u64>,
    pub values: Vec<Option<Value>>,
}

/// Each item's genres, and the items of each genre (newest first).
type ItemMetadata = (Vec<Vec<String>>, HashMap<String, Vec<u32>>);

/// Item metadata for the metadata candidates: genres and release year of
/// every item of `model`, from the `ml_item` view (latest row per item).
fn item_metadata(store: &FeatureStore, model: &ServingModel) -> Result<ItemMetadata, ActorError> {
    let mut genres = vec![Vec::new(); model.item_count()];
    let mut years = vec![0i64; model.item_count()];
    let rows = match store.view_history(ITEM_METADATA_VIEW, store.version()) {
        Ok(rows) => rows,
        Err(reprise_store::StoreError::UnknownView { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let registry = store.registry();
    let view = registry.view(ITEM_METADATA_VIEW);
    let genre_slot = view.and_then(|v| v.feature_index("genres"));
    let year_slot = view.and_then(|v| v.feature_index("year"));
    for row in rows {
        let Some(i) = row.keys.first().and_then(|id| model.item_index(id)) else {
            continue;
        };
        if let Some(Some(Value::StringList(g))) = genre_slot.map(|s| &row.values[s]) {
            genres[i as usize] = g.clone();
        }
        if let Some(Some(Value::Int64(y))) = year_slot.map(|s| &row.values[s]) {
            years[i as usize] = *y;
        }
    }
    let mut by_genre: HashMap<String, Vec<u32>> = HashMap::new();
    for (i, list) in genres.iter().enumerate() {
        for g in list {
            by_genre.entry(g.clone()).or_default().push(i as u32);
        }
    }
    for items in by_genre.values_mut() {
        items.sort_by(|a, b| {
            years[*b as usize]
                .cmp(&years[*a as usize])
                .then(model.popularity(*b).cmp(&model.popularity(*a)))
                .then(a.cmp(b))
        });
    }
    Ok((genres, by_genre))
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
        let item_view = embedding_view(&record.feature_refs, ITEM_EMBEDDING_VIEW);
        let user_view = embedding_view(&record.feature_refs, USER_EMBEDDING_VIEW);
        let (Some(item_view), Some(user_view)) = (item_view, user_view) else {
            return Err(ActorError::invalid(
                "model",
                format!("{version} names no embedding views"),
            ));
        };
        // The latest stored vector of every item, in the model's item order.
        let mut vectors = model.item_factors.clone();
        let mut found = 0usize;
        for row in store.view_history(&item_view, store.version())? {
            let (Some(id), Some(Some(Value::FloatVector(v)))) =
                (row.keys.first(), row.values.first())
            else {
                continue;
            };
            if let Some(i) = model.item_index(id) {
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
