//! `reprise-loadtest`: drives a running Reprise server over HTTP with named
//! scenarios, at fixed concurrency (closed model) or a fixed rate (open
//! model: latency counts from each request's *intended* start, so
//! coordinated omission does not hide queueing), and reports throughput and
//! latency percentiles from an HdrHistogram.

pub mod report;
pub mod runner;
pub mod scenario;

pub use report::{Report, ScenarioReport};
pub use runner::{run, LoadConfig};
pub use scenario::Scenario;
