//! One file per resource, each with a `configure` function.

pub mod admin;
pub mod alerts;
pub mod catalog;
pub mod events;
pub mod experiments;
pub mod models;
pub mod online;
pub mod ops;
pub mod push;
pub mod recommendations;
pub mod retrain;
pub mod served;
pub mod snapshots;
pub mod users;

use actix_web::web;

/// Every served route, `(method, path)`; the OpenAPI test checks that the
/// document and this table agree and that each entry is really served.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/push"),
    ("post", "/v1/online-features"),
    ("get", "/v1/catalog"),
    ("get", "/v1/whoami"),
    ("post", "/v1/snapshots"),
    ("get", "/v1/snapshots/{id}"),
    ("get", "/v1/snapshots/{id}/rows"),
    ("get", "/v1/models"),
    ("post", "/v1/models/{version}/promote"),
    ("post", "/v1/models/rollback"),
    ("post", "/v1/retrain"),
    ("get", "/v1/retrain/runs"),
    ("get", "/v1/retrain/runs/{id}"),
    ("post", "/v1/recommendations"),
    ("post", "/v1/rank"),
    ("get", "/v1/served/{request_id}"),
    ("get", "/v1/users/{user_id}/plays"),
    ("post", "/v1/events"),
    ("get", "/v1/experiments"),
    ("put", "/v1/experiments/{name}"),
    ("get", "/v1/experiments/{name}"),
    ("get", "/v1/alerts"),
    ("post", "/v1/alerts/{id}/ack"),
    ("post", "/v1/validation/run"),
    ("get", "/v1/validation/reports"),
    ("post", "/v1/admin/backup"),
    ("post", "/v1/admin/compact"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    push::configure(cfg);
    online::configure(cfg);
    catalog::configure(cfg);
    snapshots::configure(cfg);
    models::configure(cfg);
    recommendations::configure(cfg);
    served::configure(cfg);
    users::configure(cfg);
    events::configure(cfg);
    alerts::configure(cfg);
    experiments::configure(cfg);
    retrain::configure(cfg);
    admin::configure(cfg);
    ops::configure(cfg);
}

/// Runs blocking work (store scans, model loads, actor calls that wait) on
/// actix's blocking pool, off the HTTP workers, inside the request's span
/// (so its spans stay in the request's trace). A panic there fails the
/// request with 500 `internal`; the pool lives on.
pub(crate) async fn blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, crate::ApiError>
where
    T: Send + 'static,
    E: Into<crate::ApiError> + Send + 'static,
{
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    match web::block(move || tracing::dispatcher::with_default(&dispatch, || span.in_scope(work)))
        .await
    {
        Ok(result) => result.map_err(Into::into),
        Err(e) => Err(crate::ApiError::Actor(
            reprise_actors::ActorError::Panicked {
                worker: "blocking",
                message: e.to_string(),
            },
        )),
    }
}
