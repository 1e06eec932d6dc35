//! sigbot: a chat-ops bot for the teams that run open-source infrastructure.
//!
//! # Layout
//! Each module is one layer; `tests/integration/layers.rs` checks who imports whom.
//! - [`core`]: the sans-I/O heart, `Core::handle(Event, now) -> Vec<Action>`: commands,
//!   bridge, meetings, relay, watches, formatting. Imports only itself; no I/O, no clock.
//! - [`config`]: the TOML config (raw serde structs, then a checked `Config`) and the command
//!   files. Imports `core`.
//! - [`store`]: SQLite in `data_dir`, migrations in code; the only SQL besides the Matrix
//!   SDK's stores and the Matrix driver's `sync.db`. Imports `core`.
//! - [`minutes`]: meeting minutes and logs as text, HTML, Markdown and JSON: pure renderers,
//!   and `write_files`, which puts them on disk. Never the store. Imports `core`.
//! - [`lookup`]: one-shot requests (HTTP, Koji, repodata) with a typed `LookupError`; only its
//!   fetcher speaks the core's `FetchOutcome`. Imports `core`.
//! - [`metrics`]: the Prometheus registry (counters, gauges, histograms) that the layers
//!   below write to and `/metrics` reads. Imports nothing of the crate.
//! - [`adapters`]: one driver task per connection (console, IRC, Matrix, MQTT with the
//!   embedded broker) and the contracts others use (`NetworkHandle`, `Outgoing`, media).
//!   Imports `core`, `config` (connection settings), `store` (small per-connection facts) and
//!   `metrics`.
//! - [`outbox`]: what the bot must still say (bridged messages, relayed events, alerts),
//!   kept in the store until a network reports it delivered; one deliverer per network.
//!   Imports `core`, `store`, `metrics` and the adapters' contracts.
//! - [`web`]: the axum site (health, minutes, search, pastes, media). Imports `core`,
//!   `store`, `minutes`, `metrics` and the adapters' contracts, never a driver.
//! - [`app`]: wires config, store, adapters, the core task, the outbox, the package watcher and
//!   the site together; CLI subcommands (archive import). The only layer that imports all.
//! - `test_support`: helpers for unit tests (fixtures on disk), compiled only for tests.
//! - `fuzzing`: the bodies of the fuzz targets (`fuzz/`, replayed by `tests/fuzz_corpus.rs`);
//!   test support, hidden, not part of the bot. May import anything.
//!
//! The items of this file ([`VERSION`], [`http_client`], [`command_http_client`]) belong to no
//! layer; every layer may use them.

pub mod adapters;
pub mod app;
pub mod config;
pub mod core;
#[doc(hidden)]
pub mod fuzzing;
pub mod lookup;
pub mod metrics;
pub mod minutes;
pub mod outbox;
pub mod store;
#[cfg(test)]
pub(crate) mod test_support;
pub mod web;

/// The version reported by `!version` and `sigbot version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The one way to build an HTTP client (lookups, the package watcher, Matrix media and login
/// checks), so that every request names sigbot and none waits forever for a connection.
/// `timeout`, when set, bounds each whole request; callers without one bound their own.
pub fn http_client(
    timeout: Option<std::time::Duration>,
) -> Result<reqwest::Client, reqwest::Error> {
    http_client_with(timeout, reqwest::redirect::Policy::default())
}

/// The client of commands' requests, which carry the command's own headers (tokens): it
/// follows at most 5 redirects, only on the same host and port, and never from https to
/// http, so that no header reaches a host the command did not name.
pub fn command_http_client() -> Result<reqwest::Client, reqwest::Error> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        match command_redirect_refusal(first, attempt.url(), attempt.previous().len()) {
            Some(why) => attempt.error(why),
            None => attempt.follow(),
        }
    });
    http_client_with(None, policy)
}

/// Why a command's request may not follow its `hops`-th redirect from `first` (the URL the
/// command named) to `next`, if it may not.
fn command_redirect_refusal(
    first: &reqwest::Url,
    next: &reqwest::Url,
    hops: usize,
) -> Option<&'static str> {
    if hops > 5 {
        Some("too many redirects")
    } else if first.scheme() == "https" && next.scheme() != "https" {
        Some("a redirect from https to http")
    } else if first.host_str() != next.host_str()
        || first.port_or_known_default() != next.port_or_known_default()
    {
        Some("a redirect to another host")
    } else {
        None
    }
}

fn http_client_with(
    timeout: Option<std::time::Duration>,
    redirects: reqwest::redirect::Policy,
) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .redirect(redirects)
        .user_agent(concat!("sigbot/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10));
    match timeout {
        Some(t) => builder.timeout(t),
        None => builder,
    }
    .build()
}

#[cfg(test)]
mod redirect_tests {
    use super::command_redirect_refusal as refusal;

    fn url(s: &str) -> reqwest::Url {
        s.parse().unwrap()
    }

    #[test]
    fn command_redirects_stay_on_the_host_and_never_leave_https() {
        let https = url("https://ci.example.org:8443/job/a");
        assert_eq!(
            refusal(&https, &url("https://ci.example.org:8443/job/b"), 1),
            None
        );
        assert_eq!(
            refusal(&https, &url("http://ci.example.org:8443/job/b"), 1),
            Some("a redirect from https to http")
        );
        assert_eq!(
            refusal(&https, &url("https://evil.example.net:8443/"), 1),
            Some("a redirect to another host")
        );
        assert_eq!(
            refusal(&https, &url("https://ci.example.org/job/b"), 1),
            Some("a redirect to another host")
        );
        let http = url("http://ci.example.org/a");
        assert_eq!(refusal(&http, &url("http://ci.example.org:80/b"), 5), None);
        assert_eq!(
            refusal(&http, &url("https://ci.example.org:443/b"), 1),
            Some("a redirect to another host")
        );
        assert_eq!(
            refusal(&http, &url("http://ci.example.org/b"), 6),
            Some("too many redirects")
        );
    }
}
