//! `reprise-validation`: comparing a reference distribution (training data)
//! with a current one (serving data, or the next window).
//!
//! Rules of this crate: pure computation, no storage and no HTTP; every
//! distance is defined exactly as its reference implementation (scipy's
//! `ks_2samp` and `wasserstein_distance`, numpy's `histogram` with
//! `sturges` edges), and tests hold it to 1e-9 of them.

pub mod columns;
pub mod distances;
pub mod histogram;
pub mod schema;
pub mod stats;

pub use columns::{compare_csv, ColumnDistances, CsvError, DriftReport};
pub use distances::{categorical, numeric, CategoricalDistances, NumericDistances};
