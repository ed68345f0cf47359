//! HTTP and CLI tests against the real `reprise` binary on 127.0.0.1.

mod backup;
mod cli;
mod console;
mod declared_catalogue;
mod drift;
mod durability;
mod explain;
mod fleet;
mod fuzz;
mod hardening;
mod http_errors;
mod http_features;
mod loadtest;
mod movielens;
mod otlp;
mod promtool;
mod recommendations;
mod request_context;
mod retraining;
mod sdk;
mod server;
mod validation;
