//! One-shot requests for declarative commands and the package watcher: HTTP, Koji XML-RPC and
//! repository metadata. Each call opens, asks, and closes; nothing here holds a connection
//! between calls. Only [`fetch`] speaks the core's language ([`crate::core::FetchOutcome`]).

pub mod fetch;
pub mod http;
pub mod koji;
pub mod repodata;
