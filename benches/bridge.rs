//! Bridge benchmark (DESIGN §9): the latency the bot adds between an IRC client and a
//! Matrix client, the Matrix -> IRC throughput against the configured IRC rate, and the bot's
//! resident memory with 1 and with 50 bridges. Everything runs against the real InspIRCd and
//! Synapse of the integration-test harness, started on free loopback ports, with the sigbot
//! binary as a child process.
//!
//! Each message is sent once and timed at two receivers: one on the sender's own network (the
//! server's own delivery time, the baseline) and one on the other network, through the bot.
//!
//! - IRC-originated: carol's PRIVMSG, seen by dave on IRC (IRC -> IRC) and by bob's `/sync`
//!   (IRC -> Matrix, through the bot).
//! - Matrix-originated: alice's `PUT .../send`, seen by bob's `/sync` (Matrix -> Matrix) and by
//!   dave on IRC (Matrix -> IRC, through the bot).
//!
//! The latency the bot adds is the bridged figure minus the baseline on the receiving side's
//! network (IRC -> Matrix against Matrix -> Matrix; Matrix -> IRC against IRC -> IRC).
//!
//! With `--spread ROOMS` (issue 16): `--messages` lines at `--spread-rate` a second (default
//! 50) spread round-robin over ROOMS bridged channels, IRC -> Matrix through a bot bridging
//! them all, timed at dave (IRC's own delivery) and at bob's `/sync` (through the bot), then the
//! same from alice to the same rooms (Synapse's own delivery); `--spread-only yes` skips the
//! other phases.
//!
//! usage: `bridge_bench [--messages N] [--rates 5,20] [--bot-rate PER_SECOND]
//! [--bot-burst N] [--bridges N] [--spread ROOMS] [--spread-rate PER_SECOND]
//! [--spread-only yes]`; `benches/bridge.sh` builds the bot and runs it.

#[path = "common.rs"]
mod common;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Arrivals, Ends, Figures, Memory, SETUP, Syncer, figures, join_with_bot, matrix_send, memory,
    ms, paced, sequence, sequences, start_sigbot,
};
use support::bot::Bot;
use support::{
    IrcClass, IrcClient, IrcServer, MatrixClient, MatrixUser, RoomSpec, SynapseServer,
    random_token, temp_dir,
};
use tokio::task::JoinHandle;
/// How long the last message of a phase may take to arrive beyond what the IRC rate implies.
const GRACE: Duration = Duration::from_secs(60);
const CHANNEL: &str = "#bench";
const ALIAS_LOCAL: &str = "bench";

#[derive(Debug, Clone)]
struct Options {
    messages: usize,
    rates: Vec<f64>,
    bot_rate: f64,
    bot_burst: u32,
    bridges: usize,
    /// Rooms of the spread phase (0: no spread phase).
    spread: usize,
    spread_rate: f64,
    spread_only: bool,
    /// Binaries whose startup is compared instead (`--startup A,B`), and how many starts each.
    startup: Vec<String>,
    startup_runs: usize,
}

impl Options {
    fn parse() -> Options {
        let mut o = Options {
            messages: 1000,
            rates: vec![5.0, 20.0],
            // What the harness's PublicNetwork class (a Libera-like server) allows: 20 lines at
            // once, 10 a second after that.
            bot_rate: IrcClass::PUBLIC_RATE,
            bot_burst: IrcClass::PUBLIC_BURST,
            bridges: 50,
            spread: 0,
            spread_rate: 50.0,
            spread_only: false,
            startup: Vec::new(),
            startup_runs: 5,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .unwrap_or_else(|| panic!("{flag} needs a value"));
            match flag.as_str() {
                "--messages" => o.messages = parse_arg(&flag, &value),
                "--rates" => {
                    o.rates = value.split(',').map(|r| parse_arg(&flag, r)).collect();
                }
                "--bot-rate" => o.bot_rate = parse_arg(&flag, &value),
                "--bot-burst" => o.bot_burst = parse_arg(&flag, &value),
                "--bridges" => o.bridges = parse_arg(&flag, &value),
                "--spread" => o.spread = parse_arg(&flag, &value),
                "--spread-rate" => o.spread_rate = parse_arg(&flag, &value),
                "--spread-only" => o.spread_only = value == "yes",
                "--startup" => o.startup = value.split(',').map(str::to_owned).collect(),
                "--startup-runs" => o.startup_runs = parse_arg(&flag, &value),
                _ => panic!(
                    "unknown option {flag}; usage: bridge_bench [--messages N] [--rates 5,20] \
                     [--bot-rate PER_SECOND] [--bot-burst N] [--bridges N] [--spread ROOMS] \
                     [--spread-rate PER_SECOND] [--spread-only yes] [--startup BIN,BIN] \
                     [--startup-runs N]"
                ),
            }
        }
        o
    }
}

fn parse_arg<T: std::str::FromStr>(flag: &str, value: &str) -> T
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .unwrap_or_else(|e| panic!("{flag} {value}: {e}"))
}

/// One bot's config: `bridges` bridges, bridge `i` linking `#<prefix><i>` and
/// `#<prefix><i>:sigbot.test` (or the single `#bench` pair when `bridges` is 0).
fn bot_config(
    o: &Options,
    irc: &IrcServer,
    synapse: &SynapseServer,
    user: &MatrixUser,
    pairs: &[(String, String)],
) -> String {
    let mut config = format!(
        r##"[bot]
nick = "{nick}"
data_dir = "data"

[[irc]]
name = "testnet"
server = "127.0.0.1:{irc_port}"
tls = false
nick = "{nick}"
rate = {{ burst = {burst}, per_second = {rate} }}
queue_limit = 100000

[[matrix]]
name = "hs"
homeserver = "{hs}"
user = "{user_id}"
password = {password:?}
"##,
        nick = user.localpart,
        irc_port = irc.port(),
        burst = o.bot_burst,
        rate = o.bot_rate,
        hs = synapse.url(),
        user_id = user.user_id,
        password = user.password,
    );
    for (i, (channel, alias)) in pairs.iter().enumerate() {
        config.push_str(&format!(
            "\n[[bridge]]\nname = \"b{i}\"\nrooms = [\"testnet/{channel}\", \"hs/{alias}\"]\n"
        ));
    }
    config
}

/// The servers, the benchmark's clients, and the single-bridge bot.
struct World {
    synapse: SynapseServer,
    irc: IrcServer,
    alice_user: MatrixUser,
    /// carol and alice say, dave and bob time, in `#bench`.
    ends: Ends,
    bot_id: String,
}

impl World {
    /// One phase: `n` messages at `rate` from IRC (carol) or from Matrix (alice), timed at dave
    /// and at bob. Returns (same-network figures, bridged figures).
    async fn phase(&mut self, o: &Options, from_irc: bool, rate: f64) -> (Figures, Figures) {
        let n = o.messages;
        let tag = format!("{}{}", if from_irc { "i" } else { "m" }, random_token(6));
        // Long enough for the bot's IRC queue to drain at its rate, and then some.
        let send_time = Duration::from_secs_f64(n as f64 / rate);
        let drain = Duration::from_secs_f64(n as f64 / o.bot_rate);
        let deadline = Instant::now() + send_time.max(drain) + GRACE;
        let (irc_from, matrix_from) = if from_irc {
            // Lines from IRC reach Matrix from the bot's account.
            ("carol", self.bot_id.clone())
        } else {
            ("sigbot", self.alice_user.user_id.clone())
        };
        self.ends
            .run_phase(
                &tag,
                n,
                rate,
                from_irc,
                (irc_from.to_owned(), matrix_from),
                deadline,
            )
            .await
            .figures(from_irc)
    }
}

/// The startup of each binary of `--startup` on the same servers: from the process start to
/// `/healthz` "ok" (IRC and Matrix connected), the first start (a Matrix login) and then
/// restarts on the same data directory, the binaries taking turns. Prints a table.
async fn startup(
    o: &Options,
    irc: &IrcServer,
    synapse: &SynapseServer,
    user: &MatrixUser,
    pairs: &[(String, String)],
) {
    let dirs: Vec<_> = o
        .startup
        .iter()
        .map(|_| temp_dir("bridge-bench-startup"))
        .collect();
    // An account and a nick of its own for each build: two bots on one account would each
    // find the other's doings to catch up on at every restart.
    let mut users = Vec::new();
    for i in 0..o.startup.len() {
        let localpart = format!("{}{i}", user.localpart);
        users.push(synapse.register_user(&localpart, &user.password).await);
    }
    let mut times = vec![Vec::new(); o.startup.len()];
    for run in 0..o.startup_runs.max(2) {
        for (i, bin) in o.startup.iter().enumerate() {
            eprintln!("startup {run}: {bin}...");
            let web = support::free_port();
            let config = format!(
                "{}\n[web]\nlisten = \"127.0.0.1:{web}\"\n",
                bot_config(o, irc, synapse, &users[i], pairs)
            );
            let env = [("SIGBOT_BIN", bin.as_str())];
            let (mut bot, up) = start_sigbot(dirs[i].path(), &config, web, &env).await;
            bot.terminate(Duration::from_secs(30)).await;
            times[i].push(up);
        }
    }
    println!(
        "| binary | size MB | first start (login) | restart, median of {} |",
        o.startup_runs.max(2) - 1
    );
    println!("|---|---|---|---|");
    for (bin, t) in o.startup.iter().zip(&times) {
        let mut restarts = t[1..].to_vec();
        restarts.sort();
        let size = std::fs::metadata(bin).map_or(0, |m| m.len());
        println!(
            "| {bin} | {:.1} | {} ms | {} ms |",
            size as f64 / 1e6,
            ms(Some(t[0])),
            ms(Some(restarts[restarts.len() / 2])),
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = Options::parse();
    eprintln!("starting InspIRCd + Anope and Synapse...");
    let synapse = SynapseServer::start().await;
    // Unlimited: the benchmark's own IRC client sends 20 lines a second, which a Libera-like
    // class would cut off; the bot keeps to its configured rate all the same.
    let irc = IrcServer::start(IrcClass::Unlimited).await;
    let bot_user = synapse.register_user("sigbot", "bot-secret-pw").await;
    let alice_user = synapse.register_user("alice", "alice-secret-pw").await;
    let bob_user = synapse.register_user("bob", "bob-secret-pw").await;
    let alice = synapse.client(&alice_user);
    let room = alice
        .create_room(RoomSpec {
            alias: Some(ALIAS_LOCAL.into()),
            public: true,
            ..RoomSpec::default()
        })
        .await;
    let bob = synapse.client(&bob_user);
    bob.join(&room).await;
    let alias = format!("#{ALIAS_LOCAL}:{}", synapse.server_name());

    let dir = temp_dir("bridge-bench");
    let pairs = [(CHANNEL.to_owned(), alias.clone())];
    if !o.startup.is_empty() {
        startup(&o, &irc, &synapse, &bot_user, &pairs).await;
        return;
    }
    let config = bot_config(&o, &irc, &synapse, &bot_user, &pairs);
    let mut bot = Bot::start_with_env(dir.path(), &config, &[("RUST_LOG", "info")]);
    let mut bob = Syncer::new(bob);
    let bot_id = bot_user.user_id.clone();
    let joined = bob
        .until(SETUP, |r, ev, _| {
            r == room
                && ev["type"] == "m.room.member"
                && ev["state_key"] == bot_id.as_str()
                && ev["content"]["membership"] == "join"
        })
        .await;
    assert!(joined, "the bot did not join {alias}\n{}", bot.log_tail(40));
    let mut carol = IrcClient::connect(&irc, "carol").await;
    join_with_bot(&mut carol, &[CHANNEL.to_owned()], "sigbot").await;
    let mut dave = IrcClient::connect(&irc, "dave").await;
    join_with_bot(&mut dave, &[CHANNEL.to_owned()], "sigbot").await;

    let mut world = World {
        synapse,
        irc,
        alice_user,
        ends: Ends {
            alice: Arc::new(alice),
            txn: Arc::new(Default::default()),
            bob: Some(bob),
            carol: Some(carol),
            dave: Some(dave),
            channel: CHANNEL.to_owned(),
            room,
        },
        bot_id,
    };
    if o.spread_only {
        bot.terminate(Duration::from_secs(30)).await;
        world.spread(&o).await;
        return;
    }
    // Warm-up: both ways through the bridge, not counted.
    let warm = Options {
        messages: 5,
        ..o.clone()
    };
    for from_irc in [true, false] {
        let (_, bridged) = world.phase(&warm, from_irc, 5.0).await;
        assert_eq!(
            bridged.received,
            5,
            "warm-up lines lost\n{}",
            bot.log_tail(40)
        );
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = bot.pid().expect("bot pid");
    let mem_one = memory(pid);

    let mut rows = Vec::new();
    for &rate in &o.rates {
        for from_irc in [true, false] {
            eprintln!(
                "{} messages at {rate}/s from {}...",
                o.messages,
                if from_irc { "IRC" } else { "Matrix" }
            );
            let (own, bridged) = world.phase(&o, from_irc, rate).await;
            for (what, f) in [("own network", &own), ("bridged", &bridged)] {
                eprintln!(
                    "  {what}: {}/{} received, p50 {} ms, p99 {} ms, {:.1} lines/s",
                    f.received,
                    o.messages,
                    ms(f.p50),
                    ms(f.p99),
                    f.throughput
                );
            }
            rows.push((rate, from_irc, own, bridged));
        }
    }
    let mem_after = memory(pid);
    bot.terminate(Duration::from_secs(30)).await;

    // (b) Memory with many bridges: a second bot account and nick, `bridges` channel/room pairs.
    eprintln!("{} bridges...", o.bridges);
    let many = world.many_bridges(&o).await;
    if o.spread > 0 {
        world.spread(&o).await;
    }

    println!(
        "\nbridge benchmark: {} messages per phase, bot IRC rate {}/s burst {} (IRC class Unlimited)",
        o.messages, o.bot_rate, o.bot_burst
    );
    println!(
        "| offered | path | received | p50 ms | p99 ms | bot adds p50 / p99 ms | delivered lines/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &rate in &o.rates {
        let at = |irc: bool| rows.iter().find(|r| r.0 == rate && r.1 == irc);
        let (Some((_, _, irc_own, to_matrix)), Some((_, _, matrix_own, to_irc))) =
            (at(true), at(false))
        else {
            continue;
        };
        // A bridged line crosses both servers: the bot adds what is left after both servers'
        // own delivery times (for p99 only an indication: percentiles do not add up).
        let added = |f: &Figures| {
            let sub =
                |a: Option<Duration>, b: Option<Duration>, c: Option<Duration>| match (a, b, c) {
                    (Some(a), Some(b), Some(c)) => format!(
                        "{:+.1}",
                        (a.as_secs_f64() - b.as_secs_f64() - c.as_secs_f64()) * 1e3
                    ),
                    _ => "n/a".to_owned(),
                };
            format!(
                "{} / {}",
                sub(f.p50, irc_own.p50, matrix_own.p50),
                sub(f.p99, irc_own.p99, matrix_own.p99)
            )
        };
        let lines = [
            ("IRC -> IRC (server only)", irc_own, String::new()),
            ("Matrix -> Matrix (server only)", matrix_own, String::new()),
            ("IRC -> Matrix (bot)", to_matrix, added(to_matrix)),
            ("Matrix -> IRC (bot)", to_irc, added(to_irc)),
        ];
        for (path, f, added) in lines {
            println!(
                "| {rate}/s | {path} | {}/{} | {} | {} | {added} | {:.1} |",
                f.received,
                o.messages,
                ms(f.p50),
                ms(f.p99),
                f.throughput
            );
        }
    }
    println!(
        "\n| bot memory (MiB) | VmRSS | VmHWM (peak) | RssAnon (heap, stacks) | RssFile (code) |"
    );
    println!("|---|---|---|---|---|");
    let mib = |k: u64| format!("{:.1}", k as f64 / 1024.0);
    let states = [
        (
            "1 bridge, after joining and 5 lines each way".to_owned(),
            mem_one,
        ),
        ("1 bridge, after the latency runs".to_owned(), mem_after),
        (
            format!(
                "{} bridges, after joining and 1 line each way per bridge",
                o.bridges
            ),
            many,
        ),
    ];
    for (state, m) in states {
        println!(
            "| {state} | {} | {} | {} | {} |",
            mib(m.rss),
            mib(m.peak),
            mib(m.anon),
            mib(m.file)
        );
    }
}

impl World {
    /// Starts a bot with `o.bridges` bridges, waits until it is in every channel and room,
    /// relays one line each way per bridge, and returns its memory after a short rest.
    async fn many_bridges(&mut self, o: &Options) -> Memory {
        let user = self
            .synapse
            .register_user("sigbotmany", "many-secret-pw")
            .await;
        let mut pairs = Vec::new();
        let mut rooms = Vec::new();
        for i in 0..o.bridges {
            let local = format!("many{i}");
            let room = self
                .ends
                .alice
                .create_room(RoomSpec {
                    alias: Some(local.clone()),
                    public: true,
                    ..RoomSpec::default()
                })
                .await;
            rooms.push(room);
            pairs.push((
                format!("#many{i}"),
                format!("#{local}:{}", self.synapse.server_name()),
            ));
        }
        let dir = temp_dir("bridge-bench-many");
        let config = bot_config(o, &self.irc, &self.synapse, &user, &pairs);
        let mut bot = Bot::start_with_env(dir.path(), &config, &[("RUST_LOG", "info")]);
        let mut watcher = Syncer::new(MatrixClient::with_token(
            &self.synapse.url(),
            &self.alice_user.user_id,
            self.ends.alice.access_token(),
        ));
        let mut joined = std::collections::HashSet::new();
        let all = watcher
            .until(SETUP, |r, ev, _| {
                if ev["type"] == "m.room.member"
                    && ev["state_key"] == user.user_id.as_str()
                    && ev["content"]["membership"] == "join"
                {
                    joined.insert(r.to_owned());
                }
                joined.len() == rooms.len()
            })
            .await;
        assert!(
            all,
            "the bot joined {} of {} rooms\n{}",
            joined.len(),
            rooms.len(),
            bot.log_tail(40)
        );
        let channels: Vec<String> = pairs.iter().map(|(c, _)| c.clone()).collect();
        let mut dave = self.ends.dave.take().unwrap();
        join_with_bot(&mut dave, &channels, &user.localpart).await;

        // One line each way per bridge.
        let mut carol = self.ends.carol.take().unwrap();
        join_with_bot(&mut carol, &channels, &user.localpart).await;
        for c in &channels {
            carol.privmsg(c, &format!("hello {c}")).await;
        }
        for room in &rooms {
            matrix_send(
                &self.ends.alice,
                &self.ends.txn,
                room,
                "hello from Matrix".into(),
            );
        }
        let mut from_irc = 0;
        let relayed = watcher
            .until(SETUP, |_, ev, _| {
                if ev["sender"] == user.user_id.as_str() && ev["type"] == "m.room.message" {
                    from_irc += 1;
                }
                from_irc == channels.len()
            })
            .await;
        assert!(
            relayed,
            "{from_irc} of {} lines reached Matrix",
            channels.len()
        );
        for _ in &channels {
            dave.wait_for(SETUP, |l| {
                l.command == "PRIVMSG" && l.nick() == Some(user.localpart.as_str())
            })
            .await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mem = memory(bot.pid().expect("bot pid"));
        bot.terminate(Duration::from_secs(30)).await;
        self.ends.dave = Some(dave);
        self.ends.carol = Some(carol);
        mem
    }
}

/// (room, sequence number) of a spread phase's lines, in the order they arrived.
type RoomOrder = Vec<(String, usize)>;

/// Arrivals of a spread phase's lines, by sequence number, from any room.
fn spread_arrivals(
    mut syncer: Syncer,
    from: String,
    tag: String,
    n: usize,
    deadline: Instant,
) -> JoinHandle<(Syncer, Arrivals, RoomOrder)> {
    tokio::spawn(async move {
        let mut got: Arrivals = vec![None; n];
        // (room, sequence) in the order seen, to check each room's order.
        let mut order = Vec::new();
        let mut count = 0;
        while count < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            syncer
                .until(left.min(Duration::from_secs(5)), |r, ev, seen| {
                    // The bot may carry several lines of a room in one event, one a line.
                    let seqs = if ev["type"] == "m.room.message" && ev["sender"] == from.as_str() {
                        sequences(ev["content"]["body"].as_str().unwrap_or_default(), &tag)
                    } else {
                        Vec::new()
                    };
                    for i in seqs {
                        if i < n && got[i].is_none() {
                            got[i] = Some(seen);
                            order.push((r.to_owned(), i));
                            count += 1;
                        }
                    }
                    count == n
                })
                .await;
        }
        (syncer, got, order)
    })
}

/// Whether each room saw its lines in increasing order.
fn rooms_in_order(order: &[(String, usize)]) -> bool {
    let mut last: std::collections::HashMap<&str, usize> = Default::default();
    order.iter().all(|(room, i)| {
        let ok = last.get(room.as_str()).is_none_or(|prev| prev < i);
        last.insert(room, *i);
        ok
    })
}

impl World {
    /// The spread phase: `o.messages` lines at `o.spread_rate` a second over `o.spread`
    /// bridged rooms, IRC -> Matrix through a bot of its own, then Matrix -> Matrix.
    async fn spread(&mut self, o: &Options) {
        let rooms_n = o.spread;
        eprintln!("spread: {rooms_n} bridged rooms...");
        let user = self
            .synapse
            .register_user("sigbotspread", "spread-secret-pw")
            .await;
        let mut pairs = Vec::new();
        let mut rooms = Vec::new();
        let mut bob = self.ends.bob.take().unwrap();
        for i in 0..rooms_n {
            let local = format!("spread{i}");
            let room = self
                .ends
                .alice
                .create_room(RoomSpec {
                    alias: Some(local.clone()),
                    public: true,
                    ..RoomSpec::default()
                })
                .await;
            bob.client.join(&room).await;
            rooms.push(room);
            pairs.push((
                format!("#spread{i}"),
                format!("#{local}:{}", self.synapse.server_name()),
            ));
        }
        let dir = temp_dir("bridge-bench-spread");
        let config = bot_config(o, &self.irc, &self.synapse, &user, &pairs);
        let mut bot = Bot::start_with_env(dir.path(), &config, &[("RUST_LOG", "info")]);
        let mut joined = std::collections::HashSet::new();
        let all = bob
            .until(SETUP, |r, ev, _| {
                if ev["type"] == "m.room.member"
                    && ev["state_key"] == user.user_id.as_str()
                    && ev["content"]["membership"] == "join"
                {
                    joined.insert(r.to_owned());
                }
                joined.len() == rooms.len()
            })
            .await;
        assert!(
            all,
            "the bot joined {} of {rooms_n} rooms\n{}",
            joined.len(),
            bot.log_tail(40)
        );
        let channels: Vec<String> = pairs.iter().map(|(c, _)| c.clone()).collect();
        let mut carol = self.ends.carol.take();
        let mut dave = self.ends.dave.take();
        join_with_bot(carol.as_mut().unwrap(), &channels, &user.localpart).await;
        join_with_bot(dave.as_mut().unwrap(), &channels, &user.localpart).await;

        let n = o.messages;
        let rate = o.spread_rate;
        let mut results = Vec::new();
        // Warm-up (one line a room), then IRC -> Matrix, then Synapse alone.
        for (phase, from_irc, count) in [
            ("warm-up", true, rooms_n),
            ("IRC -> Matrix (bot)", true, n),
            ("Matrix -> Matrix (server only)", false, n),
        ] {
            let tag = format!("s{}", random_token(6));
            let deadline = Instant::now() + Duration::from_secs_f64(count as f64 / rate) + GRACE;
            let from = if from_irc {
                user.user_id.clone()
            } else {
                self.alice_user.user_id.clone()
            };
            let at_bob = spread_arrivals(bob, from, tag.clone(), count, deadline);
            let at_dave = from_irc.then(|| {
                let tag = tag.clone();
                let channels = channels.clone();
                let mut dave = dave.take().unwrap();
                tokio::spawn(async move {
                    let mut got: Arrivals = vec![None; count];
                    let mut seen = 0;
                    while seen < count {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        let mut seq = None;
                        let line = dave
                            .try_wait_for(left.min(Duration::from_secs(1)), |l| {
                                seq = (l.command == "PRIVMSG"
                                    && l.nick() == Some("carol")
                                    && l.param(0).is_some_and(|c| {
                                        channels.iter().any(|x| x.eq_ignore_ascii_case(c))
                                    }))
                                .then(|| sequence(l.text(), &tag))
                                .flatten();
                                seq.is_some()
                            })
                            .await;
                        if let (Ok(_), Some(i)) = (line, seq)
                            && i < count
                            && got[i].is_none()
                        {
                            got[i] = Some(Instant::now());
                            seen += 1;
                        }
                    }
                    (dave, got)
                })
            });
            let sent = if from_irc {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
                let c = carol.take().unwrap();
                let writer = tokio::spawn(async move {
                    while let Some((chan, text)) = rx.recv().await {
                        c.privmsg(&chan, &text).await;
                    }
                    c
                });
                let sent = paced(&tag, count, rate, |i, text| {
                    let _ = tx.send((channels[i % rooms_n].clone(), text));
                })
                .await;
                drop(tx);
                carol = Some(writer.await.unwrap());
                sent
            } else {
                let (alice, txn) = (&self.ends.alice, &self.ends.txn);
                paced(&tag, count, rate, |i, text| {
                    matrix_send(alice, txn, &rooms[i % rooms_n], text)
                })
                .await
            };
            let (b, got, order) = at_bob.await.unwrap();
            bob = b;
            let irc_own = match at_dave {
                Some(h) => {
                    let (d, got) = h.await.unwrap();
                    dave = Some(d);
                    Some(figures(&sent, &got))
                }
                None => None,
            };
            if phase != "warm-up" {
                results.push((phase, figures(&sent, &got), irc_own, rooms_in_order(&order)));
            }
        }
        bot.terminate(Duration::from_secs(30)).await;
        self.ends.bob = Some(bob);
        self.ends.carol = carol;
        self.ends.dave = dave;

        println!(
            "\nspread: {n} lines at {rate}/s round-robin over {rooms_n} bridged rooms, bot IRC rate {}/s",
            o.bot_rate
        );
        println!("| path | received | p50 ms | p99 ms | each room in order |");
        println!("|---|---|---|---|---|");
        for (phase, f, irc_own, ordered) in &results {
            if let Some(irc) = irc_own {
                println!(
                    "| IRC -> IRC (server only) | {}/{n} | {} | {} | |",
                    irc.received,
                    ms(irc.p50),
                    ms(irc.p99)
                );
            }
            println!(
                "| {phase} | {}/{n} | {} | {} | {} |",
                f.received,
                ms(f.p50),
                ms(f.p99),
                if *ordered { "yes" } else { "NO" }
            );
        }
        if let [(_, bridged, Some(irc), _), (_, matrix, _, _)] = results.as_slice() {
            // A percentile among lost lines has no figure ("n/a").
            let sub =
                |a: Option<Duration>, b: Option<Duration>, c: Option<Duration>| match (a, b, c) {
                    (Some(a), Some(b), Some(c)) => format!(
                        "{:+.1}",
                        (a.as_secs_f64() - b.as_secs_f64() - c.as_secs_f64()) * 1e3
                    ),
                    _ => "n/a".to_owned(),
                };
            println!(
                "\nthe bot adds (bridged - IRC's own - Synapse's own): p50 {} ms, p99 {} ms; over Synapse's own alone: p50 {} ms, p99 {} ms",
                sub(bridged.p50, irc.p50, matrix.p50),
                sub(bridged.p99, irc.p99, matrix.p99),
                sub(bridged.p50, matrix.p50, Some(Duration::ZERO)),
                sub(bridged.p99, matrix.p99, Some(Duration::ZERO)),
            );
        }
    }
}
