//! The main path of a request, run on a ranker worker thread: candidates
//! (from the cache, or ANN over the user's embedding + item-kNN over their
//! history + popular + recent history), one batched online read of the
//! context features of all candidates, the same feature vectors the ranker
//! was trained on, probabilities; then the served-feature log (written
//! off the worker, see `Recommender::recommend`).

use std::collections::HashSet;
use std::sync::Arc;

use reprise_models::pipeline::Source;
use reprise_store::time::Micros;
use reprise_store::typed_push::TypedRow;
use reprise_store::{FeatureStore, Value};
use serde_json::{Map, Value as Json};

use super::candidate_cache::{CachedCandidates, CandidateCache};
use super::catalog::{ItemContext, LoadedModel};
use super::histories::Histories;
use super::request::{RequestContext, ScoredItem};
use super::stats::ServingStats;
use crate::error::ActorError;
use crate::experiments::tally::{Count, Tally};

/// Everything the serving path shares.
pub struct Shared {
    pub store: Arc<FeatureStore>,
    pub catalog: Arc<super::catalog::Catalog>,
    pub histories: Arc<Histories>,
    pub cache: CandidateCache,
    pub stats: Arc<ServingStats>,
    /// How many of the user's most recent plays are offered again.
    pub history_candidates: usize,
    /// How many new items in the genres of the user's recent plays are
    /// added.
    pub metadata_candidates: usize,
}

/// What the served-feature log records of one response.
#[derive(Debug)]
pub struct ServedLog {
    pub request_id: String,
    pub user_id: String,
    pub context: RequestContext,
    pub model_version: String,
    pub arm: String,
    /// The experiment's tally the served items count in.
    pub tally: Option<Tally>,
    pub items: Vec<ScoredItem>,
    /// Each item's model inputs (none for a cold-start list).
    pub features: Vec<Vec<f64>>,
    /// The request's time (taken before its features were read: what a
    /// replay recomputes them at).
    pub at: Micros,
}

/// One ranked candidate with the inputs the model saw.
pub struct Scored {
    pub item: u32,
    pub probability: f64,
    pub source: &'static str,
    pub features: Vec<f64>,
}

pub(super) fn join_keys(store: &FeatureStore) -> (String, String) {
    reprise_store::recommender::join_keys(&store.registry())
}

pub(super) fn entity(keys: &(String, String), user: &str, item: Option<&str>) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert(keys.0.clone(), Json::String(user.to_owned()));
    if let Some(item) = item {
        m.insert(keys.1.clone(), Json::String(item.to_owned()));
    }
    m
}

impl Shared {
    /// The user's vector from the model's embedding view (the model's own
    /// factors when the store has none for them; folded in from their plays
    /// when the model never saw them).
    fn user_vector(
        &self,
        loaded: &LoadedModel,
        user: &str,
    ) -> Result<Option<Vec<f32>>, ActorError> {
        let online = self.store.online_features(
            std::slice::from_ref(&loaded.user_vector_ref),
            &[entity(&join_keys(&self.store), user, None)],
        )?;
        if let Some(Some(Value::FloatVector(v))) =
            online.rows.first().and_then(|r| r.values.first())
        {
            return Ok(Some(v.clone()));
        }
        if let Some(v) = loaded.model.user_vector(user) {
            return Ok(Some(v.to_vec()));
        }
        // A user the model never saw, with plays since: fold them in (item
        // factors fixed), so the ANN path serves them without a retrain.
        let played: Vec<u32> = self
            .histories
            .get(user)?
            .iter()
            .filter_map(|i| loaded.model.item_index(i))
            .collect();
        if played.is_empty() {
            return Ok(None);
        }
        let folded = reprise_models::als::fold_in(
            &loaded.model.item_factors,
            &played,
            &loaded.model.params.als,
        );
        Ok(Some(folded.to_vec()))
    }

    /// Whether `user` has neither history nor an embedding.
    pub fn is_cold(&self, loaded: &LoadedModel, user: &str) -> Result<bool, ActorError> {
        Ok(self.histories.get(user)?.is_empty() && self.user_vector(loaded, user)?.is_none())
    }

    /// The user's candidates for `loaded`, from the cache or computed.
    pub fn candidates(
        &self,
        loaded: &LoadedModel,
        user: &str,
    ) -> Result<Arc<CachedCandidates>, ActorError> {
        let model = &loaded.model;
        let _span =
            tracing::info_span!("recommend.candidates", cached = tracing::field::Empty).entered();
        let history_of = || -> Result<Vec<u32>, ActorError> {
            Ok(self
                .histories
                .get(user)?
                .iter()
                .filter_map(|i| model.item_index(i))
                .collect())
        };
        // A replica hears of no plays: its entry is used while the user's
        // published history is the one it was built from. (The leader
        // drops an entry when the user plays.)
        let mut read_history = None;
        if let Some(c) = self.cache.get(user, &model.version) {
            if !self.histories.is_published() {
                tracing::Span::current().record("cached", true);
                return Ok(c);
            }
            let current = history_of()?;
            if current == c.history {
                tracing::Span::current().record("cached", true);
                return Ok(c);
            }
            read_history = Some(current);
        }
        let history: Vec<u32> = match read_history {
            Some(history) => history,
            None => history_of()?,
        };
        let exclude: HashSet<u32> = history.iter().copied().collect();
        let user_vector = self.user_vector(loaded, user)?;
        let als_top = match &user_vector {
            Some(v) => {
                let _ann = tracing::info_span!("recommend.ann").entered();
                loaded
                    .index
                    .search(v, model.params.candidates + exclude.len())?
            }
            None => Vec::new(),
        };
        let lists = model.candidate_lists(als_top, &history, &exclude);
        let recent: Vec<u32> = history
            .iter()
            .rev()
            .take(self.history_candidates)
            .copied()
            .collect();
        let mut items = lists.items();
        let metadata = self.metadata_candidates(loaded, &recent, &exclude, &items);
        items.extend(recent.iter().copied());
        items.extend(metadata.iter().copied());
        items.sort_unstable();
        items.dedup();
        let candidates = Arc::new(CachedCandidates {
            model_version: model.version.clone(),
            lists,
            items,
            user_vector,
            history,
            recent,
            metadata,
        });
        self.cache.put(user, Arc::clone(&candidates));
        Ok(candidates)
    }

    /// Up to `metadata_candidates` items from the genres of the user's
    /// recent plays (newest releases first, round robin over the genres),
    /// none played or already a candidate.
    fn metadata_candidates(
        &self,
        loaded: &LoadedModel,
        recent: &[u32],
        exclude: &HashSet<u32>,
        already: &[u32],
    ) -> Vec<u32> {
        let mut genres: Vec<&String> = Vec::new();
        for item in recent {
            for g in &loaded.item_genres[*item as usize] {
                if !genres.contains(&g) {
                    genres.push(g);
                }
            }
        }
        let lists: Vec<&Vec<u32>> = genres
            .iter()
            .filter_map(|g| loaded.by_genre.get(*g))
            .collect();
        let mut out: Vec<u32> = Vec::new();
        let mut cursors = vec![0usize; lists.len()];
        while out.len() < self.metadata_candidates {
            let mut progressed = false;
            for (list, cursor) in lists.iter().zip(cursors.iter_mut()) {
                while let Some(item) = list.get(*cursor) {
                    *cursor += 1;
                    if !exclude.contains(item) && !already.contains(item) && !out.contains(item) {
                        out.push(*item);
                        progressed = true;
                        break;
                    }
                }
                if out.len() >= self.metadata_candidates {
                    break;
                }
            }
            if !progressed {
                break;
            }
        }
        out
    }

    /// Scores `items` for `user` in `context`: generator features from
    /// `candidates`, stored features from one online read, the request's
    /// context, then the ranker.
    pub fn score(
        &self,
        loaded: &LoadedModel,
        user: &str,
        context: &RequestContext,
        candidates: &CachedCandidates,
        items: &[u32],
    ) -> Result<Vec<Scored>, ActorError> {
        let model = &loaded.model;
        let features_span =
            tracing::info_span!("recommend.features", items = items.len()).entered();
        let request_context = loaded.inputs.context_values(|name| context.get(name));
        // User-level refs are read once per request; item-level ones per
        // candidate, through a per-model cache that holds each item's values
        // until a view they come from is written again.
        let registry = self.store.registry();
        let keys = join_keys(&self.store);
        let refs = &loaded.inputs.refs;
        let views: Vec<_> = refs
            .iter()
            .map(|r| {
                r.split_once(':')
                    .and_then(|(view, _)| registry.view(view))
                    .cloned()
            })
            .collect();
        let per_user: Vec<bool> = views
            .iter()
            .map(|v| v.as_ref().is_some_and(|v| v.join_keys == [keys.0.as_str()]))
            .collect();
        let pick = |user_level: bool| -> Vec<String> {
            refs.iter()
                .zip(&per_user)
                .filter(|(_, u)| **u == user_level)
                .map(|(r, _)| r.to_string())
                .collect()
        };
        let mut item_views: Vec<&Arc<reprise_store::registry::FeatureView>> = views
            .iter()
            .zip(&per_user)
            .filter(|(_, u)| !**u)
            .filter_map(|(v, _)| v.as_ref())
            .collect();
        item_views.sort_by_key(|v| v.id);
        item_views.dedup_by_key(|v| v.id);
        // Cached per item only when every value depends on the item alone
        // (keyed by the item, unmoved by time): a user×item value must never
        // be shared across users.
        let cacheable = item_views
            .iter()
            .all(|v| v.time_invariant() && v.join_keys == [keys.1.as_str()]);
        // Versions first: a write racing the read below makes the entry
        // stale at once rather than wrongly fresh.
        let versions: Vec<u64> = item_views
            .iter()
            .map(|v| self.store.view_write_version(v.id))
            .collect();
        let (user_refs, item_refs) = (pick(true), pick(false));
        let user_values = if user_refs.is_empty() {
            Vec::new()
        } else {
            self.store
                .online_features(&user_refs, &[entity(&keys, user, None)])?
                .rows
                .pop()
                .map(|r| r.values)
                .unwrap_or_default()
        };
        let mut item_values: Vec<Option<Arc<ItemContext>>> = {
            let cache = loaded
                .item_context
                .read()
                .unwrap_or_else(|p| p.into_inner());
            items
                .iter()
                .map(|i| {
                    cache
                        .get(*i as usize)
                        .cloned()
                        .flatten()
                        .filter(|c| cacheable && c.versions == versions)
                })
                .collect()
        };
        let missing: Vec<usize> = (0..items.len())
            .filter(|i| item_values[*i].is_none())
            .collect();
        if !missing.is_empty() {
            let entities: Vec<Map<String, Json>> = missing
                .iter()
                .map(|i| entity(&keys, user, Some(model.item_id(items[*i]))))
                .collect();
            let rows: Vec<Vec<Option<Value>>> = if item_refs.is_empty() {
                vec![Vec::new(); entities.len()]
            } else {
                self.store
                    .online_features(&item_refs, &entities)?
                    .rows
                    .into_iter()
                    .map(|r| r.values)
                    .collect()
            };
            let mut cache = loaded
                .item_context
                .write()
                .unwrap_or_else(|p| p.into_inner());
            for (i, row) in missing.iter().zip(rows) {
                let fresh = Arc::new(ItemContext {
                    versions: versions.clone(),
                    values: row,
                });
                if cacheable {
                    if let Some(slot) = cache.get_mut(items[*i] as usize) {
                        *slot = Some(Arc::clone(&fresh));
                    }
                }
                item_values[*i] = Some(fresh);
            }
        }
        drop(features_span);
        let transform_span = tracing::info_span!("recommend.transform").entered();
        let context_rows: Vec<Vec<f64>> = item_values
            .iter()
            .map(|item| {
                let item = item.as_ref().expect("filled above");
                let (mut u, mut it) = (user_values.iter(), item.values.iter());
                let row: Vec<Option<&Value>> = per_user
                    .iter()
                    .map(|user_level| {
                        if *user_level {
                            u.next().and_then(Option::as_ref)
                        } else {
                            it.next().and_then(Option::as_ref)
                        }
                    })
                    .collect();
                loaded.inputs.vectorize(&row, &request_context)
            })
            .collect();
        let recent: HashSet<u32> = candidates.recent.iter().copied().collect();
        let metadata: HashSet<u32> = candidates.metadata.iter().copied().collect();
        let rows: Vec<Vec<f64>> = items
            .iter()
            .zip(context_rows)
            .map(|(item, context)| {
                let mut features = candidates.lists.features(
                    *item,
                    model.als_score(candidates.user_vector.as_deref(), *item),
                    model.popularity(*item),
                    candidates.history.len(),
                );
                features.extend(context);
                features
            })
            .collect();
        drop(transform_span);
        let probabilities = {
            let _score = tracing::info_span!("recommend.score", rows = rows.len()).entered();
            model.probabilities(&rows.iter().map(Vec::as_slice).collect::<Vec<_>>())
        };
        Ok(items
            .iter()
            .zip(rows)
            .zip(probabilities)
            .map(|((item, features), probability)| {
                let source = if recent.contains(item) {
                    "history"
                } else if metadata.contains(item) {
                    "segment"
                } else {
                    match candidates.lists.source(*item) {
                        Source::Embedding => "ann",
                        Source::Neighbours => "history",
                        Source::Popular => "popular",
                    }
                };
                Scored {
                    item: *item,
                    probability,
                    source,
                    features,
                }
            })
            .collect())
    }

    /// The best `k` of the user's candidates.
    pub fn recommend(
        &self,
        loaded: &LoadedModel,
        user: &str,
        context: &RequestContext,
        k: usize,
    ) -> Result<Vec<Scored>, ActorError> {
        let candidates = self.candidates(loaded, user)?;
        let mut scored = self.score(loaded, user, context, &candidates, &candidates.items)?;
        scored.sort_by(|a, b| {
            b.probability
                .total_cmp(&a.probability)
                .then(a.item.cmp(&b.item))
        });
        scored.truncate(k);
        Ok(scored)
    }

    /// Writes the served-feature log of one response (and the request's
    /// context) through the push path: durable before the reply.
    pub fn log_served(&self, log: &ServedLog) -> Result<(), ActorError> {
        let ServedLog {
            request_id,
            user_id: user,
            context,
            model_version,
            arm,
            tally,
            items,
            features,
            at,
        } = log;
        let tally = tally.as_ref();
        let _span = tracing::info_span!("recommend.log", items = items.len()).entered();
        let text = |s: &str| Value::String(s.to_owned());
        // The hour the ranker saw (given, or the server clock's).
        let context_row = TypedRow {
            keys: vec![request_id.clone()],
            event_ts: *at,
            values: vec![
                ("user_id", text(user)),
                ("device", text(&context.device)),
                ("country", text(&context.country)),
                ("hour", Value::Int64(context.hour)),
            ],
        };
        let registry = self.store.registry();
        let rows: Vec<TypedRow<'_>> = items
            .iter()
            .enumerate()
            .map(|(position, item)| {
                let mut row = TypedRow {
                    keys: vec![request_id.clone(), item.item_id.clone()],
                    event_ts: *at,
                    values: vec![
                        ("user_id", text(user)),
                        ("position", Value::Int64(position as i64)),
                        ("model_version", text(model_version)),
                        ("arm", text(arm)),
                        ("source", text(item.source)),
                        (
                            "features",
                            Value::FloatVector(
                                features.get(position).map_or_else(Vec::new, |f| {
                                    f.iter().map(|&v| v as f32).collect()
                                }),
                            ),
                        ),
                    ],
                };
                // A score that is not a number is logged as absent.
                if item.score.is_finite() {
                    row.values.push(("score", Value::Float64(item.score)));
                }
                row
            })
            .collect();
        let logged = rows.len();
        let mut batches: Vec<(&str, Vec<TypedRow<'_>>)> = Vec::with_capacity(2);
        if registry.view("request_context").is_some() {
            batches.push(("request_context", vec![context_row]));
        }
        let mut counters = Vec::new();
        if logged > 0 && registry.view("served_item").is_some() {
            batches.push(("served_item", rows));
            // The experiment's impressions count exactly the logged rows.
            if let Some(tally) = tally {
                counters.push((tally.arm(arm, Count::Impressions), logged as i64));
            }
        }
        if !batches.is_empty() {
            // One engine write, one WAL sync, for both.
            self.store.push_typed_counting(batches, &counters)?;
        }
        ServingStats::add(&self.stats.served_items, items.len() as u64);
        Ok(())
    }
}
