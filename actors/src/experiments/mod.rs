//! A/B experiments by model version: arms with traffic shares, sticky
//! assignment by a salted hash of the user id into 1000 buckets, and per-arm
//! online metrics from the served-feature log and feedback, with a
//! two-proportion z-test against the first arm.

pub mod assign;
pub mod metrics;
pub mod registry;
pub mod tally;

pub use assign::{bucket, Arm, Experiment};
pub use metrics::{arm_metrics, scan_counts, ArmMetrics};
pub use tally::Tally;
