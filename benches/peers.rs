//! Peer benchmark (DESIGN §9, issue 16): sigbot side by side with Heisenbridge, the Python
//! IRC bridge that runs as a Matrix appservice, on the same InspIRCd and Synapse in one run.
//!
//! Both bridge the same channel (`#bench`) and the same room (`#bench:sigbot.test`), one after
//! the other, under the same numbered load: `--messages` lines at each `--rates` rate from
//! IRC (carol) and from Matrix (alice). Each line is timed at a receiver on the other network
//! (through the bridge) and at one on the sender's own network (the server's own
//! client-to-client time, the baseline). Then each bridge's resident memory idle with 1 room
//! (after the warm-up) and with `--bridges` rooms (a fresh process of each, one line each way
//! per room). `benches/peers.sh` installs Heisenbridge from PyPI, times the minutes of both
//! peers and passes them here with `--minutes`, and this prints the one table.
//!
//! Heisenbridge sends to IRC through its own flood control (a line every 1.5 s once a few have
//! gone out quickly; it has no setting for it): its backlog would spill into the next phase, so
//! it is restarted after each Matrix -> IRC phase (it reconnects and rejoins by itself).
//!
//! usage: `peers_bench --heisenbridge PATH [--messages N] [--rates 5,20,50] [--bot-rate R]
//! [--bot-burst N] [--bridges N] [--out DIR] [--minutes "PEER_S SIGBOT_S RUNS LINES"]`

#[path = "common.rs"]
mod common;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Ends, Figures, Memory, SETUP, Syncer, join_with_bot, matrix_send, memory, ms, start_sigbot,
};
use support::bot::Bot;
use support::{
    IrcClass, IrcClient, IrcServer, MatrixClient, MatrixUser, ProcessSpec, RoomSpec, ServerProcess,
    SynapseServer, free_port, random_token, temp_dir, write_file,
};

/// How long the last line of a phase may take beyond the sending time and the drain at
/// `--bot-rate`.
const GRACE: Duration = Duration::from_secs(30);
const CHANNEL: &str = "#bench";
const ALIAS_LOCAL: &str = "bench";
/// The IRC network's name inside both bridges.
const NETWORK: &str = "testnet";

#[derive(Debug, Clone)]
struct Options {
    heisenbridge: PathBuf,
    messages: usize,
    rates: Vec<f64>,
    bot_rate: f64,
    bot_burst: u32,
    bridges: usize,
    out: Option<PathBuf>,
    /// Seconds for the minutes: (peer median, sigbot median, runs, meeting lines).
    minutes: Option<(f64, f64, usize, usize)>,
}

impl Options {
    fn parse() -> Options {
        let mut o = Options {
            heisenbridge: std::env::var_os("HEISENBRIDGE")
                .map(PathBuf::from)
                .unwrap_or_default(),
            messages: 1000,
            rates: vec![5.0, 20.0, 50.0],
            // The harness's IRC class is Unlimited, and Heisenbridge has no rate setting: the
            // bot's is set above the highest offered rate.
            bot_rate: 100.0,
            bot_burst: 100,
            bridges: 50,
            out: None,
            minutes: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .unwrap_or_else(|| panic!("{flag} needs a value"));
            match flag.as_str() {
                "--heisenbridge" => o.heisenbridge = value.into(),
                "--messages" => o.messages = parse_arg(&flag, &value),
                "--rates" => o.rates = value.split(',').map(|r| parse_arg(&flag, r)).collect(),
                "--bot-rate" => o.bot_rate = parse_arg(&flag, &value),
                "--bot-burst" => o.bot_burst = parse_arg(&flag, &value),
                "--bridges" => o.bridges = parse_arg(&flag, &value),
                "--out" => o.out = Some(value.into()),
                "--minutes" => {
                    let v: Vec<&str> = value.split_whitespace().collect();
                    assert_eq!(v.len(), 4, "--minutes \"PEER_S SIGBOT_S RUNS LINES\"");
                    o.minutes = Some((
                        parse_arg(&flag, v[0]),
                        parse_arg(&flag, v[1]),
                        parse_arg(&flag, v[2]),
                        parse_arg(&flag, v[3]),
                    ));
                }
                _ => panic!(
                    "unknown option {flag}; usage: peers_bench --heisenbridge PATH [--messages N] \
                     [--rates 5,20,50] [--bot-rate R] [--bot-burst N] [--bridges N] [--out DIR] \
                     [--minutes \"PEER_S SIGBOT_S RUNS LINES\"]"
                ),
            }
        }
        assert!(
            o.heisenbridge.is_file(),
            "--heisenbridge (or $HEISENBRIDGE) must name the heisenbridge program; \
             benches/peers.sh installs it into a venv"
        );
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

/// One Heisenbridge appservice registration, written before Synapse starts.
struct Registration {
    file: PathBuf,
    port: u16,
    /// The bridge's own user's localpart.
    localpart: String,
    /// Puppets are `@<prefix>_<network>_<nick>`.
    prefix: String,
}

impl Registration {
    /// The registration `heisenbridge --generate` writes, with an id, bot and puppet prefix of
    /// its own so that two instances can be registered at once.
    fn write(dir: &Path, id: &str, prefix: &str) -> Registration {
        let port = free_port();
        let file = dir.join(format!("{id}.yaml"));
        write_file(
            &file,
            format!(
                "id: {id}\nurl: http://127.0.0.1:{port}\nas_token: {}\nhs_token: {}\n\
                 rate_limited: false\nsender_localpart: {id}\nnamespaces:\n  users:\n  \
                 - regex: '@{prefix}_.*'\n    exclusive: true\n  aliases: []\n  rooms: []\n",
                random_token(64),
                random_token(64)
            ),
        );
        Registration {
            file,
            port,
            localpart: id.to_owned(),
            prefix: prefix.to_owned(),
        }
    }
}

/// A bridge under measurement.
enum Relay {
    Sigbot(Bot),
    Heisenbridge(ServerProcess),
}

impl Relay {
    fn pid(&self) -> u32 {
        match self {
            Relay::Sigbot(bot) => bot.pid(),
            Relay::Heisenbridge(p) => p.pid(),
        }
        .expect("bridge pid")
    }

    async fn stop(&mut self) {
        match self {
            Relay::Sigbot(bot) => {
                bot.terminate(Duration::from_secs(30)).await;
            }
            Relay::Heisenbridge(p) => p.terminate(Duration::from_secs(30)).await,
        }
    }

    fn log_tail(&self) -> String {
        match self {
            Relay::Sigbot(bot) => bot.log_tail(40),
            Relay::Heisenbridge(p) => p.log_tail(40),
        }
    }
}

/// Who the lines come from on each side for one bridge.
#[derive(Clone)]
struct Senders {
    /// The bridge's nick on IRC (Matrix lines reach IRC from it).
    irc_nick: String,
    /// The Matrix user that IRC lines from carol reach Matrix from.
    matrix_for_carol: String,
    /// The bridge's own Matrix account, the one that joins the rooms.
    matrix_bot: String,
}

/// The servers and the benchmark's clients.
struct World {
    synapse: SynapseServer,
    irc: IrcServer,
    alice_user: MatrixUser,
    /// carol and alice say, dave and bob time, in `#bench`.
    ends: Ends,
    /// Raw data: one line per message and phase.
    raw: String,
}

/// One phase's figures: the server alone and through the bridge.
struct Phase {
    rate: f64,
    from_irc: bool,
    own: Figures,
    bridged: Figures,
}

/// What one bridge measured.
struct Measured {
    phases: Vec<Phase>,
    idle_one: Memory,
    many: Memory,
    /// From process start to every network connected (sigbot only: Heisenbridge connects when
    /// told to).
    startup: Option<Duration>,
}

impl World {
    /// `n` lines at `rate` from IRC (carol) or Matrix (alice), timed at dave and at bob.
    async fn phase(
        &mut self,
        o: &Options,
        who: &str,
        s: &Senders,
        n: usize,
        from_irc: bool,
        rate: f64,
    ) -> Phase {
        let tag = format!("{}{}", if from_irc { "i" } else { "m" }, random_token(6));
        let send_time = Duration::from_secs_f64(n as f64 / rate);
        let drain = Duration::from_secs_f64(n as f64 / o.bot_rate);
        let deadline = Instant::now() + send_time.max(drain) + GRACE;
        let (irc_from, matrix_from) = if from_irc {
            ("carol".to_owned(), s.matrix_for_carol.clone())
        } else {
            (s.irc_nick.clone(), self.alice_user.user_id.clone())
        };
        let timed = self
            .ends
            .run_phase(&tag, n, rate, from_irc, (irc_from, matrix_from), deadline)
            .await;
        let (own, bridged) = timed.figures(from_irc);
        let (sent, at_irc, at_matrix) = (&timed.sent, &timed.at_irc, &timed.at_matrix);
        let (own_at, bridged_at) = if from_irc {
            (at_irc, at_matrix)
        } else {
            (at_matrix, at_irc)
        };
        let path = if from_irc { "irc" } else { "matrix" };
        for (i, s) in sent.iter().enumerate() {
            let lat = |g: &Option<Instant>| {
                g.map(|g| format!("{:.3}", g.saturating_duration_since(*s).as_secs_f64() * 1e3))
                    .unwrap_or_default()
            };
            let _ = writeln!(
                self.raw,
                "{who},{rate},{path},{i},{},{}",
                lat(&own_at[i]),
                lat(&bridged_at[i])
            );
        }
        Phase {
            rate,
            from_irc,
            own,
            bridged,
        }
    }

    /// The warm-up (5 lines each way, not counted), the idle memory, then every phase.
    async fn load(
        &mut self,
        o: &Options,
        who: &str,
        s: &Senders,
        relay: &mut Relay,
        restart: Option<&Registration>,
    ) -> (Memory, Vec<Phase>) {
        for from_irc in [true, false] {
            let warm = self.phase(o, who, s, 5, from_irc, 5.0).await;
            assert_eq!(
                warm.bridged.received,
                5,
                "{who}: warm-up lines lost\n{}",
                relay.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let idle = memory(relay.pid());
        let mut phases = Vec::new();
        for &rate in &o.rates {
            for from_irc in [true, false] {
                eprintln!(
                    "{who}: {} lines at {rate}/s from {}...",
                    o.messages,
                    if from_irc { "IRC" } else { "Matrix" }
                );
                let p = self.phase(o, who, s, o.messages, from_irc, rate).await;
                for (what, f) in [("own network", &p.own), ("bridged", &p.bridged)] {
                    eprintln!(
                        "  {what}: {}/{} received, p50 {}, p99 {} (ms), {:.1} lines/s",
                        f.received,
                        o.messages,
                        ms(f.p50),
                        ms(f.p99),
                        f.throughput
                    );
                }
                phases.push(p);
                if let (false, Some(reg), Relay::Heisenbridge(process)) =
                    (from_irc, restart, &mut *relay)
                {
                    // Drop the backlog its flood control keeps, so the next phase starts empty.
                    process.kill();
                    process.start();
                    let mut dave = self.ends.dave.take().unwrap();
                    dave.wait_for(SETUP, |l| {
                        l.command == "JOIN" && l.nick() == Some(s.irc_nick.as_str())
                    })
                    .await;
                    self.ends.dave = Some(dave);
                    eprintln!("  {} restarted and back in {CHANNEL}", reg.localpart);
                }
            }
        }
        (idle, phases)
    }

    /// Rooms `#<prefix><i>:sigbot.test` and channels `#<prefix><i>`, `count` of them.
    async fn rooms(&self, prefix: &str, count: usize) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for i in 0..count {
            let local = format!("{prefix}{i}");
            let room = self
                .ends
                .alice
                .create_room(RoomSpec {
                    alias: Some(local.clone()),
                    public: true,
                    ..RoomSpec::default()
                })
                .await;
            out.push((
                room,
                format!("#{local}:{}", self.synapse.server_name()),
                format!("#{local}"),
            ));
        }
        out
    }

    /// One line each way per room, each seen on the other side, then a 5 s rest.
    async fn one_line_each(&mut self, s: &Senders, rooms: &[(String, String, String)]) {
        let channels: Vec<String> = rooms.iter().map(|r| r.2.clone()).collect();
        let mut dave = self.ends.dave.take().unwrap();
        join_with_bot(&mut dave, &channels, &s.irc_nick).await;
        let mut carol = self.ends.carol.take().unwrap();
        join_with_bot(&mut carol, &channels, &s.irc_nick).await;
        let mut watcher = Syncer::new(MatrixClient::with_token(
            &self.synapse.url(),
            &self.alice_user.user_id,
            self.ends.alice.access_token(),
        ));
        // The bridge in every room first (the first sync brings the rooms' recent timelines).
        let mut joined = std::collections::HashSet::new();
        let all = watcher
            .until(SETUP, |r, ev, _| {
                if ev["type"] == "m.room.member"
                    && ev["state_key"] == s.matrix_bot.as_str()
                    && ev["content"]["membership"] == "join"
                {
                    joined.insert(r.to_owned());
                }
                rooms.iter().all(|(room, _, _)| joined.contains(room))
            })
            .await;
        assert!(
            all,
            "the bridge joined {} of {} rooms",
            joined.len(),
            rooms.len()
        );
        for c in &channels {
            carol.privmsg(c, &format!("hello {c}")).await;
        }
        for (room, _, _) in rooms {
            matrix_send(
                &self.ends.alice,
                &self.ends.txn,
                room,
                "hello from Matrix".into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        let relayed = watcher
            .until(SETUP, |r, ev, _| {
                if ev["sender"] == s.matrix_for_carol.as_str() && ev["type"] == "m.room.message" {
                    seen.insert(r.to_owned());
                }
                seen.len() == rooms.len()
            })
            .await;
        assert!(
            relayed,
            "{} of {} lines reached Matrix",
            seen.len(),
            rooms.len()
        );
        let mut heard = std::collections::HashSet::new();
        while heard.len() < channels.len() {
            let l = dave
                .wait_for(SETUP, |l| {
                    l.command == "PRIVMSG"
                        && l.nick() == Some(s.irc_nick.as_str())
                        && l.text().contains("hello from Matrix")
                })
                .await;
            heard.insert(l.param(0).unwrap_or_default().to_lowercase());
        }
        // Out of the rooms again: the server lets a client be in 100 channels, and the next
        // bridge's 50 come on top of these.
        for chunk in channels.chunks(10) {
            dave.send(&format!("PART {}", chunk.join(","))).await;
            carol.send(&format!("PART {}", chunk.join(","))).await;
        }
        self.ends.dave = Some(dave);
        self.ends.carol = Some(carol);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// sigbot's config: its bridges, and the web site on a free port for `/healthz`.
fn sigbot_config(
    o: &Options,
    irc: &IrcServer,
    synapse: &SynapseServer,
    user: &MatrixUser,
    web_port: u16,
    pairs: &[(String, String)],
) -> String {
    let mut config = format!(
        r##"[bot]
nick = "{nick}"
data_dir = "data"

[web]
listen = "127.0.0.1:{web_port}"

[[irc]]
name = "{NETWORK}"
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
        let _ = write!(
            config,
            "\n[[bridge]]\nname = \"b{i}\"\nrooms = [\"{NETWORK}/{channel}\", \"hs/{alias}\"]\n"
        );
    }
    config
}

async fn run_sigbot(world: &mut World, o: &Options) -> Measured {
    let user = world.synapse.register_user("sigbot", "bot-secret-pw").await;
    let alias = format!("#{ALIAS_LOCAL}:{}", world.synapse.server_name());
    let dir = temp_dir("peers-sigbot");
    let web_port = free_port();
    let config = sigbot_config(
        o,
        &world.irc,
        &world.synapse,
        &user,
        web_port,
        &[(CHANNEL.to_owned(), alias)],
    );
    let (bot, startup) = start_sigbot(dir.path(), &config, web_port, &[]).await;
    eprintln!("sigbot: every network connected {startup:?} after the start");
    let mut relay = Relay::Sigbot(bot);
    let s = Senders {
        irc_nick: user.localpart.clone(),
        matrix_for_carol: user.user_id.clone(),
        matrix_bot: user.user_id.clone(),
    };
    world.wait_joined(&s, &relay).await;
    let (idle_one, phases) = world.load(o, "sigbot", &s, &mut relay, None).await;
    relay.stop().await;

    eprintln!("sigbot: {} bridges...", o.bridges);
    let many_user = world
        .synapse
        .register_user("sigbotmany", "many-secret-pw")
        .await;
    let rooms = world.rooms("sbmany", o.bridges).await;
    let pairs: Vec<(String, String)> = rooms
        .iter()
        .map(|(_, alias, chan)| (chan.clone(), alias.clone()))
        .collect();
    let dir = temp_dir("peers-sigbot-many");
    let web_port = free_port();
    let config = sigbot_config(o, &world.irc, &world.synapse, &many_user, web_port, &pairs);
    let (bot, _) = start_sigbot(dir.path(), &config, web_port, &[]).await;
    let mut relay = Relay::Sigbot(bot);
    let s = Senders {
        irc_nick: many_user.localpart.clone(),
        matrix_for_carol: many_user.user_id.clone(),
        matrix_bot: many_user.user_id.clone(),
    };
    world.one_line_each(&s, &rooms).await;
    let many = memory(relay.pid());
    relay.stop().await;
    Measured {
        phases,
        idle_one,
        many,
        startup: Some(startup),
    }
}

/// Starts Heisenbridge for `reg`, owned by `owner`, and sets it up through its rooms as a
/// person would: the network, the server, the nick, CONNECT, then PLUMB of each room.
async fn start_heisenbridge(
    world: &World,
    o: &Options,
    reg: &Registration,
    owner: &MatrixUser,
    nick: &str,
    rooms: &[(String, String)],
) -> ServerProcess {
    let dir = temp_dir("peers-heisenbridge");
    let mut process = ServerProcess::spawn(
        ProcessSpec::new(&reg.localpart, o.heisenbridge.clone(), dir.path())
            .arg("-c")
            .arg(&reg.file)
            .arg("-l")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(reg.port.to_string())
            .arg("-o")
            .arg(&owner.user_id)
            .arg(world.synapse.url())
            .env("PYTHONUNBUFFERED", "1"),
    );
    // The log lives in `dir`, which must outlive the process: leak it (removed with /tmp).
    std::mem::forget(dir);
    let bot_id = world.synapse.user_id(&reg.localpart);
    let mut me = world.synapse.client(owner);
    let control = me.wait_for_invite(SETUP).await;
    me.join(&control).await;
    let notice = |ev: &serde_json::Value, needle: &str| {
        ev["sender"] == bot_id.as_str()
            && ev["content"]["body"]
                .as_str()
                .is_some_and(|b| b.contains(needle))
    };
    me.send_text(&control, &format!("ADDNETWORK {NETWORK}"))
        .await;
    me.wait_for_event(&control, SETUP, |ev| notice(ev, "Network added."))
        .await;
    me.send_text(
        &control,
        &format!("ADDSERVER {NETWORK} 127.0.0.1 {}", world.irc.port()),
    )
    .await;
    me.wait_for_event(&control, SETUP, |ev| notice(ev, "Server added."))
        .await;
    me.send_text(&control, &format!("OPEN {NETWORK}")).await;
    let network_room = me.wait_for_invite(SETUP).await;
    me.join(&network_room).await;
    me.send_text(&network_room, &format!("NICK {nick}")).await;
    me.send_text(&network_room, "CONNECT").await;
    // Connected once STATUS says so.
    let started = Instant::now();
    loop {
        process.assert_running();
        me.send_text(&network_room, "STATUS").await;
        let ev = me
            .wait_for_event(&network_room, SETUP, |ev| {
                notice(ev, "Connected for") || notice(ev, "Not connected")
            })
            .await;
        if ev["content"]["body"]
            .as_str()
            .is_some_and(|b| b.contains("Connected for"))
        {
            break;
        }
        assert!(started.elapsed() < SETUP, "Heisenbridge did not connect");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (room, channel) in rooms {
        me.send_text(&network_room, &format!("PLUMB {room} {channel}"))
            .await;
    }
    process
}

impl World {
    /// Waits until the bridge is in `#bench` on both sides and carol and dave are there too.
    async fn wait_joined(&mut self, s: &Senders, relay: &Relay) {
        let (id, room) = (s.matrix_bot.clone(), self.ends.room.clone());
        let mut bob = self.ends.bob.take().unwrap();
        let joined = bob
            .until(SETUP, |r, ev, _| {
                r == room
                    && ev["type"] == "m.room.member"
                    && ev["state_key"] == id.as_str()
                    && ev["content"]["membership"] == "join"
            })
            .await;
        self.ends.bob = Some(bob);
        assert!(
            joined,
            "the bridge did not join the room\n{}",
            relay.log_tail()
        );
        let mut carol = self.ends.carol.take().unwrap();
        join_with_bot(&mut carol, &[CHANNEL.to_owned()], &s.irc_nick).await;
        self.ends.carol = Some(carol);
        let mut dave = self.ends.dave.take().unwrap();
        join_with_bot(&mut dave, &[CHANNEL.to_owned()], &s.irc_nick).await;
        self.ends.dave = Some(dave);
    }
}

async fn run_heisenbridge(
    world: &mut World,
    o: &Options,
    one: &Registration,
    many: &Registration,
) -> Measured {
    let owner = world.synapse.register_user("hbowner", "hb-owner-pw").await;
    let nick = "hbridge";
    let process = start_heisenbridge(
        world,
        o,
        one,
        &owner,
        nick,
        &[(world.ends.room.clone(), CHANNEL.to_owned())],
    )
    .await;
    let mut relay = Relay::Heisenbridge(process);
    let s = Senders {
        irc_nick: nick.to_owned(),
        matrix_for_carol: world
            .synapse
            .user_id(&format!("{}_{NETWORK}_carol", one.prefix)),
        matrix_bot: world.synapse.user_id(&one.localpart),
    };
    world.wait_joined(&s, &relay).await;
    let (idle_one, phases) = world
        .load(o, "heisenbridge", &s, &mut relay, Some(one))
        .await;
    relay.stop().await;

    eprintln!("heisenbridge: {} rooms...", o.bridges);
    let owner = world.synapse.register_user("hbowner2", "hb-owner-pw").await;
    let rooms = world.rooms("hbmany", o.bridges).await;
    let plumbs: Vec<(String, String)> = rooms
        .iter()
        .map(|(room, _, chan)| (room.clone(), chan.clone()))
        .collect();
    let nick = "hbmany";
    let process = start_heisenbridge(world, o, many, &owner, nick, &plumbs).await;
    let mut relay = Relay::Heisenbridge(process);
    let s = Senders {
        irc_nick: nick.to_owned(),
        matrix_for_carol: world
            .synapse
            .user_id(&format!("{}_{NETWORK}_carol", many.prefix)),
        matrix_bot: world.synapse.user_id(&many.localpart),
    };
    world.one_line_each(&s, &rooms).await;
    let many = memory(relay.pid());
    relay.stop().await;
    Measured {
        phases,
        idle_one,
        many,
        startup: None,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = Options::parse();
    eprintln!("starting InspIRCd + Anope and Synapse (with two Heisenbridge registrations)...");
    let regs = temp_dir("peers-registrations");
    let hb_one = Registration::write(regs.path(), "heisenbridge", "irc");
    let hb_many = Registration::write(regs.path(), "heisenbridgemany", "ircmany");
    let synapse =
        SynapseServer::start_with_appservices(&[hb_one.file.clone(), hb_many.file.clone()]).await;
    let irc = IrcServer::start(IrcClass::Unlimited).await;
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
    let mut bob = Syncer::new(bob);
    bob.sync(Duration::ZERO).await;
    let carol = IrcClient::connect(&irc, "carol").await;
    let dave = IrcClient::connect(&irc, "dave").await;
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
        raw: "bridge,rate,from,seq,own_network_ms,bridged_ms\n".to_owned(),
    };

    let hb = run_heisenbridge(&mut world, &o, &hb_one, &hb_many).await;
    let sb = run_sigbot(&mut world, &o).await;

    if let Some(out) = &o.out {
        std::fs::create_dir_all(out).expect("create --out");
        write_file(&out.join("latencies.csv"), &world.raw);
    }
    print!("{}", table(&o, &hb, &sb));
}

fn find(m: &Measured, rate: f64, irc: bool) -> Option<&Phase> {
    m.phases
        .iter()
        .find(|p| p.rate == rate && p.from_irc == irc)
}

/// The one table: every row with Heisenbridge's figure, sigbot's, and who is ahead by how much.
fn table(o: &Options, hb: &Measured, sb: &Measured) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\npeer benchmark: {} lines per phase; sigbot IRC rate {}/s burst {}; IRC class Unlimited\n",
        o.messages, o.bot_rate, o.bot_burst
    );
    let _ = writeln!(
        t,
        "| rate | path | figure | servers alone (during Heisenbridge / sigbot) | Heisenbridge | sigbot | sigbot ahead |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|");
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    // For times: smaller is better; for rates: larger.
    let ahead = |peer: Option<f64>, ours: Option<f64>, smaller_better: bool| match (peer, ours) {
        (Some(p), Some(s)) if smaller_better && s > 0.0 => {
            let r = p / s;
            format!("{} ×{r:.2}", if r > 1.0 { "yes" } else { "NO" })
        }
        (Some(p), Some(s)) if !smaller_better && p > 0.0 => {
            let r = s / p;
            format!("{} ×{r:.2}", if r >= 1.0 { "yes" } else { "NO" })
        }
        (None, Some(_)) => "yes (peer lost it)".to_owned(),
        (_, None) => "NO (lost)".to_owned(),
        _ => "n/a".to_owned(),
    };
    for &rate in &o.rates {
        for irc in [true, false] {
            let (Some(h), Some(s)) = (find(hb, rate, irc), find(sb, rate, irc)) else {
                continue;
            };
            let path = if irc {
                "IRC → Matrix"
            } else {
                "Matrix → IRC"
            };
            let own = if irc {
                "IRC → IRC"
            } else {
                "Matrix → Matrix"
            };
            let rows: [(&str, String, String, String, String); 4] = [
                (
                    "p50 ms",
                    format!("{own} {} / {}", ms(h.own.p50), ms(s.own.p50)),
                    ms(h.bridged.p50),
                    ms(s.bridged.p50),
                    ahead(secs(h.bridged.p50), secs(s.bridged.p50), true),
                ),
                (
                    "p99 ms",
                    format!("{own} {} / {}", ms(h.own.p99), ms(s.own.p99)),
                    ms(h.bridged.p99),
                    ms(s.bridged.p99),
                    ahead(secs(h.bridged.p99), secs(s.bridged.p99), true),
                ),
                (
                    "delivered lines/s",
                    format!("{own} {:.1} / {:.1}", h.own.throughput, s.own.throughput),
                    format!("{:.1}", h.bridged.throughput),
                    format!("{:.1}", s.bridged.throughput),
                    ahead(
                        Some(h.bridged.throughput),
                        Some(s.bridged.throughput),
                        false,
                    ),
                ),
                (
                    "delivered in time",
                    format!("{own} {} / {}", h.own.received, s.own.received),
                    format!("{}/{}", h.bridged.received, o.messages),
                    format!("{}/{}", s.bridged.received, o.messages),
                    ahead(
                        Some(h.bridged.received as f64),
                        Some(s.bridged.received as f64),
                        false,
                    ),
                ),
            ];
            for (figure, servers, hv, sv, a) in rows {
                let _ = writeln!(
                    t,
                    "| {rate}/s | {path} | {figure} | {servers} | {hv} | {sv} | {a} |"
                );
            }
        }
    }
    let mib = |k: u64| k as f64 / 1024.0;
    let many = format!("{} rooms, 1 line each way each", o.bridges);
    for (what, h, s) in [
        ("idle, 1 room", hb.idle_one, sb.idle_one),
        (many.as_str(), hb.many, sb.many),
    ] {
        let _ = writeln!(
            t,
            "| | memory {what} | VmRSS MiB (anon + file; peak) | | {:.1} ({:.1} + {:.1}; {:.1}) | {:.1} ({:.1} + {:.1}; {:.1}) | {} |",
            mib(h.rss),
            mib(h.anon),
            mib(h.file),
            mib(h.peak),
            mib(s.rss),
            mib(s.anon),
            mib(s.file),
            mib(s.peak),
            ahead(Some(mib(h.rss)), Some(mib(s.rss)), true)
        );
    }
    if let Some((peer, ours, runs, lines)) = o.minutes {
        let _ = writeln!(
            t,
            "| | minutes of a {lines}-line meeting (MeetBot peer: hcoop-meetbot) | s, median of {runs} | | {peer:.3} | {ours:.3} | {} |",
            ahead(Some(peer), Some(ours), true)
        );
    }
    let _ = writeln!(
        t,
        "| | start to every network connected | s | | n/a (connects when told) | {} | |",
        sb.startup
            .map_or_else(|| "n/a".to_owned(), |d| format!("{:.2}", d.as_secs_f64()))
    );
    t
}
