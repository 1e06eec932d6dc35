//! The bot's web site (axum): health and readiness, the minutes index and search, pastes
//! and media, and the Prometheus metrics. Every answer carries the security headers of
//! [`secure_headers`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::core::LinkState;
use crate::metrics::Metrics;

pub mod calendar;
pub mod charts;
pub mod media;
pub mod media_cache;
pub mod meetings;
pub mod paste;
pub mod series;

/// One network's health, as `/healthz` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NetworkHealth {
    pub kind: &'static str,
    pub state: LinkState,
    pub queue_len: usize,
}

/// How long the core task may go without handling an event or a tick before `/readyz` and
/// `/healthz` say it is stuck (it gets a tick every second).
pub const CORE_STALL: Duration = Duration::from_secs(30);

/// How long a network may be down, by default, before `/readyz` answers 503.
pub const DEFAULT_READY_GRACE: Duration = Duration::from_secs(120);

/// Health of every network, written by the core task, and the long-lived tasks that died,
/// written by their supervisor; read by the web site.
#[derive(Debug, Clone)]
pub struct Health {
    networks: Arc<RwLock<BTreeMap<String, NetworkHealth>>>,
    /// Since when each network that is not connected has been so.
    down_since: Arc<RwLock<BTreeMap<String, Instant>>>,
    dead: Arc<RwLock<BTreeSet<String>>>,
    /// When the core task last handled an event or a tick.
    heartbeat: Arc<Mutex<Instant>>,
    ready_grace: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Self::with_ready_grace(DEFAULT_READY_GRACE)
    }
}

impl Health {
    /// Health whose `/readyz` tolerates a network down for `ready_grace`.
    pub fn with_ready_grace(ready_grace: Duration) -> Self {
        Self {
            networks: Arc::default(),
            down_since: Arc::default(),
            dead: Arc::default(),
            heartbeat: Arc::new(Mutex::new(Instant::now())),
            ready_grace,
        }
    }

    pub fn set(&self, network: &str, kind: &'static str, state: LinkState, queue_len: usize) {
        let mut map = self.networks.write().unwrap_or_else(|p| p.into_inner());
        map.insert(
            network.to_owned(),
            NetworkHealth {
                kind,
                state,
                queue_len,
            },
        );
        self.note_state(network, state);
    }

    pub fn update(&self, network: &str, state: LinkState, queue_len: usize) {
        let mut map = self.networks.write().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map.get_mut(network) {
            h.state = state;
            h.queue_len = queue_len;
            self.note_state(network, state);
        }
    }

    /// Forgets a network (removed by a config reload).
    pub fn remove(&self, network: &str) {
        let mut map = self.networks.write().unwrap_or_else(|p| p.into_inner());
        map.remove(network);
        let mut down = self.down_since.write().unwrap_or_else(|p| p.into_inner());
        down.remove(network);
    }

    /// Starts the network's down time when it goes down, and ends it when it is back.
    fn note_state(&self, network: &str, state: LinkState) {
        let mut down = self.down_since.write().unwrap_or_else(|p| p.into_inner());
        if state == LinkState::Connected {
            down.remove(network);
        } else {
            down.entry(network.to_owned()).or_insert_with(Instant::now);
        }
    }

    /// The core task handled an event or a tick.
    pub fn beat(&self) {
        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// How long since the core task last handled an event or a tick.
    pub fn since_beat(&self) -> Duration {
        self.since_beat_at(Instant::now())
    }

    fn since_beat_at(&self, now: Instant) -> Duration {
        let beat = *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner());
        now.saturating_duration_since(beat)
    }

    /// Why the bot is not ready, if it is not: networks down past the grace, a stuck core
    /// task, dead tasks.
    pub fn not_ready(&self) -> Vec<String> {
        self.not_ready_at(Instant::now())
    }

    fn not_ready_at(&self, now: Instant) -> Vec<String> {
        let mut why = Vec::new();
        let stalled = self.since_beat_at(now);
        if stalled > CORE_STALL {
            why.push(format!(
                "the core task has handled nothing for {}s",
                stalled.as_secs()
            ));
        }
        let down = self.down_since.read().unwrap_or_else(|p| p.into_inner());
        for (network, since) in down.iter() {
            let for_ = now.saturating_duration_since(*since);
            if for_ > self.ready_grace {
                why.push(format!(
                    "network {network} has been down for {}s",
                    for_.as_secs()
                ));
            }
        }
        for task in self.dead_tasks() {
            why.push(format!("task {task} died"));
        }
        why
    }

    pub fn snapshot(&self) -> BTreeMap<String, NetworkHealth> {
        self.networks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records that the long-lived task `name` is not running any more.
    pub fn task_died(&self, name: &str) {
        let mut dead = self.dead.write().unwrap_or_else(|p| p.into_inner());
        dead.insert(name.to_owned());
    }

    /// Records that the task `name` was started again (a network or the package watcher,
    /// by a config reload).
    pub fn task_restarted(&self, name: &str) {
        let mut dead = self.dead.write().unwrap_or_else(|p| p.into_inner());
        dead.remove(name);
    }

    /// The long-lived tasks that died, by name.
    pub fn dead_tasks(&self) -> Vec<String> {
        let dead = self.dead.read().unwrap_or_else(|p| p.into_inner());
        dead.iter().cloned().collect()
    }
}

#[derive(Clone)]
struct AppState {
    health: Health,
    started: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
struct ReadyBody {
    status: &'static str,
    /// What keeps the bot from being ready.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
}

#[derive(Serialize)]
struct HealthBody {
    status: &'static str,
    version: &'static str,
    started: String,
    networks: BTreeMap<String, NetworkHealth>,
    /// Long-lived tasks that panicked or ended while the bot runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dead_tasks: Vec<String>,
}

pub fn router(health: Health, started: chrono::DateTime<chrono::Utc>) -> Router {
    Router::new()
        .route("/", get(index))
        .merge(base_router(health, started))
}

/// The site with the meetings pages (`/` lists rooms and meetings).
pub fn router_with_meetings(
    health: Health,
    started: chrono::DateTime<chrono::Utc>,
    store: crate::store::Store,
    public_url: String,
) -> Router {
    meetings::routes(store, public_url).merge(base_router(health, started))
}

fn base_router(health: Health, started: chrono::DateTime<chrono::Utc>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { health, started })
}

/// `/metrics`: the metrics as OpenMetrics text, for the web site or a listener of its own.
pub fn metrics_routes(metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(metrics)
}

/// OpenMetrics for a client that asks for it (Prometheus does), else the classic text format.
async fn metrics_text(
    State(metrics): State<Metrics>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    let open = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if open {
        (crate::metrics::CONTENT_TYPE, metrics.encode())
    } else {
        (
            crate::metrics::CLASSIC_CONTENT_TYPE,
            metrics.encode_classic(),
        )
    };
    ([(axum::http::header::CONTENT_TYPE, content_type)], body)
}

/// Readiness: 503 with the reasons while a network is down past the grace, the core task
/// is stuck or a task died.
async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let reasons = st.health.not_ready();
    if reasons.is_empty() {
        (
            StatusCode::OK,
            Json(ReadyBody {
                status: "ready",
                reasons,
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ReadyBody {
                status: "not ready",
                reasons,
            }),
        )
    }
}

async fn healthz(State(st): State<AppState>) -> impl IntoResponse {
    let networks = st.health.snapshot();
    let all_up = networks.values().all(|n| n.state == LinkState::Connected);
    let dead_tasks = st.health.dead_tasks();
    let stalled = st.health.since_beat() > CORE_STALL;
    // A dead task does not come back by itself: whatever watches the bot should restart it.
    let (code, status) = if !dead_tasks.is_empty() || stalled {
        (StatusCode::SERVICE_UNAVAILABLE, "failing")
    } else if all_up {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::OK, "degraded")
    };
    (
        code,
        Json(HealthBody {
            status,
            version: env!("CARGO_PKG_VERSION"),
            started: st.started.to_rfc3339(),
            networks,
            dead_tasks,
        }),
    )
}

async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>sigbot</title></head><body>",
        "<h1>sigbot</h1><p>Meetings are not kept by this bot (no <code>[meetings]</code> in its config).</p>",
        "<p><a href=\"/healthz\">health</a></p></body></html>\n"
    ))
}

/// Binds the web site's listener (so a taken port is a start-up error, not a log line).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// The policy of every page: the site's pages use inline styles and nothing else (no
/// scripts, no frames, nothing from elsewhere). A route that sets its own (pastes: nothing
/// at all) keeps it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
    img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The policy of files that are never pages (pastes, media): nothing in them may run.
pub(crate) const NOTHING_ACTIVE: &str = "default-src 'none'; frame-ancestors 'none'";

/// Adds the security headers every answer carries, unless the route chose its own.
async fn secure_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
    response
}

/// What one stranger's connections may cost the bot.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; past that, new ones are closed at once.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may sit idle.
    pub header_timeout: Duration,
    /// How long one request may take to answer.
    pub request_timeout: Duration,
    /// How long a stop waits for requests being answered.
    pub shutdown_grace: Duration,
}

impl Limits {
    /// The limits of a site with `open_files` descriptors to share with everything else.
    pub fn for_open_files(open_files: u64) -> Self {
        let max_connections = usize::try_from(open_files / 2).unwrap_or(usize::MAX);
        Self {
            max_connections: max_connections.clamp(64, 16_384),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            shutdown_grace: crate::adapters::SHUTDOWN_GRACE,
        }
    }
}

/// Serves until `shutdown` is cancelled, within `limits`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let addr = listener.local_addr().ok();
    tracing::info!(addr = %DisplayAddr(addr), max_connections = limits.max_connections, "web site listening");
    let request_timeout = limits.request_timeout;
    let app = app
        .layer(axum::middleware::map_response(secure_headers))
        .layer(axum::middleware::from_fn(move |req, next| {
            within(request_timeout, req, next)
        }));
    let service = hyper_util::service::TowerToHyperService::new(app);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut refused = 0u64;
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: let connections end before the next try.
                    tracing::warn!(error = %e, "web site cannot accept a connection");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    refused,
                    max = limits.max_connections,
                    "web site full; connection closed"
                );
            }
            continue;
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that goes away mid-request is no news.
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("web requests still open at shutdown were dropped");
    }
}

/// Answers 503 to a request that takes longer than `limit`.
async fn within(
    limit: Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "this took too long\n").into_response(),
    }
}

/// An address as `127.0.0.1:8080`, or `unknown`.
struct DisplayAddr(Option<SocketAddr>);

impl std::fmt::Display for DisplayAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("unknown"),
        }
    }
}

#[cfg(test)]
mod health_tests {
    use super::*;

    #[test]
    fn readiness_names_a_network_down_past_the_grace_a_stuck_core_and_dead_tasks() {
        let h = Health::with_ready_grace(Duration::from_secs(10));
        let t0 = Instant::now();
        h.set("libera", "irc", LinkState::Starting, 0);
        h.set("console", "console", LinkState::Connected, 0);
        assert_eq!(h.not_ready_at(t0), Vec::<String>::new());
        let later = t0 + Duration::from_secs(12);
        let why = h.not_ready_at(later);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(
            why[0].starts_with("network libera has been down for 1"),
            "{why:?}"
        );
        // Connected: ready again; down once more, the grace starts over.
        h.update("libera", LinkState::Connected, 0);
        assert_eq!(h.not_ready_at(later), Vec::<String>::new());
        h.update("libera", LinkState::Reconnecting, 0);
        assert_eq!(h.not_ready_at(Instant::now()), Vec::<String>::new());
        // The core task's heartbeat, from a beat on.
        h.update("libera", LinkState::Connected, 0);
        h.beat();
        let stuck = Instant::now() + CORE_STALL + Duration::from_secs(1);
        let why = h.not_ready_at(stuck);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(
            why[0].starts_with("the core task has handled nothing for 3"),
            "{why:?}"
        );
        h.task_died("outbox:libera");
        assert_eq!(h.not_ready_at(Instant::now()), ["task outbox:libera died"]);
    }
}
