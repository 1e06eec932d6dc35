//! The IRC network adapter.
//!
//! One driver task per `[[irc]]` owns the socket: it registers (CAP negotiation and SASL
//! driven by hand, since the `irc` crate's `identify()` ends negotiation at once), joins the
//! channels, turns PRIVMSG/NOTICE into core events with the sender's account as principal,
//! and drains one priority queue through a token bucket so the bot is never flood-kicked.
//! When the connection drops it reconnects with exponential backoff and jitter; lines
//! queued meanwhile are sent afterwards, in order, unless they went stale.
//!
//! The `irc` crate is used for what it is good at: parsing server lines into `Message`s.

mod connection;
mod history;
mod membership;
pub mod queue;
mod registration;
mod sending;
pub mod text;

use self::connection::{Reader, Writer, read_line, write_line};
use self::history::{DEFAULT_HISTORY_LIMIT, RECENT_IDS, batch_of, in_batch};
use self::membership::Channel;
pub use self::registration::WANTED_CAPS;
use self::sending::{HOST_GUESS, is_own_relay};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use irc::proto::{Command, Message, Prefix, Response};
use rand::Rng as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::queue::{SendQueue, TokenBucket};
use super::backoff::Backoff;
use super::{NetworkHandle, Outgoing, OutgoingOp};
use crate::config::{IrcConfig, Sasl};
use crate::core::{
    Event, IncomingMessage, LinkState, MessageKind, Presence, PresenceChange, Principal, Priority,
    RoomRef, SendKind, Sender,
};
use crate::store::Store;

/// Starts the driver of one IRC connection. `store` keeps the time of the last line seen in
/// each channel, for the CHATHISTORY catch-up after the bot's own downtime.
pub fn spawn(
    cfg: IrcConfig,
    store: Option<Store>,
    events: mpsc::Sender<Event>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> NetworkHandle {
    let (tx, rx) = mpsc::channel::<Outgoing>(1024);
    let name = cfg.name.clone();
    let mut driver = Driver::new(cfg, events, rx, shutdown);
    driver.store = store;
    tracker.spawn(driver.run());
    NetworkHandle::new(name, tx)
}

/// Why a session ended.
#[derive(Debug)]
enum SessionEnd {
    Shutdown,
    Lost(String),
}

struct Driver {
    cfg: IrcConfig,
    events: mpsc::Sender<Event>,
    outgoing: mpsc::Receiver<Outgoing>,
    shutdown: CancellationToken,
    queue: SendQueue,
    bucket: TokenBucket,
    reported_stale: u64,
    reported_overflow: u64,
    store: Option<Store>,
    /// Server time of the last line seen in each channel (lower-cased).
    last_seen: HashMap<String, DateTime<Utc>>,
    /// Channels whose `last_seen` changed since it was last stored.
    last_seen_dirty: HashSet<String>,
}

/// The state of one connection, from TCP connect to disconnect.
struct Session {
    nick: String,
    user: String,
    host: String,
    registered: bool,
    nick_attempt: usize,
    cap_ls: HashSet<String>,
    cap_ls_done: bool,
    caps: HashSet<String>,
    cap_pending: usize,
    sasl_done: bool,
    logged_in: bool,
    whox: bool,
    bot_mode: Option<String>,
    /// Accounts by lower-cased nick, from extended-join, account-notify and WHOX.
    accounts: HashMap<String, Option<String>>,
    joined: HashSet<String>,
    rejoin: Vec<(Instant, String)>,
    /// Members of the joined channels, by lower-cased channel.
    channels: HashMap<String, Channel>,
    /// NAMES replies being collected, by lower-cased channel.
    names: HashMap<String, Vec<String>>,
    /// Open BATCHes: reference -> (upper-cased type, parameters).
    batches: HashMap<String, (String, Vec<String>)>,
    /// Capability values from CAP LS (`draft/relaymsg=/`).
    cap_values: HashMap<String, String>,
    /// Largest CHATHISTORY request the server takes (ISUPPORT `CHATHISTORY=`).
    history_limit: usize,
    /// Channels with a CHATHISTORY catch-up under way: replayed lines after this time count.
    catching_up: HashMap<String, DateTime<Utc>>,
    /// IDs of recent messages, so that a replayed line already seen live is skipped.
    recent_ids: VecDeque<String>,
    last_rx: Instant,
    ping_sent: bool,
    next_regain: Instant,
}

fn lower(s: &str) -> String {
    // rfc1459 casemapping: []\~ are the upper-case forms of {}|^.
    s.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

impl Driver {
    fn new(
        cfg: IrcConfig,
        events: mpsc::Sender<Event>,
        outgoing: mpsc::Receiver<Outgoing>,
        shutdown: CancellationToken,
    ) -> Self {
        let now = Instant::now();
        Self {
            queue: SendQueue::new(cfg.queue_limit, cfg.staleness),
            bucket: TokenBucket::new(cfg.rate.burst, cfg.rate.per_second, now),
            cfg,
            events,
            outgoing,
            shutdown,
            reported_stale: 0,
            reported_overflow: 0,
            store: None,
            last_seen: HashMap::new(),
            last_seen_dirty: HashSet::new(),
        }
    }

    async fn report(&self, state: LinkState) {
        let _ = self
            .events
            .send(Event::NetworkState {
                network: self.cfg.name.clone(),
                state,
                queue_len: self.queue.len(),
            })
            .await;
    }

    #[tracing::instrument(skip_all, fields(network = %self.cfg.name))]
    async fn run(mut self) {
        self.load_last_seen().await;
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            tracing::info!(server = %self.cfg.host, port = self.cfg.port, tls = self.cfg.tls, "connecting");
            let started = Instant::now();
            match self.connect().await {
                Ok((reader, writer)) => {
                    let end = self.session(reader, writer).await;
                    self.flush_last_seen().await;
                    if started.elapsed() >= Duration::from_secs(300) {
                        backoff.reset();
                    }
                    match end {
                        SessionEnd::Shutdown => break,
                        SessionEnd::Lost(why) => {
                            tracing::warn!(reason = %why, queued = self.queue.len(), "connection lost");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot connect"),
            }
            self.report(LinkState::Reconnecting).await;
            let delay = backoff.next_delay(rand::rng().random());
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                "reconnecting after delay"
            );
            let until = tokio::time::Instant::now() + delay;
            // Keep accepting messages while waiting: they are sent after the reconnect.
            loop {
                tokio::select! {
                    () = self.shutdown.cancelled() => break,
                    () = tokio::time::sleep_until(until) => break,
                    out = self.outgoing.recv() => match out {
                        Some(out) => self.enqueue(out, None),
                        None => break,
                    },
                }
            }
        }
        self.report(LinkState::Stopped).await;
        tracing::info!("stopped");
    }

    fn new_session(&self, now: Instant) -> Session {
        Session {
            nick: self.cfg.nick.clone(),
            user: format!("~{}", self.cfg.username),
            host: HOST_GUESS.to_owned(),
            registered: false,
            nick_attempt: 0,
            cap_ls: HashSet::new(),
            cap_ls_done: false,
            caps: HashSet::new(),
            cap_pending: 0,
            sasl_done: false,
            logged_in: false,
            whox: false,
            bot_mode: None,
            accounts: HashMap::new(),
            joined: HashSet::new(),
            rejoin: Vec::new(),
            channels: HashMap::new(),
            names: HashMap::new(),
            batches: HashMap::new(),
            cap_values: HashMap::new(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            catching_up: HashMap::new(),
            recent_ids: VecDeque::new(),
            last_rx: now,
            ping_sent: false,
            next_regain: now + Duration::from_secs(30),
        }
    }

    async fn session(&mut self, mut reader: Reader, mut writer: Writer) -> SessionEnd {
        let now = Instant::now();
        self.queue.clear_protocol();
        // The server's flood counters start over with a new connection.
        self.bucket = TokenBucket::new(self.cfg.rate.burst, self.cfg.rate.per_second, now);
        let mut s = self.new_session(now);
        // Registration: these few lines go out at once.
        let mut hello = vec!["CAP LS 302".to_owned()];
        if let Some(p) = &self.cfg.password {
            hello.push(format!("PASS :{}", p.expose()));
        }
        hello.push(format!("NICK {}", s.nick));
        hello.push(format!(
            "USER {} 0 * :{}",
            text::clean(&self.cfg.username).replace(' ', ""),
            text::clean(&self.cfg.realname)
        ));
        for l in hello {
            if let Err(e) = write_line(&mut writer, &l).await {
                return SessionEnd::Lost(format!("write failed: {e}"));
            }
            let _ = self.bucket.try_take(Instant::now());
        }

        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = Vec::with_capacity(1024);
        let mut last_report = Instant::now();
        loop {
            let next_send = self.next_send_delay(&s);
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => {
                    self.finish(&mut writer, &s).await;
                    return SessionEnd::Shutdown;
                }
                read = read_line(&mut reader, &mut buf) => {
                    match read {
                        Ok(Some(line)) => {
                            s.last_rx = Instant::now();
                            s.ping_sent = false;
                            if let Some(end) = self.on_line(&line, &mut s, &mut writer).await {
                                return end;
                            }
                        }
                        Ok(None) => return SessionEnd::Lost("server closed the connection".into()),
                        Err(e) => return SessionEnd::Lost(format!("read failed: {e}")),
                    }
                }
                () = sleep_opt(next_send) => {
                    if let Err(e) = self.send_ready(&mut writer, &s).await {
                        return SessionEnd::Lost(format!("write failed: {e}"));
                    }
                }
                out = self.outgoing.recv() => {
                    match out {
                        Some(out) => self.enqueue(out, Some(&s)),
                        // The core is gone: only happens at shutdown.
                        None => {
                            self.finish(&mut writer, &s).await;
                            return SessionEnd::Shutdown;
                        }
                    }
                }
                _ = tick.tick() => {
                    if let Some(end) = self.on_tick(&mut s) {
                        return end;
                    }
                    self.flush_last_seen().await;
                    if last_report.elapsed() >= Duration::from_secs(5) {
                        last_report = Instant::now();
                        self.report(if s.registered { LinkState::Connected } else { LinkState::Starting }).await;
                    }
                }
            }
        }
    }

    fn on_tick(&mut self, s: &mut Session) -> Option<SessionEnd> {
        let now = Instant::now();
        let idle = now.saturating_duration_since(s.last_rx);
        if idle >= self.cfg.ping_timeout {
            return Some(SessionEnd::Lost(format!(
                "ping timeout ({} s without data)",
                idle.as_secs()
            )));
        }
        if idle >= self.cfg.ping_timeout / 2 && !s.ping_sent {
            s.ping_sent = true;
            self.push_protocol(format!("PING :sigbot-{}", now.elapsed().as_millis()));
        }
        if !s.registered {
            return None;
        }
        let due: Vec<String> = s
            .rejoin
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, c)| c.clone())
            .collect();
        if !due.is_empty() {
            s.rejoin.retain(|(at, _)| *at > now);
            for chan in due {
                self.push_protocol(self.join_line(&chan));
            }
        }
        if now >= s.next_regain && lower(&s.nick) != lower(&self.cfg.nick) {
            s.next_regain = now + Duration::from_secs(30);
            self.push_protocol(format!("NICK {}", self.cfg.nick));
        }
        None
    }

    async fn on_line(&mut self, line: &str, s: &mut Session, w: &mut Writer) -> Option<SessionEnd> {
        let msg: Message = match line.parse() {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "unparsable server line skipped");
                return None;
            }
        };
        let from_nick = match &msg.prefix {
            Some(Prefix::Nickname(n, _, _)) => Some(n.clone()),
            _ => None,
        };
        match &msg.command {
            Command::PING(a, b) => {
                // Answered at once: a delayed PONG is how bots time out.
                let pong = match b {
                    Some(b) => format!("PONG {a} :{b}"),
                    None => format!("PONG :{a}"),
                };
                if let Err(e) = write_line(w, &pong).await {
                    return Some(SessionEnd::Lost(format!("write failed: {e}")));
                }
                let _ = self.bucket.try_take(Instant::now());
            }
            Command::ERROR(reason) => {
                return Some(SessionEnd::Lost(format!("server error: {reason}")));
            }
            Command::CAP(_, sub, a, b) => {
                if let Some(end) = self.on_cap(sub, a.as_deref(), b.as_deref(), s, w).await {
                    return Some(end);
                }
            }
            Command::AUTHENTICATE(data) => {
                if data == "+" {
                    let reply = match &self.cfg.sasl {
                        Some(Sasl::Plain { user, password }) => {
                            let raw = format!("{user}\0{user}\0{}", password.expose());
                            base64::engine::general_purpose::STANDARD.encode(raw)
                        }
                        _ => "+".to_owned(),
                    };
                    // Payloads over 400 bytes are sent in 400-byte chunks, ending with "+"
                    // when the last chunk is exactly 400.
                    let mut chunks: Vec<&str> = Vec::new();
                    let mut rest = reply.as_str();
                    while rest.len() >= 400 {
                        chunks.push(&rest[..400]);
                        rest = &rest[400..];
                    }
                    chunks.push(if rest.is_empty() { "+" } else { rest });
                    for c in chunks {
                        if let Err(e) = write_line(w, &format!("AUTHENTICATE {c}")).await {
                            return Some(SessionEnd::Lost(format!("write failed: {e}")));
                        }
                    }
                }
            }
            Command::Response(resp, args) => {
                if let Some(end) = self.on_numeric(*resp, args, s, w).await {
                    return Some(end);
                }
            }
            Command::Raw(code, args) if code == "354" => {
                // WHOX reply to "WHO #chan %tna,152": me 152 nick account
                if args.len() >= 4 && args[1] == "152" {
                    let account = (args[3] != "0").then(|| args[3].clone());
                    s.accounts.insert(lower(&args[2]), account);
                }
            }
            Command::JOIN(chan, account, _) => {
                let nick = from_nick?;
                if in_batch(&msg, s, "CHATHISTORY") {
                    return None;
                }
                if lower(&nick) == lower(&s.nick) {
                    if let Some(Prefix::Nickname(_, u, h)) = &msg.prefix {
                        if !u.is_empty() {
                            s.user = u.clone();
                        }
                        if !h.is_empty() {
                            s.host = h.clone();
                        }
                    }
                    s.joined.insert(lower(chan));
                    s.channels.insert(
                        lower(chan),
                        Channel {
                            name: chan.clone(),
                            nicks: HashMap::new(),
                        },
                    );
                    tracing::info!(channel = %chan, "joined");
                    self.request_history(chan, s);
                    if s.whox {
                        self.push_protocol(format!("WHO {chan} %tna,152"));
                    }
                    self.report(LinkState::Connected).await;
                } else {
                    if s.caps.contains("extended-join") {
                        let acct = account.clone().filter(|a| a != "*");
                        s.accounts.insert(lower(&nick), acct);
                    }
                    if let Some(c) = s.channels.get_mut(&lower(chan)) {
                        c.nicks.insert(lower(&nick), nick.clone());
                        let room = c.name.clone();
                        self.presence(&room, &nick, PresenceChange::Join).await;
                    }
                }
            }
            Command::PART(chan, reason) => {
                let nick = from_nick?;
                if in_batch(&msg, s, "CHATHISTORY") {
                    return None;
                }
                if lower(&nick) == lower(&s.nick) {
                    s.channels.remove(&lower(chan));
                } else if let Some(c) = s.channels.get_mut(&lower(chan)) {
                    c.nicks.remove(&lower(&nick));
                    let room = c.name.clone();
                    let what = PresenceChange::Part {
                        reason: reason.clone().filter(|r| !r.is_empty()),
                    };
                    self.presence(&room, &nick, what).await;
                }
            }
            Command::TOPIC(chan, Some(text)) => {
                let nick = from_nick?;
                if in_batch(&msg, s, "CHATHISTORY") || lower(&nick) == lower(&s.nick) {
                    return None;
                }
                if let Some(c) = s.channels.get(&lower(chan)) {
                    let room = c.name.clone();
                    let what = PresenceChange::Topic { text: text.clone() };
                    self.presence(&room, &nick, what).await;
                }
            }
            Command::BATCH(reference, kind, params) => {
                if let Some(r) = reference.strip_prefix('+') {
                    let kind = kind
                        .as_ref()
                        .map(|k| k.to_str().to_ascii_uppercase())
                        .unwrap_or_default();
                    s.batches
                        .insert(r.to_owned(), (kind, params.clone().unwrap_or_default()));
                } else if let Some(r) = reference.strip_prefix('-')
                    && let Some((kind, params)) = s.batches.remove(r)
                    && kind == "CHATHISTORY"
                    && let Some(chan) = params.first()
                {
                    s.catching_up.remove(&lower(chan));
                    tracing::info!(channel = %chan, "caught up through CHATHISTORY");
                }
            }
            Command::Raw(cmd, args)
                if cmd == "FAIL" && args.first().is_some_and(|a| a == "CHATHISTORY") =>
            {
                tracing::warn!(reply = ?args, "CHATHISTORY refused; no catch-up");
                s.catching_up.clear();
            }
            Command::ACCOUNT(account) => {
                if let Some(nick) = from_nick {
                    s.accounts
                        .insert(lower(&nick), Some(account.clone()).filter(|a| a != "*"));
                }
            }
            Command::NICK(new) => {
                if let Some(old) = from_nick {
                    if lower(&old) == lower(&s.nick) {
                        tracing::info!(nick = %new, "nick changed");
                        s.nick = new.clone();
                    } else {
                        if let Some(acct) = s.accounts.remove(&lower(&old)) {
                            s.accounts.insert(lower(new), acct);
                        }
                        for room in s.rename_member(&old, new) {
                            let what = PresenceChange::Nick { new: new.clone() };
                            self.presence(&room, &old, what).await;
                        }
                    }
                }
            }
            Command::QUIT(reason) => {
                if let Some(nick) = from_nick {
                    s.accounts.remove(&lower(&nick));
                    // In an IRCv3 netsplit batch the servers that split say it best.
                    let reason = match batch_of(&msg, s) {
                        Some((kind, servers)) if kind == "NETSPLIT" && !servers.is_empty() => {
                            Some(servers.join(" "))
                        }
                        _ => reason.clone().filter(|r| !r.is_empty()),
                    };
                    for room in s.remove_member(&nick) {
                        let what = PresenceChange::Quit {
                            reason: reason.clone(),
                        };
                        self.presence(&room, &nick, what).await;
                    }
                    // Our primary nick may be free now.
                    if lower(&nick) == lower(&self.cfg.nick) && lower(&s.nick) != lower(&nick) {
                        self.push_protocol(format!("NICK {}", self.cfg.nick));
                    }
                }
            }
            Command::KICK(chan, who, reason) => {
                if lower(who) == lower(&s.nick) {
                    s.joined.remove(&lower(chan));
                    tracing::warn!(channel = %chan, reason = ?reason, delay_s = self.cfg.rejoin_delay.as_secs(), "kicked; rejoining after a delay");
                    s.rejoin
                        .push((Instant::now() + self.cfg.rejoin_delay, chan.clone()));
                    s.channels.remove(&lower(chan));
                } else if let Some(c) = s.channels.get_mut(&lower(chan)) {
                    c.nicks.remove(&lower(who));
                    let room = c.name.clone();
                    let what = PresenceChange::Kick {
                        by: from_nick.unwrap_or_default(),
                        reason: reason.clone().filter(|r| !r.is_empty()),
                    };
                    self.presence(&room, who, what).await;
                }
            }
            Command::CHGHOST(user, host) => {
                if from_nick
                    .as_deref()
                    .is_some_and(|n| lower(n) == lower(&s.nick))
                {
                    s.user = user.clone();
                    s.host = host.clone();
                }
            }
            Command::PRIVMSG(target, body) | Command::NOTICE(target, body) => {
                let notice = matches!(msg.command, Command::NOTICE(..));
                let nick = from_nick?;
                if lower(&nick) == lower(&s.nick) || is_own_relay(&msg, &nick, s) {
                    // Our own line (echo-message): never handled, never relayed.
                    return None;
                }
                let channel = target.starts_with('#') || target.starts_with('&');
                let sent_at = tag_of(&msg, "time")
                    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.with_timezone(&Utc));
                let id = tag_of(&msg, "msgid");
                if in_batch(&msg, s, "CHATHISTORY") {
                    // Only what came after the last line seen, and not seen live since.
                    let since = s.catching_up.get(&lower(target)).copied()?;
                    let seen = id.as_ref().is_some_and(|i| s.recent_ids.contains(i));
                    if seen || sent_at.is_none_or(|t| t <= since) {
                        return None;
                    }
                }
                if let Some(i) = &id {
                    if s.recent_ids.len() >= RECENT_IDS {
                        s.recent_ids.pop_front();
                    }
                    s.recent_ids.push_back(i.clone());
                }
                if channel {
                    self.saw(target, sent_at.unwrap_or_else(Utc::now));
                }
                if let Some(ev) = self.incoming(&msg, &nick, target, body, notice, s) {
                    let _ = self.events.send(ev).await;
                }
            }
            _ => {}
        }
        None
    }

    fn incoming(
        &self,
        msg: &Message,
        nick: &str,
        target: &str,
        body: &str,
        notice: bool,
        s: &Session,
    ) -> Option<Event> {
        let tag = |name: &str| -> Option<String> {
            msg.tags
                .as_ref()?
                .iter()
                .find(|t| t.0 == name)
                .and_then(|t| t.1.clone())
        };
        let (kind, text) = if let Some(action) = text::parse_ctcp_action(body) {
            (MessageKind::Emote, action.to_owned())
        } else if body.starts_with('\x01') {
            // Other CTCP requests (VERSION, PING, ...) are not chat.
            return None;
        } else if notice {
            (MessageKind::Notice, body.to_owned())
        } else {
            (MessageKind::Text, body.to_owned())
        };
        let private = lower(target) == lower(&s.nick);
        let room = if private {
            nick.to_owned()
        } else {
            target.to_owned()
        };
        // The account comes only from the server; a nick alone never identifies anyone.
        let account = if s.caps.contains("account-tag") {
            tag("account").filter(|a| a != "*")
        } else {
            s.accounts.get(&lower(nick)).cloned().flatten()
        };
        let sent_at = tag("time")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        Some(Event::Message(IncomingMessage {
            room: RoomRef::new(&self.cfg.name, room),
            sender: Sender {
                nick: nick.to_owned(),
                principal: account.map(|a| Principal::new(&self.cfg.name, a)),
            },
            kind,
            text,
            id: tag("msgid"),
            sent_at,
        }))
    }
}

fn tag_of(msg: &Message, name: &str) -> Option<String> {
    msg.tags
        .as_ref()?
        .iter()
        .find(|t| t.0 == name)
        .and_then(|t| t.1.clone())
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

    impl AsyncWrite for Sink {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.0.lock().unwrap().extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    impl Sink {
        fn take(&self) -> Vec<String> {
            let bytes = std::mem::take(&mut *self.0.lock().unwrap());
            String::from_utf8(bytes)
                .unwrap()
                .split("\r\n")
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        }
    }

    struct Rig {
        driver: Driver,
        session: Session,
        sink: Sink,
        writer: Writer,
        events: mpsc::Receiver<Event>,
        _out: mpsc::Sender<Outgoing>,
    }

    fn rig(extra: &str) -> Rig {
        let toml = format!(
            "[[irc]]\nname = \"net\"\nserver = \"irc.example.org\"\nnick = \"sigbot\"\nchannels = [\"#sig\"]\n{extra}\n"
        );
        let cfg = crate::config::Config::from_str_with_env(
            &toml,
            std::path::Path::new("t.toml"),
            &|_| None,
        )
        .unwrap()
        .irc
        .remove(0);
        let (events_tx, events) = mpsc::channel(64);
        let (out_tx, out_rx) = mpsc::channel(64);
        let driver = Driver::new(cfg, events_tx, out_rx, CancellationToken::new());
        let session = driver.new_session(Instant::now());
        let sink = Sink::default();
        Rig {
            driver,
            session,
            writer: Box::new(sink.clone()),
            sink,
            events,
            _out: out_tx,
        }
    }

    impl Rig {
        async fn feed(&mut self, line: &str) -> Option<SessionEnd> {
            self.driver
                .on_line(line, &mut self.session, &mut self.writer)
                .await
        }

        fn registered(&mut self, caps: &[&str]) {
            self.session.registered = true;
            self.session.caps = caps.iter().map(|c| (*c).to_owned()).collect();
        }

        /// The principal of the next chat message event.
        fn next_principal(&mut self) -> Option<String> {
            loop {
                match self.events.try_recv().expect("an event") {
                    Event::Message(m) => return m.sender.principal.map(|p| p.to_string()),
                    _ => continue,
                }
            }
        }
    }

    #[tokio::test]
    async fn without_account_tag_identity_comes_from_extended_join_account_notify_and_whox() {
        let mut r = rig("");
        r.registered(&["extended-join", "account-notify"]);
        r.feed(":alice!a@h JOIN #sig alice :Alice").await;
        r.feed(":alice!a@h PRIVMSG #sig :!whoami").await;
        assert_eq!(r.next_principal().as_deref(), Some("net:alice"));
        // She logs out: her nick is worth nothing.
        r.feed(":alice!a@h ACCOUNT *").await;
        r.feed(":alice!a@h PRIVMSG #sig :!whoami").await;
        assert_eq!(r.next_principal(), None);
        // WHOX reply for someone already in the channel, then a nick change.
        r.feed(":irc.example.org 354 sigbot 152 bob bobacct").await;
        r.feed(":bob!b@h NICK bobby").await;
        r.feed(":bobby!b@h PRIVMSG #sig :hi").await;
        assert_eq!(r.next_principal().as_deref(), Some("net:bobacct"));
        // A stranger nobody told us about has no principal.
        r.feed(":carol!c@h PRIVMSG #sig :hi").await;
        assert_eq!(r.next_principal(), None);
    }

    #[tokio::test]
    async fn with_account_tag_only_the_tag_counts() {
        let mut r = rig("");
        r.registered(&["account-tag", "extended-join"]);
        r.feed(":alice!a@h JOIN #sig alice :Alice").await;
        r.feed(":alice!a@h PRIVMSG #sig :no tag").await;
        assert_eq!(r.next_principal(), None);
        r.feed("@account=alice :alice!a@h PRIVMSG #sig :tagged")
            .await;
        assert_eq!(r.next_principal().as_deref(), Some("net:alice"));
    }

    #[tokio::test]
    async fn cap_negotiation_requests_only_offered_wanted_caps_across_ls_lines() {
        let mut r = rig("");
        r.feed(":srv CAP * LS * :sasl server-time foo/bar").await;
        assert!(r.sink.take().is_empty(), "no REQ before the last LS line");
        r.feed(":srv CAP * LS :account-tag echo-message chghost")
            .await;
        // No SASL configured: sasl is not requested.
        assert_eq!(
            r.sink.take(),
            ["CAP REQ :server-time account-tag echo-message chghost"]
        );
        r.feed(":srv CAP * ACK :server-time account-tag echo-message chghost")
            .await;
        assert_eq!(r.sink.take(), ["CAP END"]);
        assert!(r.session.caps.contains("account-tag"));
    }

    #[tokio::test]
    async fn sasl_plain_sends_the_base64_payload_then_ends_negotiation() {
        let mut r = rig("sasl = { user = \"bot\", password = \"pw\" }");
        r.feed(":srv CAP * LS :sasl=PLAIN,EXTERNAL").await;
        assert_eq!(r.sink.take(), ["CAP REQ :sasl"]);
        r.feed(":srv CAP * ACK :sasl").await;
        assert_eq!(r.sink.take(), ["AUTHENTICATE PLAIN"]);
        r.feed("AUTHENTICATE +").await;
        let expected = base64::engine::general_purpose::STANDARD.encode("bot\0bot\0pw");
        assert_eq!(r.sink.take(), [format!("AUTHENTICATE {expected}")]);
        r.feed(":srv 900 sigbot sigbot!b@h bot :You are now logged in as bot")
            .await;
        r.feed(":srv 903 sigbot :SASL authentication successful")
            .await;
        assert_eq!(r.sink.take(), ["CAP END"]);
        assert!(r.session.logged_in);
    }

    #[tokio::test]
    async fn welcome_joins_channels_and_sets_bot_mode_from_isupport() {
        let mut r = rig("");
        r.feed(":srv 001 sigbot :Welcome").await;
        r.feed(":srv 005 sigbot BOT=B WHOX :are supported").await;
        let now = Instant::now();
        let mut queued = Vec::new();
        while let Some(Ok(l)) = r.driver.queue.pop(now) {
            queued.push(l.line);
        }
        assert_eq!(queued, ["JOIN #sig", "MODE sigbot +B"]);
        assert!(r.session.whox);
    }

    #[tokio::test]
    async fn ping_is_answered_at_once_and_silence_ends_the_session() {
        let mut r = rig("ping_timeout = \"60s\"");
        r.feed("PING :abc").await;
        assert_eq!(r.sink.take(), ["PONG :abc"]);
        r.session.last_rx = Instant::now() - Duration::from_secs(31);
        assert!(r.driver.on_tick(&mut r.session).is_none());
        assert!(
            r.driver
                .queue
                .pop(Instant::now())
                .unwrap()
                .unwrap()
                .line
                .starts_with("PING :")
        );
        r.session.last_rx = Instant::now() - Duration::from_secs(61);
        assert!(matches!(
            r.driver.on_tick(&mut r.session),
            Some(SessionEnd::Lost(_))
        ));
    }

    #[tokio::test]
    async fn own_echoes_and_ctcp_requests_are_not_chat_and_actions_are_emotes() {
        let mut r = rig("");
        r.registered(&["echo-message"]);
        r.feed(":sigbot!s@h PRIVMSG #sig :my own line").await;
        r.feed(":alice!a@h PRIVMSG #sig :\u{1}VERSION\u{1}").await;
        r.feed(":alice!a@h PRIVMSG #sig :\u{1}ACTION waves\u{1}")
            .await;
        r.feed(":alice!a@h PRIVMSG sigbot :!ping").await;
        let Event::Message(m) = r.events.try_recv().unwrap() else {
            panic!()
        };
        assert_eq!((m.kind, m.text.as_str()), (MessageKind::Emote, "waves"));
        let Event::Message(m) = r.events.try_recv().unwrap() else {
            panic!()
        };
        assert_eq!(
            m.room.room, "alice",
            "a private message's room is its sender"
        );
        assert!(r.events.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_kick_schedules_a_rejoin_and_a_nick_collision_picks_an_alternative() {
        let mut r = rig("alt_nicks = [\"sigbot-alt\"]\nrejoin_delay = \"0s\"");
        r.feed(":srv 433 * sigbot :Nickname is already in use")
            .await;
        assert_eq!(r.sink.take(), ["NICK sigbot-alt"]);
        r.feed(":srv 433 * sigbot-alt :Nickname is already in use")
            .await;
        assert_eq!(r.sink.take(), ["NICK sigbot_"]);
        r.feed(":srv 001 sigbot_ :Welcome").await;
        while r.driver.queue.pop(Instant::now()).is_some() {}
        r.feed(":op!o@h KICK #sig sigbot_ :bye").await;
        assert!(r.driver.on_tick(&mut r.session).is_none());
        let mut queued = Vec::new();
        while let Some(Ok(l)) = r.driver.queue.pop(Instant::now()) {
            queued.push(l.line);
        }
        assert!(queued.contains(&"JOIN #sig".to_owned()), "{queued:?}");
    }

    impl Rig {
        /// The next event that is not a network state report.
        fn next_event(&mut self) -> Event {
            loop {
                match self.events.try_recv().expect("an event") {
                    Event::NetworkState { .. } => continue,
                    ev => return ev,
                }
            }
        }

        fn next_presence(&mut self) -> (String, String, PresenceChange) {
            match self.next_event() {
                Event::Presence(p) => (p.room.room, p.nick, p.what),
                other => panic!("not presence: {other:?}"),
            }
        }

        fn next_text(&mut self) -> String {
            match self.next_event() {
                Event::Message(m) => m.text,
                other => panic!("not a message: {other:?}"),
            }
        }

        fn queued(&mut self) -> Vec<String> {
            let mut out = Vec::new();
            while let Some(Ok(l)) = self.driver.queue.pop(Instant::now()) {
                out.push(l.line);
            }
            out
        }

        fn relay(&mut self, room: &str, text: &str, kind: SendKind) {
            let out = Outgoing {
                room: room.into(),
                text: text.into(),
                html: None,
                kind,
                priority: Priority::Relay,
                op: OutgoingOp::Message,
                receipt: Default::default(),
                mentions: Vec::new(),
            };
            self.driver.enqueue(out, Some(&self.session));
        }
    }

    #[tokio::test]
    async fn names_and_membership_changes_become_member_lists_and_presence_events() {
        let mut r = rig("");
        r.registered(&["batch", "multi-prefix"]);
        r.feed(":sigbot!s@h JOIN #sig").await;
        r.feed(":srv 353 sigbot = #sig :@sigbot @+alice bob").await;
        r.feed(":srv 353 sigbot = #sig :dave").await;
        r.feed(":srv 366 sigbot #sig :End of /NAMES list.").await;
        match r.next_event() {
            Event::Members { room, nicks } => {
                assert_eq!(room, RoomRef::new("net", "#sig"));
                assert_eq!(nicks, ["alice", "bob", "dave"], "without the bot itself");
            }
            other => panic!("{other:?}"),
        }
        r.feed(":carol!c@h JOIN #sig").await;
        assert_eq!(
            r.next_presence(),
            ("#sig".into(), "carol".into(), PresenceChange::Join)
        );
        r.feed(":alice!a@h NICK alicia").await;
        assert_eq!(
            r.next_presence(),
            (
                "#sig".into(),
                "alice".into(),
                PresenceChange::Nick {
                    new: "alicia".into()
                }
            )
        );
        r.feed(":bob!b@h QUIT :Ping timeout").await;
        assert_eq!(
            r.next_presence().2,
            PresenceChange::Quit {
                reason: Some("Ping timeout".into())
            }
        );
        r.feed(":alicia!a@h PART #sig :bye").await;
        assert_eq!(
            r.next_presence().2,
            PresenceChange::Part {
                reason: Some("bye".into())
            }
        );
        r.feed(":op!o@h KICK #sig carol :spam").await;
        assert_eq!(
            r.next_presence(),
            (
                "#sig".into(),
                "carol".into(),
                PresenceChange::Kick {
                    by: "op".into(),
                    reason: Some("spam".into())
                }
            )
        );
        r.feed(":op!o@h TOPIC #sig :Meeting at 15:00").await;
        assert_eq!(
            r.next_presence().2,
            PresenceChange::Topic {
                text: "Meeting at 15:00".into()
            }
        );
        // An IRCv3 netsplit batch names the servers that split.
        r.feed(":srv BATCH +ns netsplit hub.example.org leaf.example.org")
            .await;
        r.feed("@batch=ns :dave!d@h QUIT :*.net *.split").await;
        r.feed(":srv BATCH -ns").await;
        assert_eq!(
            r.next_presence(),
            (
                "#sig".into(),
                "dave".into(),
                PresenceChange::Quit {
                    reason: Some("hub.example.org leaf.example.org".into())
                }
            )
        );
        // Someone who shares no channel with the bot is nobody's business.
        r.feed(":stranger!s@h QUIT :bye").await;
        assert!(r.events.try_recv().is_err());
        assert_eq!(
            r.session.channels[&lower("#sig")].nicks.len(),
            0,
            "everyone left"
        );
    }

    #[tokio::test]
    async fn chathistory_catches_up_from_the_stored_last_seen_time_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t0 = Utc::now() - chrono::TimeDelta::minutes(2);
        let at = |secs: i64| {
            (t0 + chrono::TimeDelta::seconds(secs))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let caps = ["draft/chathistory", "batch", "server-time", "message-tags"];

        // A first run sees a line, stores its time, and stops.
        let mut r = rig("");
        r.driver.store = Some(store.clone());
        r.registered(&caps);
        r.feed(&format!(
            "@time={};msgid=m0 :alice!a@h PRIVMSG #sig :before the downtime",
            at(0)
        ))
        .await;
        assert_eq!(r.next_text(), "before the downtime");
        r.driver.flush_last_seen().await;

        // The next run asks for what came after it when it joins.
        let mut r = rig("");
        r.driver.store = Some(store);
        r.driver.load_last_seen().await;
        r.registered(&caps);
        r.feed(":srv 005 sigbot CHATHISTORY=50 :are supported")
            .await;
        r.feed(":sigbot!s@h JOIN #sig").await;
        assert_eq!(
            r.queued(),
            [format!("CHATHISTORY AFTER #sig timestamp={} 50", at(0))]
        );
        // A line arrives live before the server answers.
        r.feed(&format!(
            "@time={};msgid=m3 :bob!b@h PRIVMSG #sig :live",
            at(3)
        ))
        .await;
        r.feed(":srv BATCH +h1 chathistory #sig").await;
        for (t, id, text) in [
            (0, "m0", "before the downtime"),
            (1, "m1", "missed one"),
            (2, "m2", "missed two"),
            (3, "m3", "live"),
        ] {
            r.feed(&format!(
                "@batch=h1;time={};msgid={id} :alice!a@h PRIVMSG #sig :{text}",
                at(t)
            ))
            .await;
        }
        r.feed(&format!("@batch=h1;time={} :alice!a@h JOIN #sig", at(1)))
            .await;
        r.feed(":srv BATCH -h1").await;
        let mut got = Vec::new();
        while let Ok(ev) = r.events.try_recv() {
            match ev {
                Event::Message(m) => got.push(m.text),
                Event::NetworkState { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, ["live", "missed one", "missed two"]);
        assert!(r.session.catching_up.is_empty());
        // A replay nobody asked for is not relayed.
        r.feed(":srv BATCH +h2 chathistory #sig").await;
        r.feed(&format!(
            "@batch=h2;time={};msgid=m9 :alice!a@h PRIVMSG #sig :again",
            at(9)
        ))
        .await;
        assert!(r.events.try_recv().is_err());
    }

    #[tokio::test]
    async fn without_a_stored_time_or_the_capability_no_history_is_asked_for() {
        let mut r = rig("");
        r.registered(&["batch", "server-time"]);
        r.driver
            .last_seen
            .insert("#sig".into(), Utc::now() - chrono::TimeDelta::minutes(1));
        r.feed(":sigbot!s@h JOIN #sig").await;
        assert!(r.queued().iter().all(|l| !l.starts_with("CHATHISTORY")));
        let mut r = rig("");
        r.registered(&["draft/chathistory"]);
        r.feed(":sigbot!s@h JOIN #sig").await;
        assert!(r.queued().iter().all(|l| !l.starts_with("CHATHISTORY")));
    }

    #[tokio::test]
    async fn relayed_lines_go_out_as_relaymsg_where_offered_and_enabled() {
        let mut r = rig("");
        r.feed(":srv CAP * LS :draft/relaymsg=/ echo-message").await;
        assert_eq!(r.sink.take(), ["CAP REQ :echo-message draft/relaymsg"]);
        r.feed(":srv CAP * ACK :echo-message draft/relaymsg").await;
        r.session.registered = true;
        r.driver.cfg.relaymsg_channels = vec!["#sig".into()];
        r.relay("#sig", "<a\u{200B}lice> hello there", SendKind::Relay);
        r.relay("#sig", "<Z\u{200B}oë K> hi", SendKind::Relay);
        // The bot's own words, emotes, and channels without relaymsg stay PRIVMSG.
        r.relay("#sig", "pong", SendKind::Reply);
        r.relay("#sig", "* a\u{200B}lice waves", SendKind::Relay);
        r.relay("#other", "<a\u{200B}lice> hello", SendKind::Relay);
        assert_eq!(
            r.queued(),
            [
                "RELAYMSG #sig alice/b :hello there",
                "RELAYMSG #sig Zo__K/b :hi",
                "PRIVMSG #sig :pong",
                "PRIVMSG #sig :* a\u{200B}lice waves",
                "PRIVMSG #other :<a\u{200B}lice> hello",
            ]
        );
        // The server's echo of our RELAYMSG is ours: never relayed back.
        r.feed("@draft/relaymsg=sigbot :alice/b!x@h PRIVMSG #sig :hello there")
            .await;
        assert!(r.events.try_recv().is_err());
        // Without the capability, the plain form.
        r.session.caps.remove("draft/relaymsg");
        r.relay("#sig", "<a\u{200B}lice> hello", SendKind::Relay);
        assert_eq!(r.queued(), ["PRIVMSG #sig :<a\u{200B}lice> hello"]);
    }

    #[test]
    fn rfc1459_casemapping() {
        assert_eq!(lower("Nick[Away]"), "nick{away}");
        assert_eq!(lower("A\\B~"), "a|b^");
    }
}
