//! The bot's web site (axum): health, the minutes index and search, pastes and media.
//! Every answer carries the security headers of [`secure_headers`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::core::LinkState;

pub mod media;
pub mod meetings;
pub mod paste;

/// One network's health, as `/healthz` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NetworkHealth {
    pub kind: &'static str,
    pub state: LinkState,
    pub queue_len: usize,
}

/// Health of every network, written by the core task, read by the web site.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<RwLock<BTreeMap<String, NetworkHealth>>>);

impl Health {
    pub fn set(&self, network: &str, kind: &'static str, state: LinkState, queue_len: usize) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        map.insert(
            network.to_owned(),
            NetworkHealth {
                kind,
                state,
                queue_len,
            },
        );
    }

    pub fn update(&self, network: &str, state: LinkState, queue_len: usize) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map.get_mut(network) {
            h.state = state;
            h.queue_len = queue_len;
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, NetworkHealth> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Clone)]
struct AppState {
    health: Health,
    started: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
struct HealthBody {
    status: &'static str,
    version: &'static str,
    started: String,
    networks: BTreeMap<String, NetworkHealth>,
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
) -> Router {
    meetings::routes(store).merge(base_router(health, started))
}

fn base_router(health: Health, started: chrono::DateTime<chrono::Utc>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(AppState { health, started })
}

async fn healthz(State(st): State<AppState>) -> impl IntoResponse {
    let networks = st.health.snapshot();
    let all_up = networks.values().all(|n| n.state == LinkState::Connected);
    (
        StatusCode::OK,
        Json(HealthBody {
            status: if all_up { "ok" } else { "degraded" },
            version: env!("CARGO_PKG_VERSION"),
            started: st.started.to_rfc3339(),
            networks,
        }),
    )
}

async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>sigbot</title></head><body>",
        "<h1>sigbot</h1><p>Meeting minutes and logs will be listed here.</p>",
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

/// Serves until `shutdown` is cancelled.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, shutdown: CancellationToken) {
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, "web site listening");
    let app = app.layer(axum::middleware::map_response(secure_headers));
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!(error = %e, "web site stopped");
    }
}
