//! The one integration-test binary: tests against real servers (InspIRCd + Anope, Synapse,
//! mosquitto) started on free loopback ports by [`support`].
//!
//! Layout:
//! - `support/`: the harness (servers, raw protocol clients, waiting helpers);
//! - `selftest.rs`: proves the harness itself works, real messages included;
//! - `layers.rs`: no servers; reads `src/` and checks who imports whom (milliseconds);
//! - `standalone.rs`: no file reaches outside the repository (no server);
//! - one module per feature under test, beside this file.
//!
//! Run with `cargo test --test integration`; `scripts/test` installs the servers first.

mod bridge;
mod bridge_matrix;
mod check_online;
mod commands;
mod console;
mod faults;
mod floods;
mod identity;
mod irc;
mod layers;
mod logs;
mod mail;
mod manual;
mod matrix;
mod media;
mod meetings;
mod meetings_security;
mod metrics;
mod mqtt;
mod outbox;
mod packaging;
mod reload;
mod schedule;
mod secrets_at_rest;
mod selftest;
mod series;
mod standalone;
mod stopping;
mod support;
mod systemd;
mod watch;
mod web;
mod web_security;
