//! Soak (issue 13, DESIGN §9): N minutes (default 30) of mixed, numbered traffic against the real
//! servers of the integration-test harness (InspIRCd + Anope, Synapse, mosquitto), with the
//! sigbot binary as a child process.
//!
//! Traffic, all numbered so that every item can be counted at its destination:
//! - the bridge both ways at 10 messages a second in all: carol on IRC says `soak-i-N` (5/s),
//!   alice on Matrix says `soak-m-N` (5/s);
//! - MQTT at 20 events a second (`{"n": N}` on `soak/events`), relayed as `soak-q-N` into an
//!   IRC channel of its own (`SOAK_RELAY=matrix`: a Matrix room, see [`relay_to_matrix`]);
//! - one meeting in the bridged room, started before the traffic and ended after it, its
//!   minutes checked on disk (every bridged line in the log once);
//! - a command every 5 s in a channel of its own, `!ping` and `!lookup N` in turn (the lookup
//!   against an HTTP server of this process);
//! - `/search` and `/media/<id>` fetched from the bot's web site in a loop.
//!
//! Faults: the IRC server is killed at one third (down for a few seconds, then started again on
//! the same port) and Synapse is killed and restarted at two thirds.
//!
//! Every minute the bot's resident memory (VmRSS), open descriptors (`/proc/<pid>/fd`) and store
//! size are sampled; the table, the memory slope after warm-up (a least-squares line through the
//! samples from minute 5 on, or from minute 1 in runs shorter than 10 minutes) and the
//! lost/doubled counts are printed at the end. The process exits with status 1 when anything was
//! lost or doubled, or the minutes are wrong.
//!
//! What counts as sent: an IRC line that the IRC server delivered to dave, a second IRC client in
//! the channel (a line written into a server that is being killed never reached anyone); a
//! Matrix message whose `PUT` was answered 200 (retried with the same transaction ID while
//! Synapse is down); an MQTT event whose PUBACK came back. carol speaks only while dave and the
//! bot are both in the channel. What arrived is read from the destination itself: dave's IRC
//! connection, and the Matrix rooms' whole history through `/messages` once the bot's outbox is
//! empty after the traffic (so no `/sync` gap can hide or invent anything).
//!
//! usage: `soak [MINUTES]` (or `SOAK_MINUTES`; fractions allowed, e.g. `0.5`), with
//! `SIGBOT_BIN` naming the bot; `benches/soak.sh [MINUTES]` builds both and runs it.

#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::bot::Bot;
use support::irc::WaitError;
use support::matrix::encode;
use support::{
    BotConfig, IrcClass, IrcClient, IrcConnectOptions, IrcLine, IrcServer, MatrixClient,
    MosquittoOptions, MosquittoServer, MqttClient, RoomSpec, Section, SynapseServer, free_port,
    port_accepts, temp_dir, wait_until_within,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long setup steps (logins, joins, the first syncs of a debug-build bot) may take.
const SETUP: Duration = Duration::from_secs(240);
/// How long the IRC server stays down at one third.
const IRC_DOWN: Duration = Duration::from_secs(5);
/// After the traffic: how long the destinations may go without any new arrival before the
/// count is final, and the most the whole drain may take.
const DRAIN_IDLE: Duration = Duration::from_secs(60);
const DRAIN_MAX: Duration = Duration::from_secs(600);
/// How long a command's answer may take.
const COMMAND_WAIT: Duration = Duration::from_secs(20);

const BRIDGED: &str = "#soak";
const COMMANDS: &str = "#soakcmd";
const BRIDGED_ALIAS: &str = "soak";
const RELAY_ALIAS: &str = "soakrelay";
const RELAY_CHANNEL: &str = "#soakrelay";
const MQTT_TOPIC: &str = "soak/events";

const IRC_RATE: f64 = 5.0;
const MATRIX_RATE: f64 = 5.0;
const MQTT_RATE: f64 = 20.0;
const COMMAND_EVERY: Duration = Duration::from_secs(5);
const WEB_EVERY: Duration = Duration::from_millis(500);

/// Where the MQTT relay goes: an IRC channel, or with `SOAK_RELAY=matrix` a Matrix room. The
/// bot delivers to a network one message at a time, each waiting for the server's answer, so
/// its Matrix throughput is one over Synapse's answer time, and Synapse's one SQLite connection
/// serialises every request: on the 2-core machines here, with compilers running beside it,
/// that is about 3 sends a second with the servers' directories on disk and about 10 on tmpfs
/// (`TMPDIR=/dev/shm`), short of the 25 a second the bridge and the relay would offer together.
fn relay_to_matrix() -> bool {
    std::env::var("SOAK_RELAY").is_ok_and(|v| v == "matrix")
}

fn minutes_option() -> f64 {
    // The first argument that is not a flag is the duration.
    let arg = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .or_else(|| std::env::var("SOAK_MINUTES").ok());
    match arg {
        None => 30.0,
        Some(a) => match a.parse::<f64>() {
            Ok(m) if m > 0.0 => m,
            _ => {
                eprintln!("usage: soak [MINUTES] (or SOAK_MINUTES); got {a:?}");
                std::process::exit(2);
            }
        },
    }
}

/// The number after `tag` (e.g. `soak-i-`) anywhere in `text`.
fn number(text: &str, tag: &str) -> Option<usize> {
    let rest = &text[text.find(tag)? + tag.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Counts per number: how often each one was sent and how often it arrived.
#[derive(Debug, Clone)]
struct Ledger {
    /// Seconds after the start at which number `n` was sent (accepted by its first hop).
    sent_at: Vec<Option<f64>>,
    arrived: Vec<u32>,
    /// Arrivals of numbers out of range (never sent).
    strays: u32,
}

impl Ledger {
    fn new(n: usize) -> Ledger {
        Ledger {
            sent_at: vec![None; n],
            arrived: vec![0; n],
            strays: 0,
        }
    }

    fn arrive(&mut self, n: usize) {
        match self.arrived.get_mut(n) {
            Some(c) => *c += 1,
            None => self.strays += 1,
        }
    }

    fn sent(&self) -> usize {
        self.sent_at.iter().flatten().count()
    }

    /// Sent numbers that never arrived.
    fn lost(&self) -> Vec<usize> {
        (0..self.sent_at.len())
            .filter(|&n| self.sent_at[n].is_some() && self.arrived[n] == 0)
            .collect()
    }

    /// Numbers that arrived more than once.
    fn doubled(&self) -> Vec<usize> {
        (0..self.arrived.len())
            .filter(|&n| self.arrived[n] > 1)
            .collect()
    }

    /// Numbers that arrived although their first hop never confirmed them.
    fn unconfirmed_arrivals(&self) -> usize {
        (0..self.arrived.len())
            .filter(|&n| self.sent_at[n].is_none() && self.arrived[n] > 0)
            .count()
    }
}

#[derive(Debug, Default, Clone)]
struct Stats {
    commands_sent: u64,
    commands_answered: u64,
    search_ok: u64,
    search_other: u64,
    media_ok: u64,
    media_other: u64,
    web_errors: u64,
    /// IRC lines carol could not write (connection gone) or skipped while reconnecting.
    irc_unsent: u64,
    /// Matrix sends that needed more than one attempt.
    matrix_retried: u64,
    dave_reconnects: u64,
    /// Reconnections of dave after which the bot was already back in the channel (lines it
    /// sent before dave returned could not be seen).
    dave_late: u64,
}

struct Shared {
    start: Instant,
    /// IRC -> Matrix: sent = dave saw carol's line on IRC.
    to_matrix: Ledger,
    /// Matrix -> IRC: sent = the PUT was answered 200; arrived = dave saw it from the bot.
    to_irc: Ledger,
    /// MQTT -> Matrix: sent = PUBACK.
    relayed: Ledger,
    stats: Stats,
    /// Lines of the bot in the bridged channel that are not numbered (meeting, media).
    bot_lines: Vec<String>,
    /// Faults and their times (seconds after the start).
    events: Vec<(f64, String)>,
}

type State = Arc<Mutex<Shared>>;

fn elapsed(state: &State) -> f64 {
    state.lock().unwrap().start.elapsed().as_secs_f64()
}

fn note(state: &State, what: String) {
    let at = elapsed(state);
    eprintln!("[{at:7.1}s] {what}");
    state.lock().unwrap().events.push((at, what));
}

/// Connects `nick` to `addr`, waiting for the server to accept connections and retrying while it
/// is restarting.
async fn connect_irc(addr: SocketAddr, nick: &'static str) -> IrcClient {
    loop {
        wait_until_within(
            SETUP,
            || async move { port_accepts(addr).await.then_some(()) },
        )
        .await;
        // The harness panics when registration fails (a server killed meanwhile): try again.
        match tokio::spawn(IrcClient::connect_with(addr, IrcConnectOptions::new(nick))).await {
            Ok(client) => return client,
            Err(e) => eprintln!("{nick}: connection failed ({e}); retrying"),
        }
    }
}

/// Joins `channel` and returns whether `bot` was already in it (`None`: the connection failed).
async fn join(client: &mut IrcClient, channel: &str, bot: &str) -> Option<bool> {
    client.try_send(&format!("JOIN {channel}")).await.ok()?;
    let mut bot_there = false;
    loop {
        let line = client
            .try_wait_for(support::EXCHANGE_TIMEOUT, |l| {
                let is = |i: usize| l.param(i).is_some_and(|c| c.eq_ignore_ascii_case(channel));
                (l.command == "366" && is(1)) || (l.command == "353" && is(2))
            })
            .await
            .ok()?;
        if line.names_include(bot) {
            bot_there = true;
        }
        if line.command == "366" {
            return Some(bot_there);
        }
    }
}

/// Whether `line` says the bot entered (true) or left (false) the bridged channel.
fn bot_presence(line: &IrcLine) -> Option<bool> {
    let here = |i: usize| {
        line.param(i)
            .is_some_and(|c| c.eq_ignore_ascii_case(BRIDGED))
    };
    match line.command.as_str() {
        "JOIN" if line.nick() == Some("sigbot") && here(0) => Some(true),
        "PART" if line.nick() == Some("sigbot") && here(0) => Some(false),
        "QUIT" if line.nick() == Some("sigbot") => Some(false),
        "KICK" if here(0) && line.param(1) == Some("sigbot") => Some(false),
        _ => None,
    }
}

/// dave: sits in the bridged channel, witnesses carol's lines and counts the bot's, and comes
/// back after the IRC server does. `both_in` tells carol whether dave and the bot are both in
/// the channel: a line said while either is away cannot be witnessed or relayed (the test
/// server keeps no history for the bot to catch up from).
async fn dave(
    addr: SocketAddr,
    mut client: IrcClient,
    state: State,
    both_in: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let mut bot_in = true;
    loop {
        match client.try_wait_for(Duration::from_secs(1), |_| true).await {
            Ok(line) => {
                if let Some(present) = bot_presence(&line).filter(|p| *p != bot_in) {
                    bot_in = present;
                    note(&state, format!("dave: the bot is in {BRIDGED}: {present}"));
                    both_in.send_replace(present);
                }
                dave_line(&state, &line);
            }
            Err(WaitError::Timeout) => {
                if stop.is_cancelled() {
                    return;
                }
            }
            Err(_) => {
                both_in.send_replace(false);
                note(&state, "dave: disconnected from IRC".into());
                loop {
                    client = connect_irc(addr, "dave").await;
                    let Some(relay_first) = join(&mut client, RELAY_CHANNEL, "sigbot").await else {
                        continue;
                    };
                    if let Some(bot_there) = join(&mut client, BRIDGED, "sigbot").await {
                        let mut s = state.lock().unwrap();
                        s.stats.dave_reconnects += 1;
                        if bot_there || relay_first {
                            s.stats.dave_late += 1;
                        }
                        drop(s);
                        note(
                            &state,
                            format!("dave: back in {BRIDGED} (bot already there: {bot_there})"),
                        );
                        bot_in = bot_there;
                        break;
                    }
                }
                both_in.send_replace(bot_in);
            }
        }
    }
}

fn dave_line(state: &State, line: &IrcLine) {
    if line.command != "PRIVMSG" {
        return;
    }
    let text = line.text();
    let mut s = state.lock().unwrap();
    let to = |channel: &str| {
        line.param(0)
            .is_some_and(|c| c.eq_ignore_ascii_case(channel))
    };
    if to(RELAY_CHANNEL) {
        if let Some(n) = number(text, "soak-q-").filter(|_| line.nick() == Some("sigbot")) {
            s.relayed.arrive(n);
        }
        return;
    }
    if !to(BRIDGED) {
        return;
    }
    match line.nick() {
        Some("carol") => {
            if let Some(n) = number(text, "soak-i-") {
                let at = s.start.elapsed().as_secs_f64();
                if let Some(slot) = s.to_matrix.sent_at.get_mut(n) {
                    slot.get_or_insert(at);
                }
            }
        }
        Some("sigbot") => match number(text, "soak-m-") {
            Some(n) => s.to_irc.arrive(n),
            None => s.bot_lines.push(text.to_owned()),
        },
        _ => {}
    }
}

/// Waits until `rx` says true.
async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// carol: says `soak-i-N` in the bridged channel at [`IRC_RATE`] until `end`, and `#info` once a
/// minute for the meeting; reconnects after the IRC server comes back, and speaks only while
/// dave (her witness) and the bot are both in the channel. Returns her connection for the end of the meeting.
async fn carol(
    addr: SocketAddr,
    mut client: IrcClient,
    state: State,
    mut both_in: watch::Receiver<bool>,
    count: usize,
) -> IrcClient {
    let start = state.lock().unwrap().start;
    let mut minute = 0;
    let mut n = 0;
    while n < count {
        let due = start + Duration::from_secs_f64(n as f64 / IRC_RATE);
        tokio::time::sleep_until(due).await;
        // Lines dave would have missed, or that a dead connection would swallow, are skipped.
        let alive = !matches!(
            client.try_wait_for(Duration::ZERO, |_| false).await,
            Err(WaitError::Closed)
        );
        let wrote = alive
            && *both_in.borrow()
            && client
                .try_send(&format!(
                    "PRIVMSG {BRIDGED} :soak-i-{n} from irc, the quick brown fox"
                ))
                .await
                .is_ok();
        if !wrote {
            state.lock().unwrap().stats.irc_unsent += 1;
            if !alive || client.try_send("PING :soak").await.is_err() {
                note(&state, "carol: disconnected from IRC".into());
                loop {
                    until_true(&mut both_in).await;
                    client = connect_irc(addr, "carol").await;
                    if join(&mut client, BRIDGED, "sigbot").await.is_some() {
                        break;
                    }
                }
                note(&state, "carol: back".into());
                // Numbers whose time passed while carol was away are not sent at all.
                let now = start.elapsed().as_secs_f64();
                let next = ((now * IRC_RATE).ceil() as usize).max(n + 1);
                state.lock().unwrap().stats.irc_unsent += (next - n - 1) as u64;
                n = next;
                continue;
            }
            // Dave is away: this one is skipped, the connection is fine.
            until_true(&mut both_in).await;
        }
        let m = (start.elapsed().as_secs() / 60) as usize;
        if m > minute {
            minute = m;
            let _ = client
                .try_send(&format!("PRIVMSG {BRIDGED} :#info soak minute {m}"))
                .await;
        }
        n += 1;
    }
    client
}

/// alice: sends `soak-m-N` to the bridged room at [`MATRIX_RATE`]; each send is retried with
/// its transaction ID until Synapse answers 200 (so a restart loses nothing and doubles
/// nothing on the sending side).
async fn alice_sends(client: Arc<MatrixClient>, room: String, state: State, count: usize) {
    let start = state.lock().unwrap().start;
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..count {
        tokio::time::sleep_until(start + Duration::from_secs_f64(n as f64 / MATRIX_RATE)).await;
        let (client, room, state) = (Arc::clone(&client), room.clone(), Arc::clone(&state));
        sends.spawn(async move {
            let path = format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/soak-m-{n}",
                encode(&room)
            );
            let body = json!({"msgtype": "m.text", "body": format!("soak-m-{n} from matrix, the quick brown fox")});
            let give_up = Instant::now() + DRAIN_MAX;
            let mut attempts = 0;
            while Instant::now() < give_up {
                attempts += 1;
                let reply = client
                    .request(reqwest::Method::PUT, &path)
                    .json(&body)
                    .send()
                    .await;
                if reply.is_ok_and(|r| r.status().is_success()) {
                    let mut s = state.lock().unwrap();
                    s.to_irc.sent_at[n] = Some(s.start.elapsed().as_secs_f64());
                    if attempts > 1 {
                        s.stats.matrix_retried += 1;
                    }
                    return;
                }
                // Synapse is down or restarting: try again shortly, as a client would.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        while sends.try_join_next().is_some() {}
    }
    while sends.join_next().await.is_some() {}
}

/// The MQTT publisher: `{"n": N}` at [`MQTT_RATE`], each waiting for its PUBACK.
async fn publisher(mut client: MqttClient, state: State, count: usize) {
    let start = state.lock().unwrap().start;
    for n in 0..count {
        tokio::time::sleep_until(start + Duration::from_secs_f64(n as f64 / MQTT_RATE)).await;
        client
            .publish(MQTT_TOPIC, json!({ "n": n }).to_string())
            .await;
        let mut s = state.lock().unwrap();
        s.relayed.sent_at[n] = Some(s.start.elapsed().as_secs_f64());
    }
    client.disconnect().await;
}

/// erin: a command every [`COMMAND_EVERY`] in the commands channel, `!ping` and `!lookup N` in
/// turn, each answer waited for.
async fn erin(addr: SocketAddr, mut client: IrcClient, state: State, end: Instant) {
    let mut k = 0u64;
    let mut next = Instant::now();
    while next < end {
        tokio::time::sleep_until(next).await;
        next += COMMAND_EVERY;
        k += 1;
        let (command, answer) = if k.is_multiple_of(2) {
            ("!ping".to_owned(), "pong".to_owned())
        } else {
            (format!("!lookup {k}"), format!("lookup {k} ok"))
        };
        state.lock().unwrap().stats.commands_sent += 1;
        let sent = client
            .try_send(&format!("PRIVMSG {COMMANDS} :{command}"))
            .await
            .is_ok();
        let reply = if sent {
            client
                .try_wait_for(COMMAND_WAIT, |l| {
                    l.command == "PRIVMSG"
                        && l.nick() == Some("sigbot")
                        && l.text().contains(&answer)
                })
                .await
        } else {
            Err(WaitError::Closed)
        };
        match reply {
            Ok(_) => state.lock().unwrap().stats.commands_answered += 1,
            Err(WaitError::Timeout) => {
                eprintln!("[{:7.1}s] erin: no answer to {command}", elapsed(&state))
            }
            Err(_) => {
                note(&state, "erin: disconnected from IRC".into());
                loop {
                    client = connect_irc(addr, "erin").await;
                    match join(&mut client, COMMANDS, "sigbot").await {
                        Some(true) => break,
                        // A command said before the bot is back in the channel reaches no one.
                        Some(false) => {
                            let back = client
                                .try_wait_for(SETUP, |l| {
                                    l.command == "JOIN"
                                        && l.nick() == Some("sigbot")
                                        && l.param(0)
                                            .is_some_and(|c| c.eq_ignore_ascii_case(COMMANDS))
                                })
                                .await;
                            if back.is_ok() {
                                break;
                            }
                        }
                        None => {}
                    }
                }
                note(&state, "erin: back, with the bot".into());
            }
        }
    }
}

/// The web loop: `/search?q=` and `/media/<id>` every [`WEB_EVERY`].
async fn web(base: String, media_id: String, state: State, end: Instant) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .expect("http client");
    let mut next = Instant::now();
    let mut i = 0u64;
    while next < end {
        tokio::time::sleep_until(next).await;
        next += WEB_EVERY;
        i += 1;
        let search = http
            .get(format!("{base}/search?q=soak+minute+{}", i % 7))
            .send()
            .await;
        let media = http.get(format!("{base}/media/{media_id}")).send().await;
        let mut s = state.lock().unwrap();
        for (reply, ok, other) in [(search, 0, 1), (media, 2, 3)] {
            let slot = match reply {
                Ok(r) if r.status() == reqwest::StatusCode::OK => ok,
                Ok(_) => other,
                Err(_) => 4,
            };
            let st = &mut s.stats;
            *[
                &mut st.search_ok,
                &mut st.search_other,
                &mut st.media_ok,
                &mut st.media_other,
                &mut st.web_errors,
            ][slot] += 1;
        }
    }
}

/// The HTTP server the `lookup` command asks: `/item/<n>` answers `{"n": n}`.
async fn lookup_server(hits: Arc<AtomicU64>) -> u16 {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind the lookup server");
    let port = listener.local_addr().expect("local address").port();
    let app = axum::Router::new().route(
        "/item/{n}",
        axum::routing::get(move |axum::extract::Path(n): axum::extract::Path<u64>| {
            let hits = Arc::clone(&hits);
            async move {
                hits.fetch_add(1, Ordering::Relaxed);
                axum::Json(json!({ "n": n }))
            }
        }),
    );
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("lookup server");
    });
    port
}

/// One minute's sample.
#[derive(Debug, Clone)]
struct Sample {
    minute: f64,
    rss_kb: u64,
    anon_kb: u64,
    fds: usize,
    queued: i64,
    store_kb: u64,
    data_kb: u64,
    irc_sent: usize,
    matrix_sent: usize,
    mqtt_sent: usize,
    irc_arrived: u32,
    commands: (u64, u64),
    web_ok: u64,
}

fn status_field(pid: u32, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn file_kb(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len()) / 1024
}

fn dir_kb(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_kb(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()) / 1024,
            Err(_) => 0,
        })
        .sum()
}

fn sample(pid: u32, data: &Path, state: &State) -> Sample {
    let s = state.lock().unwrap();
    Sample {
        minute: s.start.elapsed().as_secs_f64() / 60.0,
        rss_kb: status_field(pid, "VmRSS:"),
        anon_kb: status_field(pid, "RssAnon:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()),
        queued: outbox_len(data).unwrap_or(-1),
        store_kb: file_kb(&data.join("sigbot.db")) + file_kb(&data.join("sigbot.db-wal")),
        data_kb: dir_kb(data),
        irc_sent: s.to_matrix.sent(),
        matrix_sent: s.to_irc.sent(),
        mqtt_sent: s.relayed.sent(),
        irc_arrived: s.to_irc.arrived.iter().sum(),
        commands: (s.stats.commands_answered, s.stats.commands_sent),
        web_ok: s.stats.search_ok + s.stats.media_ok,
    }
}

fn print_sample(x: &Sample) {
    println!(
        "| {:5.1} | {:7.1} | {:7.1} | {:4} | {:6} | {:8} | {:8} | {:6} | {:6} | {:6} | {:6} | {:4}/{:<4} | {:6} |",
        x.minute,
        x.rss_kb as f64 / 1024.0,
        x.anon_kb as f64 / 1024.0,
        x.fds,
        x.queued,
        x.store_kb,
        x.data_kb,
        x.irc_sent,
        x.matrix_sent,
        x.mqtt_sent,
        x.irc_arrived,
        x.commands.0,
        x.commands.1,
        x.web_ok,
    );
}

fn print_header() {
    println!(
        "| min   | VmRSS MiB | RssAnon MiB | fds | outbox | store KiB | data KiB | IRC sent | Matrix sent | MQTT sent | Matrix->IRC arrived | commands ok/sent | web 200s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// The rows waiting in the bot's outbox (read-only, beside the running bot).
fn outbox_len(data: &Path) -> Option<i64> {
    let db = rusqlite::Connection::open_with_flags(
        data.join("sigbot.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    db.busy_timeout(Duration::from_secs(5)).ok()?;
    db.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .ok()
}

/// Every `m.room.message` of `room`, oldest first, through `/messages`.
async fn room_history(client: &MatrixClient, room: &str) -> Result<Vec<Value>, String> {
    let filter = encode(&json!({ "types": ["m.room.message"] }).to_string());
    let mut events = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let mut path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=f&limit=1000&filter={filter}",
            encode(room)
        );
        if let Some(f) = &from {
            path.push_str(&format!("&from={}", encode(f)));
        }
        let reply = client
            .request(reqwest::Method::GET, &path)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !reply.status().is_success() {
            return Err(format!("/messages: HTTP {}", reply.status()));
        }
        let body: Value = reply.json().await.map_err(|e| e.to_string())?;
        let chunk = body["chunk"].as_array().cloned().unwrap_or_default();
        let end = body["end"].as_str().map(str::to_owned);
        if chunk.is_empty() || end.is_none() {
            return Ok(events);
        }
        events.extend(chunk);
        from = end;
    }
}

/// Counts the numbered messages `sender` posted to `room`, by `tag`.
fn count_tags(events: &[Value], sender: &str, tag: &str) -> HashMap<usize, u32> {
    let mut counts = HashMap::new();
    for ev in events {
        if ev["sender"] != sender {
            continue;
        }
        if let Some(n) = ev["content"]["body"].as_str().and_then(|b| number(b, tag)) {
            *counts.entry(n).or_default() += 1;
        }
    }
    counts
}

/// The meeting's files: the `log.txt` and the other five beside it.
fn meeting_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("soak."))
            {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

fn show(numbers: &[usize]) -> String {
    let mut s: Vec<String> = numbers.iter().take(20).map(usize::to_string).collect();
    if numbers.len() > 20 {
        s.push(format!("... ({} in all)", numbers.len()));
    }
    s.join(", ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // The harness panics on a failed connection, which the soak retries: one line each.
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    // Returns first, so that the servers are stopped and their directories removed.
    if !soak(minutes_option()).await {
        std::process::exit(1);
    }
}

/// The whole run; false when something was lost or doubled, or the minutes are wrong.
async fn soak(minutes: f64) -> bool {
    let run = Duration::from_secs_f64(minutes * 60.0);
    eprintln!("soak: {minutes} minutes; starting InspIRCd + Anope, Synapse and mosquitto...");
    let mut synapse = SynapseServer::start().await;
    let mut irc = IrcServer::start(IrcClass::Unlimited).await;
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let irc_addr = irc.addr();

    let bot_user = synapse.register_user("sigbot", "bot-secret-pw").await;
    let alice_user = synapse.register_user("alice", "alice-secret-pw").await;
    let mut alice = synapse.client(&alice_user);
    let public = |alias: &str| RoomSpec {
        alias: Some(alias.into()),
        public: true,
        ..RoomSpec::default()
    };
    let room = alice.create_room(public(BRIDGED_ALIAS)).await;
    let relay_room = alice.create_room(public(RELAY_ALIAS)).await;
    let hs = synapse.server_name();

    let lookup_hits = Arc::new(AtomicU64::new(0));
    let lookup_port = lookup_server(Arc::clone(&lookup_hits)).await;
    let dir = temp_dir("soak");
    let commands = dir.path().join("commands");
    std::fs::create_dir_all(&commands).expect("commands dir");
    std::fs::write(
        commands.join("lookup.toml"),
        format!(
            r#"name = "lookup"
summary = "Soak lookup against a local HTTP server"
usage = "lookup <n>"

[[args]]
name = "n"
pattern = "^[0-9]+$"

[http]
url = "http://127.0.0.1:{lookup_port}/item/{{{{ args.n }}}}"
timeout = "10s"

[reply]
success = "lookup {{{{ json.n }}}} ok"
not_found = "lookup {{{{ args.n }}}} not found"
error = "lookup {{{{ args.n }}}} failed: {{{{ error }}}}"
"#
        ),
    )
    .expect("write lookup.toml");
    let web_port = free_port();
    let bridged_matrix = format!("hs/#{BRIDGED_ALIAS}:{hs}");
    let relay_matrix = relay_to_matrix();
    let relay_target = if relay_matrix {
        format!("hs/#{RELAY_ALIAS}:{hs}")
    } else {
        format!("irc/{RELAY_CHANNEL}")
    };
    let config = BotConfig::new()
        .commands_dir(&commands)
        .web(web_port)
        .irc(
            Section::irc("irc", &irc)
                .set("channels", vec![COMMANDS, RELAY_CHANNEL])
                // Room for the bridge, the relay and the answers (the test server has no flood
                // limit), so that the backlog of the IRC outage drains.
                .raw("rate = { burst = 50, per_second = 40.0 }\nqueue_limit = 100000"),
        )
        .matrix(
            Section::matrix("hs", &synapse, &bot_user)
                .set("rooms", vec![format!("#{RELAY_ALIAS}:{hs}")]),
        )
        .mqtt(Section::mqtt(
            "mq",
            format!("mqtt://127.0.0.1:{}", mosquitto.port()),
        ))
        .bridge(Section::bridge(
            "soak",
            &[format!("irc/{BRIDGED}").as_str(), bridged_matrix.as_str()],
        ))
        .relay(
            Section::relay(
                "soak",
                "mq",
                "soak/#",
                "soak-q-{{ msg.n }}",
                &[relay_target.as_str()],
            )
            // The relay remembers every event's dedup key for this long, by design: with the
            // default hour the map would grow through a 30-minute run and hide any other growth
            // in the memory slope. Two minutes lets it level off during the warm-up.
            .set("dedup_window", "2m"),
        )
        .meetings(&[format!("irc/{BRIDGED}").as_str()]);
    let mut bot = Bot::start_with_env(dir.path(), &config.build(), &[("RUST_LOG", "info")]);
    let data = dir.path().join("data");
    for (r, what) in [(&room, "bridged room"), (&relay_room, "relay room")] {
        alice
            .wait_for_event(r, SETUP, |ev| {
                ev["type"] == "m.room.member"
                    && ev["state_key"] == bot_user.user_id.as_str()
                    && ev["content"]["membership"] == "join"
            })
            .await;
        eprintln!("the bot joined the {what}");
    }
    let mut dave_client = connect_irc(irc_addr, "dave").await;
    dave_client
        .join_and_wait_for(BRIDGED, "sigbot", SETUP)
        .await;
    dave_client
        .join_and_wait_for(RELAY_CHANNEL, "sigbot", SETUP)
        .await;
    let mut carol_client = connect_irc(irc_addr, "carol").await;
    carol_client.join(BRIDGED).await;
    let mut erin_client = connect_irc(irc_addr, "erin").await;
    erin_client
        .join_and_wait_for(COMMANDS, "sigbot", SETUP)
        .await;
    let mut mqtt = MqttClient::connect(&mosquitto, "soak-publisher").await;
    mqtt.publish(MQTT_TOPIC, json!({ "n": "warm-up" }).to_string())
        .await;
    if relay_matrix {
        alice
            .wait_for_message(&relay_room, SETUP, |b| b.contains("soak-q-warm-up"))
            .await;
    } else {
        dave_client
            .wait_for(SETUP, |l| {
                l.is_privmsg_from("sigbot") && l.text().contains("soak-q-warm-up")
            })
            .await;
    }

    // A file for /media/<id>: its announcement on IRC carries the id.
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n"
        .iter()
        .copied()
        .chain((0..4000u32).map(|i| (i % 251) as u8))
        .collect();
    let upload: Value = alice
        .request(
            reqwest::Method::POST,
            "/_matrix/media/v3/upload?filename=soak.png",
        )
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload reply");
    alice
        .send_message(
            &room,
            json!({
                "msgtype": "m.image",
                "body": "soak.png",
                "url": upload["content_uri"],
                "info": {"mimetype": "image/png", "size": png.len()},
            }),
        )
        .await;
    let media_line = dave_client
        .wait_for(SETUP, |l| {
            l.is_privmsg_from("sigbot") && l.text().contains("/media/")
        })
        .await;
    let media_id = media_line
        .text()
        .rsplit("/media/")
        .next()
        .unwrap_or_default()
        .to_owned();

    // The meeting, chaired by carol, for the whole run.
    carol_client.privmsg(BRIDGED, "#startmeeting soak").await;
    dave_client
        .wait_for(SETUP, |l| {
            l.is_privmsg_from("sigbot") && l.text().contains("Meeting started")
        })
        .await;

    let pid = bot.pid().expect("bot pid");
    let counts = (
        (run.as_secs_f64() * IRC_RATE) as usize,
        (run.as_secs_f64() * MATRIX_RATE) as usize,
        (run.as_secs_f64() * MQTT_RATE) as usize,
    );
    let start = Instant::now();
    let end = start + run;
    let state: State = Arc::new(Mutex::new(Shared {
        start,
        to_matrix: Ledger::new(counts.0),
        to_irc: Ledger::new(counts.1),
        relayed: Ledger::new(counts.2),
        stats: Stats::default(),
        bot_lines: Vec::new(),
        events: Vec::new(),
    }));
    eprintln!("setup done; traffic for {minutes} minutes");
    print_header();
    let mut samples = vec![sample(pid, &data, &state)];
    print_sample(&samples[0]);

    let stop = CancellationToken::new();
    let (both_in_tx, both_in) = watch::channel(true);
    let dave_task = tokio::spawn(dave(
        irc_addr,
        dave_client,
        Arc::clone(&state),
        both_in_tx,
        stop.clone(),
    ));
    let carol_task = tokio::spawn(carol(
        irc_addr,
        carol_client,
        Arc::clone(&state),
        both_in,
        counts.0,
    ));
    let alice = Arc::new(alice);
    let alice_task = tokio::spawn(alice_sends(
        Arc::clone(&alice),
        room.clone(),
        Arc::clone(&state),
        counts.1,
    ));
    let mqtt_task = tokio::spawn(publisher(mqtt, Arc::clone(&state), counts.2));
    let erin_task = tokio::spawn(erin(irc_addr, erin_client, Arc::clone(&state), end));
    let web_task = tokio::spawn(web(
        format!("http://127.0.0.1:{web_port}"),
        media_id.clone(),
        Arc::clone(&state),
        end,
    ));
    let sampler = {
        let state = Arc::clone(&state);
        let data = data.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            let mut next = start + Duration::from_secs(60);
            while next <= end + Duration::from_secs(1) {
                tokio::time::sleep_until(next).await;
                next += Duration::from_secs(60);
                let x = sample(pid, &data, &state);
                print_sample(&x);
                out.push(x);
            }
            out
        })
    };

    // The faults.
    tokio::time::sleep_until(start + run / 3).await;
    note(&state, "killing the IRC server".into());
    irc.stop();
    tokio::time::sleep(IRC_DOWN).await;
    note(&state, "starting the IRC server again".into());
    irc.restart().await;
    note(&state, "the IRC server is back".into());
    tokio::time::sleep_until(start + run * 2 / 3).await;
    note(&state, "restarting Synapse".into());
    synapse.restart().await;
    note(&state, "Synapse is back".into());

    let carol_client = carol_task.await.expect("carol");
    alice_task.await.expect("alice");
    mqtt_task.await.expect("mqtt publisher");
    erin_task.await.expect("erin");
    web_task.await.expect("web loop");
    samples.extend(sampler.await.expect("sampler"));
    note(&state, "traffic over; waiting for the last arrivals".into());

    // Drain: until the bot's outbox is empty and every number sent to IRC is there (or IRC
    // has had nothing new for DRAIN_IDLE); then the Matrix rooms' history is read once.
    let drain_start = Instant::now();
    let mut last_total = 0;
    let mut last_change = Instant::now();
    loop {
        let queued = outbox_len(&data);
        let (total, missing) = {
            let s = state.lock().unwrap();
            let mut total = s.to_irc.arrived.iter().sum::<u32>();
            let mut missing = !s.to_irc.lost().is_empty();
            if !relay_matrix {
                total += s.relayed.arrived.iter().sum::<u32>();
                missing |= !s.relayed.lost().is_empty();
            }
            (total, missing)
        };
        eprintln!(
            "[{:7.1}s] drain: {queued:?} queued in the outbox, {total} arrived at IRC{}",
            elapsed(&state),
            if missing { ", some still missing" } else { "" }
        );
        if total != last_total {
            last_total = total;
            last_change = Instant::now();
        }
        let settled = queued == Some(0) && (!missing || last_change.elapsed() > DRAIN_IDLE);
        if settled || drain_start.elapsed() > DRAIN_MAX {
            break;
        }
        // The outbox has no notification for an outside reader: look again shortly.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let mut history = (Vec::new(), Vec::new());
    for attempt in 1..=3 {
        match (
            room_history(&alice, &room).await,
            room_history(&alice, &relay_room).await,
        ) {
            (Ok(b), Ok(r)) => {
                history = (b, r);
                break;
            }
            (b, r) => eprintln!(
                "reading the rooms' history failed (attempt {attempt}): {:?} {:?}",
                b.err(),
                r.err()
            ),
        }
    }
    let drain = drain_start.elapsed();
    {
        let mut s = state.lock().unwrap();
        for (n, c) in count_tags(&history.0, &bot_user.user_id, "soak-i-") {
            for _ in 0..c {
                s.to_matrix.arrive(n);
            }
        }
        if relay_matrix {
            for (n, c) in count_tags(&history.1, &bot_user.user_id, "soak-q-") {
                for _ in 0..c {
                    s.relayed.arrive(n);
                }
            }
        }
    }
    let source_doubles: Vec<usize> = count_tags(&history.0, &alice_user.user_id, "soak-m-")
        .into_iter()
        .filter(|(_, c)| *c > 1)
        .map(|(n, _)| n)
        .collect();

    // The meeting ends; its minutes must hold every bridged line once.
    carol_client.privmsg(BRIDGED, "#endmeeting").await;
    let mut minutes_ok = true;
    let mut minutes_report = Vec::new();
    let ended = wait_until_within(Duration::from_secs(300), || {
        let s = state.lock().unwrap();
        let found = s.bot_lines.iter().any(|l| l.contains("Minutes:"));
        async move { found.then_some(()) }
    })
    .await;
    if ended.is_none() {
        minutes_ok = false;
        minutes_report.push("no `Minutes:` line within 5 minutes of #endmeeting".to_owned());
    }
    let files = meeting_files(&data.join("meetings"));
    // soak.<YYYY-MM-DD-HH.MM>.<ext>
    let exts: Vec<String> = files
        .iter()
        .filter_map(|f| {
            f.file_name()?
                .to_str()?
                .get("soak.".len() + 17..)
                .map(str::to_owned)
        })
        .collect();
    for ext in ["log.txt", "log.html", "html", "txt", "md", "json"] {
        if !exts.iter().any(|e| e == ext) {
            minutes_ok = false;
            minutes_report.push(format!("no .{ext} minutes file"));
        }
    }
    let log_txt = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with(".log.txt"))
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .unwrap_or_default();
    let mut in_log: HashMap<(char, usize), u32> = HashMap::new();
    for line in log_txt.lines() {
        for (kind, tag) in [('i', "soak-i-"), ('m', "soak-m-")] {
            if let Some(n) = number(line, tag) {
                *in_log.entry((kind, n)).or_default() += 1;
            }
        }
    }
    let infos = log_txt.matches("#info soak minute").count();
    {
        let s = state.lock().unwrap();
        let mut log_missing = Vec::new();
        let mut log_doubled = Vec::new();
        for (kind, ledger) in [('i', &s.to_matrix), ('m', &s.to_irc)] {
            for n in 0..ledger.sent_at.len() {
                let c = in_log.get(&(kind, n)).copied().unwrap_or(0);
                if ledger.sent_at[n].is_some() && c == 0 {
                    log_missing.push(format!("{kind}{n}"));
                }
                if c > 1 {
                    log_doubled.push(format!("{kind}{n}"));
                }
            }
        }
        minutes_report.push(format!(
            "log.txt: {} lines, {} numbered lines, {infos} `#info soak minute` items; missing {}, doubled {}",
            log_txt.lines().count(),
            in_log.values().sum::<u32>(),
            log_missing.len(),
            log_doubled.len()
        ));
        if !log_missing.is_empty() || !log_doubled.is_empty() {
            minutes_ok = false;
            minutes_report.push(format!(
                "missing in the log: {:?}; doubled: {:?}",
                &log_missing[..log_missing.len().min(20)],
                &log_doubled[..log_doubled.len().min(20)]
            ));
        }
    }
    let last = sample(pid, &data, &state);
    stop.cancel();
    let _ = dave_task.await;
    let exit = bot.terminate(Duration::from_secs(60)).await;
    let bot_log = std::env::var_os("SOAK_BOT_LOG").map_or_else(
        || std::env::temp_dir().join("sigbot-soak-bot.log"),
        PathBuf::from,
    );
    std::fs::write(&bot_log, bot.log().join("\n")).expect("write the bot's log");

    // The report.
    let s = state.lock().unwrap();
    println!(
        "\nsoak: {minutes} minutes, bot {} (RUST_LOG=info)",
        support::bot::bot_binary().display()
    );
    print_header();
    for x in &samples {
        print_sample(x);
    }
    print_sample(&last);
    let warm = if minutes >= 10.0 { 5.0 } else { 1.0 };
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|x| x.minute >= warm - 0.05)
        .map(|x| (x.minute, x.rss_kb as f64))
        .collect();
    let anon: Vec<(f64, f64)> = samples
        .iter()
        .filter(|x| x.minute >= warm - 0.05)
        .map(|x| (x.minute, x.anon_kb as f64))
        .collect();
    match (slope(&points), slope(&anon)) {
        (Some(r), Some(a)) => println!(
            "\nmemory slope after warm-up (least squares over minutes {warm}..{minutes}, {} samples): VmRSS {r:+.1} KB/min, RssAnon {a:+.1} KB/min",
            points.len()
        ),
        _ => println!("\nmemory slope: not enough samples after minute {warm}"),
    }
    println!("\nfaults and reconnections:");
    for (at, what) in &s.events {
        println!("  {at:7.1}s  {what}");
    }
    let mut failed = false;
    println!(
        "\n| path | numbers | sent | arrived | lost | doubled | arrived unconfirmed | strays |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (path, ledger) in [
        ("IRC -> Matrix", &s.to_matrix),
        ("Matrix -> IRC", &s.to_irc),
        (
            if relay_matrix {
                "MQTT -> Matrix"
            } else {
                "MQTT -> IRC"
            },
            &s.relayed,
        ),
    ] {
        let (lost, doubled) = (ledger.lost(), ledger.doubled());
        failed |= !lost.is_empty() || !doubled.is_empty();
        println!(
            "| {path} | {} | {} | {} | {} | {} | {} | {} |",
            ledger.sent_at.len(),
            ledger.sent(),
            ledger.arrived.iter().sum::<u32>(),
            lost.len(),
            doubled.len(),
            ledger.unconfirmed_arrivals(),
            ledger.strays
        );
        for (what, list) in [("lost", &lost), ("doubled", &doubled)] {
            if !list.is_empty() {
                let times: Vec<String> = list
                    .iter()
                    .take(20)
                    .map(|&n| ledger.sent_at[n].map_or("-".into(), |t| format!("{n}@{t:.1}s")))
                    .collect();
                println!(
                    "  {path} {what}: {} (number@sent): {}",
                    show(list),
                    times.join(" ")
                );
            }
        }
    }
    if !source_doubles.is_empty() {
        println!(
            "  alice's own Matrix messages doubled by Synapse (not the bot): {}",
            show(&source_doubles)
        );
    }
    let st = &s.stats;
    println!(
        "\ncommands: {}/{} answered (lookup server hits: {}); web: /search {} ok, {} other; /media {} ok, {} other; {} errors",
        st.commands_answered,
        st.commands_sent,
        lookup_hits.load(Ordering::Relaxed),
        st.search_ok,
        st.search_other,
        st.media_ok,
        st.media_other,
        st.web_errors
    );
    println!(
        "IRC lines carol could not send (server down): {}; Matrix sends retried: {}; dave reconnections: {} (bot back first: {})",
        st.irc_unsent, st.matrix_retried, st.dave_reconnects, st.dave_late
    );
    println!(
        "drain and history read after the traffic: {:.0} s; bot exit code {exit:?}; bot log: {}",
        drain.as_secs_f64(),
        bot_log.display()
    );
    println!("meeting:");
    for line in &minutes_report {
        println!("  {line}");
    }
    failed |= !minutes_ok;
    if failed {
        println!("\nSOAK FAILED: something was lost or doubled, or the minutes are wrong");
    } else {
        println!("\nsoak passed: nothing lost, nothing doubled");
    }
    !failed
}
