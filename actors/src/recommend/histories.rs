//! Users' played items, loaded from the declared interactions view's history at start-up
//! and appended to as play events arrive, so a new user moves from the
//! cold-start path to the main path after their first plays.
//!
//! A fleet's leader also publishes them: each changed user's items are
//! written to the `user_history` system view (`publish_rows`), which the
//! outbox carries to the shared store; a replica's histories read that
//! view ([`Histories::published`]), so leader and replicas rank with the
//! same items.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use reprise_store::time::Micros;
use reprise_store::typed_push::TypedRow;
use reprise_store::{FeatureStore, Value};
use serde_json::{Map, Value as Json};

use crate::error::ActorError;
use crate::system_views::USER_HISTORY_VIEW;

/// The items kept per user when nothing else is configured: the newest
/// ones (history candidates and the ranker read the recent past).
pub const DEFAULT_MAX_ITEMS_PER_USER: usize = 500;

pub struct Histories {
    by_user: RwLock<HashMap<String, Vec<String>>>,
    max_items: usize,
    /// A replica's: read from the published view of this store instead.
    published: Option<Arc<FeatureStore>>,
    /// The event time of the last published row: rows of one user are
    /// published in strictly increasing time, so the newest one wins.
    last_published: std::sync::Mutex<Micros>,
}

impl Default for Histories {
    fn default() -> Self {
        Histories::new(DEFAULT_MAX_ITEMS_PER_USER)
    }
}

impl Histories {
    pub fn new(max_items: usize) -> Self {
        Histories {
            by_user: RwLock::default(),
            max_items: max_items.max(1),
            published: None,
            last_published: std::sync::Mutex::new(Micros::MIN),
        }
    }

    /// A replica's histories: each user's items as the leader published
    /// them (`store` is the replica store; its cache holds what it read).
    pub fn published(store: Arc<FeatureStore>) -> Self {
        Histories {
            published: Some(store),
            ..Histories::new(DEFAULT_MAX_ITEMS_PER_USER)
        }
    }

    /// Whether these are a replica's (read from the published view).
    pub fn is_published(&self) -> bool {
        self.published.is_some()
    }

    /// The rows that publish the current items of `users` (a user without
    /// a history gets none), timed after every row published before.
    pub fn publish_rows(&self, users: &[&str], now: Micros) -> Vec<TypedRow<'static>> {
        let map = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        let mut last = self
            .last_published
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        users
            .iter()
            .filter_map(|user| {
                let items = map.get(*user)?;
                *last = now.max(last.saturating_add(1));
                Some(TypedRow {
                    keys: vec![(*user).to_owned()],
                    event_ts: *last,
                    values: vec![("items", Value::StringList(items.clone()))],
                })
            })
            .collect()
    }

    /// Publishes the current items of `users` in one durable write.
    pub fn publish(&self, store: &FeatureStore, users: &[&str]) -> Result<(), ActorError> {
        let rows = self.publish_rows(users, store.clock().now());
        if !rows.is_empty() {
            store.push_typed_counting(vec![(USER_HISTORY_VIEW, rows)], &[])?;
        }
        Ok(())
    }

    /// Publishes every history the published view lacks or holds
    /// differently (at a leader's start: histories were rebuilt from the
    /// interactions and feedback, and plays since the last publication may
    /// not have reached it before a crash). Returns how many were written.
    pub fn publish_differences(&self, store: &FeatureStore) -> Result<usize, ActorError> {
        let users: Vec<String> = self
            .by_user
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let mut written = 0;
        for chunk in users.chunks(1_000) {
            let stored = read_published(store, chunk)?;
            let differing: Vec<&str> = chunk
                .iter()
                .zip(stored)
                .filter(|(user, stored)| self.get(user).is_ok_and(|own| **stored != own))
                .map(|(user, _)| user.as_str())
                .collect();
            self.publish(store, &differing)?;
            written += differing.len();
        }
        Ok(written)
    }

    /// Every user's newest `max_items` items from the interactions view, in
    /// time order (empty when the view holds nothing). The view is read one
    /// row at a time: its keys are (user, item), so one user's rows are
    /// adjacent and only one user's rows are held at once.
    pub fn load(store: &FeatureStore, max_items: usize) -> Result<Self, ActorError> {
        let histories = Histories::new(max_items);
        let Some(view) = store
            .registry()
            .recommender()
            .map(|spec| spec.interactions.label())
        else {
            return Ok(histories);
        };
        let mut user: Option<String> = None;
        let mut plays: Vec<(i64, String)> = Vec::new();
        let flush = |user: &str, plays: &mut Vec<(i64, String)>| {
            plays.sort();
            for (_, item) in plays.drain(..) {
                histories.record(user, &item);
            }
        };
        store.for_each_history_row(&view, store.version(), |row| {
            // (user, item, ...): further keys (a context entity) are not
            // part of the history.
            let mut keys = row.keys.into_iter();
            let (Some(row_user), Some(item)) = (keys.next(), keys.next()) else {
                return Ok(());
            };
            if user.as_deref() != Some(row_user.as_str()) {
                if let Some(done) = user.take() {
                    flush(&done, &mut plays);
                }
                user = Some(row_user);
            }
            plays.push((row.event_ts, item));
            Ok(())
        })?;
        if let Some(done) = user {
            flush(&done, &mut plays);
        }
        Ok(histories)
    }

    /// Appends a play (an item already in the history keeps its place);
    /// beyond the cap the oldest item goes. Returns whether the history
    /// changed.
    pub fn record(&self, user: &str, item: &str) -> bool {
        let mut map = self.by_user.write().unwrap_or_else(|p| p.into_inner());
        let items = map.entry(user.to_owned()).or_default();
        if items.iter().any(|i| i == item) {
            return false;
        }
        if items.len() >= self.max_items {
            items.remove(0);
        }
        items.push(item.to_owned());
        true
    }

    /// Users with a history.
    pub fn users(&self) -> usize {
        self.by_user.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The user's items, oldest first (on a replica, an error when the
    /// shared store does not answer).
    pub fn get(&self, user: &str) -> Result<Vec<String>, ActorError> {
        if let Some(store) = &self.published {
            return Ok(read_published(store, &[user.to_owned()])?
                .pop()
                .unwrap_or_default());
        }
        Ok(self
            .by_user
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .cloned()
            .unwrap_or_default())
    }

    /// The `n` users with the longest histories (the most active).
    pub fn most_active(&self, n: usize) -> Vec<String> {
        let map = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        let mut users: Vec<(&String, usize)> = map.iter().map(|(u, i)| (u, i.len())).collect();
        users.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        users.into_iter().take(n).map(|(u, _)| u.clone()).collect()
    }
}

/// The published items of each of `users` (empty: none published).
fn read_published(store: &FeatureStore, users: &[String]) -> Result<Vec<Vec<String>>, ActorError> {
    let refs = [format!("{USER_HISTORY_VIEW}:items")];
    let entities: Vec<Map<String, Json>> = users
        .iter()
        .map(|user| {
            let mut entity = Map::new();
            entity.insert("user_id".to_owned(), Json::String(user.clone()));
            entity
        })
        .collect();
    Ok(store
        .online_features(&refs, &entities)?
        .rows
        .into_iter()
        .map(|row| match row.values.into_iter().next().flatten() {
            Some(Value::StringList(items)) => items,
            _ => Vec::new(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_keeps_its_newest_items_up_to_the_cap() {
        let histories = Histories::new(3);
        for item in ["a", "b", "c", "b", "d", "e"] {
            histories.record("u", item);
        }
        assert_eq!(histories.get("u").unwrap(), vec!["c", "d", "e"]);
        assert!(!histories.record("u", "d"), "a known item keeps its place");
        assert_eq!(histories.users(), 1);
    }
}
