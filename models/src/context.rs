//! Context features: what the ranker knows about a (user, item) pair beyond
//! the candidate generators' scores — user, item and user×item features read
//! point-in-time from the feature store, and the request's own context
//! (device, hour) — asked for through [`ContextSource`], so this crate stays
//! free of storage.
//!
//! Request context in training: a candidate row is shown to the ranker "in
//! an occasion", one of the user's logged plays whose context (device,
//! hour, …) the row takes. A candidate the user played in the label period
//! is seen in the occasion of that play; any other candidate in an occasion
//! drawn (deterministically) from the same user's label-period plays. The
//! ranker so learns which items go with which contexts, against the
//! contexts the user is actually in; serving gives every candidate the
//! request's context.

use std::collections::HashMap;

use crate::dataset::Interaction;

/// One candidate whose context is wanted, as of `as_of` (Unix seconds):
/// every stored value returned must have been known at that time. Request
/// context is that of `occasion`, a logged interaction of the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContextRequest {
    pub user: u32,
    pub item: u32,
    pub as_of: i64,
    pub occasion: Option<Occasion>,
}

/// A logged interaction whose request context a training row takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Occasion {
    pub item: u32,
    pub timestamp: i64,
}

pub type ContextError = Box<dyn std::error::Error + Send + Sync>;

/// Where context features come from (a point-in-time snapshot when
/// training, online reads when serving).
pub trait ContextSource {
    /// Names of the values [`ContextSource::fetch`] returns, in order.
    fn names(&self) -> Vec<String>;

    /// One vector of `names().len()` values per request, in request order.
    fn fetch(&self, requests: &[ContextRequest]) -> Result<Vec<Vec<f64>>, ContextError>;

    /// Whether the values depend on the requests' occasions (request
    /// context is among them).
    fn uses_occasions(&self) -> bool {
        false
    }
}

/// No context: the ranker sees the candidate generators' features only.
pub struct NoContext;

impl ContextSource for NoContext {
    fn names(&self) -> Vec<String> {
        Vec::new()
    }

    fn fetch(&self, requests: &[ContextRequest]) -> Result<Vec<Vec<f64>>, ContextError> {
        Ok(vec![Vec::new(); requests.len()])
    }
}

/// How candidates get their occasions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A played candidate: its play; any other: one of the user's plays.
    PerCandidate,
    /// Every candidate of a user: the user's first play (the next request).
    NextPlay,
}

/// The users' label-period plays, from which occasions are drawn.
#[derive(Debug, Clone)]
pub struct Occasions {
    plays: HashMap<u32, Vec<Occasion>>,
    mode: Mode,
}

impl Occasions {
    /// No occasions (request context is then null).
    pub fn none() -> Self {
        Occasions {
            plays: HashMap::new(),
            mode: Mode::NextPlay,
        }
    }

    fn plays(labels: &[Interaction]) -> HashMap<u32, Vec<Occasion>> {
        let mut plays: HashMap<u32, Vec<Occasion>> = HashMap::new();
        for i in labels {
            plays.entry(i.user).or_default().push(Occasion {
                item: i.item,
                timestamp: i.timestamp,
            });
        }
        for list in plays.values_mut() {
            list.sort_by_key(|o| (o.timestamp, o.item));
        }
        plays
    }

    /// Played candidates in the occasion of their (first) play, the others
    /// in one of the user's plays: the training rows' and the AUC's
    /// occasions.
    pub fn per_candidate(labels: &[Interaction]) -> Self {
        Occasions {
            plays: Self::plays(labels),
            mode: Mode::PerCandidate,
        }
    }

    /// Every candidate in the occasion of the user's first play: one
    /// ranking per user, as a request would get.
    pub fn next_play(labels: &[Interaction]) -> Self {
        Occasions {
            plays: Self::plays(labels),
            mode: Mode::NextPlay,
        }
    }

    /// The occasion of candidate `item` for `user`.
    pub fn of(&self, user: u32, item: u32) -> Option<Occasion> {
        let plays = self.plays.get(&user)?;
        match self.mode {
            Mode::NextPlay => plays.first().copied(),
            Mode::PerCandidate => plays.iter().find(|o| o.item == item).copied().or_else(|| {
                // A fixed draw: the same candidate gets the same occasion
                // every run.
                let h =
                    (u64::from(user) << 32 | u64::from(item)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                plays.get((h >> 33) as usize % plays.len()).copied()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn played_candidates_take_their_play_others_one_of_the_users() {
        let labels = [
            Interaction {
                user: 1,
                item: 5,
                timestamp: 20,
                rating: 1.0,
            },
            Interaction {
                user: 1,
                item: 7,
                timestamp: 10,
                rating: 1.0,
            },
        ];
        let per = Occasions::per_candidate(&labels);
        assert_eq!(
            per.of(1, 5),
            Some(Occasion {
                item: 5,
                timestamp: 20
            })
        );
        let other = per.of(1, 9).unwrap();
        assert!(labels
            .iter()
            .any(|l| l.item == other.item && l.timestamp == other.timestamp));
        assert_eq!(per.of(1, 9), per.of(1, 9), "deterministic");
        assert_eq!(per.of(2, 5), None);
        let next = Occasions::next_play(&labels);
        assert_eq!(
            next.of(1, 5),
            Some(Occasion {
                item: 7,
                timestamp: 10
            })
        );
        assert_eq!(Occasions::none().of(1, 5), None);
    }
}
