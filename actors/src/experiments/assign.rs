//! Arms and sticky assignment.

use serde::{Deserialize, Serialize};

use crate::error::ActorError;

pub const BUCKETS: u64 = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    pub name: String,
    pub model_version: String,
    /// Share of users, 0–1; the arms' shares sum to 1.
    pub traffic: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub name: String,
    pub arms: Vec<Arm>,
    pub salt: String,
    pub active: bool,
    /// When it was (last) defined, RFC 3339.
    pub defined_at: String,
}

/// The bucket (0–999) of `user` under `salt`: xxh3 of `salt:user`.
pub fn bucket(salt: &str, user: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(format!("{salt}:{user}").as_bytes()) % BUCKETS
}

impl Experiment {
    /// Checks the arms: at least one, unique names, shares in [0, 1]
    /// summing to 1.
    pub fn validate(&self) -> Result<(), ActorError> {
        if self.arms.is_empty() {
            return Err(ActorError::invalid(
                "arms",
                "an experiment needs at least one arm",
            ));
        }
        for (i, arm) in self.arms.iter().enumerate() {
            if arm.name.is_empty() || self.arms[..i].iter().any(|a| a.name == arm.name) {
                return Err(ActorError::invalid(
                    format!("arms[{i}].name"),
                    "arm names must be non-empty and unique",
                ));
            }
            if !(0.0..=1.0).contains(&arm.traffic) {
                return Err(ActorError::invalid(
                    format!("arms[{i}].traffic"),
                    "a share between 0 and 1",
                ));
            }
        }
        let total: f64 = self.arms.iter().map(|a| a.traffic).sum();
        if (total - 1.0).abs() > 1e-6 {
            return Err(ActorError::invalid(
                "arms",
                format!("traffic shares sum to {total}, not 1"),
            ));
        }
        Ok(())
    }

    /// The arm of `user`: arms own consecutive bucket ranges in order, each
    /// `round(traffic × 1000)` buckets wide (the last takes the rest).
    pub fn arm_of(&self, user: &str) -> &Arm {
        let b = bucket(&self.salt, user);
        let mut upper = 0.0;
        for arm in &self.arms {
            upper += arm.traffic * BUCKETS as f64;
            if (b as f64) < upper.round() {
                return arm;
            }
        }
        self.arms.last().expect("validated: at least one arm")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(shares: &[f64]) -> Experiment {
        Experiment {
            name: "e".into(),
            arms: shares
                .iter()
                .enumerate()
                .map(|(i, t)| Arm {
                    name: format!("arm{i}"),
                    model_version: format!("ranker-{i}"),
                    traffic: *t,
                })
                .collect(),
            salt: "s1".into(),
            active: true,
            defined_at: String::new(),
        }
    }

    #[test]
    fn ten_thousand_users_split_within_two_percent_and_stick() {
        for shares in [vec![0.5, 0.5], vec![0.1, 0.3, 0.6], vec![0.9, 0.1]] {
            let e = experiment(&shares);
            e.validate().unwrap();
            let mut counts = vec![0usize; shares.len()];
            for u in 0..10_000 {
                let user = format!("user-{u}");
                let arm = e.arm_of(&user);
                assert_eq!(e.arm_of(&user), arm, "sticky");
                let i = e.arms.iter().position(|a| a == arm).unwrap();
                counts[i] += 1;
            }
            for (c, share) in counts.iter().zip(&shares) {
                let got = *c as f64 / 10_000.0;
                assert!((got - share).abs() <= 0.02, "{shares:?}: {counts:?}");
            }
        }
        // Another salt reshuffles users.
        let a = experiment(&[0.5, 0.5]);
        let b = Experiment {
            salt: "s2".into(),
            ..a.clone()
        };
        let moved = (0..1000)
            .filter(|u| a.arm_of(&u.to_string()) != b.arm_of(&u.to_string()))
            .count();
        assert!(moved > 300, "{moved}");
    }

    #[test]
    fn invalid_arms_are_refused_naming_the_field() {
        assert!(
            matches!(experiment(&[0.5, 0.4]).validate(), Err(ActorError::Invalid { field, .. }) if field == "arms")
        );
        assert!(
            matches!(experiment(&[1.5, -0.5]).validate(), Err(ActorError::Invalid { field, .. }) if field == "arms[0].traffic")
        );
        let mut dup = experiment(&[0.5, 0.5]);
        dup.arms[1].name = "arm0".into();
        assert!(
            matches!(dup.validate(), Err(ActorError::Invalid { field, .. }) if field == "arms[1].name")
        );
    }
}
