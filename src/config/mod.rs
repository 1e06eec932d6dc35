//! Configuration (DESIGN §5), read in two stages.
//!
//! Stage one (`raw.rs`): `${ENV}` references are expanded over the parsed TOML tree
//! (`env.rs`; an unset variable is an error at its location), then serde reads the `Raw*`
//! structs with `deny_unknown_fields`. Stage two (`check/`, one file per section) turns the
//! raw structs into the validated [`Config`], reporting problems as `file:line:col: message`
//! (`locate.rs`). Command files ([`commands`]) go through the same two stages.

mod check;
pub mod commands;
mod env;
mod locate;
mod raw;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::de::DeTable;

use crate::core::relay::RelaySpec;
use crate::core::watch::WatchSpec;
use crate::core::{Principal, RoomRef, Secret};

pub use env::expand_env;
use locate::Locator;

/// A config error with its location in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{col}: {message}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    pub bot: BotConfig,
    pub log: LogConfig,
    pub web: Option<WebConfig>,
    /// `[metrics]`: where `/metrics` is served.
    pub metrics: MetricsConfig,
    pub store: StoreConfig,
    pub console: Option<ConsoleConfig>,
    pub irc: Vec<IrcConfig>,
    pub matrix: Vec<MatrixConfig>,
    pub mqtt: Vec<MqttConfig>,
    pub broker: Option<BrokerConfig>,
    pub bridges: Vec<BridgeConfig>,
    pub relays: Vec<RelaySpec>,
    pub watches: Vec<WatchSpec>,
    pub meetings: MeetingRooms,
    /// `[meetings] idle_timeout`: a meeting without a line for this long is ended.
    pub meeting_idle_timeout: std::time::Duration,
    /// `[meetings.mail]`: the minutes mailed at `#endmeeting` (none: no mail).
    pub meeting_mail: Option<MeetingMailConfig>,
    /// `[[meetings.schedule]]`: meetings held at set times, with their reminders.
    pub meeting_schedules: Vec<crate::core::schedule::Schedule>,
    pub roles: BTreeMap<String, Vec<Principal>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BotConfig {
    pub nick: String,
    pub prefix: String,
    pub data_dir: PathBuf,
    pub commands_dir: PathBuf,
}

/// `[log]`: how the log is written. `RUST_LOG`, when set, overrides `level`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: LogLevel,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message, the event's fields and
    /// its spans'.
    Json,
}

/// The least severe level logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// Every level, by its name in the config.
    pub const NAMES: [(&'static str, LogLevel); 5] = [
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
        ("trace", LogLevel::Trace),
    ];

    /// The name as written in the config and in log filters.
    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, l)| *l == self)
            .map_or("info", |(n, _)| n)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    pub listen: SocketAddr,
    pub public_url: String,
    /// How long pastes and media links are served.
    pub paste_ttl: Duration,
    /// Bytes of Matrix files kept in `data_dir/media-cache/`.
    pub media_cache_bytes: u64,
    /// How long a network may be down before `/readyz` says the bot is not ready.
    pub ready_grace: Duration,
}

/// `[metrics]`: Prometheus metrics at `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Whether `/metrics` is served at all.
    pub enabled: bool,
    /// A listener of its own for `/metrics` (then the web site does not serve it); `None`:
    /// the web site's listener, if there is a web site.
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
        }
    }
}

/// `[store]`: how long the store keeps what it keeps, and how large it may grow.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Audit entries older than this are deleted.
    pub audit_retention: Duration,
    /// The journals (chat lines) of meetings ended longer ago than this are deleted; their
    /// files and search index stay.
    pub journal_retention: Duration,
    /// The database's size cap in bytes (SQLite `max_page_count`); `None`: the disk's.
    pub max_db_size: Option<u64>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            audit_retention: Duration::from_secs(365 * 86_400),
            journal_retention: Duration::from_secs(30 * 86_400),
            max_db_size: None,
        }
    }
}

/// How long pastes and media links are served when `[web] paste_ttl` is not set.
pub const DEFAULT_PASTE_TTL: Duration = Duration::from_secs(30 * 86_400);

#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug, Clone, PartialEq)]
pub enum Sasl {
    Plain { user: String, password: Secret },
    External,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IrcChannel {
    pub name: String,
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug, Clone, PartialEq)]
pub enum MatrixAuth {
    Password(Secret),
    AccessToken(Secret),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MatrixConfig {
    pub name: String,
    pub homeserver: String,
    pub user: String,
    pub auth: MatrixAuth,
    /// Encrypts the SDK's stores (its crypto store's keys included).
    pub store_passphrase: Option<Secret>,
    pub device_name: String,
    pub rooms: Vec<String>,
    pub encrypted_rooms: bool,
    pub invites_from: Vec<String>,
    pub catch_up: Duration,
}

#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    pub listen: SocketAddr,
    /// Clients must log in with these when given.
    pub login: Option<(String, Secret)>,
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

/// `[meetings.mail]`: the text minutes of a meeting that ends go out as a mail.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingMailConfig {
    /// The recipients (at least one).
    pub to: Vec<lettre::message::Mailbox>,
    pub from: lettre::message::Mailbox,
    pub smtp: SmtpServer,
    /// AUTH: the user and its password, both or neither.
    pub login: Option<(String, Secret)>,
    /// Trusted roots for the server's certificate (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// The meeting rooms whose minutes are mailed; `None`: every meeting room.
    pub rooms: Option<Vec<RoomRef>>,
}

impl MeetingMailConfig {
    /// Whether a meeting held in `room` is mailed.
    pub fn covers(&self, room: &RoomRef) -> bool {
        self.rooms.as_ref().is_none_or(|r| r.contains(room))
    }
}

/// `[meetings.mail] smtp`: the server and how the connection is secured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpServer {
    /// As written, for messages.
    pub url: String,
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte (port 465 by default).
    Tls,
    /// `smtp://`: STARTTLS, required (port 587 by default).
    StartTls,
    /// `smtp://` to port 25 of a loopback address: no TLS.
    Plain,
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
        env::expand_env_table(table.get_mut(), env, &loc)?;
        let de = toml::de::Deserializer::from(table);
        let raw = raw::RawConfig::deserialize(de).map_err(|e| loc.toml_error(&e))?;
        check::check(raw, &loc)
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
        self.summarize_networks(&mut s);
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
        if let Some(m) = &self.meeting_mail {
            let _ = writeln!(
                s,
                "meeting minutes mailed to {} address(es) via {}",
                m.to.len(),
                m.smtp.url
            );
        }
        for m in &self.meeting_schedules {
            let next = m
                .next_after(chrono::Utc::now())
                .map_or_else(|| "none to come".to_owned(), |t| m.when(t));
            let _ = writeln!(
                s,
                "meeting schedule {:?} in {}: next {next}, {} reminder(s)",
                m.name,
                m.room,
                m.remind.len()
            );
        }
        if let Some(w) = &self.web {
            let _ = writeln!(s, "web: {} ({})", w.listen, w.public_url);
        }
        if let (true, Some(addr)) = (self.metrics.enabled, self.metrics.listen) {
            let _ = writeln!(s, "metrics: http://{addr}/metrics");
        }
        for (role, who) in &self.roles {
            let _ = writeln!(s, "role {role}: {} principal(s)", who.len());
        }
        s
    }

    /// The summary's lines for the chat networks, MQTT connections and the broker.
    fn summarize_networks(&self, s: &mut String) {
        use std::fmt::Write as _;
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
                "matrix {}: {} on {}, {} room(s){}{}",
                n.name,
                n.user,
                n.homeserver,
                n.rooms.len(),
                if n.encrypted_rooms { ", e2ee" } else { "" },
                if n.store_passphrase.is_some() {
                    ", store encrypted"
                } else {
                    ""
                }
            );
        }
        for n in &self.mqtt {
            let _ = writeln!(s, "mqtt {}: {}", n.name, n.url);
        }
        if let Some(b) = &self.broker {
            let _ = writeln!(s, "embedded broker: {}", b.listen);
        }
    }
}

#[cfg(test)]
mod tests;
