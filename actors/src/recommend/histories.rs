//! Users' played items, loaded from the declared interactions view's history at start-up
//! and appended to as play events arrive, so a new user moves from the
//! cold-start path to the main path after their first plays.

use std::collections::HashMap;
use std::sync::RwLock;

use reprise_store::FeatureStore;

use crate::error::ActorError;

#[derive(Default)]
pub struct Histories {
    by_user: RwLock<HashMap<String, Vec<String>>>,
}

impl Histories {
    /// Every user's items from the ratings view, in time order (empty when
    /// the view holds nothing).
    pub fn load(store: &FeatureStore) -> Result<Self, ActorError> {
        let interactions = store
            .registry()
            .recommender()
            .map(|spec| spec.interactions.label());
        let mut rows = match interactions {
            Some(view) => store.view_history(&view, store.version())?,
            None => Vec::new(),
        };
        rows.sort_by(|a, b| (a.event_ts, &a.keys).cmp(&(b.event_ts, &b.keys)));
        let histories = Histories::default();
        for row in rows {
            if let [user, item] = row.keys.as_slice() {
                histories.record(user, item);
            }
        }
        Ok(histories)
    }

    /// Appends a play (an item already in the history keeps its place).
    /// Returns whether the history changed.
    pub fn record(&self, user: &str, item: &str) -> bool {
        let mut map = self.by_user.write().unwrap_or_else(|p| p.into_inner());
        let items = map.entry(user.to_owned()).or_default();
        if items.iter().any(|i| i == item) {
            return false;
        }
        items.push(item.to_owned());
        true
    }

    /// The user's items, oldest first.
    pub fn get(&self, user: &str) -> Vec<String> {
        self.by_user
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .cloned()
            .unwrap_or_default()
    }

    /// The `n` users with the longest histories (the most active).
    pub fn most_active(&self, n: usize) -> Vec<String> {
        let map = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        let mut users: Vec<(&String, usize)> = map.iter().map(|(u, i)| (u, i.len())).collect();
        users.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        users.into_iter().take(n).map(|(u, _)| u.clone()).collect()
    }
}
