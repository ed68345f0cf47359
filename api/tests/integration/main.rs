//! In-process tests of the HTTP layer: traces, OpenAPI, metrics.

mod auth;
mod common;
mod metrics;
mod models;
mod openapi;
