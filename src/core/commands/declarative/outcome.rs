//! A request's result: success, not found or error, and the reply rendered from it.

use chrono::{DateTime, Utc};

use super::{ActionSpec, CommandSpec, Declarative, FetchOutcome, InFlight, redact};
use crate::core::action::Action;

impl Declarative {
    /// A request's result came back: render and send the reply.
    pub fn finished(&mut self, id: u64, outcome: FetchOutcome, now: DateTime<Utc>) -> Vec<Action> {
        let Some(InFlight { spec, call }) = self.in_flight.remove(&id) else {
            tracing::debug!(id, "result for an unknown request; ignored");
            return Vec::new();
        };
        let mut ctx = call.context();
        // The request had the caller's nick as the network gave it; a reply shows the name.
        ctx["caller"]["nick"] = serde_json::Value::String(super::inert(&call.name()));
        let (verdict, status) = classify(&spec, outcome, &mut ctx);
        let counted = match &verdict {
            Verdict::Success => "ok",
            Verdict::NotFound => "not_found",
            Verdict::Error(_) => "error",
        };
        self.count(&spec.name, counted);
        let (template, result) = match &verdict {
            Verdict::Success => (&spec.reply.success, "success".to_owned()),
            Verdict::NotFound => (&spec.reply.not_found, "not found".to_owned()),
            Verdict::Error(e) => {
                ctx["error"] = serde_json::Value::String(e.clone());
                (&spec.reply.error, format!("error: {e}"))
            }
        };
        let text = match self.render(template, &ctx) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(command = %spec.name, error = %e, "reply template failed");
                ctx["error"] = "the reply could not be rendered".into();
                self.render(&spec.reply.error, &ctx)
                    .unwrap_or_else(|_| format!("{}: the reply could not be rendered", spec.name))
            }
        };
        let text = redact(&text, &spec.secrets);
        let text = if text.trim().is_empty() {
            format!("{}: {result}", spec.name)
        } else {
            text
        };
        let mut out = vec![Action::reply(&call.room, text)];
        if spec.audited() {
            out.push(self.audit(&spec, &call, now, result, status));
        }
        out
    }
}

enum Verdict {
    Success,
    NotFound,
    Error(String),
}

/// Success, not found or error, filling the template context with what came back.
fn classify(
    spec: &CommandSpec,
    outcome: FetchOutcome,
    ctx: &mut serde_json::Value,
) -> (Verdict, Option<u16>) {
    match outcome {
        FetchOutcome::Http {
            status,
            reason,
            headers,
            text,
        } => (
            classify_http(spec, status, &reason, headers, text, ctx),
            Some(status),
        ),
        FetchOutcome::Koji(v) => {
            let empty = is_empty_result(&v);
            ctx["result"] = v;
            (
                if empty {
                    Verdict::NotFound
                } else {
                    Verdict::Success
                },
                None,
            )
        }
        FetchOutcome::KojiFault { code, message } => {
            // Koji answers an unknown tag or build with a GenericError "No such ...".
            if message.starts_with("No such") {
                (Verdict::NotFound, None)
            } else {
                let short: String = message.chars().take(160).collect();
                (Verdict::Error(format!("Koji fault {code}: {short}")), None)
            }
        }
        FetchOutcome::Package(Some(p)) => {
            ctx["result"] = serde_json::to_value(&p).unwrap_or_default();
            (Verdict::Success, None)
        }
        FetchOutcome::Package(None) => (Verdict::NotFound, None),
        FetchOutcome::Failed(reason) => (Verdict::Error(reason), None),
    }
}

/// An HTTP answer judged by the command's expected statuses (any 2xx without them); its
/// status, headers, text and JSON go to the template context.
fn classify_http(
    spec: &CommandSpec,
    status: u16,
    reason: &str,
    headers: Vec<(String, String)>,
    text: String,
    ctx: &mut serde_json::Value,
) -> Verdict {
    let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    ctx["status"] = status.into();
    ctx["headers"] = serde_json::Value::Object(
        headers
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect(),
    );
    ctx["text"] = text.into();
    ctx["json"] = parsed.clone().unwrap_or(serde_json::Value::Null);
    let expect = match &spec.action {
        ActionSpec::Http(h) => h.expect.as_slice(),
        _ => &[],
    };
    let ok = if expect.is_empty() {
        (200..300).contains(&status)
    } else {
        expect.contains(&status)
    };
    if ok {
        if parsed.as_ref().is_some_and(is_empty_result) {
            Verdict::NotFound
        } else {
            Verdict::Success
        }
    } else if status == 404 {
        Verdict::NotFound
    } else {
        Verdict::Error(format!("HTTP {status} {reason}").trim().to_owned())
    }
}

/// An empty result: `null`, `[]`, or an object whose values are all empty lists
/// (Bugzilla answers a search that matched nothing with `{"bugs": []}`).
fn is_empty_result(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(m) => {
            !m.is_empty()
                && m.values()
                    .all(|x| matches!(x, serde_json::Value::Array(a) if a.is_empty()))
        }
        _ => false,
    }
}
