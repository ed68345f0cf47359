//! One file per resource, each with a `configure` function.

pub mod online;
pub mod ops;
pub mod push;
pub mod snapshots;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    push::configure(cfg);
    online::configure(cfg);
    snapshots::configure(cfg);
    ops::configure(cfg);
}
