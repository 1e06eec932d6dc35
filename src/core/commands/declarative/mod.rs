//! Declarative commands (DESIGN §6): the commands that `commands/*.toml` define.
//!
//! This module holds the validated command definitions ([`CommandSpec`], built by
//! `crate::config::commands`) and everything that decides what happens when someone runs one:
//! argument patterns, roles, cooldowns, one-time confirmation codes, and rendering the
//! request and the reply with minijinja. The request itself is carried out by the app (an
//! [`Action::Fetch`]); its result comes back as [`crate::core::Event::FetchDone`].
//!
//! Secrets: a `${ENV}` reference in a request field is kept as a placeholder
//! ([`SECRET_OPEN`] name [`SECRET_CLOSE`]) all through the core, so rendered requests, logs
//! and audit entries never hold the value. The executor substitutes it at the last moment.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use minijinja::{Environment, UndefinedBehavior};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;

use super::acl::Roles;
use super::allowance::{Allowances, Spend, caller_key};
use super::shown_name;
use crate::core::action::Action;
use crate::core::event::{IncomingMessage, Principal, RoomRef};
use crate::core::package::PackageVersion;
use crate::core::secret::Secret;

/// Opens a secret placeholder in a rendered request: `\u{E000}NAME\u{E001}`. Private-use
/// characters, so that no template text collides with them; arguments holding them are refused.
pub const SECRET_OPEN: char = '\u{E000}';
pub const SECRET_CLOSE: char = '\u{E001}';

mod confirm;
mod invoke;
mod outcome;
mod spec;
mod template;
pub use spec::{
    ActionSpec, ArgSpec, BodySpec, CommandSet, CommandSetHandle, CommandSpec, HttpSpec, KojiSpec,
    ReplySpec, RepodataSpec,
};

/// How long a confirmation code stays valid.
pub const CONFIRM_WINDOW: TimeDelta = TimeDelta::minutes(2);

/// A request for the executor, fully rendered (secrets still as placeholders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Http {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        query: Vec<(String, String)>,
        body: RequestBody,
    },
    Koji {
        hub: String,
        method: String,
        params: Vec<serde_json::Value>,
    },
    Repodata {
        url: String,
        package: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestBody {
    None,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    pub id: u64,
    pub command: String,
    pub request: Request,
    pub timeout: Duration,
    /// Values for the placeholders; `Debug` never shows them.
    pub secrets: Vec<(String, Secret)>,
}

/// What came of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchOutcome {
    Http {
        status: u16,
        /// The status's reason phrase (`Not Found`).
        reason: String,
        /// Lower-case names.
        headers: Vec<(String, String)>,
        text: String,
    },
    Koji(serde_json::Value),
    KojiFault {
        code: i64,
        message: String,
    },
    Package(Option<PackageVersion>),
    /// No answer: timeout, connection refused, body too large, unreadable response.
    Failed(String),
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub time: DateTime<Utc>,
    pub principal: String,
    pub room: String,
    pub command: String,
    pub args: String,
    pub result: String,
    pub http_status: Option<u16>,
}

struct InFlight {
    spec: Arc<CommandSpec>,
    call: Call,
}

/// One accepted invocation: who, where, with which arguments.
#[derive(Clone)]
struct Call {
    room: RoomRef,
    nick: String,
    principal: Option<Principal>,
    args: Vec<(String, String)>,
}

impl Call {
    fn who(&self) -> String {
        match &self.principal {
            Some(p) => p.to_string(),
            None => format!("{}/{} (no account)", self.room.network, self.nick),
        }
    }

    /// The caller's name as replies show it.
    fn name(&self) -> String {
        shown_name(&self.nick)
    }

    fn args_text(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What templates see of the call. Every value comes from a user, so none may hold the
    /// placeholder characters: a display name `\u{E000}TOKEN\u{E001}` would otherwise have
    /// the command's secret filled into the request.
    fn context(&self) -> serde_json::Value {
        let args: serde_json::Map<String, serde_json::Value> = self
            .args
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(inert(v))))
            .collect();
        json!({
            "args": args,
            "caller": {
                "principal": self.principal.as_ref().map(|p| inert(&p.to_string())),
                "nick": inert(&self.nick),
            },
            "room": inert(&self.room.to_string()),
        })
    }
}

/// A confirmation code given out and not yet used.
struct PendingConfirm {
    code: String,
    spec: Arc<CommandSpec>,
    call: Call,
    expires: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
struct Cooldown {
    until: DateTime<Utc>,
    warned: bool,
}

/// The declarative commands' state inside the core.
pub struct Declarative {
    set: Arc<CommandSet>,
    env: Environment<'static>,
    rng: StdRng,
    next_id: u64,
    in_flight: HashMap<u64, InFlight>,
    confirmations: Vec<PendingConfirm>,
    cooldowns: HashMap<(String, String), Cooldown>,
    /// What each caller may still be answered (built-ins, refusals, usage errors).
    allowances: Allowances,
    /// Invocations by command and outcome (one of [`OUTCOMES`]), for the metrics.
    counts: BTreeMap<(String, &'static str), u64>,
}

/// How a command invocation ended: answered (`ok`), the lookup found nothing
/// (`not_found`), the lookup or the arguments failed (`error`), the caller lacks the role
/// (`refused`), or the caller's cooldown or allowance held it back (`cooldown`).
pub const OUTCOMES: [&str; 5] = ["ok", "not_found", "error", "refused", "cooldown"];

/// The template environment every command template is rendered (and checked) with.
pub fn template_env() -> Environment<'static> {
    let mut env = Environment::new();
    // `json.bugs[0].id` on an empty list renders empty instead of failing the reply.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env
}

impl Default for Declarative {
    fn default() -> Self {
        Self::new(rand::rng().random())
    }
}

impl Declarative {
    /// `seed` drives the confirmation codes: fixed in tests, random in the bot.
    pub fn new(seed: u64) -> Self {
        Self {
            set: Arc::new(CommandSet::default()),
            env: template_env(),
            rng: StdRng::seed_from_u64(seed),
            next_id: 1,
            in_flight: HashMap::new(),
            confirmations: Vec::new(),
            cooldowns: HashMap::new(),
            allowances: Allowances::default(),
            counts: BTreeMap::new(),
        }
    }

    /// Counts one invocation of `command` that ended with `outcome` (one of [`OUTCOMES`]).
    pub fn count(&mut self, command: &str, outcome: &'static str) {
        *self
            .counts
            .entry((command.to_owned(), outcome))
            .or_default() += 1;
    }

    /// Invocations so far, by command and outcome.
    pub fn counts(&self) -> &BTreeMap<(String, &'static str), u64> {
        &self.counts
    }

    /// Takes one answer from the caller's allowance; past it, the caller gets one "slow
    /// down" (the `Err` holds it) and then no answer until the allowance refills.
    pub fn allow(&mut self, msg: &IncomingMessage, now: DateTime<Utc>) -> Result<(), Vec<Action>> {
        match self.allowances.spend(&caller_key(msg), now) {
            Spend::Granted => Ok(()),
            Spend::Warn(secs) => Err(vec![Action::reply(
                &msg.room,
                format!(
                    "{}: slow down; try again in {secs}s",
                    shown_name(&msg.sender.nick)
                ),
            )]),
            Spend::Silent => Err(Vec::new()),
        }
    }

    pub fn set_seed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// Replaces the command set. Requests already running finish with their old definition;
    /// pending confirmations of commands that no longer exist are dropped.
    pub fn replace(&mut self, set: Arc<CommandSet>) {
        self.confirmations
            .retain(|p| set.get(&p.spec.name).is_some());
        self.set = set;
    }

    pub fn set(&self) -> &CommandSet {
        &self.set
    }

    pub fn get(&self, name: &str) -> Option<&Arc<CommandSpec>> {
        self.set.get(name)
    }

    /// The names of the commands `who` may run, sorted.
    pub fn names_for(&self, who: Option<&Principal>, roles: &Roles) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .set
            .iter()
            .filter(|c| c.role.as_deref().is_none_or(|r| roles.has(who, r)))
            .map(|c| c.name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// `help <command>` for a declarative command.
    pub fn help_for(&self, name: &str, prefix: &str) -> Option<String> {
        let c = self.set.get(name)?;
        let mut s = format!("{prefix}{}: {}", c.usage, c.summary);
        if !c.aliases.is_empty() {
            s.push_str(&format!(" (aliases: {})", c.aliases.join(", ")));
        }
        if let Some(r) = &c.role {
            s.push_str(&format!(" (role {r})"));
        }
        if c.confirm {
            s.push_str(" (asks for confirmation)");
        }
        Some(s)
    }

    fn start(&mut self, spec: Arc<CommandSpec>, call: Call) -> Vec<Action> {
        let ctx = call.context();
        let request = match self.render_request(&spec.action, &ctx) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(command = %spec.name, error = %e, "request template failed");
                let mut ctx = ctx;
                ctx["error"] = "the request could not be built".into();
                let text = self
                    .render(&spec.reply.error, &ctx)
                    .unwrap_or_else(|_| format!("{}: the request could not be built", spec.name));
                return vec![Action::reply(&call.room, redact(&text, &spec.secrets))];
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let fetch = FetchRequest {
            id,
            command: spec.name.clone(),
            request,
            timeout: spec.action.timeout(),
            secrets: spec.secrets.clone(),
        };
        self.in_flight.insert(id, InFlight { spec, call });
        vec![Action::Fetch(fetch)]
    }

    fn audit(
        &self,
        spec: &CommandSpec,
        call: &Call,
        now: DateTime<Utc>,
        result: String,
        http_status: Option<u16>,
    ) -> Action {
        Action::Audit(AuditEntry {
            time: now,
            principal: call.who(),
            room: call.room.to_string(),
            command: spec.name.clone(),
            args: redact(&call.args_text(), &spec.secrets),
            result: redact(&result, &spec.secrets),
            http_status,
        })
    }
}

/// Replaces every secret value in `text` with `<redacted>`.
pub fn redact(text: &str, secrets: &[(String, Secret)]) -> String {
    let mut s = text.to_owned();
    for (_, v) in secrets {
        if !v.expose().is_empty() && s.contains(v.expose()) {
            s = s.replace(v.expose(), "<redacted>");
        }
    }
    s
}

/// `text` without the characters that open and close a secret placeholder.
fn inert(text: &str) -> String {
    text.chars()
        .filter(|c| *c != SECRET_OPEN && *c != SECRET_CLOSE)
        .collect()
}

/// Writes a placeholder back as `${NAME}`, for logs.
pub fn show_placeholders(text: &str) -> String {
    text.replace(SECRET_OPEN, "${").replace(SECRET_CLOSE, "}")
}
