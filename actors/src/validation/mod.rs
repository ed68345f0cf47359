//! Validation monitors: the drift check over windows of every monitored
//! view, the training/serving skew check of the serving ranker's context, alerts in the store, and the promotion gate (an open blocking
//! alert stops promotion until acknowledged).

pub mod alerts;
pub mod drift;
pub mod monitor;
pub mod reports;
pub mod reservoir;
pub mod skew;

pub use alerts::Alert;
pub use drift::{DriftConfig, DriftRun};
pub use monitor::Validation;
