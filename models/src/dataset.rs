//! Interactions with dense user and item indices, and the per-user
//! chronological split used by every offline evaluation.

use std::collections::HashMap;

/// One interaction (a play; with MovieLens, a rating event).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interaction {
    pub user: u32,
    pub item: u32,
    /// Unix seconds.
    pub timestamp: i64,
    pub rating: f32,
}

/// Interactions with the string ids mapped to dense indices.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub users: Vec<String>,
    pub items: Vec<String>,
    pub interactions: Vec<Interaction>,
    user_index: HashMap<String, u32>,
    item_index: HashMap<String, u32>,
}

impl Dataset {
    pub fn user_index(&self, id: &str) -> Option<u32> {
        self.user_index.get(id).copied()
    }

    pub fn item_index(&self, id: &str) -> Option<u32> {
        self.item_index.get(id).copied()
    }

    /// Adds an interaction, assigning indices to new ids.
    pub fn push(&mut self, user: &str, item: &str, timestamp: i64, rating: f32) {
        let user = index_of(&mut self.user_index, &mut self.users, user);
        let item = index_of(&mut self.item_index, &mut self.items, item);
        self.interactions.push(Interaction {
            user,
            item,
            timestamp,
            rating,
        });
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn item_count(&self) -> usize {
        self.items.len()
    }
}

fn index_of(index: &mut HashMap<String, u32>, ids: &mut Vec<String>, id: &str) -> u32 {
    if let Some(&i) = index.get(id) {
        return i;
    }
    let i = ids.len() as u32;
    ids.push(id.to_owned());
    index.insert(id.to_owned(), i);
    i
}

/// Training and held-out interactions.
#[derive(Debug, Clone, Default)]
pub struct Split {
    pub train: Vec<Interaction>,
    pub test: Vec<Interaction>,
}

/// Per user, the earliest `train_fraction` of their interactions (by time,
/// ties by item index) train, the rest are held out. A user keeps
/// `floor(n × train_fraction)` training interactions, at least one when
/// `n >= 2`, and at least one held out when `n >= 2`.
pub fn chronological_split(interactions: &[Interaction], train_fraction: f64) -> Split {
    let mut by_user: HashMap<u32, Vec<Interaction>> = HashMap::new();
    for i in interactions {
        by_user.entry(i.user).or_default().push(*i);
    }
    let mut users: Vec<u32> = by_user.keys().copied().collect();
    users.sort_unstable();
    let mut split = Split::default();
    for user in users {
        let mut list = by_user.remove(&user).expect("listed");
        list.sort_by_key(|i| (i.timestamp, i.item));
        let n = list.len();
        let train = if n < 2 {
            n
        } else {
            ((n as f64 * train_fraction).floor() as usize).clamp(1, n - 1)
        };
        split.test.extend_from_slice(&list[train..]);
        list.truncate(train);
        split.train.extend(list);
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_users_latest_quarter_is_held_out() {
        let mut ds = Dataset::default();
        for t in [5, 1, 3, 2, 4, 6, 8, 7] {
            ds.push("a", &format!("i{t}"), t, 4.0);
        }
        ds.push("b", "i1", 10, 3.0);
        ds.push("b", "i2", 9, 3.0);
        ds.push("c", "i1", 1, 5.0);
        let split = chronological_split(&ds.interactions, 0.75);
        let a = ds.user_index("a").unwrap();
        let held: Vec<i64> = split
            .test
            .iter()
            .filter(|i| i.user == a)
            .map(|i| i.timestamp)
            .collect();
        assert_eq!(held, [7, 8]);
        let b = ds.user_index("b").unwrap();
        let b_test: Vec<i64> = split
            .test
            .iter()
            .filter(|i| i.user == b)
            .map(|i| i.timestamp)
            .collect();
        assert_eq!(
            b_test,
            [10],
            "two interactions: one trains, one is held out"
        );
        let c = ds.user_index("c").unwrap();
        assert!(
            split.test.iter().all(|i| i.user != c),
            "a single interaction only trains"
        );
        assert_eq!(split.train.len() + split.test.len(), ds.interactions.len());
    }
}
