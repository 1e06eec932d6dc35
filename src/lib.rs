//! sigbot: a chat-ops bot for the teams that run open-source infrastructure.
//!
//! # Layout
//! - [`core`]: the sans-I/O heart. `Core::handle(Event, now) -> Vec<Action>`; command
//!   parsing, roles, and (later) the bridge, meetings and relay logic. No sockets, no clock.
//! - [`adapters`]: one driver task per network (console now; IRC, Matrix, MQTT next) that
//!   turns wire traffic into `Event`s and carries out `Action`s.
//! - [`app`]: wires config, store, adapters, the core task and the web site together, with
//!   one shutdown token and one task tracker.
//! - [`config`]: the TOML config in two stages (raw serde structs, then a checked `Config`).
//! - [`store`]: SQLite in `data_dir`, migrations in code.
//! - [`outbox`]: the bridge's durable per-network outbox and its deliverers.
//! - [`relay_outbox`]: relayed MQTT events, stored before the MQTT ack and delivered in order.
//! - [`broker`]: the embedded MQTT broker (rumqttd) of the default config.
//! - [`watch`]: package-update alerts, looked up on a schedule or on MQTT events.
//! - [`web`]: the axum site (`/healthz`, `/`).

pub mod adapters;
pub mod app;
pub mod config;
pub mod core;
pub mod lookup;
pub mod minutes;
pub mod outbox;
pub mod store;
#[cfg(test)]
pub(crate) mod test_support;
pub mod web;

/// The version reported by `!version` and `sigbot version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
