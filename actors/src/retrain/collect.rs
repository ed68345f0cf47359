//! Collection of models nothing needs any more. Every retraining run stores
//! a ranker and the embeddings it reads (a full copy of the factors), and a
//! run killed midway leaves embeddings no ranker names; without collection
//! the registry grows by both on every run, forever.
//!
//! Kept: the newest `keep` rankers; the last `keep` rankers of the
//! promotion history (the depth a rollback can reach: the history is
//! trimmed to them); every arm of a stored experiment; the embeddings and
//! training snapshots those rankers name; the serving embeddings.
//! Everything else of the two kinds is deleted (embeddings no ranker names
//! are a killed run's: collection never runs while a run is going), as are
//! the snapshots training runs made (owner `training`) that no stored model
//! names (a killed run's; a user's snapshots are never touched), with the
//! training snapshots only deleted rankers named, and the versions of the
//! embedding views (`user_factors@N`, `item_factors@N`: every user's and
//! item's vector, once per run) no kept ranker reads are retired (rows
//! deleted, reads refused; the newest version of each stays). Other kinds
//! are left alone. Runs call it when they finish and the server at start, never
//! while a run is going.

use std::collections::BTreeSet;

use reprise_store::proto::ModelRecord;
use reprise_store::{FeatureStore, StoreError};
use reprise_trainer::embeddings_view::{ITEM_FACTORS_VIEW, USER_FACTORS_VIEW};
use reprise_trainer::model_io::{embeddings_of, EMBEDDINGS_KIND, RANKER_KIND};

use crate::error::ActorError;
use crate::experiments;

/// What one collection deleted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Collected {
    pub models: Vec<String>,
    pub snapshots: Vec<String>,
    /// Embedding view versions retired (`user_factors@3`).
    pub views: Vec<String>,
}

fn number(version: &str) -> u64 {
    version
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

/// Deletes what the policy above does not keep.
pub fn collect_models(store: &FeatureStore, keep: usize) -> Result<Collected, ActorError> {
    let keep = keep.max(1);
    let models = store.models()?;
    let mut rankers: Vec<&ModelRecord> = models.iter().filter(|m| m.kind == RANKER_KIND).collect();
    rankers.sort_by_key(|m| number(&m.version));
    let mut kept: BTreeSet<String> = rankers
        .iter()
        .rev()
        .take(keep)
        .map(|m| m.version.clone())
        .collect();
    // At least the previous model too: requests in flight when it was
    // replaced finish on it.
    kept.extend(store.trim_serving_history(RANKER_KIND, keep.max(2))?);
    kept.extend(store.serving_model(RANKER_KIND)?);
    for experiment in experiments::registry::list(store)? {
        kept.extend(experiment.arms.into_iter().map(|a| a.model_version));
    }
    let mut kept_snapshots = BTreeSet::new();
    let mut kept_views = BTreeSet::new();
    let kept_rankers: Vec<&&ModelRecord> = rankers
        .iter()
        .filter(|m| kept.contains(&m.version))
        .collect();
    for ranker in kept_rankers {
        kept_snapshots.insert(ranker.training_snapshot_id.clone());
        kept.extend(embeddings_of(ranker));
        kept_views.extend(
            ranker
                .feature_refs
                .iter()
                .filter_map(|r| r.split_once(':').map(|(view, _)| view.to_owned())),
        );
    }
    kept.extend(store.serving_model(EMBEDDINGS_KIND)?);
    let mut collected = Collected::default();
    for model in &models {
        let collectable = [RANKER_KIND, EMBEDDINGS_KIND].contains(&model.kind.as_str());
        if !collectable || kept.contains(&model.version) {
            continue;
        }
        store.delete_model(&model.version)?;
        collected.models.push(model.version.clone());
        let snapshot = &model.training_snapshot_id;
        if model.kind == RANKER_KIND && !snapshot.is_empty() && !kept_snapshots.contains(snapshot) {
            match store.delete_snapshot(snapshot) {
                Ok(()) => collected.snapshots.push(snapshot.clone()),
                Err(StoreError::UnknownSnapshot(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    // Snapshots training runs made that no stored model names: those a
    // killed run (which never ran its clean-up) left behind.
    let named: BTreeSet<&String> = models
        .iter()
        .filter(|m| !collected.models.contains(&m.version))
        .map(|m| &m.training_snapshot_id)
        .collect();
    for id in store.snapshot_ids()? {
        if named.contains(&id) || collected.snapshots.contains(&id) {
            continue;
        }
        match store.snapshot_meta(&id) {
            // A training run's, or a served-log replay's left by a process
            // that died before deleting it.
            Ok(meta)
                if meta.owner == reprise_store::snapshot::TRAINING_OWNER
                    || meta.owner == crate::recommend::served::REPLAY_OWNER =>
            {
                store.delete_snapshot(&id)?;
                collected.snapshots.push(id);
            }
            Ok(_) | Err(StoreError::UnknownSnapshot(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Each run's embedding views: versions no kept ranker reads (the newest
    // of each name stays: unversioned refs read it).
    let registry = store.registry();
    for view in registry.views().iter().filter(|v| {
        [USER_FACTORS_VIEW, ITEM_FACTORS_VIEW].contains(&v.name.as_str())
            && !registry.is_retired(v.id)
            && registry.view(&v.name).map(|newest| newest.id) != Some(v.id)
            && !kept_views.contains(&v.label())
    }) {
        store.retire_view_version(&view.label())?;
        collected.views.push(view.label());
    }
    if !collected.models.is_empty() || !collected.views.is_empty() {
        tracing::info!(models = ?collected.models, views = ?collected.views, snapshots = collected.snapshots.len(), "models collected");
    }
    Ok(collected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::{Arm, Experiment};
    use prost::Message;
    use reprise_store::proto::TwoStageModel;
    use reprise_store::time::{format_rfc3339, Clock, MICROS_PER_SECOND};
    use reprise_store::SnapshotSpec;
    use serde_json::json;

    struct Registry {
        store: FeatureStore,
        clock: Clock,
        views: std::cell::Cell<u32>,
    }

    impl Registry {
        fn tick(&self) {
            self.clock.set(self.clock.now() + MICROS_PER_SECOND);
        }

        /// The next version of both embedding views, with a row each.
        fn embedding_views(&self) -> u32 {
            let n = self.views.get() + 1;
            self.views.set(n);
            let view = |name: &str, entity: &str| {
                format!(
                    "[[feature_view]]\nname = \"{name}\"\nversion = {n}\nentities = [\"{entity}\"]\nttl = \"0\"\n\n\
                     [[feature_view.feature]]\nname = \"vector\"\ntype = \"float64\"\n"
                )
            };
            let source = format!(
                "{}\n{}",
                view(USER_FACTORS_VIEW, "user"),
                view(ITEM_FACTORS_VIEW, "item")
            );
            self.store
                .register_definitions(&format!("embeddings_v{n}"), &source)
                .unwrap();
            let at = format_rfc3339(self.clock.now());
            for (view, key) in [
                (USER_FACTORS_VIEW, "user_id"),
                (ITEM_FACTORS_VIEW, "item_id"),
            ] {
                let row = json!({key: "x", "event_timestamp": at, "vector": 1.0});
                self.store
                    .push(&format!("{view}@{n}"), &[row], false)
                    .unwrap();
            }
            n
        }

        fn embeddings(&self) -> String {
            self.tick();
            let record = ModelRecord {
                kind: EMBEDDINGS_KIND.into(),
                ..Default::default()
            };
            self.store.save_model(record).unwrap()
        }

        fn snapshot(&self) -> String {
            self.snapshot_owned_by("")
        }

        fn snapshot_owned_by(&self, owner: &str) -> String {
            let spec = SnapshotSpec {
                features: vec!["experiment:salt".into()],
                owner: owner.to_owned(),
                ..Default::default()
            };
            let row =
                json!({"experiment": "x", "event_timestamp": format_rfc3339(self.clock.now())});
            self.store.create_snapshot(&spec, vec![Ok(row)]).unwrap().id
        }

        /// A ranker on new embeddings, with its own training snapshot.
        fn ranker(&self) -> (String, String, String) {
            let embeddings = self.embeddings();
            let views = self.embedding_views();
            let snapshot = self.snapshot();
            self.tick();
            let payload = TwoStageModel {
                embeddings_version: embeddings.clone(),
                ..Default::default()
            };
            let record = ModelRecord {
                kind: RANKER_KIND.into(),
                training_snapshot_id: snapshot.clone(),
                feature_refs: vec![
                    format!("{USER_FACTORS_VIEW}@{views}:vector"),
                    format!("{ITEM_FACTORS_VIEW}@{views}:vector"),
                ],
                payload: payload.encode_to_vec(),
                ..Default::default()
            };
            (self.store.save_model(record).unwrap(), embeddings, snapshot)
        }
    }

    #[test]
    fn collection_keeps_the_newest_the_rollback_depth_and_the_arms() {
        let (store, clock) = crate::test_store::with_system_views(1_000 * MICROS_PER_SECOND);
        store
            .register_definitions(
                "users",
                "[[entity]]\nname = \"user\"\njoin_key = \"user_id\"\n",
            )
            .unwrap();
        let r = Registry {
            store,
            clock,
            views: std::cell::Cell::new(0),
        };
        let mut rankers = Vec::new();
        for i in 1..=8 {
            rankers.push(r.ranker());
            if i == 5 {
                // A run killed after storing its embeddings and views.
                r.embeddings();
                r.embedding_views();
            }
        }
        // Another run killed right after storing its embeddings: its
        // training snapshot is left; a user's snapshot is never collected.
        let killed = r.embeddings();
        let left_behind = r.snapshot_owned_by(reprise_store::snapshot::TRAINING_OWNER);
        let users = r.snapshot();
        for i in [0, 1, 2, 6] {
            r.store.set_serving_model(&rankers[i].0).unwrap();
        }
        crate::experiments::registry::define(
            &r.store,
            &Experiment {
                name: "home".into(),
                arms: vec![Arm {
                    name: "a".into(),
                    model_version: rankers[3].0.clone(),
                    traffic: 1.0,
                }],
                salt: "s".into(),
                active: false,
                defined_at: String::new(),
            },
        )
        .unwrap();

        let collected = collect_models(&r.store, 3).unwrap();
        let deleted = |i: usize| [rankers[i].0.clone(), rankers[i].1.clone()];
        let mut expected: Vec<String> = [deleted(0), deleted(4)].concat();
        expected.push("embeddings-6".into()); // the killed runs'
        expected.push(killed);
        expected.sort();
        let mut got = collected.models.clone();
        got.sort();
        assert_eq!(got, expected);
        assert_eq!(
            collected.snapshots,
            vec![
                rankers[0].2.clone(),
                rankers[4].2.clone(),
                left_behind.clone()
            ]
        );
        let ids = r.store.snapshot_ids().unwrap();
        assert!(!ids.contains(&rankers[0].2) && ids.contains(&rankers[1].2));
        assert!(!ids.contains(&left_behind) && ids.contains(&users));
        // Views 1 and 5 (deleted rankers') and 6 (the killed run's) are
        // retired; the kept rankers' and the newest stay readable.
        let retired: Vec<String> = [1, 5, 6]
            .iter()
            .flat_map(|n| {
                [
                    format!("{USER_FACTORS_VIEW}@{n}"),
                    format!("{ITEM_FACTORS_VIEW}@{n}"),
                ]
            })
            .collect();
        let mut views = collected.views.clone();
        views.sort();
        let mut expected_views = retired.clone();
        expected_views.sort();
        assert_eq!(views, expected_views);
        let read = |view: &str| {
            let entity = serde_json::Map::from_iter([("user_id".to_owned(), json!("x"))]);
            r.store
                .online_features(&[format!("{view}:vector")], &[entity])
        };
        assert!(matches!(
            read("user_factors@5"),
            Err(StoreError::Expired { .. })
        ));
        assert!(read("user_factors@2").is_ok() && read("user_factors@9").is_ok());
        // The rollback depth is the history kept: 2, 3, 7.
        assert_eq!(
            r.store.serving_history(RANKER_KIND).unwrap(),
            vec![
                rankers[1].0.clone(),
                rankers[2].0.clone(),
                rankers[6].0.clone()
            ]
        );
        assert_eq!(
            r.store.rollback_serving_model(RANKER_KIND).unwrap(),
            rankers[2].0
        );
        // Nothing more to collect while nothing changes.
        assert_eq!(collect_models(&r.store, 3).unwrap(), Collected::default());
    }
}
