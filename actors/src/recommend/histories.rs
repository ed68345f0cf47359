//! Users' played items, loaded from the declared interactions view's history at start-up
//! and appended to as play events arrive, so a new user moves from the
//! cold-start path to the main path after their first plays.

use std::collections::HashMap;
use std::sync::RwLock;

use reprise_store::FeatureStore;

use crate::error::ActorError;

/// The items kept per user when nothing else is configured: the newest
/// ones (history candidates and the ranker read the recent past).
pub const DEFAULT_MAX_ITEMS_PER_USER: usize = 500;

pub struct Histories {
    by_user: RwLock<HashMap<String, Vec<String>>>,
    max_items: usize,
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
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_keeps_its_newest_items_up_to_the_cap() {
        let histories = Histories::new(3);
        for item in ["a", "b", "c", "b", "d", "e"] {
            histories.record("u", item);
        }
        assert_eq!(histories.get("u"), vec!["c", "d", "e"]);
        assert!(!histories.record("u", "d"), "a known item keeps its place");
        assert_eq!(histories.users(), 1);
    }
}
