//! Integration tests of `reprise-store`, in one binary to save link time.

mod aggregations;
mod common;
mod counters;
mod engine_conformance;
mod export;
mod group_commit;
mod ingest;
mod migrations;
mod model_registry;
mod online;
mod online_store;
mod pit_property;
mod replication;
mod retention;
mod retire;
mod snapshot_merge;
mod snapshot_parquet_input;
mod snapshot_text;
mod snapshots;
mod time_index;
mod transforms;
mod typed_push;
