//! `reprise-api`: the HTTP face of Reprise (actix-web).
//!
//! Rules of this crate: handlers are thin (parse, call the store or an actor,
//! render); request bodies are bounded; every error becomes an HTTP response
//! in `error.rs` and nowhere else.

pub mod body;
pub mod error;
pub mod metrics;
pub mod routes;
pub mod state;
pub mod streaming;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::{web, App, HttpServer};
use reprise_actors::StoreWorkers;
use reprise_store::FeatureStore;

pub use error::ApiError;
pub use metrics::Metrics;
pub use state::AppState;

/// Server settings (the CLI fills them from flags and `REPRISE_*`).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// HTTP worker threads (0 = one per core).
    pub http_workers: usize,
    pub max_body_bytes: usize,
    /// Threads of the store worker pool and requests it may queue.
    pub store_workers: usize,
    pub store_queue: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http_workers: 0,
            max_body_bytes: 64 << 20,
            store_workers: 2,
            store_queue: 256,
        }
    }
}

/// Serves the API until the process is told to stop. Must run inside an
/// actix system.
pub async fn serve(store: Arc<FeatureStore>, config: ServerConfig) -> std::io::Result<()> {
    let workers = StoreWorkers::start(Arc::clone(&store), config.store_workers, config.store_queue);
    let state = web::Data::new(AppState {
        store,
        workers,
        metrics: Metrics::new(),
        max_body_bytes: config.max_body_bytes,
    });
    let mut server = HttpServer::new(move || {
        let metrics = Arc::clone(&state.metrics);
        App::new()
            .app_data(state.clone())
            .wrap_fn(move |req, srv| {
                let start = Instant::now();
                let method = req.method().to_string();
                let route = req
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_owned());
                let metrics = Arc::clone(&metrics);
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    let status = res.status().as_u16().to_string();
                    metrics
                        .http_requests
                        .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
                        .inc();
                    metrics
                        .http_latency
                        .with_label_values(&[route.as_str(), method.as_str()])
                        .observe(start.elapsed().as_secs_f64());
                    Ok(res)
                }
            })
            .configure(routes::configure)
            .default_service(web::to(routes::ops::no_route))
    });
    if config.http_workers > 0 {
        server = server.workers(config.http_workers);
    }
    tracing::info!(listen = %config.listen, "serving");
    server.bind(config.listen)?.run().await
}
