//! One-shot requests for declarative commands and the package watcher: HTTP, Koji XML-RPC and
//! repository metadata. Each call opens, asks, and closes; nothing here holds a connection
//! between calls. The requests answer with their own types or a [`LookupError`]; only
//! [`fetch`] speaks the core's language ([`crate::core::FetchOutcome`]).

pub mod fetch;
pub mod http;
pub mod koji;
pub mod repodata;

use std::time::Duration;

/// Why a lookup gave no answer. The messages reach chat users through commands' error
/// replies, so none of them shows a URL (it may hold a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("bad HTTP method")]
    BadMethod,
    /// `what` names the URL without showing it ("the Koji hub").
    #[error("{what} is not a valid http(s) URL")]
    BadUrl { what: &'static str },
    /// The request did not complete; `reason` is short and never names the URL.
    #[error("{reason}")]
    Request { reason: &'static str },
    #[error("the response is larger than {} KiB", cap / 1024)]
    TooLarge { cap: usize },
    /// A Koji hub answered with an HTTP error.
    #[error("{}", http_status(*status, *reason))]
    HubStatus {
        status: u16,
        reason: Option<&'static str>,
    },
    /// A repository answered with an HTTP error for one of its files.
    #[error("HTTP {status} for {what}")]
    FileStatus { status: u16, what: &'static str },
    #[error("the hub's answer is not XML-RPC")]
    NotXmlRpc { detail: String },
    #[error("Koji fault {code}: {message}")]
    KojiFault { code: i64, message: String },
    /// A repository file that could not be parsed; `what` is how replies name it.
    #[error("{what} is not readable")]
    Unreadable { what: &'static str, detail: String },
    #[error("{what} parsing failed")]
    ParserGone { what: &'static str },
    #[error("timed out after {}", humantime::format_duration(*after))]
    Timeout { after: Duration },
}

fn http_status(status: u16, reason: Option<&str>) -> String {
    match reason {
        Some(r) if !r.is_empty() => format!("HTTP {status} {r}"),
        _ => format!("HTTP {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_the_replies_did() {
        let cases = [
            (
                LookupError::BadUrl {
                    what: "the Koji hub",
                },
                "the Koji hub is not a valid http(s) URL",
            ),
            (
                LookupError::TooLarge { cap: 1024 * 1024 },
                "the response is larger than 1024 KiB",
            ),
            (
                LookupError::HubStatus {
                    status: 503,
                    reason: Some("Service Unavailable"),
                },
                "HTTP 503 Service Unavailable",
            ),
            (
                LookupError::HubStatus {
                    status: 599,
                    reason: None,
                },
                "HTTP 599",
            ),
            (
                LookupError::FileStatus {
                    status: 404,
                    what: "repomd.xml",
                },
                "HTTP 404 for repomd.xml",
            ),
            (
                LookupError::Unreadable {
                    what: "repomd.xml",
                    detail: "eof".into(),
                },
                "repomd.xml is not readable",
            ),
            (
                LookupError::Timeout {
                    after: Duration::from_secs(10),
                },
                "timed out after 10s",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
