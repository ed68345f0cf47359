//! Writing a run's ALS factors back to the store as `float_vector` features,
//! under a new version of the embedding views per run (so a model keeps
//! reading the vectors it was trained with while a newer run's are served).

use ndarray::Array2;
use reprise_store::time::{format_rfc3339, MICROS_PER_SECOND};
use reprise_store::FeatureStore;
use serde_json::{json, Value as Json};

use crate::error::{Result, TrainError};

/// The views a run's user and item factors are written to (one version per
/// run), keyed by the declared interactions view's user and item entities.
pub const USER_FACTORS_VIEW: &str = "user_factors";
pub const ITEM_FACTORS_VIEW: &str = "item_factors";

const PUSH_BATCH: usize = 5_000;

/// The view versions a run wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingViews {
    /// `user_factors@N`
    pub users: String,
    /// `item_factors@N`
    pub items: String,
}

/// The definition file of version `version` of both embedding views.
fn definition(version: u32, dim: usize, model: &str, entities: (&str, &str)) -> String {
    let view = |name: &str, entity: &str| {
        format!(
            "[[feature_view]]\nname = \"{name}\"\nversion = {version}\nentities = [\"{entity}\"]\nttl = \"0\"\n\
             description = \"ALS {entity} factors of model {model}.\"\n\n\
             [[feature_view.feature]]\nname = \"vector\"\ntype = \"float_vector\"\ndim = {dim}\n"
        )
    };
    format!(
        "{}\n{}",
        view(USER_FACTORS_VIEW, entities.0),
        view(ITEM_FACTORS_VIEW, entities.1)
    )
}

/// Registers the next version of the embedding views and pushes one row per
/// user and item, with event time `as_of` (Unix seconds: the newest
/// interaction the factors were trained on).
pub fn write(
    store: &FeatureStore,
    model: &str,
    users: (&[String], &Array2<f32>),
    items: (&[String], &Array2<f32>),
    as_of: i64,
) -> Result<EmbeddingViews> {
    let registry = store.registry();
    let spec = registry.recommender().ok_or(TrainError::NoDeclaration)?;
    let entities = (
        spec.interactions.entities[0].clone(),
        spec.interactions.entities[1].clone(),
    );
    let keys = (spec.user_key().to_owned(), spec.item_key().to_owned());
    let next = [USER_FACTORS_VIEW, ITEM_FACTORS_VIEW]
        .iter()
        .filter_map(|v| registry.view(v).map(|v| v.version))
        .max()
        .unwrap_or(0)
        + 1;
    let dim = users.1.ncols();
    store.register_definitions(
        &format!("embeddings_v{next}_{model}"),
        &definition(next, dim, model, (&entities.0, &entities.1)),
    )?;
    let views = EmbeddingViews {
        users: format!("{USER_FACTORS_VIEW}@{next}"),
        items: format!("{ITEM_FACTORS_VIEW}@{next}"),
    };
    let when = format_rfc3339(as_of * MICROS_PER_SECOND);
    for (view, key, (ids, factors)) in [
        (&views.users, keys.0.as_str(), users),
        (&views.items, keys.1.as_str(), items),
    ] {
        let rows: Vec<Json> = ids
            .iter()
            .zip(factors.rows())
            .map(|(id, row)| json!({key: id, "event_timestamp": when, "vector": row.to_vec()}))
            .collect();
        for batch in rows.chunks(PUSH_BATCH) {
            store.push(view, batch, true)?;
        }
    }
    Ok(views)
}
