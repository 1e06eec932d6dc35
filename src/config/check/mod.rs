//! Stage two: the raw structs checked into the validated [`Config`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::locate::{CONFIG_DURATIONS, Locator, SECTION_NAME};
use super::raw::*;
use super::*;
use crate::core::relay::RelaySpec;
use crate::core::watch::{PackageSource, WatchSpec};
use crate::core::{Principal, RoomRef, Secret};

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

pub(super) fn check(raw: RawConfig, loc: &Locator<'_>) -> Result<Config, ConfigError> {
    // Networks first: every room reference is checked against them.
    let mut networks: BTreeMap<String, NetworkKind> = BTreeMap::new();
    let mut add_network =
        |name: &Spanned<String>, kind: NetworkKind, what: &str| -> Result<String, ConfigError> {
            let n = loc.name(name, &SECTION_NAME, &format!("{} name ", what))?;
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
            staleness: loc.duration(
                &n.staleness,
                "staleness",
                Duration::from_secs(600),
                CONFIG_DURATIONS,
            )?,
            rejoin_delay: loc.duration(
                &n.rejoin_delay,
                "rejoin_delay",
                Duration::from_secs(10),
                CONFIG_DURATIONS,
            )?,
            ping_timeout: loc.duration(
                &n.ping_timeout,
                "ping_timeout",
                Duration::from_secs(240),
                CONFIG_DURATIONS,
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
            catch_up: loc.duration(
                &m.catch_up,
                "catch_up",
                Duration::from_secs(600),
                CONFIG_DURATIONS,
            )?,
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
            keep_alive: loc.duration(
                &m.keep_alive,
                "keep_alive",
                Duration::from_secs(30),
                CONFIG_DURATIONS,
            )?,
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
        let name = loc.name(&b.name, &SECTION_NAME, &format!("{} name ", "bridge"))?;
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
            staleness: loc.duration(
                &b.staleness,
                "staleness",
                Duration::from_secs(600),
                CONFIG_DURATIONS,
            )?,
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
            dedup_window: loc.duration(
                &r.dedup_window,
                "dedup_window",
                Duration::from_secs(3600),
                CONFIG_DURATIONS,
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
        let name = loc.name(&w.name, &SECTION_NAME, &format!("{} name ", "watch"))?;
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
        let poll = loc.duration(&w.poll, "poll", Duration::from_secs(3600), CONFIG_DURATIONS)?;
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
