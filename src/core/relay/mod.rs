//! The MQTT event relay (DESIGN §5 `[[relay]]`): which routes an MQTT message matches, whether
//! its `when` holds, what its template says, and whether it is a redelivery or part of a burst.
//!
//! Pure like the rest of the core: the MQTT adapter hands in [`MqttMessage`]s, the relay
//! answers with one [`RelayBatch`] per message (the chat messages to queue durably, the
//! dedup keys to remember, the acknowledgement to send once both are stored). Time comes in
//! as `now`; digests of bursts leave on [`Relay::on_tick`].
//!
//! Templates are minijinja with `SemiStrict` undefined: a template may test a missing field
//! (`{% if msg.full_url %}`) but printing one is an error, so a payload without the fields a
//! template needs is skipped and counted rather than relayed half-empty. The shipped
//! templates (`{% include "pagure.j2" %}` and friends, in `relay/templates/`) tolerate the
//! variations of real Pagure payloads.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

pub mod spec;

use super::event::RoomRef;
use super::expiring::ExpiringKeys;
pub use spec::RelaySpec;

/// Templates shipped with sigbot, available to every route by `{% include "<name>" %}`.
pub const SHIPPED_TEMPLATES: &[(&str, &str)] = &[
    ("pagure.j2", include_str!("templates/pagure.j2")),
    ("pagure.html.j2", include_str!("templates/pagure.html.j2")),
    ("cbs-signing.j2", include_str!("templates/cbs-signing.j2")),
    ("label.j2", include_str!("templates/label.j2")),
];

/// The label a digest gives each folded event when the route sets no `digest_label`.
const DEFAULT_DIGEST_LABEL: &str = r#"{% include "label.j2" %}"#;

/// How long a `max_per_minute` window lasts.
const WINDOW: TimeDelta = TimeDelta::seconds(60);

/// An MQTT message as the adapter received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttMessage {
    /// The `[[mqtt]]` connection it came from.
    pub network: String,
    pub topic: String,
    pub payload: MqttPayload,
    /// What to acknowledge once its chat messages are stored; `None` for QoS 0.
    pub delivery: Option<Delivery>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttPayload {
    Bytes(Vec<u8>),
    /// Over the connection's `max_payload`: the adapter did not pass the body on.
    TooLarge {
        len: usize,
        max: usize,
    },
}

/// The adapter's token for one received QoS 1 message: the connection it arrived on and its
/// packet id. Only the connection that received it may acknowledge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delivery {
    pub connection: u64,
    pub pkid: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttAck {
    pub network: String,
    pub delivery: Delivery,
}

/// One chat message the relay wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayMessage {
    /// The `[[relay]]` route that made it, named in the outbox and its logs.
    pub route: String,
    pub room: RoomRef,
    pub text: String,
    pub html: Option<String>,
}

/// A dedup key to remember until `until`, so that a redelivered message is posted once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenKey {
    pub key: String,
    pub until: DateTime<Utc>,
}

/// What to do about one MQTT message (or one tick): store `messages` and `seen` together,
/// then send `ack`. Storing first is what makes a crash lose nothing: an unacknowledged
/// message comes back from the broker, and `seen` keeps it from being posted twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayBatch {
    pub messages: Vec<RelayMessage>,
    pub seen: Vec<SeenKey>,
    pub ack: Option<MqttAck>,
}

impl RelayBatch {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.seen.is_empty() && self.ack.is_none()
    }
}

/// Why a message was not relayed. Every skip is logged with its topic and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    TooLarge,
    Binary,
    NotJson,
    When,
    Template,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::TooLarge => "too_large",
            SkipReason::Binary => "binary",
            SkipReason::NotJson => "not_json",
            SkipReason::When => "when_error",
            SkipReason::Template => "template_error",
        }
    }
}

/// Counters, for `status`, metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub received: u64,
    /// Events that became a chat message of their own (per route).
    pub relayed: u64,
    /// Events folded into a digest, and digests sent.
    pub folded: u64,
    pub digests: u64,
    /// Redeliveries recognised by their dedup key.
    pub duplicates: u64,
    /// Messages no route wanted.
    pub unrouted: u64,
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Events by route and outcome (one of [`OUTCOMES`]), for the metrics.
    pub by_route: BTreeMap<(String, &'static str), u64>,
    /// Digests sent, by route.
    pub digests_by_route: BTreeMap<String, u64>,
}

/// What became of an event on one route: a line of its own, a redelivery ignored, refused
/// by `when` (or a template that says nothing), folded into a digest, or skipped because its
/// payload is not what the route reads (not JSON, too large, a field missing).
pub const OUTCOMES: [&str; 5] = [
    "relayed",
    "deduplicated",
    "filtered",
    "digested",
    "bad_payload",
];

impl RelayStats {
    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.skipped.get(&reason).copied().unwrap_or(0)
    }
}

/// A route's template or expression that does not compile, or fails to render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("relay route {route}: {part}{}: {detail}", at_line(template.as_deref(), *line))]
pub struct TemplateError {
    pub route: String,
    /// `template`, `html_template`, `when`, `dedup_key` or `digest_label`.
    pub part: &'static str,
    /// The template the error is in, when it is an included one (`pagure.j2`).
    pub template: Option<String>,
    pub line: Option<usize>,
    pub detail: String,
}

fn at_line(template: Option<&str>, line: Option<usize>) -> String {
    match (template, line) {
        (Some(t), Some(l)) => format!(" ({t} line {l})"),
        (Some(t), None) => format!(" ({t})"),
        (None, Some(l)) => format!(" line {l}"),
        (None, None) => String::new(),
    }
}

impl TemplateError {
    fn new(route: &str, part: &'static str, own_name: &str, err: &minijinja::Error) -> Self {
        // The innermost error says where it really went wrong (an included template).
        let mut inner: &minijinja::Error = err;
        while let Some(src) =
            std::error::Error::source(inner).and_then(|s| s.downcast_ref::<minijinja::Error>())
        {
            inner = src;
        }
        let template = inner.name().filter(|n| *n != own_name).map(str::to_owned);
        let detail = match inner.detail() {
            Some(d) => format!("{}: {d}", inner.kind()),
            None => inner.kind().to_string(),
        };
        Self {
            route: route.to_owned(),
            part,
            template,
            line: inner.line(),
            detail,
        }
    }
}

/// An MQTT topic filter (`+` one level, `#` the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter(String);

impl TopicFilter {
    /// Checks the filter's syntax: `#` only as the whole last level, `+` only as a whole
    /// level.
    pub fn parse(filter: &str) -> Result<Self, String> {
        if filter.is_empty() {
            return Err("topic filter is empty".to_owned());
        }
        let levels: Vec<&str> = filter.split('/').collect();
        for (i, level) in levels.iter().enumerate() {
            if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
                return Err(format!(
                    "topic filter {filter:?}: '#' must be the whole last level"
                ));
            }
            if level.contains('+') && *level != "+" {
                return Err(format!(
                    "topic filter {filter:?}: '+' must be a whole level"
                ));
            }
        }
        Ok(Self(filter.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, topic: &str) -> bool {
        // Wildcards at the first level do not match the broker's own `$SYS/...` topics.
        if topic.starts_with('$') && matches!(self.0.as_bytes().first(), Some(b'+' | b'#')) {
            return false;
        }
        let mut filter = self.0.split('/');
        let mut levels = topic.split('/');
        loop {
            match (filter.next(), levels.next()) {
                (Some("#"), _) => return true,
                (Some("+"), Some(_)) => {}
                (Some(f), Some(t)) if f == t => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

struct Route {
    name: String,
    from: String,
    filter: TopicFilter,
    has_when: bool,
    has_html: bool,
    has_dedup_key: bool,
    to: Vec<RoomRef>,
    max_per_minute: Option<u32>,
    dedup_window: TimeDelta,
    window: Option<BurstWindow>,
}

/// One minute of a route's traffic: how many events went out alone, and what was folded.
struct BurstWindow {
    start: DateTime<Utc>,
    sent: u32,
    /// topic -> label -> count
    folded: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The names a route's templates get in the environment.
fn tpl_name(route: &str, part: &str) -> String {
    match part {
        "html_template" => format!("route:{route}:html_template.html"),
        _ => format!("route:{route}:{part}"),
    }
}

/// The most dedup keys kept in memory, whatever the event rate (about 40 bytes each): past
/// it, the keys closest to expiry are forgotten first.
pub const DEDUP_KEYS: usize = super::expiring::DEFAULT_CAP;

/// The relay: every route, compiled, with its dedup memory and burst windows.
pub struct Relay {
    env: Environment<'static>,
    routes: Vec<Route>,
    seen: ExpiringKeys,
    last_prune: Option<DateTime<Utc>>,
    stats: RelayStats,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("routes", &self.routes.len())
            .field("seen", &self.seen.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// The environment every route's templates live in, with the shipped templates.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") || name.ends_with(".html.j2") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    // Drops the "safe" mark of captured output, so that autoescape applies to it again.
    env.add_filter("plain", |v: String| v);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    for (name, source) in SHIPPED_TEMPLATES {
        env.add_template(name, source)
            .expect("shipped relay templates compile (checked by tests)");
    }
    env
}

impl Relay {
    /// Compiles every route's templates and expressions.
    pub fn new(configs: &[RelaySpec]) -> Result<Relay, TemplateError> {
        let mut env = environment();
        let mut routes = Vec::new();
        for c in configs {
            let filter = TopicFilter::parse(&c.topic).map_err(|detail| TemplateError {
                route: c.name.clone(),
                part: "topic",
                template: None,
                line: None,
                detail,
            })?;
            let mut add = |part: &'static str, source: String| -> Result<(), TemplateError> {
                let name = tpl_name(&c.name, part);
                env.add_template_owned(name.clone(), source)
                    .map_err(|e| TemplateError::new(&c.name, part, &name, &e))
            };
            add("template", c.template.clone())?;
            if let Some(h) = &c.html_template {
                add("html_template", h.clone())?;
            }
            // Expressions become tiny templates, so the environment owns them by name.
            if let Some(w) = &c.when {
                add("when", format!("{{% if ({w}) %}}1{{% endif %}}"))?;
            }
            if let Some(k) = &c.dedup_key {
                add("dedup_key", format!("{{{{ ({k}) }}}}"))?;
            }
            add(
                "digest_label",
                c.digest_label
                    .clone()
                    .unwrap_or_else(|| DEFAULT_DIGEST_LABEL.to_owned()),
            )?;
            routes.push(Route {
                name: c.name.clone(),
                from: c.from.clone(),
                filter,
                has_when: c.when.is_some(),
                has_html: c.html_template.is_some(),
                has_dedup_key: c.dedup_key.is_some(),
                to: c.to.clone(),
                max_per_minute: c.max_per_minute,
                dedup_window: TimeDelta::from_std(c.dedup_window).unwrap_or(TimeDelta::hours(1)),
                window: None,
            });
        }
        Ok(Relay {
            env,
            routes,
            seen: ExpiringKeys::new(DEDUP_KEYS),
            last_prune: None,
            stats: RelayStats::default(),
        })
    }

    /// The topic filters to subscribe to on `network`, without repeats.
    pub fn filters_for(&self, network: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self.routes.iter().filter(|r| r.from == network) {
            if !out.iter().any(|f| f == r.filter.as_str()) {
                out.push(r.filter.as_str().to_owned());
            }
        }
        out
    }

    /// Takes the routes of `new` (a config reload) and keeps this relay's memory: the dedup
    /// keys (a key names its route, so a route that keeps its name keeps its duplicates
    /// out), the statistics, and the open burst window of each route that keeps its name.
    /// The windows of routes that are gone are closed: their digests are returned.
    pub fn adopt(&mut self, new: Relay) -> RelayBatch {
        let mut windows: BTreeMap<String, BurstWindow> = self
            .routes
            .iter_mut()
            .filter_map(|r| r.window.take().map(|w| (r.name.clone(), w)))
            .collect();
        for r in &mut self.routes {
            if new.routes.iter().any(|n| n.name == r.name) {
                continue;
            }
            r.window = windows.remove(&r.name);
        }
        let mut batch = RelayBatch::default();
        self.flush_windows(None, &mut batch);
        self.env = new.env;
        self.routes = new.routes;
        for r in &mut self.routes {
            r.window = windows.remove(&r.name);
        }
        batch
    }

    /// Dedup keys stored before a restart, still within their window.
    pub fn remember(&mut self, seen: impl IntoIterator<Item = SeenKey>) {
        for s in seen {
            self.seen.insert(&s.key, s.until);
        }
    }

    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    fn skip(&mut self, reason: SkipReason) {
        *self.stats.skipped.entry(reason).or_default() += 1;
    }

    /// Counts one event of route `i` with `outcome` (one of [`OUTCOMES`]).
    fn count(&mut self, i: usize, outcome: &'static str) {
        let key = (self.routes[i].name.clone(), outcome);
        *self.stats.by_route.entry(key).or_default() += 1;
    }

    /// Routes one MQTT message.
    pub fn on_message(&mut self, msg: MqttMessage, now: DateTime<Utc>) -> RelayBatch {
        self.stats.received += 1;
        let mut batch = RelayBatch {
            ack: msg.delivery.map(|delivery| MqttAck {
                network: msg.network.clone(),
                delivery,
            }),
            ..RelayBatch::default()
        };
        // Digests of windows that closed since the last tick go out first.
        self.flush_windows(Some(now), &mut batch);
        let topic = msg.topic.as_str();
        let wanted: Vec<usize> = (0..self.routes.len())
            .filter(|&i| self.routes[i].from == msg.network && self.routes[i].filter.matches(topic))
            .collect();
        if wanted.is_empty() {
            self.stats.unrouted += 1;
            return batch;
        }
        let bytes = match &msg.payload {
            MqttPayload::Bytes(b) => b.as_slice(),
            MqttPayload::TooLarge { len, max } => {
                self.skip(SkipReason::TooLarge);
                for &i in &wanted {
                    self.count(i, "bad_payload");
                }
                tracing::warn!(network = %msg.network, topic, len, max, reason = "payload larger than max_payload", skipped = self.stats.skipped(SkipReason::TooLarge), "MQTT message skipped");
                return batch;
            }
        };
        let payload = match parse_payload(bytes) {
            Ok(v) => v,
            Err((reason, detail)) => {
                self.skip(reason);
                for &i in &wanted {
                    self.count(i, "bad_payload");
                }
                tracing::warn!(network = %msg.network, topic, reason = %detail, skipped = self.stats.skipped(reason), "MQTT message skipped");
                return batch;
            }
        };
        let ctx = minijinja::context! {
            topic => topic,
            event => topic.rsplit('/').next().unwrap_or(topic),
            msg => payload,
        };
        let mut payload_hash: Option<String> = None;
        for i in wanted {
            self.route_one(i, &msg, bytes, &ctx, &mut payload_hash, now, &mut batch);
        }
        batch
    }

    /// One route's part in one message: its `when`, the duplicate check, then a line for
    /// its rooms, or a count in the digest while the route is over its rate.
    #[allow(clippy::too_many_arguments)]
    fn route_one(
        &mut self,
        i: usize,
        msg: &MqttMessage,
        bytes: &[u8],
        ctx: &Value,
        payload_hash: &mut Option<String>,
        now: DateTime<Utc>,
        batch: &mut RelayBatch,
    ) {
        let topic = msg.topic.as_str();
        let rname = self.routes[i].name.clone();
        if !self.wanted_when(i, msg, ctx) {
            return;
        }
        let key = self.dedup_key(i, &msg.network, topic, bytes, ctx, payload_hash);
        if self.seen.contains(&key, now) {
            self.stats.duplicates += 1;
            self.count(i, "deduplicated");
            tracing::debug!(network = %msg.network, topic, route = %rname, "duplicate MQTT message ignored");
            return;
        }
        if self.over_rate(i, now) {
            self.fold(i, topic, ctx);
        } else if !self.send(i, msg, ctx, batch) {
            return;
        }
        self.remember_key(key, i, now, batch);
    }

    /// Whether route `i`'s `when` (if it has one) renders `1` for this message; a `when`
    /// that fails counts as a skip.
    fn wanted_when(&mut self, i: usize, msg: &MqttMessage, ctx: &Value) -> bool {
        if !self.routes[i].has_when {
            return true;
        }
        let rname = self.routes[i].name.clone();
        match self.render(&rname, "when", ctx) {
            Ok(s) if s == "1" => true,
            Ok(_) => {
                self.count(i, "filtered");
                false
            }
            Err(e) => {
                self.skip(SkipReason::When);
                self.count(i, "bad_payload");
                tracing::warn!(network = %msg.network, topic = msg.topic.as_str(), route = %rname, reason = %e, skipped = self.stats.skipped(SkipReason::When), "MQTT message skipped");
                false
            }
        }
    }

    /// Whether route `i` already sent its `max_per_minute` lines in the current window
    /// (which this opens when the route has a limit and no window yet).
    fn over_rate(&mut self, i: usize, now: DateTime<Utc>) -> bool {
        let route = &mut self.routes[i];
        let Some(max) = route.max_per_minute else {
            return false;
        };
        let w = route.window.get_or_insert_with(|| BurstWindow {
            start: now,
            sent: 0,
            folded: BTreeMap::new(),
        });
        w.sent >= max
    }

    /// Counts the event in the window's digest, under its topic and digest label.
    fn fold(&mut self, i: usize, topic: &str, ctx: &Value) {
        let rname = self.routes[i].name.clone();
        let label = self
            .render(&rname, "digest_label", ctx)
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        let w = self.routes[i]
            .window
            .as_mut()
            .expect("window exists when over the limit");
        // A flood of new topics or labels must not grow the window without bound: past the
        // caps, events are counted without their topic or label.
        let topic = if w.folded.len() >= MAX_FOLDED && !w.folded.contains_key(topic) {
            OTHER_TOPICS
        } else {
            topic
        };
        let labels = w.folded.entry(topic.to_owned()).or_default();
        let label = if labels.len() >= MAX_FOLDED && !labels.contains_key(&label) {
            String::new()
        } else {
            label
        };
        *labels.entry(label).or_default() += 1;
        self.stats.folded += 1;
        self.count(i, "digested");
        tracing::debug!(topic, route = %rname, "MQTT event folded into the digest");
    }

    /// Renders the route's line and puts it in the batch for each of its rooms. `false`
    /// when the template fails: the event is skipped and not remembered as seen.
    fn send(&mut self, i: usize, msg: &MqttMessage, ctx: &Value, batch: &mut RelayBatch) -> bool {
        let topic = msg.topic.as_str();
        let rname = self.routes[i].name.clone();
        let text = match self.render(&rname, "template", ctx) {
            Ok(t) => t,
            Err(e) => {
                self.skip(SkipReason::Template);
                self.count(i, "bad_payload");
                tracing::warn!(network = %msg.network, topic, route = %rname, reason = %e, skipped = self.stats.skipped(SkipReason::Template), "MQTT message skipped");
                return false;
            }
        };
        let text = text.trim().to_owned();
        if text.is_empty() {
            // A template may decide, by saying nothing, that an event is not worth a line.
            tracing::debug!(topic, route = %rname, "template rendered nothing");
            self.count(i, "filtered");
            return true;
        }
        let html = self.html(i, topic, ctx);
        if let Some(w) = self.routes[i].window.as_mut() {
            w.sent += 1;
        }
        for room in &self.routes[i].to {
            batch.messages.push(RelayMessage {
                route: rname.clone(),
                room: room.clone(),
                text: text.clone(),
                html: html.clone(),
            });
        }
        self.stats.relayed += 1;
        self.count(i, "relayed");
        true
    }

    /// The route's HTML line, if it has an `html_template` that renders something.
    fn html(&mut self, i: usize, topic: &str, ctx: &Value) -> Option<String> {
        if !self.routes[i].has_html {
            return None;
        }
        let rname = self.routes[i].name.clone();
        match self.render(&rname, "html_template", ctx) {
            Ok(h) if !h.trim().is_empty() => Some(h.trim().to_owned()),
            Ok(_) => None,
            Err(e) => {
                // The plain text is still good: send it without HTML.
                tracing::warn!(topic, route = %rname, reason = %e, "HTML template failed; sending plain text");
                None
            }
        }
    }

    fn remember_key(&mut self, key: String, i: usize, now: DateTime<Utc>, batch: &mut RelayBatch) {
        let until = now + self.routes[i].dedup_window;
        self.seen.insert(&key, until);
        batch.seen.push(SeenKey { key, until });
    }

    fn dedup_key(
        &self,
        i: usize,
        network: &str,
        topic: &str,
        bytes: &[u8],
        ctx: &Value,
        payload_hash: &mut Option<String>,
    ) -> String {
        let route = &self.routes[i];
        if route.has_dedup_key {
            match self.render(&route.name, "dedup_key", ctx) {
                Ok(k) if !k.is_empty() => return format!("{}\u{1f}k\u{1f}{k}", route.name),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(route = %route.name, reason = %e, "dedup_key failed; using the payload hash");
                }
            }
        }
        let hash = payload_hash.get_or_insert_with(|| {
            // A dedup key needs no more than collision resistance; BLAKE3 gives it at a
            // fraction of SHA-256's cost per event.
            let mut h = blake3::Hasher::new();
            h.update(network.as_bytes());
            h.update(&[0]);
            h.update(topic.as_bytes());
            h.update(&[0]);
            h.update(bytes);
            let d = h.finalize();
            let mut hex = String::with_capacity(32);
            for b in &d.as_bytes()[..16] {
                use std::fmt::Write as _;
                let _ = write!(hex, "{b:02x}");
            }
            hex
        });
        format!("{}\u{1f}h\u{1f}{hash}", route.name)
    }

    fn render(
        &self,
        route: &str,
        part: &'static str,
        ctx: &Value,
    ) -> Result<String, TemplateError> {
        let name = tpl_name(route, part);
        self.env
            .get_template(&name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| TemplateError::new(route, part, &name, &e))
    }

    /// Time-based work: digests of closed windows, forgetting expired dedup keys.
    pub fn on_tick(&mut self, now: DateTime<Utc>) -> RelayBatch {
        let mut batch = RelayBatch::default();
        self.flush_windows(Some(now), &mut batch);
        if self.last_prune.is_none_or(|t| now - t >= WINDOW) {
            self.seen.prune(now);
            self.last_prune = Some(now);
        }
        batch
    }

    /// At shutdown: the digests of every open window, so that the events folded into them
    /// (acknowledged and remembered already) are stored with them and told after the restart.
    pub fn on_shutdown(&mut self) -> RelayBatch {
        let mut batch = RelayBatch::default();
        self.flush_windows(None, &mut batch);
        batch
    }

    /// The digests of the windows closed at `now`, or of all of them.
    fn flush_windows(&mut self, now: Option<DateTime<Utc>>, batch: &mut RelayBatch) {
        for route in &mut self.routes {
            let Some(w) = &route.window else { continue };
            if now.is_some_and(|now| now - w.start < WINDOW) {
                continue;
            }
            let w = route.window.take().expect("checked above");
            if w.folded.is_empty() {
                continue;
            }
            let text = digest_text(&w.folded);
            for room in &route.to {
                batch.messages.push(RelayMessage {
                    route: route.name.clone(),
                    room: room.clone(),
                    text: text.clone(),
                    html: None,
                });
            }
            self.stats.digests += 1;
            *self
                .stats
                .digests_by_route
                .entry(route.name.clone())
                .or_default() += 1;
        }
    }
}

/// "12 more git.centos.org/git.receive events: rpms/systemd c9s ×5, rpms/kernel c9s ×7".
fn digest_text(folded: &BTreeMap<String, BTreeMap<String, u64>>) -> String {
    let parts: Vec<String> = folded
        .iter()
        .map(|(topic, labels)| {
            let n: u64 = labels.values().sum();
            let mut items: Vec<(&String, &u64)> =
                labels.iter().filter(|(l, _)| !l.is_empty()).collect();
            items.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let what = if n == 1 { "event" } else { "events" };
            if items.is_empty() {
                return format!("{n} more {topic} {what}");
            }
            let mut list: Vec<String> = items
                .iter()
                .take(DIGEST_LABELS)
                .map(|(l, c)| format!("{l} ×{c}"))
                .collect();
            let named: u64 = items.iter().take(DIGEST_LABELS).map(|(_, c)| **c).sum();
            if n > named {
                list.push(format!("and {} more", n - named));
            }
            format!("{n} more {topic} {what}: {}", list.join(", "))
        })
        .collect();
    parts.join("; ")
}

/// How many labels a digest names per topic; the rest are counted.
const DIGEST_LABELS: usize = 10;
/// How many topics, and labels per topic, one burst window keeps apart.
const MAX_FOLDED: usize = 100;
/// Where the events of topics past [`MAX_FOLDED`] are counted.
const OTHER_TOPICS: &str = "other";

/// Reads a payload as JSON, or says why not.
/// Straight into minijinja's `Value`: no intermediate `serde_json::Value` tree.
fn parse_payload(bytes: &[u8]) -> Result<Value, (SkipReason, String)> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        (
            SkipReason::Binary,
            format!("binary payload ({} bytes, not UTF-8: {e})", bytes.len()),
        )
    })?;
    if text.contains('\0') {
        return Err((
            SkipReason::Binary,
            "binary payload (contains NUL)".to_owned(),
        ));
    }
    serde_json::from_str(text).map_err(|e| (SkipReason::NotJson, format!("not JSON: {e}")))
}

#[cfg(test)]
mod tests;
