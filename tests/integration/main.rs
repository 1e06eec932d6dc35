//! The one integration-test binary: tests against real servers (InspIRCd + Anope, Synapse,
//! mosquitto) started on free loopback ports by [`support`].
//!
//! Layout:
//! - `support/`: the harness (servers, raw protocol clients, waiting helpers);
//! - one module per feature under test, beside this file.
//!
//! Run with `cargo test --test integration`; `scripts/test` installs the servers first.

mod matrix;
mod support;
