//! A replica's HTTP face (`reprise serve --role replica`): stateless, it
//! answers online reads from the shared online store the leader publishes
//! to, and recommendations and rank with the models and histories the
//! leader publishes (its served-feature log goes to the leader, signed, see
//! `fleet.rs`); a request it cannot answer as the leader would (a user
//! without a published history, an experiment running, `explain`) and
//! every other route (writes, events, snapshots, models) is forwarded to
//! the leader, so a load balancer may send any request to any process of
//! the fleet. Access control, admission, timeouts,
//! tracing and metrics are the leader's middleware ([`crate::gated_app`]);
//! a forwarded request keeps its `x-api-key`, so the leader checks it too.
//! With the leader down, forwarded requests get 503 `leader_unavailable`
//! with `Retry-After`, and online reads go on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;
use reprise_actors::recommend::forwarded::ForwardedLog;
use reprise_actors::recommend::ranking::ServedLog;
use reprise_actors::recommend::Recommender;
use reprise_actors::replication::Follower;
use reprise_store::FeatureStore;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::body::parse_object;
use crate::error::ApiError;
use crate::limits::{Admission, Limits};
use crate::metrics::Metrics;
use crate::routes::recommendations::{
    rank_request, rank_response, recommend_request, recommendation_response,
};
use crate::routes::{online, ops, ROUTES};
use crate::schema::{Ready, ReplicationState};
use crate::{auth, console, fleet, Gate};

/// The routes a replica answers itself; every other one of [`ROUTES`] is
/// forwarded.
pub const LOCAL_ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/online-features"),
    ("post", "/v1/recommendations"),
    ("post", "/v1/rank"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

/// Request headers a forwarded request carries to the leader.
const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    auth::API_KEY_HEADER,
    "content-type",
    "accept",
    "accept-encoding",
    "traceparent",
    "tracestate",
];

/// Settings of a replica.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub listen: SocketAddr,
    pub http_workers: usize,
    pub limits: Limits,
    pub keys: Option<auth::KeyRing>,
    pub metrics_open: bool,
    /// The leader's base URL (`http://host:port`).
    pub leader: String,
    /// Not ready (503 on `/readyz`) when the oldest unpublished commit is
    /// older than this.
    pub max_lag: Duration,
    /// The ranker's settings (workers, queue).
    pub recommender: reprise_actors::recommend::RecommenderConfig,
    /// The secret served-feature logs are signed with
    /// (`--fleet-secret-file`, the leader's too).
    pub fleet_secret: Option<[u8; 32]>,
}

/// What a replica's handlers share.
pub struct ReplicaState {
    pub store: Arc<FeatureStore>,
    pub follower: Follower,
    /// Recommendations and rank from the published models and histories.
    pub recommender: Recommender,
    /// Signs the served-feature logs sent to the leader (`None`: unsigned,
    /// which a leader without access control takes).
    pub fleet_secret: Option<[u8; 32]>,
    /// Whether the leader takes this replica's served-feature logs (not
    /// with access control on and no fleet secret): else recommendations
    /// go to the leader.
    pub logs_to_leader: bool,
    /// Recommendation and rank requests answered here, and sent to the
    /// leader.
    pub ranked_here: AtomicU64,
    pub ranked_by_leader: AtomicU64,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub max_lag: Duration,
}

/// The leader, as one HTTP worker reaches it (a client per worker: its
/// connections belong to that worker's runtime).
struct Leader {
    base: String,
    client: reqwest::Client,
}

impl Leader {
    fn new(base: &str, timeout: Duration) -> Self {
        Leader {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .timeout(timeout)
                .build()
                .expect("an HTTP client without TLS builds"),
        }
    }
}

/// The replica application.
pub fn replica_app(
    state: web::Data<ReplicaState>,
    gate: Gate,
    leader: &str,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let leader = web::Data::new(Leader::new(leader, state.limits.request_timeout));
    crate::gated_app(gate, move |cfg| {
        cfg.app_data(state)
            .app_data(leader)
            .route("/v1/online-features", web::post().to(online_features))
            .route("/v1/recommendations", web::post().to(recommendations))
            .route("/v1/rank", web::post().to(rank))
            .route("/healthz", web::get().to(ops::healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .route("/openapi.json", web::get().to(ops::openapi));
        console::configure(cfg);
        for (method, path) in ROUTES {
            if LOCAL_ROUTES.contains(&(method, path)) {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes())
                .expect("routes name HTTP methods");
            cfg.route(path, web::method(method).to(forward));
        }
    })
}

async fn online_features(
    state: web::Data<ReplicaState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    online::read_online(&state.store, &state.metrics, &state.limits, &req, payload).await
}

/// Whether this replica answers `user_id`'s request itself (an online
/// read of their published history, off the HTTP worker); counted.
async fn serves_locally(state: &web::Data<ReplicaState>, user_id: &str) -> bool {
    let (state, user) = (state.clone(), user_id.to_owned());
    web::block(move || state.recommender.serves_locally(&user))
        .await
        .unwrap_or(false)
}

/// Sends a recommendation or rank request to the leader, counted.
async fn ranked_by_leader(
    leader: &Leader,
    state: &ReplicaState,
    req: &HttpRequest,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.ranked_by_leader.fetch_add(1, Ordering::Relaxed);
    forward_bytes(leader, req, bytes).await
}

async fn recommendations(
    leader: web::Data<Leader>,
    state: web::Data<ReplicaState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (bytes, _held) = crate::body::read_body(&req, payload, &state.limits).await?;
    let request = recommend_request(parse_object(&bytes, &state.limits)?)?;
    if request.explain || !state.logs_to_leader || !serves_locally(&state, &request.user_id).await {
        return ranked_by_leader(&leader, &state, &req, bytes).await;
    }
    state.ranked_here.fetch_add(1, Ordering::Relaxed);
    let (recommendation, log, admitted) = state.recommender.recommend_unlogged(request).await?;
    // Answered once the leader has the log, as the leader answers once its
    // write is durable; the request holds its queue place until then. An
    // experiment this replica has not heard of yet: the leader answers.
    match send_served_log(&leader, state.fleet_secret.as_ref(), &log).await {
        Ok(()) => {}
        Err(Refused::ExperimentRunning) => {
            drop(admitted);
            return ranked_by_leader(&leader, &state, &req, bytes).await;
        }
        Err(Refused::Error(e)) => return Err(e),
    }
    drop(admitted);
    Ok(HttpResponse::Ok().json(recommendation_response(recommendation)))
}

async fn rank(
    leader: web::Data<Leader>,
    state: web::Data<ReplicaState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (bytes, _held) = crate::body::read_body(&req, payload, &state.limits).await?;
    let request = rank_request(parse_object(&bytes, &state.limits)?)?;
    if !serves_locally(&state, &request.user_id).await {
        return ranked_by_leader(&leader, &state, &req, bytes).await;
    }
    state.ranked_here.fetch_add(1, Ordering::Relaxed);
    let ranked = state.recommender.rank(request).await?;
    Ok(HttpResponse::Ok().json(rank_response(ranked)))
}

/// Why the leader did not write a served-feature log.
enum Refused {
    /// An experiment routes traffic (the leader answers the request).
    ExperimentRunning,
    Error(ApiError),
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Refused::Error(e)
    }
}

/// Sends a served-feature log to the leader, signed, and waits until it is
/// written.
async fn send_served_log(
    leader: &Leader,
    secret: Option<&[u8; 32]>,
    log: &ServedLog,
) -> Result<(), Refused> {
    let body = serde_json::to_vec(&ForwardedLog::from(log)).expect("a served log serialises");
    let mut request = leader
        .client
        .post(format!("{}{}", leader.base, fleet::SERVED_LOG_PATH))
        .header("content-type", "application/json");
    if let Some(secret) = secret {
        let timestamp = fleet::now_seconds();
        request = request
            .header(fleet::TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                fleet::SIGNATURE_HEADER,
                fleet::sign(secret, timestamp, &body),
            );
    }
    let answer = request
        .body(body)
        .send()
        .await
        .map_err(|e| Refused::Error(leader_error(leader, e)))?;
    if answer.status().is_success() {
        return Ok(());
    }
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::CONFLICT && text.contains("experiment_running") {
        return Err(Refused::ExperimentRunning);
    }
    Err(Refused::Error(ApiError::LeaderFailed {
        leader: leader.base.clone(),
        reason: format!("the served-feature log was refused ({status}): {text}"),
    }))
}

/// A failed call to the leader. Not connected: nothing reached the leader,
/// retrying is safe. Any later failure (a timeout, a dropped answer) may
/// follow a write the leader applied: no retry hint then.
fn leader_error(leader: &Leader, e: reqwest::Error) -> ApiError {
    let (leader, reason) = (leader.base.clone(), e.to_string());
    if e.is_connect() {
        ApiError::LeaderUnavailable { leader, reason }
    } else {
        ApiError::LeaderFailed { leader, reason }
    }
}

/// Sends the request to the leader and streams its answer back.
async fn forward(
    leader: web::Data<Leader>,
    state: web::Data<ReplicaState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (body, _held) = crate::body::read_body(&req, payload, &state.limits).await?;
    forward_bytes(&leader, &req, body).await
}

/// Sends `req` with `body` to the leader and streams its answer back.
async fn forward_bytes(
    leader: &Leader,
    req: &HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path().to_owned(), |p| p.as_str().to_owned());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|e| ApiError::Transport(e.to_string()))?;
    let mut request = leader
        .client
        .request(method, format!("{}{target}", leader.base))
        .body(body);
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(value) = req.headers().get(*name) {
            request = request.header(*name, value.as_bytes());
        }
    }
    let answer = request.send().await.map_err(|e| leader_error(leader, e))?;
    let status =
        StatusCode::from_u16(answer.status().as_u16()).expect("the leader answers a valid status");
    let mut response = HttpResponse::build(status);
    for (name, value) in answer.headers() {
        // The body is streamed again: its framing is this response's own.
        if matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            response.append_header((name, value));
        }
    }
    Ok(response.streaming(
        answer
            .bytes_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other)),
    ))
}

/// The replica's replication state, and why it is not ready (if so).
fn replication(state: &ReplicaState) -> ReplicationState {
    let status = &state.follower.status;
    let lag = status.lag();
    let silence = status.silence_seconds();
    let problem = if silence > 2.0 {
        Some(format!(
            "the shared online store has not answered for {silence:.1} s: {}",
            status
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| "no answer yet".into())
        ))
    } else {
        match lag {
            None => Some("the shared online store has not been read yet".to_owned()),
            Some(l) if l.leader_version == 0 => {
                Some("no leader has published to the shared online store yet".to_owned())
            }
            Some(l) if l.published_version == 0 => {
                Some("the leader's first publication is not complete".to_owned())
            }
            Some(l) if l.seconds > state.max_lag.as_secs_f64() => Some(format!(
                "replication lag {:.1} s is over --max-lag {:.1} s",
                l.seconds,
                state.max_lag.as_secs_f64()
            )),
            Some(_) => None,
        }
    };
    ReplicationState {
        published_version: lag.map_or(0, |l| l.published_version),
        leader_version: lag.map_or(0, |l| l.leader_version),
        lag_versions: lag.map_or(0, |l| l.versions),
        lag_seconds: lag.map_or(0.0, |l| l.seconds),
        problem,
    }
}

/// Ready when the shared online store answers and the lag is within
/// `--max-lag`; otherwise 503 with the reason.
async fn readyz(state: web::Data<ReplicaState>) -> HttpResponse {
    let replication = replication(&state);
    let ready = replication.problem.is_none();
    let body = Ready {
        status: if ready { "ready" } else { "not_ready" }.into(),
        store_version: state.store.version(),
        feature_views: state.store.registry().views().len(),
        role: Some("replica".into()),
        lag_versions: Some(replication.lag_versions),
        replication: Some(replication),
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((
                actix_web::http::header::RETRY_AFTER,
                crate::error::RETRY_AFTER_SECONDS,
            ))
            .json(body)
    }
}

async fn metrics(state: web::Data<ReplicaState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(format!(
            "{}{}",
            state
                .metrics
                .render_replica(&state.store, &state.follower.status),
            ranking_metrics(&state)
        ))
}

/// Where this replica's recommendation and rank requests were answered.
fn ranking_metrics(state: &ReplicaState) -> String {
    let stats = state.recommender.stats();
    format!(
        "# HELP reprise_replica_ranked_total Recommendation and rank requests by where they were answered (here: the published models and histories; leader: forwarded).\n\
         # TYPE reprise_replica_ranked_total counter\n\
         reprise_replica_ranked_total{{answered_by=\"replica\"}} {}\n\
         reprise_replica_ranked_total{{answered_by=\"leader\"}} {}\n\
         # HELP reprise_replica_model_swaps_total Serving models this replica has loaded from the leader's publications.\n\
         # TYPE reprise_replica_model_swaps_total counter\n\
         reprise_replica_model_swaps_total {}\n",
        state.ranked_here.load(Ordering::Relaxed),
        state.ranked_by_leader.load(Ordering::Relaxed),
        stats.model_swaps.load(Ordering::Relaxed),
    )
}

/// Serves a replica of the store `store` (built by
/// [`FeatureStore::replica`]) until the process is told to stop. Must run
/// inside an actix system.
pub async fn serve_replica(
    store: Arc<FeatureStore>,
    definitions_version: u64,
    config: ReplicaConfig,
    interval: Duration,
) -> std::io::Result<()> {
    let follower = Follower::start(Arc::clone(&store), definitions_version, interval);
    let metrics = Metrics::new();
    let recommender = Recommender::start_replica(Arc::clone(&store), config.recommender.clone())
        .map_err(std::io::Error::other)?;
    let state = web::Data::new(ReplicaState {
        store,
        follower,
        recommender,
        fleet_secret: config.fleet_secret,
        logs_to_leader: config.keys.is_none() || config.fleet_secret.is_some(),
        ranked_here: AtomicU64::new(0),
        ranked_by_leader: AtomicU64::new(0),
        metrics: Arc::clone(&metrics),
        limits: config.limits.clone(),
        max_lag: config.max_lag,
    });
    let gate = Gate {
        metrics,
        keys: config.keys.clone().map(Arc::new),
        metrics_open: config.metrics_open,
        admission: Arc::new(Admission::default()),
        limits: config.limits.clone(),
    };
    let leader = config.leader.clone();
    let mut server = HttpServer::new(move || replica_app(state.clone(), gate.clone(), &leader));
    if config.http_workers > 0 {
        server = server.workers(config.http_workers);
    }
    tracing::info!(listen = %config.listen, leader = %config.leader, "serving as a replica");
    server.bind(config.listen)?.run().await
}
