//! What the end-to-end benchmarks share (`bridge_bench`, `peers_bench`): timed receivers on
//! IRC and on Matrix (`/sync`), a paced sender, latency figures and a process's memory.
//! Included with `#[path]` next to the integration-test harness (`mod support`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support;
use crate::support::bot::Bot;
use crate::support::matrix::encode;
use crate::support::{IrcClient, MatrixClient};
use tokio::task::JoinHandle;

/// How long setup steps (logins, joins, first syncs of a debug-build bot) may take.
pub const SETUP: Duration = Duration::from_secs(180);

/// The bot's memory, in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss: u64,
    /// VmHWM: peak resident.
    pub peak: u64,
    /// RssAnon: heap and stacks, what the bot's data costs.
    pub anon: u64,
    /// RssFile: mapped files, mostly the binary's own code (far larger in a debug build).
    pub file: u64,
}

pub fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
    }
}

/// A `/sync` reader with its own position, separate from the harness's client so that it never
/// panics on a slow phase and can keep long timelines (`limit` high enough that no batch is cut).
pub struct Syncer {
    pub client: MatrixClient,
    since: Option<String>,
}

impl Syncer {
    pub fn new(client: MatrixClient) -> Syncer {
        Syncer {
            client,
            since: None,
        }
    }

    /// One long poll of at most `wait`; the timeline events it brought, as (room ID, event),
    /// and the moment the reply was read.
    pub async fn sync(&mut self, wait: Duration) -> (Vec<(String, Value)>, Instant) {
        let filter = json!({
            "room": { "timeline": { "limit": 1000 }, "state": { "lazy_load_members": true } },
            "presence": { "types": [] },
            "account_data": { "types": [] },
        });
        let mut query = format!(
            "timeout={}&filter={}",
            wait.as_millis(),
            encode(&filter.to_string())
        );
        if let Some(since) = &self.since {
            query.push_str(&format!("&since={}", encode(since)));
        }
        let reply = self
            .client
            .request(
                reqwest::Method::GET,
                &format!("/_matrix/client/v3/sync?{query}"),
            )
            .timeout(wait + Duration::from_secs(30))
            .send()
            .await
            .expect("sync");
        assert!(reply.status().is_success(), "sync: {}", reply.status());
        let body: Value = reply.json().await.expect("sync reply");
        let seen = Instant::now();
        self.since = body["next_batch"].as_str().map(str::to_owned);
        let mut events = Vec::new();
        if let Some(joined) = body["rooms"]["join"].as_object() {
            for (room, r) in joined {
                for ev in r["timeline"]["events"].as_array().into_iter().flatten() {
                    events.push((room.clone(), ev.clone()));
                }
            }
        }
        (events, seen)
    }

    /// Syncs until `done` has seen what it wants (it returns true) or `timeout` passes.
    pub async fn until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&str, &Value, Instant) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let (events, seen) = self
                .sync((deadline - now).min(Duration::from_secs(5)))
                .await;
            let mut finished = false;
            for (room, ev) in &events {
                finished |= done(room, ev, seen);
            }
            if finished {
                return true;
            }
        }
    }
}

/// The sequence number of a benchmark line `<tag>-<seq> ...` found anywhere in `text`.
pub fn sequence(text: &str, tag: &str) -> Option<usize> {
    let rest = &text[text.find(tag)? + tag.len()..];
    let digits: String = rest
        .strip_prefix('-')?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The sequence numbers of every benchmark line in `text`, one a line: a bridge may merge
/// lines that arrive close together into one Matrix event (Heisenbridge does, for 0.1 s).
pub fn sequences(text: &str, tag: &str) -> Vec<usize> {
    text.lines().filter_map(|l| sequence(l, tag)).collect()
}

/// Arrival times by sequence number.
pub type Arrivals = Vec<Option<Instant>>;

/// Reads `client` until every line of `tag` from `from` in `channel` has arrived or `deadline`.
pub fn irc_receiver(
    mut client: IrcClient,
    from: String,
    channel: String,
    tag: String,
    n: usize,
    deadline: Instant,
) -> JoinHandle<(IrcClient, Arrivals)> {
    tokio::spawn(async move {
        let mut got: Arrivals = vec![None; n];
        let mut count = 0;
        while count < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut seq = None;
            let line = client
                .try_wait_for(left.min(Duration::from_secs(1)), |l| {
                    seq = (l.command == "PRIVMSG"
                        && l.nick() == Some(from.as_str())
                        && l.param(0) == Some(channel.as_str()))
                    .then(|| sequence(l.text(), &tag))
                    .flatten();
                    seq.is_some()
                })
                .await;
            let now = Instant::now();
            match (line, seq) {
                (Ok(_), Some(i)) if i < n && got[i].is_none() => {
                    got[i] = Some(now);
                    count += 1;
                }
                (Ok(_), _) => {}
                (Err(support::irc::WaitError::Timeout), _) if left > Duration::ZERO => {}
                (Err(_), _) => break,
            }
        }
        (client, got)
    })
}

/// Syncs `syncer` until every message of `tag` from `from` in `room` has arrived or `deadline`.
pub fn matrix_receiver(
    mut syncer: Syncer,
    from: String,
    room: String,
    tag: String,
    n: usize,
    deadline: Instant,
) -> JoinHandle<(Syncer, Arrivals)> {
    tokio::spawn(async move {
        let mut got: Arrivals = vec![None; n];
        let mut count = 0;
        while count < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            syncer
                .until(left.min(Duration::from_secs(5)), |r, ev, seen| {
                    if r == room && ev["type"] == "m.room.message" && ev["sender"] == from.as_str()
                    {
                        let body = ev["content"]["body"].as_str().unwrap_or_default();
                        for i in sequences(body, &tag) {
                            if i < n && got[i].is_none() {
                                got[i] = Some(seen);
                                count += 1;
                            }
                        }
                    }
                    count == n
                })
                .await;
        }
        (syncer, got)
    })
}

/// Sends `n` messages at `rate` a second; `send(i, text)` starts sending message `i` and
/// returns at once (the time recorded is when it was started).
pub async fn paced<F: FnMut(usize, String)>(
    tag: &str,
    n: usize,
    rate: f64,
    mut send: F,
) -> Vec<Instant> {
    let start = tokio::time::Instant::now();
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        sent.push(Instant::now());
        send(
            i,
            format!("{tag}-{i} the quick brown fox jumps over the lazy dog"),
        );
    }
    sent
}

/// Latency figures of one receiver.
pub struct Figures {
    pub received: usize,
    /// Percentiles over every message sent, a lost one counting as slower than any: `None`
    /// when the percentile falls among the lost.
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// Lines a second between the first and the last arrival.
    pub throughput: f64,
}

pub fn figures(sent: &[Instant], got: &Arrivals) -> Figures {
    let mut lat: Vec<Duration> = sent
        .iter()
        .zip(got)
        .filter_map(|(s, g)| g.map(|g| g.saturating_duration_since(*s)))
        .collect();
    lat.sort();
    let pick = |q: f64| {
        let rank = ((sent.len() as f64 * q).ceil() as usize).max(1);
        lat.get(rank - 1).copied()
    };
    let times: Vec<Instant> = got.iter().flatten().copied().collect();
    let throughput = match (times.iter().min(), times.iter().max()) {
        (Some(a), Some(b)) if b > a => (times.len() - 1) as f64 / (*b - *a).as_secs_f64(),
        _ => 0.0,
    };
    Figures {
        received: lat.len(),
        p50: pick(0.50),
        p99: pick(0.99),
        throughput,
    }
}

/// Milliseconds with one decimal, or "lost" for a percentile among the lost messages.
pub fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "lost".to_owned(),
        |d| format!("{:.1}", d.as_secs_f64() * 1e3),
    )
}

/// Joins `channels` with `client` and waits until `bot` is in each.
pub async fn join_with_bot(client: &mut IrcClient, channels: &[String], bot: &str) {
    let mut missing: Vec<String> = channels.iter().map(|c| c.to_lowercase()).collect();
    for chunk in channels.chunks(10) {
        client.send(&format!("JOIN {}", chunk.join(","))).await;
    }
    while !missing.is_empty() {
        let line = client
            .wait_for(SETUP, |l| {
                (l.command == "JOIN" && l.nick() == Some(bot))
                    || (l.command == "353"
                        && l.text()
                            .split(' ')
                            .any(|n| n.trim_start_matches(['@', '+']) == bot))
            })
            .await;
        let chan = if line.command == "JOIN" {
            line.param(0)
        } else {
            line.param(2)
        };
        let chan = chan.unwrap_or_default().to_lowercase();
        missing.retain(|c| *c != chan);
    }
}

/// Sends one Matrix message without waiting for the reply, with a transaction ID of its own.
pub fn matrix_send(
    client: &Arc<MatrixClient>,
    txn: &Arc<std::sync::atomic::AtomicU64>,
    room: &str,
    body: String,
) {
    let client = Arc::clone(client);
    let t = txn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/bench-{t}",
        encode(room)
    );
    tokio::spawn(async move {
        let reply = client
            .request(reqwest::Method::PUT, &path)
            .json(&json!({ "msgtype": "m.text", "body": body }))
            .send()
            .await;
        match reply {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => eprintln!("send failed: HTTP {}", r.status()),
            Err(e) => eprintln!("send failed: {e}"),
        }
    });
}

/// The four people of a load phase: carol says lines on IRC and alice on Matrix, dave (IRC)
/// and bob (Matrix) time their arrival. The receivers are taken out while a phase runs.
pub struct Ends {
    pub alice: Arc<MatrixClient>,
    pub txn: Arc<std::sync::atomic::AtomicU64>,
    pub bob: Option<Syncer>,
    pub carol: Option<IrcClient>,
    pub dave: Option<IrcClient>,
    /// The IRC channel and the Matrix room the phase runs in.
    pub channel: String,
    pub room: String,
}

/// One phase's raw times: when each line was sent, and when it reached each network.
pub struct Timed {
    pub sent: Vec<Instant>,
    pub at_irc: Arrivals,
    pub at_matrix: Arrivals,
}

impl Timed {
    /// (figures on the sender's own network, figures through the bridge).
    pub fn figures(&self, from_irc: bool) -> (Figures, Figures) {
        let (irc, matrix) = (
            figures(&self.sent, &self.at_irc),
            figures(&self.sent, &self.at_matrix),
        );
        if from_irc {
            (irc, matrix)
        } else {
            (matrix, irc)
        }
    }
}

impl Ends {
    /// `n` lines tagged `tag` at `rate`, from IRC (carol) or from Matrix (alice), each timed
    /// where dave sees it from `irc_from` and where bob sees it from `matrix_from`, until
    /// `deadline`.
    pub async fn run_phase(
        &mut self,
        tag: &str,
        n: usize,
        rate: f64,
        from_irc: bool,
        (irc_from, matrix_from): (String, String),
        deadline: Instant,
    ) -> Timed {
        let at_dave = irc_receiver(
            self.dave.take().unwrap(),
            irc_from,
            self.channel.clone(),
            tag.to_owned(),
            n,
            deadline,
        );
        let at_bob = matrix_receiver(
            self.bob.take().unwrap(),
            matrix_from,
            self.room.clone(),
            tag.to_owned(),
            n,
            deadline,
        );
        let sent = if from_irc {
            let carol = self.carol.take().unwrap();
            // IrcClient::privmsg needs the client borrowed: one task owns it and sends in order.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            let channel = self.channel.clone();
            let writer = tokio::spawn(async move {
                while let Some(text) = rx.recv().await {
                    carol.privmsg(&channel, &text).await;
                }
                carol
            });
            let sent = paced(tag, n, rate, |_, text| {
                let _ = tx.send(text);
            })
            .await;
            drop(tx);
            self.carol = Some(writer.await.unwrap());
            sent
        } else {
            let (alice, txn, room) = (&self.alice, &self.txn, self.room.clone());
            paced(tag, n, rate, |_, text| matrix_send(alice, txn, &room, text)).await
        };
        let (dave, at_irc) = at_dave.await.unwrap();
        let (bob, at_matrix) = at_bob.await.unwrap();
        self.dave = Some(dave);
        self.bob = Some(bob);
        Timed {
            sent,
            at_irc,
            at_matrix,
        }
    }
}

/// Starts sigbot and waits until `/healthz` says every network is connected; the time that
/// took from the process start. `env` may name the binary (`SIGBOT_BIN`).
pub async fn start_sigbot(
    dir: &Path,
    config: &str,
    web_port: u16,
    env: &[(&str, &str)],
) -> (Bot, Duration) {
    let started = Instant::now();
    let mut env = env.to_vec();
    env.push(("RUST_LOG", "info"));
    let bot = Bot::start_with_env(dir, config, &env);
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{web_port}/healthz");
    let up = loop {
        let ok = match http.get(&url).timeout(Duration::from_secs(2)).send().await {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|v| v["status"] == "ok"),
            Err(_) => false,
        };
        if ok {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < SETUP,
            "sigbot not connected after {SETUP:?}\n{}",
            bot.log_tail(40)
        );
        // Polling /healthz is the measurement here: its resolution is this interval.
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    (bot, up)
}
