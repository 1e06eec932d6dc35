//! Configuration (DESIGN §5), read in two stages.
//!
//! Stage one: `${ENV}` references are expanded over the parsed TOML tree (an unset variable
//! is an error at its location), then serde reads the `Raw*` structs with
//! `deny_unknown_fields`. Stage two: [`check`] turns the raw structs into the validated
//! [`Config`], reporting problems as `file:line:col: message`.

pub mod commands;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::core::relay::RelaySpec;
use crate::core::watch::{PackageSource, WatchSpec};
use crate::core::{Principal, RoomRef, Secret};

/// A config error with its location in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{col}: {message}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

// ---------------------------------------------------------------------------------------
// Stage one: the raw file, as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    bot: RawBot,
    web: Option<RawWeb>,
    console: Option<RawConsole>,
    #[serde(default)]
    irc: Vec<RawIrc>,
    #[serde(default)]
    matrix: Vec<RawMatrix>,
    #[serde(default)]
    mqtt: Vec<RawMqtt>,
    broker: Option<RawBroker>,
    #[serde(default)]
    bridge: Vec<RawBridge>,
    #[serde(default)]
    relay: Vec<RawRelay>,
    #[serde(default)]
    watch: Vec<RawWatch>,
    meetings: Option<RawMeetings>,
    #[serde(default)]
    roles: BTreeMap<String, Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBot {
    nick: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    data_dir: Option<String>,
    commands_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    listen: Option<Spanned<String>>,
    public_url: Option<Spanned<String>>,
    #[serde(default = "yes")]
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    name: Option<Spanned<String>>,
    room: Option<Spanned<String>>,
    #[serde(default = "yes")]
    enabled: bool,
}

/// A secret as written: a string (after `${ENV}` expansion) or `{ file = "path" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSecret {
    Inline(String),
    File(RawSecretFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretFile {
    file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSasl {
    #[serde(default = "sasl_plain")]
    mechanism: Spanned<String>,
    user: Option<String>,
    password: Option<Spanned<RawSecret>>,
}

fn sasl_plain() -> Spanned<String> {
    Spanned::new(0..0, "PLAIN".to_owned())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    burst: Spanned<u32>,
    per_second: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIrc {
    name: Spanned<String>,
    server: Spanned<String>,
    #[serde(default = "yes")]
    tls: bool,
    ca_file: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    nick: Option<String>,
    #[serde(default)]
    alt_nicks: Vec<String>,
    username: Option<String>,
    realname: Option<String>,
    password: Option<Spanned<RawSecret>>,
    sasl: Option<RawSasl>,
    nickserv_password: Option<Spanned<RawSecret>>,
    #[serde(default)]
    channels: Vec<Spanned<String>>,
    rate: Option<RawRate>,
    queue_limit: Option<usize>,
    staleness: Option<Spanned<String>>,
    rejoin_delay: Option<Spanned<String>>,
    ping_timeout: Option<Spanned<String>>,
    #[serde(default)]
    relaymsg: bool,
    private_replies: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    name: Spanned<String>,
    homeserver: Spanned<String>,
    user: Spanned<String>,
    password: Option<Spanned<RawSecret>>,
    access_token: Option<Spanned<RawSecret>>,
    device_name: Option<String>,
    #[serde(default)]
    rooms: Vec<Spanned<String>>,
    #[serde(default)]
    encrypted_rooms: bool,
    #[serde(default)]
    invites_from: Vec<String>,
    catch_up: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    name: Spanned<String>,
    url: Spanned<String>,
    client_id: Option<String>,
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    username: Option<String>,
    password: Option<Spanned<RawSecret>>,
    keep_alive: Option<Spanned<String>>,
    #[serde(default)]
    clean_session: bool,
    max_payload: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBroker {
    listen: Spanned<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBridge {
    name: Spanned<String>,
    rooms: Vec<Spanned<String>>,
    nick_format: Option<String>,
    max_lines: Option<usize>,
    edits: Option<Spanned<String>>,
    #[serde(default)]
    join_part: bool,
    #[serde(default)]
    quits: bool,
    #[serde(default)]
    nick_changes: bool,
    #[serde(default)]
    topics: bool,
    #[serde(default)]
    ignore_nicks: Vec<String>,
    #[serde(default)]
    ignore_users: Vec<String>,
    #[serde(default)]
    ignore_regex: Vec<String>,
    #[serde(default)]
    reactions: bool,
    #[serde(default)]
    redactions: bool,
    #[serde(default)]
    relaymsg: bool,
    staleness: Option<Spanned<String>>,
    max_mentions: Option<usize>,
    #[serde(default)]
    encrypted: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelay {
    name: Option<String>,
    from: Spanned<String>,
    topic: Spanned<String>,
    when: Option<Spanned<String>>,
    template: Spanned<String>,
    html_template: Option<Spanned<String>>,
    to: Vec<Spanned<String>>,
    max_per_minute: Option<Spanned<u32>>,
    dedup_key: Option<Spanned<String>>,
    dedup_window: Option<Spanned<String>>,
    digest_label: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    name: Spanned<String>,
    packages: Spanned<Vec<Spanned<String>>>,
    ours: Spanned<RawPackageSource>,
    upstream: Spanned<RawPackageSource>,
    to: Vec<Spanned<String>>,
    poll: Option<Spanned<String>>,
    on: Option<Spanned<RawOneOrMany>>,
    from: Option<Spanned<String>>,
}

/// `{ repodata = URL }` or `{ koji = { hub, tag } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackageSource {
    repodata: Option<Spanned<String>>,
    koji: Option<RawKojiTag>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKojiTag {
    hub: Spanned<String>,
    tag: Spanned<String>,
}

/// One string or a list of them, keeping each one's span.
#[derive(Debug)]
struct RawOneOrMany(Vec<Spanned<String>>);

impl<'de> Deserialize<'de> for RawOneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<Spanned<String>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a topic filter or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                // A lone string: its span is the whole value's, which the caller has.
                Ok(vec![Spanned::new(0..0, v.to_owned())])
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element()? {
                    out.push(s);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V).map(RawOneOrMany)
    }
}

/// `"all"` or a list of room references. Written by hand rather than `untagged`, which
/// would buffer the values and lose the spans that error messages need.
#[derive(Debug)]
enum RawMeetingRooms {
    All(String),
    List(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawMeetingRooms {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawMeetingRooms;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\" or a list of rooms")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawMeetingRooms::All(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut rooms = Vec::new();
                while let Some(r) = seq.next_element()? {
                    rooms.push(r);
                }
                Ok(RawMeetingRooms::List(rooms))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeetings {
    rooms: Spanned<RawMeetingRooms>,
}

fn yes() -> bool {
    true
}

// ---------------------------------------------------------------------------------------
// Stage two: the validated config.

#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    pub bot: BotConfig,
    pub web: Option<WebConfig>,
    pub console: Option<ConsoleConfig>,
    pub irc: Vec<IrcConfig>,
    pub matrix: Vec<MatrixConfig>,
    pub mqtt: Vec<MqttConfig>,
    pub broker: Option<BrokerConfig>,
    pub bridges: Vec<BridgeConfig>,
    pub relays: Vec<RelaySpec>,
    pub watches: Vec<WatchSpec>,
    pub meetings: MeetingRooms,
    pub roles: BTreeMap<String, Vec<Principal>>,
}

#[derive(Debug, Clone)]
pub struct BotConfig {
    pub nick: String,
    pub prefix: String,
    pub data_dir: PathBuf,
    pub commands_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct WebConfig {
    pub listen: SocketAddr,
    pub public_url: String,
}

#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    pub name: String,
    pub room: String,
}

impl ConsoleConfig {
    pub fn room_ref(&self) -> RoomRef {
        RoomRef::new(&self.name, &self.room)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub burst: u32,
    pub per_second: f64,
}

#[derive(Debug, Clone)]
pub enum Sasl {
    Plain { user: String, password: Secret },
    External,
}

#[derive(Debug, Clone)]
pub struct IrcChannel {
    pub name: String,
    pub key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct IrcConfig {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub nick: String,
    pub alt_nicks: Vec<String>,
    pub username: String,
    pub realname: String,
    pub password: Option<Secret>,
    pub sasl: Option<Sasl>,
    pub nickserv_password: Option<Secret>,
    pub channels: Vec<IrcChannel>,
    pub rate: Rate,
    pub queue_limit: usize,
    pub staleness: Duration,
    pub rejoin_delay: Duration,
    pub ping_timeout: Duration,
    pub relaymsg: bool,
    /// Lower-cased bridged channels whose relayed lines go out as RELAYMSG where the server
    /// offers `draft/relaymsg`: those of bridges with `relaymsg = true`, or every bridged
    /// channel when this network says `relaymsg = true`.
    pub relaymsg_channels: Vec<String>,
    /// Answers to private messages go out as NOTICE (true) or PRIVMSG (false).
    pub private_notice: bool,
}

#[derive(Debug, Clone)]
pub enum MatrixAuth {
    Password(Secret),
    AccessToken(Secret),
}

#[derive(Debug, Clone)]
pub struct MatrixConfig {
    pub name: String,
    pub homeserver: String,
    pub user: String,
    pub auth: MatrixAuth,
    pub device_name: String,
    pub rooms: Vec<String>,
    pub encrypted_rooms: bool,
    pub invites_from: Vec<String>,
    pub catch_up: Duration,
}

#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub name: String,
    pub url: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub keep_alive: Duration,
    pub clean_session: bool,
    pub max_payload: usize,
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditMode {
    Diff,
    Full,
    Ignore,
}

#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub name: String,
    pub rooms: Vec<RoomRef>,
    pub nick_format: Option<String>,
    pub max_lines: usize,
    pub edits: EditMode,
    /// Relay joins, parts and kicks (default no).
    pub join_part: bool,
    /// Relay quits, netsplits summed up in one line (default no).
    pub quits: bool,
    /// Relay nick changes (default no).
    pub nick_changes: bool,
    /// Relay topic changes (default no).
    pub topics: bool,
    pub ignore_nicks: Vec<String>,
    pub ignore_users: Vec<String>,
    pub ignore_regex: Vec<String>,
    pub reactions: bool,
    pub redactions: bool,
    pub relaymsg: bool,
    pub staleness: Duration,
    /// A line mentioning more members of an IRC channel than this is defused (default 5).
    pub max_mentions: usize,
    /// Whether end-to-end encrypted Matrix rooms of this bridge are relayed (default no).
    pub encrypted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeetingRooms {
    None,
    All,
    Some(Vec<RoomRef>),
}

impl MeetingRooms {
    pub fn contains(&self, room: &RoomRef) -> bool {
        match self {
            MeetingRooms::None => false,
            MeetingRooms::All => true,
            MeetingRooms::Some(rooms) => rooms.contains(room),
        }
    }
}

/// What kind of network a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkKind {
    Console,
    Irc,
    Matrix,
    Mqtt,
}

impl NetworkKind {
    pub fn is_chat(self) -> bool {
        !matches!(self, NetworkKind::Mqtt)
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: 0,
            col: 0,
            message: format!("cannot read config: {e}"),
        })?;
        Self::from_str_with_env(&text, path, &|name| std::env::var(name).ok())
    }

    /// Reads a config from text, taking environment variables from `env`.
    pub fn from_str_with_env(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let loc = Locator { text, path };
        let mut table = DeTable::parse(text).map_err(|e| loc.toml_error(&e))?;
        table.get_mut().make_owned();
        expand_env_table(table.get_mut(), env, &loc)?;
        let de = toml::de::Deserializer::from(table);
        let raw = RawConfig::deserialize(de).map_err(|e| loc.toml_error(&e))?;
        check(raw, &loc)
    }

    /// Every network name with its kind.
    pub fn networks(&self) -> Vec<(String, NetworkKind)> {
        let mut out = Vec::new();
        if let Some(c) = &self.console {
            out.push((c.name.clone(), NetworkKind::Console));
        }
        out.extend(self.irc.iter().map(|n| (n.name.clone(), NetworkKind::Irc)));
        out.extend(
            self.matrix
                .iter()
                .map(|n| (n.name.clone(), NetworkKind::Matrix)),
        );
        out.extend(
            self.mqtt
                .iter()
                .map(|n| (n.name.clone(), NetworkKind::Mqtt)),
        );
        out
    }

    /// A short human summary, for `check-config`. Never shows secrets.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "{}: ok", self.path.display());
        let _ = writeln!(
            s,
            "bot: nick {}, prefix {:?}, data_dir {}",
            self.bot.nick,
            self.bot.prefix,
            self.bot.data_dir.display()
        );
        if let Some(c) = &self.console {
            let _ = writeln!(s, "console: {}", c.room_ref());
        }
        for n in &self.irc {
            let _ = writeln!(
                s,
                "irc {}: {}:{}{} as {}, {} channel(s){}",
                n.name,
                n.host,
                n.port,
                if n.tls { " (tls)" } else { "" },
                n.nick,
                n.channels.len(),
                match &n.sasl {
                    Some(Sasl::Plain { .. }) => ", sasl plain",
                    Some(Sasl::External) => ", sasl external",
                    None => "",
                }
            );
        }
        for n in &self.matrix {
            let _ = writeln!(
                s,
                "matrix {}: {} on {}, {} room(s){}",
                n.name,
                n.user,
                n.homeserver,
                n.rooms.len(),
                if n.encrypted_rooms { ", e2ee" } else { "" }
            );
        }
        for n in &self.mqtt {
            let _ = writeln!(s, "mqtt {}: {}", n.name, n.url);
        }
        if let Some(b) = &self.broker {
            let _ = writeln!(s, "embedded broker: {}", b.listen);
        }
        for b in &self.bridges {
            let rooms: Vec<String> = b.rooms.iter().map(ToString::to_string).collect();
            let _ = writeln!(s, "bridge {}: {}", b.name, rooms.join(" <-> "));
        }
        if !self.relays.is_empty() {
            let _ = writeln!(s, "relays: {}", self.relays.len());
        }
        for w in &self.watches {
            let _ = writeln!(
                s,
                "watch {}: {} package(s), every {}",
                w.name,
                w.packages.len(),
                humantime::format_duration(w.poll)
            );
        }
        match &self.meetings {
            MeetingRooms::None => {}
            MeetingRooms::All => {
                let _ = writeln!(s, "meetings: all rooms");
            }
            MeetingRooms::Some(r) => {
                let _ = writeln!(s, "meetings: {} room(s)", r.len());
            }
        }
        if let Some(w) = &self.web {
            let _ = writeln!(s, "web: {} ({})", w.listen, w.public_url);
        }
        for (role, who) in &self.roles {
            let _ = writeln!(s, "role {role}: {} principal(s)", who.len());
        }
        s
    }
}

/// Turns byte offsets into `file:line:col` errors (for the config and the command files).
pub(crate) struct Locator<'a> {
    pub(crate) text: &'a str,
    pub(crate) path: &'a Path,
}

impl Locator<'_> {
    pub(crate) fn at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..offset].chars().count() + 1;
        ConfigError {
            file: self.path.to_owned(),
            line,
            col,
            message: message.into(),
        }
    }

    pub(crate) fn span<T>(&self, s: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.at(s.span().start, message)
    }

    /// An error at `s` that names the key it is about: `key: message`.
    pub(crate) fn span_key<T>(
        &self,
        s: &Spanned<T>,
        key: &str,
        message: impl std::fmt::Display,
    ) -> ConfigError {
        self.at(s.span().start, format!("{key}: {message}"))
    }

    pub(crate) fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let offset = e.span().map_or(0, |s| s.start);
        self.at(offset, e.message().trim().replace('\n', " "))
    }
}

fn expand_env_table(
    table: &mut DeTable<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    loc: &Locator<'_>,
) -> Result<(), ConfigError> {
    for (_, value) in table.iter_mut() {
        expand_env_value(value, env, loc)?;
    }
    Ok(())
}

fn expand_env_value(
    value: &mut Spanned<DeValue<'_>>,
    env: &dyn Fn(&str) -> Option<String>,
    loc: &Locator<'_>,
) -> Result<(), ConfigError> {
    let start = value.span().start;
    match value.get_mut() {
        DeValue::String(s) if s.contains("${") => {
            let expanded = expand_env(s, env).map_err(|m| loc.at(start, m))?;
            *s = expanded.into();
        }
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                expand_env_value(item, env, loc)?;
            }
        }
        DeValue::Table(t) => expand_env_table(t, env, loc)?,
        _ => {}
    }
    Ok(())
}

/// Expands `${NAME}` references; `$${` stands for a literal `${`.
pub fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {:?}", redact_hint(s)))?;
            let name = &tail[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad environment variable name {name:?}"));
            }
            let value =
                env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn redact_hint(s: &str) -> String {
    // The string may hold a secret around the reference: show only its shape.
    s.chars().take(12).collect::<String>() + "…"
}

fn parse_duration(
    loc: &Locator<'_>,
    s: &Spanned<String>,
    key: &str,
) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s.get_ref().trim()).map_err(|e| {
        loc.span(
            s,
            format!(
                "{key}: bad duration {:?} ({e}); write e.g. \"10s\", \"5m\"",
                s.get_ref()
            ),
        )
    })
}

fn opt_duration(
    loc: &Locator<'_>,
    s: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match s {
        Some(s) => parse_duration(loc, s, key),
        None => Ok(default),
    }
}

fn read_secret(
    loc: &Locator<'_>,
    raw: &Spanned<RawSecret>,
    key: &str,
) -> Result<Secret, ConfigError> {
    match raw.get_ref() {
        RawSecret::Inline(s) => Ok(Secret::new(s.clone())),
        RawSecret::File(f) => {
            let text = std::fs::read_to_string(&f.file).map_err(|e| {
                loc.span(
                    raw,
                    format!("{key}: cannot read secret file {}: {e}", f.file),
                )
            })?;
            Ok(Secret::new(text.trim_end_matches(['\n', '\r']).to_owned()))
        }
    }
}

fn check_name(
    loc: &Locator<'_>,
    name: &Spanned<String>,
    what: &str,
) -> Result<String, ConfigError> {
    let n = name.get_ref();
    if n.is_empty()
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(loc.span(
            name,
            format!("{what} name {n:?}: use letters, digits, '-', '_' or '.'"),
        ));
    }
    Ok(n.clone())
}

fn split_host_port(
    loc: &Locator<'_>,
    s: &Spanned<String>,
    default_port: u16,
) -> Result<(String, u16), ConfigError> {
    let v = s.get_ref().trim();
    if v.is_empty() {
        return Err(loc.span(s, "server is empty"));
    }
    // [v6]:port, host:port, or host alone.
    if let Some(rest) = v.strip_prefix('[') {
        let (host, tail) = rest
            .split_once(']')
            .ok_or_else(|| loc.span(s, format!("bad server address {v:?}")))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| loc.span(s, format!("bad port in {v:?}")))?,
            None => default_port,
        };
        return Ok((host.to_owned(), port));
    }
    match v.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let port = port
                .parse()
                .map_err(|_| loc.span(s, format!("bad port in {v:?}")))?;
            Ok((host.to_owned(), port))
        }
        _ => Ok((v.to_owned(), default_port)),
    }
}

fn check(raw: RawConfig, loc: &Locator<'_>) -> Result<Config, ConfigError> {
    // Networks first: every room reference is checked against them.
    let mut networks: BTreeMap<String, NetworkKind> = BTreeMap::new();
    let mut add_network =
        |name: &Spanned<String>, kind: NetworkKind, what: &str| -> Result<String, ConfigError> {
            let n = check_name(loc, name, what)?;
            if networks.insert(n.clone(), kind).is_some() {
                return Err(loc.span(
                    name,
                    format!("two networks are named {n:?}: network names must be unique"),
                ));
            }
            Ok(n)
        };

    let console = match &raw.console {
        Some(c) if c.enabled => {
            let default_name = Spanned::new(0..0, "console".to_owned());
            let name = add_network(
                c.name.as_ref().unwrap_or(&default_name),
                NetworkKind::Console,
                "console",
            )?;
            let room = c
                .room
                .as_ref()
                .map_or_else(|| "#local".to_owned(), |r| r.get_ref().clone());
            if room.is_empty() || room.contains(char::is_whitespace) {
                let r = c.room.as_ref().expect("default room is valid");
                return Err(loc.span(r, format!("console room {room:?} is not a room name")));
            }
            Some(ConsoleConfig { name, room })
        }
        _ => None,
    };

    let bot_nick = raw
        .bot
        .nick
        .as_ref()
        .map_or_else(|| "sigbot".to_owned(), |n| n.get_ref().clone());
    if let Some(n) = &raw.bot.nick
        && (n.get_ref().is_empty()
            || n.get_ref()
                .contains(|c: char| c.is_whitespace() || c.is_control()))
    {
        return Err(loc.span(n, "bot.nick must be one word"));
    }
    let prefix = raw
        .bot
        .prefix
        .as_ref()
        .map_or_else(|| "!".to_owned(), |p| p.get_ref().clone());
    if let Some(p) = &raw.bot.prefix
        && (p.get_ref().is_empty() || p.get_ref().contains(char::is_whitespace))
    {
        return Err(loc.span(p, "bot.prefix must be non-empty and without spaces"));
    }
    let bot = BotConfig {
        nick: bot_nick.clone(),
        prefix,
        data_dir: PathBuf::from(raw.bot.data_dir.as_deref().unwrap_or("data")),
        commands_dir: PathBuf::from(raw.bot.commands_dir.as_deref().unwrap_or("commands")),
    };

    let mut irc = Vec::new();
    for n in &raw.irc {
        let name = add_network(&n.name, NetworkKind::Irc, "irc")?;
        let (host, port) = split_host_port(loc, &n.server, if n.tls { 6697 } else { 6667 })?;
        let sasl = match &n.sasl {
            None => None,
            Some(s) => match s.mechanism.get_ref().to_ascii_uppercase().as_str() {
                "PLAIN" => {
                    let password = s.password.as_ref().ok_or_else(|| {
                        loc.span(&n.name, format!("irc {name}: sasl PLAIN needs a password"))
                    })?;
                    Some(Sasl::Plain {
                        user: s
                            .user
                            .clone()
                            .unwrap_or_else(|| n.nick.clone().unwrap_or_else(|| bot_nick.clone())),
                        password: read_secret(loc, password, "sasl.password")?,
                    })
                }
                "EXTERNAL" => {
                    if n.client_cert.is_none() {
                        return Err(loc.span(
                            &s.mechanism,
                            format!("irc {name}: sasl EXTERNAL needs client_cert"),
                        ));
                    }
                    Some(Sasl::External)
                }
                other => {
                    return Err(loc.span(
                        &s.mechanism,
                        format!("sasl mechanism {other:?}: use \"PLAIN\" or \"EXTERNAL\""),
                    ));
                }
            },
        };
        let mut channels = Vec::new();
        for c in &n.channels {
            let mut parts = c.get_ref().split_whitespace();
            let chan = parts.next().unwrap_or_default();
            if !(chan.starts_with('#') || chan.starts_with('&')) || chan.len() < 2 {
                return Err(loc.span(
                    c,
                    format!("irc channel {:?} must start with '#' or '&'", c.get_ref()),
                ));
            }
            let key = parts.next().map(str::to_owned);
            if parts.next().is_some() {
                return Err(loc.span(c, "a channel entry is \"#channel\" or \"#channel key\""));
            }
            channels.push(IrcChannel {
                name: chan.to_owned(),
                key,
            });
        }
        let rate = match &n.rate {
            Some(r) => {
                if *r.burst.get_ref() == 0 {
                    return Err(loc.span(&r.burst, "rate.burst must be at least 1"));
                }
                let ps = *r.per_second.get_ref();
                if !(ps.is_finite() && ps > 0.0) {
                    return Err(loc.span(&r.per_second, "rate.per_second must be above 0"));
                }
                Rate {
                    burst: *r.burst.get_ref(),
                    per_second: ps,
                }
            }
            // Libera and OFTC both tolerate a short burst and about one line per second.
            None => Rate {
                burst: 4,
                per_second: 0.8,
            },
        };
        let nick = n.nick.clone().unwrap_or_else(|| bot_nick.clone());
        irc.push(IrcConfig {
            username: n.username.clone().unwrap_or_else(|| nick.clone()),
            realname: n
                .realname
                .clone()
                .unwrap_or_else(|| "sigbot chat-ops bot".to_owned()),
            nick,
            alt_nicks: n.alt_nicks.clone(),
            host,
            port,
            tls: n.tls,
            ca_file: n.ca_file.as_ref().map(PathBuf::from),
            client_cert: n.client_cert.as_ref().map(PathBuf::from),
            client_key: n.client_key.as_ref().map(PathBuf::from),
            password: n
                .password
                .as_ref()
                .map(|p| read_secret(loc, p, "password"))
                .transpose()?,
            sasl,
            nickserv_password: n
                .nickserv_password
                .as_ref()
                .map(|p| read_secret(loc, p, "nickserv_password"))
                .transpose()?,
            channels,
            rate,
            queue_limit: n.queue_limit.unwrap_or(1000),
            staleness: opt_duration(loc, &n.staleness, "staleness", Duration::from_secs(600))?,
            rejoin_delay: opt_duration(
                loc,
                &n.rejoin_delay,
                "rejoin_delay",
                Duration::from_secs(10),
            )?,
            ping_timeout: opt_duration(
                loc,
                &n.ping_timeout,
                "ping_timeout",
                Duration::from_secs(240),
            )?,
            relaymsg: n.relaymsg,
            relaymsg_channels: Vec::new(),
            private_notice: match n.private_replies.as_ref().map(|p| p.get_ref().as_str()) {
                None | Some("privmsg") => false,
                Some("notice") => true,
                Some(other) => {
                    return Err(loc.span(
                        n.private_replies.as_ref().expect("matched Some"),
                        format!("private_replies {other:?}: use \"privmsg\" or \"notice\""),
                    ));
                }
            },
            name,
        });
    }

    let mut matrix = Vec::new();
    for m in &raw.matrix {
        let name = add_network(&m.name, NetworkKind::Matrix, "matrix")?;
        let hs = m.homeserver.get_ref();
        if !(hs.starts_with("https://") || hs.starts_with("http://")) {
            return Err(loc.span(
                &m.homeserver,
                format!("homeserver {hs:?} must be an http:// or https:// URL"),
            ));
        }
        let user = m.user.get_ref();
        if !(user.starts_with('@') && user.contains(':')) {
            return Err(loc.span(
                &m.user,
                format!("matrix user {user:?} must be a user ID like @bot:example.org"),
            ));
        }
        let auth = match (&m.password, &m.access_token) {
            (Some(p), None) => MatrixAuth::Password(read_secret(loc, p, "password")?),
            (None, Some(t)) => MatrixAuth::AccessToken(read_secret(loc, t, "access_token")?),
            (Some(_), Some(t)) => {
                return Err(loc.span(t, "give either password or access_token, not both"));
            }
            (None, None) => {
                return Err(loc.span(
                    &m.name,
                    format!("matrix {name}: needs password or access_token"),
                ));
            }
        };
        let mut rooms = Vec::new();
        for r in &m.rooms {
            check_matrix_room(loc, r)?;
            rooms.push(r.get_ref().clone());
        }
        matrix.push(MatrixConfig {
            homeserver: hs.trim_end_matches('/').to_owned(),
            user: user.clone(),
            auth,
            device_name: m.device_name.clone().unwrap_or_else(|| "sigbot".to_owned()),
            rooms,
            encrypted_rooms: m.encrypted_rooms,
            invites_from: m.invites_from.clone(),
            catch_up: opt_duration(loc, &m.catch_up, "catch_up", Duration::from_secs(600))?,
            name,
        });
    }

    let mut mqtt = Vec::new();
    for m in &raw.mqtt {
        let name = add_network(&m.name, NetworkKind::Mqtt, "mqtt")?;
        let url = m.url.get_ref();
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(loc.span(
                &m.url,
                format!("mqtt url {url:?} must start with mqtt:// or mqtts://"),
            ));
        };
        let hostport = Spanned::new(m.url.span(), rest.trim_end_matches('/').to_owned());
        let (host, port) = split_host_port(loc, &hostport, if tls { 8883 } else { 1883 })?;
        mqtt.push(MqttConfig {
            url: url.clone(),
            tls,
            host,
            port,
            client_id: m
                .client_id
                .clone()
                .unwrap_or_else(|| format!("sigbot-{}-{name}", bot_nick)),
            ca_file: m.ca_file.as_ref().map(PathBuf::from),
            cert_file: m.cert_file.as_ref().map(PathBuf::from),
            key_file: m.key_file.as_ref().map(PathBuf::from),
            username: m.username.clone(),
            password: m
                .password
                .as_ref()
                .map(|p| read_secret(loc, p, "password"))
                .transpose()?,
            keep_alive: opt_duration(loc, &m.keep_alive, "keep_alive", Duration::from_secs(30))?,
            clean_session: m.clean_session,
            max_payload: m.max_payload.unwrap_or(1024 * 1024),
            name,
        });
    }

    let broker = match &raw.broker {
        Some(b) if b.enabled => Some(BrokerConfig {
            listen: b.listen.get_ref().parse().map_err(|_| {
                loc.span(
                    &b.listen,
                    format!("broker.listen {:?} is not host:port", b.listen.get_ref()),
                )
            })?,
        }),
        _ => None,
    };

    let chat_room = |r: &Spanned<String>| -> Result<RoomRef, ConfigError> {
        let room = RoomRef::parse(r.get_ref()).map_err(|e| loc.span(r, e.to_string()))?;
        match networks.get(&room.network) {
            None => Err(loc.span(
                r,
                format!(
                    "room {:?} names network {:?}, which is not defined",
                    r.get_ref(),
                    room.network
                ),
            )),
            Some(NetworkKind::Mqtt) => Err(loc.span(
                r,
                format!(
                    "room {:?}: {:?} is an MQTT connection, not a chat network",
                    r.get_ref(),
                    room.network
                ),
            )),
            Some(NetworkKind::Irc) => {
                if room.room.starts_with('#') || room.room.starts_with('&') {
                    Ok(room)
                } else {
                    Err(loc.span(
                        r,
                        format!("room {:?}: an IRC channel starts with '#'", r.get_ref()),
                    ))
                }
            }
            Some(NetworkKind::Matrix) => {
                check_matrix_room(loc, &Spanned::new(r.span(), room.room.clone()))?;
                Ok(room)
            }
            Some(NetworkKind::Console) => {
                let c = console.as_ref().expect("console network is defined");
                if room.room == c.room {
                    Ok(room)
                } else {
                    Err(loc.span(
                        r,
                        format!(
                            "room {:?}: the console has only {}",
                            r.get_ref(),
                            c.room_ref()
                        ),
                    ))
                }
            }
        }
    };

    let mut bridges = Vec::new();
    let mut bridge_names = BTreeSet::new();
    let mut bridged_rooms: BTreeMap<RoomRef, String> = BTreeMap::new();
    for b in &raw.bridge {
        let name = check_name(loc, &b.name, "bridge")?;
        if !bridge_names.insert(name.clone()) {
            return Err(loc.span(&b.name, format!("two bridges are named {name:?}")));
        }
        if b.rooms.len() < 2 {
            return Err(loc.span(&b.name, format!("bridge {name}: needs at least two rooms")));
        }
        let rooms = b
            .rooms
            .iter()
            .map(&chat_room)
            .collect::<Result<Vec<_>, _>>()?;
        for (r, spanned) in rooms.iter().zip(&b.rooms) {
            if let Some(other) = bridged_rooms.insert(r.clone(), name.clone()) {
                let message = if other == name {
                    format!("bridge {name}: room {r} is listed twice")
                } else {
                    format!(
                        "room {r} is in bridges {other} and {name}: a room belongs to one bridge"
                    )
                };
                return Err(loc.span(spanned, message));
            }
        }
        for (i, pattern) in b.ignore_regex.iter().enumerate() {
            if let Err(e) = regex::Regex::new(pattern) {
                return Err(loc.span(
                    &b.name,
                    format!(
                        "bridge {name}: ignore_regex[{i}] {pattern:?} is not a valid regex: {e}"
                    ),
                ));
            }
        }
        let edits = match b.edits.as_ref().map(|e| e.get_ref().as_str()) {
            None | Some("diff") => EditMode::Diff,
            Some("full") => EditMode::Full,
            Some("ignore") => EditMode::Ignore,
            Some(other) => {
                return Err(loc.span(
                    b.edits.as_ref().expect("matched Some"),
                    format!("edits {other:?}: use \"diff\", \"full\" or \"ignore\""),
                ));
            }
        };
        bridges.push(BridgeConfig {
            name,
            rooms,
            nick_format: b.nick_format.clone(),
            max_lines: b.max_lines.unwrap_or(3).max(1),
            edits,
            join_part: b.join_part,
            quits: b.quits,
            nick_changes: b.nick_changes,
            topics: b.topics,
            ignore_nicks: b.ignore_nicks.clone(),
            ignore_users: b.ignore_users.clone(),
            ignore_regex: b.ignore_regex.clone(),
            reactions: b.reactions,
            redactions: b.redactions,
            relaymsg: b.relaymsg,
            staleness: opt_duration(loc, &b.staleness, "staleness", Duration::from_secs(600))?,
            max_mentions: b.max_mentions.unwrap_or(5),
            encrypted: b.encrypted,
        });
    }
    // Bridged IRC channels are joined without being listed under `channels` (DESIGN §8).
    for b in &bridges {
        for r in &b.rooms {
            if let Some(n) = irc
                .iter_mut()
                .find(|n: &&mut IrcConfig| n.name == r.network)
            {
                if !n
                    .channels
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case(&r.room))
                {
                    n.channels.push(IrcChannel {
                        name: r.room.clone(),
                        key: None,
                    });
                }
                if b.relaymsg || n.relaymsg {
                    n.relaymsg_channels.push(r.room.to_lowercase());
                }
            }
            if let Some(m) = matrix
                .iter_mut()
                .find(|m: &&mut MatrixConfig| m.name == r.network)
                && !m.rooms.contains(&r.room)
            {
                m.rooms.push(r.room.clone());
            }
        }
    }

    let mut relays = Vec::new();
    for (i, r) in raw.relay.iter().enumerate() {
        match networks.get(r.from.get_ref()) {
            Some(NetworkKind::Mqtt) => {}
            Some(_) => {
                return Err(loc.span(
                    &r.from,
                    format!("relay from {:?}: not an MQTT connection", r.from.get_ref()),
                ));
            }
            None => {
                return Err(loc.span(
                    &r.from,
                    format!(
                        "relay from {:?}: no [[mqtt]] connection has that name",
                        r.from.get_ref()
                    ),
                ));
            }
        }
        crate::core::relay::TopicFilter::parse(r.topic.get_ref())
            .map_err(|e| loc.span(&r.topic, e))?;
        if let Some(m) = &r.max_per_minute
            && *m.get_ref() == 0
        {
            return Err(loc.span(m, "max_per_minute must be at least 1"));
        }
        let text = |s: &Option<Spanned<String>>| s.as_ref().map(|s| s.get_ref().clone());
        let relay = RelaySpec {
            name: r.name.clone().unwrap_or_else(|| format!("relay{}", i + 1)),
            from: r.from.get_ref().clone(),
            topic: r.topic.get_ref().clone(),
            when: text(&r.when),
            template: r.template.get_ref().clone(),
            html_template: text(&r.html_template),
            to: r.to.iter().map(&chat_room).collect::<Result<_, _>>()?,
            max_per_minute: r.max_per_minute.as_ref().map(|m| *m.get_ref()),
            dedup_key: text(&r.dedup_key),
            dedup_window: opt_duration(
                loc,
                &r.dedup_window,
                "dedup_window",
                Duration::from_secs(3600),
            )?,
            digest_label: text(&r.digest_label),
        };
        // Templates that do not compile are config errors, at the template's location.
        if let Err(e) = crate::core::relay::Relay::new(std::slice::from_ref(&relay)) {
            let span = match e.part {
                "when" => r.when.as_ref(),
                "html_template" => r.html_template.as_ref(),
                "dedup_key" => r.dedup_key.as_ref(),
                "digest_label" => r.digest_label.as_ref(),
                _ => None,
            }
            .map_or(r.template.span(), |s| s.span());
            return Err(loc.at(span.start, e.to_string()));
        }
        relays.push(relay);
    }

    let watches = check_watches(&raw.watch, loc, &networks, &chat_room)?;

    let meetings = match &raw.meetings {
        None => MeetingRooms::None,
        Some(m) => match m.rooms.get_ref() {
            RawMeetingRooms::All(s) if s == "all" => MeetingRooms::All,
            RawMeetingRooms::All(s) => {
                return Err(loc.span(
                    &m.rooms,
                    format!("meetings.rooms {s:?}: give a list of rooms or \"all\""),
                ));
            }
            RawMeetingRooms::List(rooms) => {
                MeetingRooms::Some(rooms.iter().map(&chat_room).collect::<Result<_, _>>()?)
            }
        },
    };

    let mut roles = BTreeMap::new();
    for (role, members) in &raw.roles {
        let mut list = Vec::new();
        for m in members {
            let p = Principal::parse(m.get_ref()).ok_or_else(|| {
                loc.span(
                    m,
                    format!(
                        "role {role}: {:?} is not <network>:<account or user ID>",
                        m.get_ref()
                    ),
                )
            })?;
            match networks.get(&p.network) {
                Some(k) if k.is_chat() => {}
                _ => {
                    return Err(loc.span(
                        m,
                        format!("role {role}: {:?} names network {:?}, which is not a defined chat network", m.get_ref(), p.network),
                    ));
                }
            }
            list.push(p);
        }
        roles.insert(role.clone(), list);
    }

    let web = match &raw.web {
        Some(w) if w.enabled => {
            let listen_s = w
                .listen
                .as_ref()
                .map_or("127.0.0.1:8080", |l| l.get_ref().as_str());
            let listen: SocketAddr = listen_s.parse().map_err(|_| match &w.listen {
                Some(l) => loc.span(
                    l,
                    format!("web.listen {listen_s:?} is not an address like 127.0.0.1:8080"),
                ),
                None => loc.at(0, "web.listen default is invalid"),
            })?;
            let public_url = match &w.public_url {
                Some(u) => {
                    if !(u.get_ref().starts_with("http://") || u.get_ref().starts_with("https://"))
                    {
                        return Err(
                            loc.span(u, "web.public_url must be an http:// or https:// URL")
                        );
                    }
                    u.get_ref().trim_end_matches('/').to_owned()
                }
                None => format!("http://{listen}"),
            };
            Some(WebConfig { listen, public_url })
        }
        _ => None,
    };

    Ok(Config {
        path: loc.path.to_owned(),
        bot,
        web,
        console,
        irc,
        matrix,
        mqtt,
        broker,
        bridges,
        relays,
        watches,
        meetings,
        roles,
    })
}

fn http_url(loc: &Locator<'_>, s: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
    match reqwest::Url::parse(s.get_ref()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(s.get_ref().clone()),
        _ => Err(loc.span_key(
            s,
            key,
            format!("{:?} is not an http:// or https:// URL", s.get_ref()),
        )),
    }
}

fn package_source(
    loc: &Locator<'_>,
    raw: &Spanned<RawPackageSource>,
    key: &str,
) -> Result<PackageSource, ConfigError> {
    match raw.get_ref() {
        RawPackageSource {
            repodata: Some(url),
            koji: None,
        } => Ok(PackageSource::Repodata {
            url: http_url(loc, url, &format!("{key}.repodata"))?,
        }),
        RawPackageSource {
            repodata: None,
            koji: Some(k),
        } => {
            if k.tag.get_ref().trim().is_empty() {
                return Err(loc.span_key(&k.tag, &format!("{key}.koji.tag"), "empty tag"));
            }
            Ok(PackageSource::Koji {
                hub: http_url(loc, &k.hub, &format!("{key}.koji.hub"))?,
                tag: k.tag.get_ref().clone(),
            })
        }
        _ => Err(loc.span_key(
            raw,
            key,
            "give exactly one of { repodata = \"<URL>\" } or { koji = { hub = \"<URL>\", tag = \"<tag>\" } }",
        )),
    }
}

fn check_watches(
    raw: &[RawWatch],
    loc: &Locator<'_>,
    networks: &BTreeMap<String, NetworkKind>,
    chat_room: &dyn Fn(&Spanned<String>) -> Result<RoomRef, ConfigError>,
) -> Result<Vec<WatchSpec>, ConfigError> {
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for w in raw {
        let name = check_name(loc, &w.name, "watch")?;
        if !names.insert(name.clone()) {
            return Err(loc.span(&w.name, format!("watch {name:?} is defined twice")));
        }
        if w.packages.get_ref().is_empty() {
            return Err(loc.span_key(&w.packages, "packages", "name at least one package"));
        }
        let mut packages = Vec::new();
        for p in w.packages.get_ref() {
            let ok = !p.get_ref().is_empty()
                && p.get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
            if !ok {
                return Err(loc.span_key(
                    p,
                    "packages",
                    format!("{:?} is not an RPM package name", p.get_ref()),
                ));
            }
            packages.push(p.get_ref().clone());
        }
        if w.to.is_empty() {
            return Err(loc.span_key(&w.name, "to", "name at least one room to alert"));
        }
        let poll = opt_duration(loc, &w.poll, "poll", Duration::from_secs(3600))?;
        if let Some(p) = &w.poll
            && poll < Duration::from_secs(1)
        {
            return Err(loc.span_key(p, "poll", "must be at least 1s"));
        }
        let mut on = Vec::new();
        if let Some(filters) = &w.on {
            for f in &filters.get_ref().0 {
                // A lone string carries no span of its own: point at the value.
                let at = if f.span().is_empty() {
                    filters.span().start
                } else {
                    f.span().start
                };
                crate::core::relay::TopicFilter::parse(f.get_ref())
                    .map_err(|e| loc.at(at, format!("on: {e}")))?;
                on.push(f.get_ref().clone());
            }
        }
        if let Some(from) = &w.from {
            match networks.get(from.get_ref()) {
                Some(NetworkKind::Mqtt) => {}
                _ => {
                    return Err(loc.span_key(
                        from,
                        "from",
                        format!("no [[mqtt]] connection is named {:?}", from.get_ref()),
                    ));
                }
            }
        }
        if !on.is_empty() && !networks.values().any(|k| *k == NetworkKind::Mqtt) {
            let at = w.on.as_ref().map_or(0, |o| o.span().start);
            return Err(loc.at(at, "on: there is no [[mqtt]] connection to listen on"));
        }
        out.push(WatchSpec {
            name,
            packages,
            ours: package_source(loc, &w.ours, "ours")?,
            upstream: package_source(loc, &w.upstream, "upstream")?,
            to: w.to.iter().map(chat_room).collect::<Result<_, _>>()?,
            poll,
            on,
            from: w.from.as_ref().map(|f| f.get_ref().clone()),
        });
    }
    Ok(out)
}

fn check_matrix_room(loc: &Locator<'_>, r: &Spanned<String>) -> Result<(), ConfigError> {
    let v = r.get_ref();
    // Room IDs of room version 12 (`!<hash>`) no longer name a server; aliases always do.
    let has_server = v.find(':').is_some_and(|i| i > 1 && i + 1 < v.len());
    let well_formed = if v.starts_with('!') {
        has_server || (v.len() > 1 && !v.contains(':'))
    } else {
        v.starts_with('#') && has_server
    };
    let ok = well_formed && !v.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(loc.span(
            r,
            format!(
                "matrix room {v:?} must be an alias (#room:server) or an ID (!id:server or, \
                 from room version 12, !id)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests;
