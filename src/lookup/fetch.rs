//! Carries out the core's `Action::Fetch` for declarative commands and feeds the result back
//! as `Event::FetchDone`. Secrets are filled in here, at the last moment, and scrubbed from
//! whatever comes back.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::LookupError;
use super::http::HttpCall;
use super::{http, koji, repodata};
use crate::core::Secret;
use crate::core::commands::declarative::{SECRET_CLOSE, SECRET_OPEN, redact, show_placeholders};
use crate::core::{Event, FetchOutcome, FetchRequest, Request, RequestBody};

/// A cloneable handle that runs requests as tasks.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    repos: Arc<repodata::Cache>,
    events: mpsc::Sender<Event>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Fetcher {
    pub fn new(
        events: mpsc::Sender<Event>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Self, reqwest::Error> {
        // Each request is bounded by its own command's timeout.
        let client = crate::command_http_client()?;
        Ok(Self {
            client,
            repos: Arc::default(),
            events,
            tracker,
            shutdown,
        })
    }

    /// Starts the request; its outcome arrives later as `Event::FetchDone`.
    pub fn start(&self, req: FetchRequest) {
        let this = self.clone();
        self.tracker.spawn(async move {
            let id = req.id;
            let outcome = tokio::select! {
                () = this.shutdown.cancelled() => return,
                o = this.run(&req) => o,
            };
            let _ = this.events.send(Event::FetchDone { id, outcome }).await;
        });
    }

    /// Runs one request within its timeout.
    pub async fn run(&self, req: &FetchRequest) -> FetchOutcome {
        let work = async {
            match &req.request {
                Request::Http {
                    method,
                    url,
                    headers,
                    query,
                    body,
                } => self.http(req, method, url, headers, query, body).await,
                Request::Koji {
                    hub,
                    method,
                    params,
                } => self.koji(req, hub, method, params).await,
                Request::Repodata { url, package } => self.repodata(req, url, package).await,
            }
        };
        let answer = tokio::time::timeout(req.timeout, work)
            .await
            .unwrap_or(Err(LookupError::Timeout { after: req.timeout }));
        let outcome = answer.unwrap_or_else(outcome_of_error);
        let outcome = scrub(outcome, &req.secrets);
        log_outcome(req, &outcome);
        outcome
    }

    /// An HTTP request, its secrets filled in.
    async fn http(
        &self,
        req: &FetchRequest,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        query: &[(String, String)],
        body: &RequestBody,
    ) -> Result<FetchOutcome, LookupError> {
        tracing::info!(command = %req.command, id = req.id, %method, url = %show_placeholders(url), "http request");
        let fill = |s: &str| reveal(s, &req.secrets);
        let fill_pairs = |pairs: &[(String, String)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.clone(), fill(v))).collect()
        };
        let headers = fill_pairs(headers);
        let query = fill_pairs(query);
        let body = match body {
            RequestBody::None => RequestBody::None,
            RequestBody::Json(v) => RequestBody::Json(reveal_json(v, &req.secrets)),
            RequestBody::Form(f) => RequestBody::Form(fill_pairs(f)),
            RequestBody::Text(t) => RequestBody::Text(fill(t)),
        };
        let url = fill(url);
        let call = HttpCall {
            method,
            url: &url,
            headers: &headers,
            query: &query,
            body: &body,
        };
        http::call(&self.client, call)
            .await
            .map(|r| FetchOutcome::Http {
                status: r.status,
                reason: r.reason,
                headers: r.headers,
                text: r.text,
            })
    }

    /// A Koji XML-RPC call, its secrets filled in.
    async fn koji(
        &self,
        req: &FetchRequest,
        hub: &str,
        method: &str,
        params: &[serde_json::Value],
    ) -> Result<FetchOutcome, LookupError> {
        tracing::info!(command = %req.command, id = req.id, %method, hub = %show_placeholders(hub), "koji call");
        let params: Vec<serde_json::Value> = params
            .iter()
            .map(|p| reveal_json(p, &req.secrets))
            .collect();
        koji::call(&self.client, &reveal(hub, &req.secrets), method, &params)
            .await
            .map(FetchOutcome::Koji)
    }

    /// The newest version of a package in a repository's metadata.
    async fn repodata(
        &self,
        req: &FetchRequest,
        url: &str,
        package: &str,
    ) -> Result<FetchOutcome, LookupError> {
        tracing::info!(command = %req.command, id = req.id, url = %show_placeholders(url), %package, "repodata lookup");
        repodata::newest(
            &self.client,
            &self.repos,
            &reveal(url, &req.secrets),
            package,
        )
        .await
        .map(FetchOutcome::Package)
    }
}

fn log_outcome(req: &FetchRequest, outcome: &FetchOutcome) {
    match outcome {
        FetchOutcome::Http { status, .. } => {
            tracing::info!(command = %req.command, id = req.id, status, "request done");
        }
        FetchOutcome::Failed(why) => {
            tracing::warn!(command = %req.command, id = req.id, reason = %why, "request failed");
        }
        _ => tracing::info!(command = %req.command, id = req.id, "request done"),
    }
}

/// The core's name for a lookup that gave no answer: a Koji fault is an answer of its own
/// (commands may reply to it); everything else is a failure with its reason.
fn outcome_of_error(e: LookupError) -> FetchOutcome {
    match e {
        LookupError::KojiFault { code, message } => FetchOutcome::KojiFault { code, message },
        other => FetchOutcome::Failed(other.to_string()),
    }
}

/// Fills `${NAME}` placeholders with their values.
fn reveal(s: &str, secrets: &[(String, Secret)]) -> String {
    let mut out = s.to_owned();
    for (name, v) in secrets {
        let ph = format!("{SECRET_OPEN}{name}{SECRET_CLOSE}");
        if out.contains(&ph) {
            out = out.replace(&ph, v.expose());
        }
    }
    out
}

fn reveal_json(v: &serde_json::Value, secrets: &[(String, Secret)]) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) => serde_json::Value::String(reveal(s, secrets)),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.iter().map(|x| reveal_json(x, secrets)).collect())
        }
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), reveal_json(x, secrets)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn scrub_json(v: serde_json::Value, secrets: &[(String, Secret)]) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) => serde_json::Value::String(redact(&s, secrets)),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(|x| scrub_json(x, secrets)).collect())
        }
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .map(|(k, x)| (redact(&k, secrets), scrub_json(x, secrets)))
                .collect(),
        ),
        other => other,
    }
}

/// A server may echo what it was sent (a token in a URL, an Authorization header): whatever
/// comes back has the secrets replaced before the core, and so any template, sees it.
fn scrub(outcome: FetchOutcome, secrets: &[(String, Secret)]) -> FetchOutcome {
    if secrets.is_empty() {
        return outcome;
    }
    match outcome {
        FetchOutcome::Http {
            status,
            reason,
            headers,
            text,
        } => FetchOutcome::Http {
            status,
            reason,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k, redact(&v, secrets)))
                .collect(),
            text: redact(&text, secrets),
        },
        FetchOutcome::Koji(v) => FetchOutcome::Koji(scrub_json(v, secrets)),
        FetchOutcome::KojiFault { code, message } => FetchOutcome::KojiFault {
            code,
            message: redact(&message, secrets),
        },
        FetchOutcome::Failed(why) => FetchOutcome::Failed(redact(&why, secrets)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_echoes_scrubbed() {
        let secrets = vec![("TOKEN".to_owned(), Secret::new("s3cr3t-value"))];
        let url = format!("https://ci/x?token={SECRET_OPEN}TOKEN{SECRET_CLOSE}");
        assert_eq!(reveal(&url, &secrets), "https://ci/x?token=s3cr3t-value");
        assert_eq!(show_placeholders(&url), "https://ci/x?token=${TOKEN}");
        let echoed = FetchOutcome::Http {
            status: 200,
            reason: "OK".into(),
            headers: vec![("x-echo".into(), "Bearer s3cr3t-value".into())],
            text: "{\"auth\":\"s3cr3t-value\"}".into(),
        };
        let FetchOutcome::Http { headers, text, .. } = scrub(echoed, &secrets) else {
            unreachable!()
        };
        assert_eq!(headers[0].1, "Bearer <redacted>");
        assert_eq!(text, "{\"auth\":\"<redacted>\"}");
    }
}
