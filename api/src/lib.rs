//! `reprise-api`: the HTTP face of Reprise (actix-web).
//!
//! Rules of this crate: handlers are thin (parse, call the store or an actor,
//! render); request bodies are bounded; every error becomes an HTTP response
//! in `error.rs` and nowhere else; every route is documented in the OpenAPI
//! document (`openapi.rs`), which a test checks against the served routes.

pub mod auth;
pub mod body;
pub mod console;
pub mod error;
pub mod fleet;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod replica;
pub mod replication_metrics;
pub mod routes;
pub mod schema;
pub mod state;
pub mod streaming;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderName;
use actix_web::{web, App, HttpServer};
use reprise_actors::recommend::{Recommender, RecommenderConfig};
use reprise_actors::replication::Publisher;
use reprise_actors::retrain::{RetrainConfig, Retrainer};
use reprise_actors::validation::{DriftConfig, Validation};
use reprise_actors::{ActorError, StoreWorkers};
use reprise_store::FeatureStore;
use tracing::Instrument;

pub use error::ApiError;
pub use metrics::Metrics;
pub use state::AppState;

/// Server settings (the CLI fills them from flags and `REPRISE_*`).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// HTTP worker threads (0 = one per core).
    pub http_workers: usize,
    /// Every request's bounds and the admission limits.
    pub limits: limits::Limits,
    /// Threads of the store worker pool and requests it may queue.
    pub store_workers: usize,
    pub store_queue: usize,
    pub recommender: RecommenderConfig,
    pub drift: DriftConfig,
    pub retrain: RetrainConfig,
    /// The accepted API keys; `None`: no access control (the command line
    /// then listens on loopback only, unless told `--insecure`).
    pub keys: Option<auth::KeyRing>,
    /// Whether `/metrics` is open without a key.
    /// The secret a fleet's replicas sign their served-feature logs with
    /// (`--fleet-secret-file`; `fleet.rs`).
    pub fleet_secret: Option<[u8; 32]>,
    pub metrics_open: bool,
    /// A fleet's leader publishes the online view to this shared online
    /// store (`None`: a single server, which turns the outbox off).
    pub shared_online_store: Option<Arc<dyn reprise_store::online_store::OnlineStore>>,
    /// How often the publisher (leader) or follower (replica) runs.
    pub replication_interval: std::time::Duration,
    /// A leader publishes the whole online view at start even when the
    /// shared store is where it left it (after Redis lost keys but kept
    /// its published version).
    pub republish_online_store: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http_workers: 0,
            limits: limits::Limits::default(),
            store_workers: 2,
            store_queue: 256,
            recommender: RecommenderConfig::default(),
            drift: DriftConfig::default(),
            retrain: RetrainConfig::default(),
            keys: None,
            metrics_open: true,
            fleet_secret: None,
            shared_online_store: None,
            replication_interval: std::time::Duration::from_millis(20),
            republish_online_store: false,
        }
    }
}

/// The shared state of a server over `store` (must run inside an actix
/// system): the store workers, and the recommender with the newest stored
/// ranker loaded.
pub fn state(
    store: Arc<FeatureStore>,
    config: &ServerConfig,
) -> Result<web::Data<AppState>, ActorError> {
    let workers = StoreWorkers::start(Arc::clone(&store), config.store_workers, config.store_queue);
    let recommender = Recommender::start(
        Arc::clone(&store),
        RecommenderConfig {
            // A leader publishes histories for its replicas.
            fleet_leader: config.shared_online_store.is_some(),
            ..config.recommender.clone()
        },
    )?;
    let retrainer = Retrainer::start(
        Arc::clone(&store),
        recommender.clone(),
        config.retrain.clone(),
    )?;
    // Play-rate drops of the served items trigger retraining.
    let on_feedback = retrainer.clone();
    recommender.set_feedback_hook(Arc::new(move |verdicts| {
        on_feedback.observe_feedback(verdicts)
    }));
    // A drift alert triggers a retraining run (debounced; joined if one is
    // running).
    let on_drift = retrainer.clone();
    let hook: reprise_actors::validation::monitor::AlertHook = Arc::new(move |alert| {
        if alert.check == "drift" {
            let trigger = format!("drift_alert {}", alert.id);
            if let Err(e) = on_drift.trigger_automatic(&trigger) {
                tracing::warn!(error = %e, "retraining on drift not started");
            }
        }
    });
    let validation = Validation::start(Arc::clone(&store), config.drift.clone(), Some(hook));
    let publisher = match &config.shared_online_store {
        Some(shared) => Some(Publisher::start(
            Arc::clone(&store),
            Arc::clone(shared),
            config.replication_interval,
            config.republish_online_store,
        )?),
        None => {
            if store.disable_outbox()? {
                tracing::warn!("this store was a fleet's leader: its outbox is dropped; the next leader publishes everything again");
            }
            None
        }
    };
    Ok(web::Data::new(AppState {
        retrainer,
        store,
        workers,
        recommender,
        validation,
        metrics: Metrics::new(),
        limits: config.limits.clone(),
        admission: Arc::new(limits::Admission::default()),
        keys: config.keys.clone().map(Arc::new),
        metrics_open: config.metrics_open,
        fleet_secret: config.fleet_secret,
        publisher,
    }))
}

/// The application: routes, the JSON 404, and the middleware that gives
/// every request a span, a trace id header and its metrics.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let gate = Gate {
        metrics: Arc::clone(&state.metrics),
        keys: state.keys.clone(),
        metrics_open: state.metrics_open,
        admission: Arc::clone(&state.admission),
        limits: state.limits.clone(),
    };
    gated_app(gate, move |cfg| {
        cfg.app_data(state);
        routes::configure(cfg);
        fleet::configure(cfg);
        console::configure(cfg);
    })
}

/// What the middleware of every request needs, whatever the server's role.
#[derive(Clone)]
pub struct Gate {
    pub metrics: Arc<Metrics>,
    pub keys: Option<Arc<auth::KeyRing>>,
    pub metrics_open: bool,
    pub admission: Arc<limits::Admission>,
    pub limits: limits::Limits,
}

/// An application of the routes `configure` sets up, behind the access
/// control, admission, timeout, tracing and metrics middleware, with the
/// JSON 404.
pub fn gated_app(
    gate: Gate,
    configure: impl FnOnce(&mut web::ServiceConfig),
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let Gate {
        metrics,
        keys,
        metrics_open,
        admission,
        limits,
    } = gate;
    App::new()
        .app_data(web::Data::from(Arc::clone(&admission)))
        .wrap_fn(move |req, srv| {
            // The route the router will match, found from the path it
            // matches (decoded and re-quoted), never the raw request target:
            // `/%761/push` is `/v1/push`.
            let pattern = req
                .request()
                .resource_map()
                .match_pattern(req.match_info().as_str());
            let scope =
                auth::required_scope(req.method().as_str(), pattern.as_deref(), metrics_open);
            let denied = keys.as_deref().and_then(|keys| {
                let scope = scope?;
                let given = req
                    .headers()
                    .get(auth::API_KEY_HEADER)
                    .map(|v| v.as_bytes());
                match keys.authorize(given, auth::key_scope(pattern.as_deref(), scope)) {
                    Ok(name) => {
                        tracing::Span::current().record("reprise.key", name);
                        None
                    }
                    Err(auth::Denied::Unauthenticated) => Some(ApiError::Unauthorized),
                    Err(auth::Denied::Forbidden { key, scope }) => {
                        tracing::Span::current().record("reprise.key", key.as_str());
                        Some(ApiError::Forbidden {
                            key,
                            scope: scope.name(),
                        })
                    }
                }
            });
            // Admission before the body is read: over the route class's
            // requests in flight, 503 at once.
            let admitted = match (denied, scope) {
                (Some(error), _) => Err(error),
                (None, Some(scope)) => admission.admit(scope, &limits).map(Some),
                (None, None) => Ok(None),
            };
            let outcome = match admitted {
                Ok(guard) => Ok((srv.call(req), guard)),
                Err(error) => Err((req, error)),
            };
            let timeout = limits.request_timeout;
            async move {
                match outcome {
                    Ok((fut, guard)) => {
                        // A handler that has not answered in time gets 503
                        // (the work it waits on finishes in the background);
                        // actix turns the error into its response.
                        let response = match tokio::time::timeout(timeout, fut).await {
                            Ok(response) => response?.map_into_left_body(),
                            Err(_) => {
                                return Err(ApiError::Timeout {
                                    seconds: timeout.as_secs_f64(),
                                }
                                .into())
                            }
                        };
                        drop(guard);
                        Ok(response)
                    }
                    Err((req, error)) => Ok(req
                        .into_response(actix_web::ResponseError::error_response(&error))
                        .map_into_right_body()),
                }
            }
        })
        .wrap_fn(move |req, srv| {
            let start = Instant::now();
            let method = req.method().to_string();
            let route = req
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_owned());
            let span = telemetry::request_span(&req, &route);
            let metrics = Arc::clone(&metrics);
            let fut = span.in_scope(|| srv.call(req));
            async move {
                let mut res = fut.instrument(span.clone()).await?;
                let status = res.status().as_u16();
                span.record("http.response.status_code", status);
                if let Some(trace_id) = telemetry::trace_id_header(&span) {
                    res.headers_mut().insert(
                        HeaderName::from_static(telemetry::TRACE_ID_HEADER),
                        trace_id,
                    );
                }
                let status = status.to_string();
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
        .configure(configure)
        .default_service(web::to(routes::ops::no_route))
}

/// Serves the API until the process is told to stop. Must run inside an
/// actix system.
pub async fn serve(store: Arc<FeatureStore>, config: ServerConfig) -> std::io::Result<()> {
    let state = state(store, &config).map_err(std::io::Error::other)?;
    let mut server = HttpServer::new(move || app(state.clone()));
    if config.http_workers > 0 {
        server = server.workers(config.http_workers);
    }
    tracing::info!(listen = %config.listen, "serving");
    server.bind(config.listen)?.run().await
}
