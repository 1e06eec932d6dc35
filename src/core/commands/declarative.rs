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
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use minijinja::{Environment, UndefinedBehavior, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use regex::Regex;
use serde::Serialize;
use serde_json::json;

use super::acl::Roles;
use crate::core::action::Action;
use crate::core::event::{IncomingMessage, Principal, RoomRef};
use crate::core::package::PackageVersion;
use crate::core::secret::Secret;

/// Opens a secret placeholder in a rendered request: `\u{E000}NAME\u{E001}`. Private-use
/// characters, so that no template text collides with them; arguments holding them are refused.
pub const SECRET_OPEN: char = '\u{E000}';
pub const SECRET_CLOSE: char = '\u{E001}';

/// The tag of a confirmation prompt, so that it can be edited once settled.
fn prompt_tag(code: &str) -> String {
    format!("confirm:{code}")
}

/// Rewrites a confirmation prompt once it is settled, so the room does not show a live code
/// that no longer works (on networks with edits).
fn settle_prompt(p: &PendingConfirm, outcome: &str) -> Action {
    let args = p.call.args_text();
    Action::Edit {
        room: p.call.room.clone(),
        tag: prompt_tag(&p.code),
        text: format!(
            "{}: {}{}{args}: {outcome}",
            p.call.nick,
            p.spec.name,
            if args.is_empty() { "" } else { " " }
        ),
    }
}

/// How long a confirmation code stays valid.
pub const CONFIRM_WINDOW: TimeDelta = TimeDelta::minutes(2);

/// One positional argument: its name (for templates) and the pattern the whole word must match.
#[derive(Debug, Clone)]
pub struct ArgSpec {
    pub name: String,
    /// Anchored: matches the whole argument.
    pub pattern: Regex,
    /// Takes the rest of the line (only the last argument may).
    pub rest: bool,
}

/// A request body; strings inside are templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySpec {
    None,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct HttpSpec {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: BodySpec,
    pub timeout: Duration,
    /// Statuses that mean success; empty: any 2xx.
    pub expect: Vec<u16>,
}

#[derive(Debug, Clone)]
pub struct KojiSpec {
    pub hub: String,
    pub method: String,
    /// Positional parameters; strings are templates.
    pub params: Vec<serde_json::Value>,
    /// Keyword parameters (Koji's `__starstar` struct); strings are templates.
    pub kwargs: Vec<(String, serde_json::Value)>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct RepodataSpec {
    pub url: String,
    pub package: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum ActionSpec {
    Http(HttpSpec),
    Koji(KojiSpec),
    Repodata(RepodataSpec),
}

impl ActionSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ActionSpec::Http(_) => "http",
            ActionSpec::Koji(_) => "koji",
            ActionSpec::Repodata(_) => "repodata",
        }
    }

    fn timeout(&self) -> Duration {
        match self {
            ActionSpec::Http(h) => h.timeout,
            ActionSpec::Koji(k) => k.timeout,
            ActionSpec::Repodata(r) => r.timeout,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReplySpec {
    pub success: String,
    pub not_found: String,
    pub error: String,
}

/// One validated declarative command.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub name: String,
    pub aliases: Vec<String>,
    pub summary: String,
    pub usage: String,
    pub args: Vec<ArgSpec>,
    pub role: Option<String>,
    pub confirm: bool,
    pub cooldown: Duration,
    pub action: ActionSpec,
    pub reply: ReplySpec,
    /// The secrets the request fields refer to, by environment variable name.
    pub secrets: Vec<(String, Secret)>,
}

impl CommandSpec {
    /// Invocations of guarded commands go to the audit log.
    pub fn audited(&self) -> bool {
        self.role.is_some() || self.confirm
    }
}

/// The loaded set of commands, looked up by name or alias.
#[derive(Debug, Default)]
pub struct CommandSet {
    commands: Vec<Arc<CommandSpec>>,
    by_name: BTreeMap<String, usize>,
    /// Commands left out, with the reason (a secret not in the environment).
    disabled: Vec<String>,
}

impl CommandSet {
    /// Builds a set; names and aliases must be unique (the loader reports clashes first).
    pub fn new(commands: Vec<CommandSpec>) -> Result<Self, String> {
        let mut set = CommandSet::default();
        for c in commands {
            let i = set.commands.len();
            for n in std::iter::once(&c.name).chain(&c.aliases) {
                if set.by_name.insert(n.clone(), i).is_some() {
                    return Err(format!("two commands are named {n:?}"));
                }
            }
            set.commands.push(Arc::new(c));
        }
        Ok(set)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<CommandSpec>> {
        self.by_name.get(name).map(|&i| &self.commands[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &CommandSpec> {
        self.commands.iter().map(|c| c.as_ref())
    }

    pub fn set_disabled(&mut self, disabled: Vec<String>) {
        self.disabled = disabled;
    }

    pub fn disabled(&self) -> &[String] {
        &self.disabled
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

/// A command set on its way into the core (compared by identity: sets are not comparable).
#[derive(Clone)]
pub struct CommandSetHandle(pub Arc<CommandSet>);

impl PartialEq for CommandSetHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for CommandSetHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandSet({} commands)", self.0.len())
    }
}

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

    fn args_text(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn context(&self) -> serde_json::Value {
        let args: serde_json::Map<String, serde_json::Value> = self
            .args
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        json!({
            "args": args,
            "caller": {
                "principal": self.principal.as_ref().map(ToString::to_string),
                "nick": self.nick,
            },
            "room": self.room.to_string(),
        })
    }
}

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
}

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

    /// Someone ran a declarative command.
    pub fn invoke(
        &mut self,
        spec: Arc<CommandSpec>,
        raw_args: &str,
        msg: &IncomingMessage,
        roles: &Roles,
        prefix: &str,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let room = &msg.room;
        let nick = &msg.sender.nick;
        let principal = msg.sender.principal.clone();
        let mut call = Call {
            room: room.clone(),
            nick: nick.clone(),
            principal,
            args: Vec::new(),
        };
        let mut out = Vec::new();

        if let Some(role) = &spec.role
            && !roles.has(call.principal.as_ref(), role)
        {
            call.args = vec![("line".into(), raw_args.to_owned())];
            out.push(Action::reply(
                room,
                format!("{nick}: {} needs the {role} role", spec.name),
            ));
            out.push(self.audit(&spec, &call, now, "refused: no role".into(), None));
            return out;
        }

        let cooldown_key = (spec.name.clone(), call.who());
        if let Some(cd) = self.cooldowns.get_mut(&cooldown_key)
            && now < cd.until
        {
            // One "slow down" per cooldown period, then silence: a flood gets one answer.
            if !cd.warned {
                cd.warned = true;
                let left = (cd.until - now).num_seconds().max(1);
                out.push(Action::reply(
                    room,
                    format!("{nick}: slow down; {} again in {left}s", spec.name),
                ));
            }
            if spec.audited() {
                call.args = vec![("line".into(), raw_args.to_owned())];
                out.push(self.audit(&spec, &call, now, "refused: cooldown".into(), None));
            }
            return out;
        }

        call.args = match parse_args(&spec.args, raw_args) {
            Ok(a) => a,
            Err(why) => {
                out.push(Action::reply(
                    room,
                    format!("{nick}: {why}; usage: {prefix}{}", spec.usage),
                ));
                return out;
            }
        };

        if !spec.cooldown.is_zero() {
            let until = now + TimeDelta::from_std(spec.cooldown).unwrap_or(TimeDelta::zero());
            self.cooldowns.insert(
                cooldown_key,
                Cooldown {
                    until,
                    warned: false,
                },
            );
        }

        if spec.confirm {
            if call.principal.is_none() {
                out.push(Action::reply(
                    room,
                    format!(
                        "{nick}: {} needs confirmation, and only an identified account can confirm",
                        spec.name
                    ),
                ));
                out.push(self.audit(&spec, &call, now, "refused: no account".into(), None));
                return out;
            }
            let code = self.new_code();
            let args = call.args_text();
            out.push(Action::tagged_reply(
                room,
                format!(
                    "{nick}: about to run {}{}{args}; to go ahead say {prefix}confirm {code} within 2 minutes ({prefix}cancel drops it)",
                    spec.name,
                    if args.is_empty() { "" } else { " " },
                ),
                prompt_tag(&code),
            ));
            out.push(self.audit(&spec, &call, now, "awaiting confirmation".into(), None));
            self.confirmations.push(PendingConfirm {
                code,
                spec,
                call,
                expires: now + CONFIRM_WINDOW,
            });
            return out;
        }

        out.extend(self.start(spec, call));
        out
    }

    /// `confirm CODE`.
    pub fn confirm(
        &mut self,
        code: &str,
        msg: &IncomingMessage,
        prefix: &str,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let room = &msg.room;
        let nick = &msg.sender.nick;
        let code = code.trim().to_lowercase();
        if code.is_empty() {
            return vec![Action::reply(room, format!("usage: {prefix}confirm CODE"))];
        }
        let Some(i) = self.confirmations.iter().position(|p| p.code == code) else {
            return vec![Action::reply(
                room,
                format!(
                    "{nick}: no command is waiting for code {code} (used, cancelled or never given)"
                ),
            )];
        };
        let p = &self.confirmations[i];
        let asker = Call {
            room: room.clone(),
            nick: nick.clone(),
            principal: msg.sender.principal.clone(),
            args: p.call.args.clone(),
        };
        if now > p.expires {
            let p = self.confirmations.remove(i);
            let audit = self.audit(&p.spec, &asker, now, "refused: code expired".into(), None);
            return vec![
                Action::reply(
                    room,
                    format!("{nick}: code {code} has expired; run {} again", p.spec.name),
                ),
                audit,
            ];
        }
        if p.call.principal.is_none()
            || asker.principal != p.call.principal
            || asker.room != p.call.room
        {
            let spec = p.spec.clone();
            let audit = self.audit(
                &spec,
                &asker,
                now,
                "refused: someone else's code".into(),
                None,
            );
            return vec![
                Action::reply(
                    room,
                    format!("{nick}: code {code} was not given to you in this room"),
                ),
                audit,
            ];
        }
        let p = self.confirmations.remove(i);
        let mut out = vec![
            self.audit(&p.spec, &p.call, now, "confirmed".into(), None),
            settle_prompt(&p, &format!("confirmed by {nick}")),
        ];
        if let Some(id) = &msg.id {
            out.push(Action::React {
                room: room.clone(),
                to: id.clone(),
                key: "\u{2705}".into(),
            });
        }
        out.extend(self.start(p.spec, p.call));
        out
    }

    /// `cancel`: drops the caller's pending confirmations in this room.
    pub fn cancel(&mut self, msg: &IncomingMessage, now: DateTime<Utc>) -> Vec<Action> {
        let room = &msg.room;
        let nick = &msg.sender.nick;
        let who = msg.sender.principal.as_ref();
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmations)
            .into_iter()
            .partition(|p| {
                who.is_some() && p.call.principal.as_ref() == who && &p.call.room == room
            });
        self.confirmations = rest;
        if mine.is_empty() {
            return vec![Action::reply(
                room,
                format!("{nick}: nothing is waiting for your confirmation here"),
            )];
        }
        let names: Vec<String> = mine.iter().map(|p| p.spec.name.clone()).collect();
        let mut out = vec![Action::reply(
            room,
            format!("{nick}: cancelled {}", names.join(", ")),
        )];
        for p in &mine {
            out.push(self.audit(&p.spec, &p.call, now, "cancelled".into(), None));
            out.push(settle_prompt(p, "cancelled"));
        }
        out
    }

    /// Drops expired confirmations and cooldowns.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        let (expired, live): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmations)
            .into_iter()
            .partition(|p| now > p.expires);
        self.confirmations = live;
        self.cooldowns.retain(|_, cd| now < cd.until);
        expired
            .iter()
            .flat_map(|p| {
                [
                    self.audit(&p.spec, &p.call, now, "expired unconfirmed".into(), None),
                    settle_prompt(p, "expired unconfirmed"),
                ]
            })
            .collect()
    }

    /// A request's result came back: render and send the reply.
    pub fn finished(&mut self, id: u64, outcome: FetchOutcome, now: DateTime<Utc>) -> Vec<Action> {
        let Some(InFlight { spec, call }) = self.in_flight.remove(&id) else {
            tracing::debug!(id, "result for an unknown request; ignored");
            return Vec::new();
        };
        let mut ctx = call.context();
        let (verdict, status) = classify(&spec, outcome, &mut ctx);
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

    fn render(&self, source: &str, ctx: &serde_json::Value) -> Result<String, minijinja::Error> {
        self.env.render_str(source, Value::from_serialize(ctx))
    }

    fn render_json(
        &self,
        v: &serde_json::Value,
        ctx: &serde_json::Value,
    ) -> Result<serde_json::Value, minijinja::Error> {
        Ok(match v {
            serde_json::Value::String(s) => serde_json::Value::String(self.render(s, ctx)?),
            serde_json::Value::Array(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| self.render_json(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(m) => serde_json::Value::Object(
                m.iter()
                    .map(|(k, i)| Ok((k.clone(), self.render_json(i, ctx)?)))
                    .collect::<Result<_, minijinja::Error>>()?,
            ),
            other => other.clone(),
        })
    }

    fn render_pairs(
        &self,
        pairs: &[(String, String)],
        ctx: &serde_json::Value,
    ) -> Result<Vec<(String, String)>, minijinja::Error> {
        pairs
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.render(v, ctx)?)))
            .collect()
    }

    fn render_request(
        &self,
        action: &ActionSpec,
        ctx: &serde_json::Value,
    ) -> Result<Request, minijinja::Error> {
        Ok(match action {
            ActionSpec::Http(h) => Request::Http {
                method: h.method.clone(),
                url: self.render(&h.url, ctx)?.trim().to_owned(),
                headers: self.render_pairs(&h.headers, ctx)?,
                query: self.render_pairs(&h.query, ctx)?,
                body: match &h.body {
                    BodySpec::None => RequestBody::None,
                    BodySpec::Json(v) => RequestBody::Json(self.render_json(v, ctx)?),
                    BodySpec::Form(f) => RequestBody::Form(self.render_pairs(f, ctx)?),
                    BodySpec::Text(t) => RequestBody::Text(self.render(t, ctx)?),
                },
            },
            ActionSpec::Koji(k) => {
                let mut params = k
                    .params
                    .iter()
                    .map(|p| self.render_json(p, ctx))
                    .collect::<Result<Vec<_>, _>>()?;
                if !k.kwargs.is_empty() {
                    let mut m = serde_json::Map::new();
                    for (name, v) in &k.kwargs {
                        m.insert(name.clone(), self.render_json(v, ctx)?);
                    }
                    // Koji reads keyword arguments from a struct flagged `__starstar`.
                    m.insert("__starstar".into(), serde_json::Value::Bool(true));
                    params.push(serde_json::Value::Object(m));
                }
                Request::Koji {
                    hub: self.render(&k.hub, ctx)?.trim().to_owned(),
                    method: k.method.clone(),
                    params,
                }
            }
            ActionSpec::Repodata(r) => Request::Repodata {
                url: self.render(&r.url, ctx)?.trim().to_owned(),
                package: self.render(&r.package, ctx)?.trim().to_owned(),
            },
        })
    }

    fn new_code(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        loop {
            let code: String = (0..6)
                .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            if !self.confirmations.iter().any(|p| p.code == code) {
                return code;
            }
        }
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
        } => {
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
            let verdict = if ok {
                if parsed.as_ref().is_some_and(is_empty_result) {
                    Verdict::NotFound
                } else {
                    Verdict::Success
                }
            } else if status == 404 {
                Verdict::NotFound
            } else {
                Verdict::Error(format!("HTTP {status} {reason}").trim().to_owned())
            };
            (verdict, Some(status))
        }
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

/// Splits the argument line into the declared arguments and checks their patterns.
fn parse_args(specs: &[ArgSpec], line: &str) -> Result<Vec<(String, String)>, String> {
    if line.contains([SECRET_OPEN, SECRET_CLOSE]) {
        return Err("arguments contain characters that are not allowed".into());
    }
    let mut rest = line.trim();
    let mut out = Vec::new();
    for spec in specs {
        let word = if spec.rest {
            std::mem::take(&mut rest)
        } else {
            let (w, r) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            rest = r.trim_start();
            w
        };
        if word.is_empty() {
            return Err(format!("missing <{}>", spec.name));
        }
        if !spec.pattern.is_match(word) {
            return Err(format!("<{}> does not look right", spec.name));
        }
        out.push((spec.name.clone(), word.to_owned()));
    }
    if !rest.is_empty() {
        return Err("too many arguments".into());
    }
    Ok(out)
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

/// Writes a placeholder back as `${NAME}`, for logs.
pub fn show_placeholders(text: &str) -> String {
    text.replace(SECRET_OPEN, "${").replace(SECRET_CLOSE, "}")
}
