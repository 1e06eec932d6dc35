//! Stage two: the raw structs checked into the validated [`Config`], one file per section
//! of the config.

mod bot;
mod bridge;
mod broker;
mod console;
mod irc;
mod log;
mod matrix;
mod meetings;
mod metrics;
mod mqtt;
mod relay;
mod roles;
mod schedule;
mod store;
mod watch;
mod web;

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use super::locate::{CONFIG_DURATIONS, Locator, SECTION_NAME};
use super::raw::{RawConfig, RawSecret};
use super::{Config, ConfigError, ConsoleConfig, NetworkKind};
use crate::core::{RoomRef, Secret};

pub(super) fn check(raw: RawConfig, loc: &Locator<'_>) -> Result<Config, ConfigError> {
    Checker::new(*loc).check(raw)
}

/// What the sections are checked against: the networks defined so far (every room
/// reference names one) and the console's room.
struct Checker<'a> {
    loc: Locator<'a>,
    networks: BTreeMap<String, NetworkKind>,
    console: Option<ConsoleConfig>,
}

impl<'a> Checker<'a> {
    fn new(loc: Locator<'a>) -> Self {
        Checker {
            loc,
            networks: BTreeMap::new(),
            console: None,
        }
    }

    /// The sections in the order of `config/example-full.toml`. The networks come before
    /// the sections that name rooms on them.
    fn check(mut self, raw: RawConfig) -> Result<Config, ConfigError> {
        let bot = self.bot(&raw.bot)?;
        let log = self.log(raw.log.as_ref())?;
        let web = self.web(raw.web.as_ref())?;
        let metrics = self.metrics(raw.metrics.as_ref())?;
        let store = self.store(raw.store.as_ref())?;
        let console = self.console(raw.console.as_ref())?;
        let mut irc = self.irc(&raw.irc, &bot.nick)?;
        let mut matrix = self.matrix(&raw.matrix)?;
        let mqtt = self.mqtt(&raw.mqtt, &bot.nick)?;
        let broker = self.broker(raw.broker.as_ref())?;
        let bridges = self.bridges(&raw.bridge)?;
        bridge::join_bridged_rooms(&bridges, &mut irc, &mut matrix);
        let relays = self.relays(&raw.relay)?;
        let watches = self.watches(&raw.watch)?;
        let meetings = self.meetings(raw.meetings.as_ref())?;
        let meeting_idle_timeout = self.meeting_idle_timeout(raw.meetings.as_ref())?;
        let meeting_mail = self.meeting_mail(raw.meetings.as_ref(), &meetings)?;
        let meeting_schedules = self.meeting_schedules(raw.meetings.as_ref(), &meetings)?;
        let roles = self.roles(&raw.roles)?;
        Ok(Config {
            path: self.loc.path.to_owned(),
            bot,
            log,
            web,
            metrics,
            store,
            console,
            irc,
            matrix,
            mqtt,
            broker,
            bridges,
            relays,
            watches,
            meetings,
            meeting_idle_timeout,
            meeting_mail,
            meeting_schedules,
            roles,
        })
    }

    /// Checks a network's name (`what` is its section) and claims it.
    fn add_network(
        &mut self,
        name: &Spanned<String>,
        kind: NetworkKind,
        what: &str,
    ) -> Result<String, ConfigError> {
        let n = self
            .loc
            .name(name, &SECTION_NAME, &format!("{what} name "))?;
        if self.networks.insert(n.clone(), kind).is_some() {
            return Err(self.loc.span(
                name,
                format!("two networks are named {n:?}: network names must be unique"),
            ));
        }
        Ok(n)
    }

    /// A room on a chat network defined above, written `<network>/<room>`.
    fn chat_room(&self, r: &Spanned<String>) -> Result<RoomRef, ConfigError> {
        let loc = &self.loc;
        let room = RoomRef::parse(r.get_ref()).map_err(|e| loc.span(r, e.to_string()))?;
        let problem = match self.networks.get(&room.network) {
            None => format!(
                "room {:?} names network {:?}, which is not defined",
                r.get_ref(),
                room.network
            ),
            Some(NetworkKind::Mqtt) => format!(
                "room {:?}: {:?} is an MQTT connection, not a chat network",
                r.get_ref(),
                room.network
            ),
            Some(NetworkKind::Irc) if room.room.starts_with('#') || room.room.starts_with('&') => {
                return Ok(room);
            }
            Some(NetworkKind::Irc) => {
                format!("room {:?}: an IRC channel starts with '#'", r.get_ref())
            }
            Some(NetworkKind::Matrix) => {
                matrix::matrix_room(loc, &Spanned::new(r.span(), room.room.clone()))?;
                return Ok(room);
            }
            Some(NetworkKind::Console) => {
                let c = self.console.as_ref().expect("console network is defined");
                if room.room == c.room {
                    return Ok(room);
                }
                format!(
                    "room {:?}: the console has only {}",
                    r.get_ref(),
                    c.room_ref()
                )
            }
        };
        Err(loc.span(r, problem))
    }

    fn chat_rooms(&self, rooms: &[Spanned<String>]) -> Result<Vec<RoomRef>, ConfigError> {
        rooms.iter().map(|r| self.chat_room(r)).collect()
    }

    fn duration(
        &self,
        s: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        self.loc.duration(s, key, default, CONFIG_DURATIONS)
    }

    fn secret(&self, raw: &Spanned<RawSecret>, key: &str) -> Result<Secret, ConfigError> {
        match raw.get_ref() {
            RawSecret::Inline(s) => Ok(Secret::new(s.clone())),
            RawSecret::File(f) => {
                let text = std::fs::read_to_string(&f.file).map_err(|e| {
                    self.loc.span(
                        raw,
                        format!("{key}: cannot read secret file {}: {e}", f.file),
                    )
                })?;
                Ok(Secret::new(text.trim_end_matches(['\n', '\r']).to_owned()))
            }
        }
    }

    fn opt_secret(
        &self,
        raw: &Option<Spanned<RawSecret>>,
        key: &str,
    ) -> Result<Option<Secret>, ConfigError> {
        raw.as_ref().map(|p| self.secret(p, key)).transpose()
    }

    /// `[v6]:port`, `host:port`, or a host alone on `default_port`.
    fn host_port(
        &self,
        s: &Spanned<String>,
        default_port: u16,
    ) -> Result<(String, u16), ConfigError> {
        let loc = &self.loc;
        let v = s.get_ref().trim();
        if v.is_empty() {
            return Err(loc.span(s, "server is empty"));
        }
        let bad_port = || loc.span(s, format!("bad port in {v:?}"));
        if let Some(rest) = v.strip_prefix('[') {
            let (host, tail) = rest
                .split_once(']')
                .ok_or_else(|| loc.span(s, format!("bad server address {v:?}")))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad_port())?,
                None => default_port,
            };
            return Ok((host.to_owned(), port));
        }
        match v.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => {
                Ok((host.to_owned(), port.parse().map_err(|_| bad_port())?))
            }
            _ => Ok((v.to_owned(), default_port)),
        }
    }
}
