//! One integration-test binary; each module tests one area against real servers.

mod console;
mod mqtt;
mod support;
