use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand};
use sigbot::config::{Config, LogConfig, LogFormat, LogLevel};

/// With the `mimalloc` feature, mimalloc replaces glibc's malloc (DESIGN §9).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sigbot: IRC/Matrix bridge, meeting bot, MQTT relay and release commands in one.
#[derive(Debug, Parser)]
#[command(name = "sigbot", version, about)]
struct Cli {
    /// The config file.
    #[arg(
        long,
        global = true,
        env = "SIGBOT_CONFIG",
        default_value = "config/sigbot.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the bot (the default).
    Run,
    /// Validate the config and print a summary; exit 1 with file:line:col on error.
    CheckConfig {
        /// Then try each network, command host and watch host as the bot would: one line per
        /// check, `ok` or `FAILED: reason`; exit 1 if any failed.
        #[arg(long)]
        online: bool,
    },
    /// Print the version.
    Version,
    /// Print the audit log of guarded commands (role or confirmation).
    Audit {
        /// How far back to look, e.g. 24h, 7d, 30m.
        #[arg(long, default_value = "24h")]
        since: String,
    },
    /// Meeting archives: render minutes from a raw log, or index an archive for the web site.
    Meetings {
        #[command(subcommand)]
        command: MeetingsCommand,
    },
    /// Print the manual page, sigbot.1 (roff), to stdout.
    Man,
    /// Print the shell completion script for SHELL to stdout.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum MeetingsCommand {
    /// Write all six formats from a raw MeetBot-format log (`HH:MM:SS <nick> text`).
    Render {
        /// The raw log (`<name>.<YYYY-MM-DD-HH.MM>.log.txt`; the date is read from the name).
        log: PathBuf,
        /// The directory to write into.
        #[arg(long)]
        out: PathBuf,
        /// The room the meeting was held in (for the page title), e.g. "#fedora-meeting".
        #[arg(long)]
        room: Option<String>,
    },
    /// Index an existing MeetBot archive tree (its `*.log.txt` files) for browsing and search.
    Import {
        /// The archive's top directory (`<room>/<YYYY-MM-DD>/<name>.<stamp>.log.txt`).
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Version => {
            println!("sigbot {}", sigbot::VERSION);
            ExitCode::SUCCESS
        }
        Command::CheckConfig { online } => check_config(&cli.config, online),
        Command::Audit { since } => match audit(&cli.config, &since) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sigbot: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Man => print_or_fail(&manual()),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "sigbot", &mut script);
            print_or_fail(&script)
        }
        Command::Meetings { command } => match meetings(&cli.config, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sigbot: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run => {
            let cfg = match Config::load(&cli.config) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let log_filter = init_tracing(cfg.log);
            match run(cfg, log_filter) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sigbot: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Writes generated text to stdout; a closed pipe or a full disk is an error.
fn print_or_fail(bytes: &[u8]) -> ExitCode {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigbot: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `sigbot man`: the clap definitions as a manual page, with the sections clap knows nothing
/// of (the config file, the environment, signals, files) before the version.
fn manual() -> Vec<u8> {
    let man = clap_mangen::Man::new(Cli::command());
    let mut page = Vec::new();
    let written = man
        .render_title(&mut page)
        .and_then(|()| man.render_name_section(&mut page))
        .and_then(|()| man.render_synopsis_section(&mut page))
        .and_then(|()| man.render_description_section(&mut page))
        .and_then(|()| man.render_options_section(&mut page))
        .and_then(|()| manual_sections().to_writer(&mut page))
        .and_then(|()| man.render_version_section(&mut page));
    written.expect("writing to a Vec cannot fail");
    page
}

/// The manual's own sections: a short tour of the config file (the full list of keys is in
/// `example-full.toml`), then the environment, signals, files and where to read more.
fn manual_sections() -> roff::Roff {
    use roff::{Roff, bold, italic, roman};
    let mut r = Roff::new();
    // One page for the whole CLI: each subcommand with its arguments, not a page of its own.
    r.control("SH", ["COMMANDS"]);
    manual_commands(&mut r, &Cli::command(), "sigbot");
    r.control("SH", ["CONFIGURATION"]).text([
        roman("The config file is TOML (default "),
        italic("config/sigbot.toml"),
        roman(", or "),
        bold("--config"),
        roman(" or "),
        bold("$SIGBOT_CONFIG"),
        roman("). An unknown key is an error; every error names its file:line:col. Any string may embed "),
        bold("${VAR}"),
        roman(" from the environment; a secret is a string or "),
        bold("{ file = \"path\" }"),
        roman(" (under systemd, "),
        bold("{ file = \"${CREDENTIALS_DIRECTORY}/sigbot_name\" }"),
        roman("). Durations are written like \"10s\", \"5m\", \"3h\". The sections:"),
    ]);
    for (section, what) in CONFIG_SECTIONS {
        r.control("TP", [])
            .text([bold(*section)])
            .text([roman(*what)]);
    }
    r.control("PP", []).text([
        roman("Every key with its default and a comment is in the full example, "),
        italic("example-full.toml"),
        roman(" (in the source tree's "),
        italic("config/"),
        roman(" directory; packages install it with the documentation, e.g. "),
        italic("/usr/share/doc/sigbot/example-full.toml"),
        roman(")."),
    ]);
    r.control("SH", ["ENVIRONMENT"]);
    for (var, what) in ENVIRONMENT {
        r.control("TP", []).text([bold(*var)]).text([roman(*what)]);
    }
    r.control("SH", ["SIGNALS"]);
    for (signal, what) in SIGNALS {
        r.control("TP", [])
            .text([bold(*signal)])
            .text([roman(*what)]);
    }
    r.control("SH", ["FILES"]);
    for (file, what) in FILES {
        r.control("TP", [])
            .text([italic(*file)])
            .text([roman(*what)]);
    }
    r.control("SH", ["SEE ALSO"]).text([
        bold("systemd.service"),
        roman("(5), "),
        bold("systemd.exec"),
        roman("(5), "),
        bold("systemd-creds"),
        roman("(1); the product contract, "),
        italic("docs/DESIGN.md"),
        roman(", in the source tree."),
    ]);
    r
}

/// Each subcommand of `cmd` (nested ones with their full name), its synopsis, what it does
/// and its arguments.
fn manual_commands(r: &mut roff::Roff, cmd: &clap::Command, name: &str) {
    use roff::{bold, italic, roman};
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let full = format!("{name} {}", sub.get_name());
        if sub.has_subcommands() {
            manual_commands(r, sub, &full);
            continue;
        }
        let args: Vec<&clap::Arg> = sub.get_arguments().filter(|a| !a.is_global_set()).collect();
        let mut synopsis = vec![bold(full)];
        for a in args.iter().filter(|a| !a.is_hide_set()) {
            let value = a.get_id().as_str().to_uppercase();
            let Some(long) = a.get_long() else {
                synopsis.extend([roman(" "), italic(value)]);
                continue;
            };
            let optional = !a.is_required_set();
            synopsis.push(roman(if optional { " [" } else { " " }));
            synopsis.push(bold(format!("--{long}")));
            // A flag (`--online`) takes no value.
            if a.get_action().takes_values() {
                synopsis.extend([roman(" "), italic(value)]);
            }
            if optional {
                synopsis.push(roman("]"));
            }
        }
        r.control("TP", []).text(synopsis);
        if let Some(about) = sub.get_about() {
            r.text([roman(about.to_string())]);
        }
        for a in args.iter().filter(|a| !a.is_hide_set()) {
            let Some(help) = a.get_help() else { continue };
            let value = a.get_id().as_str().to_uppercase();
            let label = a
                .get_long()
                .map_or(italic(value.clone()), |l| bold(format!("--{l}")));
            let default = a
                .get_default_values()
                .first()
                .map(|d| format!(" (default: {})", d.to_string_lossy()))
                .unwrap_or_default();
            r.control("br", [])
                .text([roman("  "), label, roman(format!(": {help}{default}"))]);
        }
    }
}

/// The config file's sections, for the manual (DESIGN §5 has them in full).
const CONFIG_SECTIONS: &[(&str, &str)] = &[
    (
        "[bot]",
        "nick, command prefix, data_dir (the database, minutes, Matrix state; one running bot per data_dir) and commands_dir.",
    ),
    (
        "[log]",
        "format (\"text\" or \"json\", one JSON object a line) and level (error, warn, info, debug, trace); RUST_LOG, when set, wins over level.",
    ),
    (
        "[web]",
        "the web site: listen address, public_url for links posted in chat, paste_ttl, media_cache_mib, ready_grace (how long a network may be down before /readyz answers 503).",
    ),
    (
        "[metrics]",
        "Prometheus metrics at /metrics: enabled, and listen for a listener of their own (then not on the web site).",
    ),
    (
        "[store]",
        "retention of the audit log and of meeting journals, and max_db_size.",
    ),
    (
        "[console]",
        "standard input and output as one chat room, console/#local.",
    ),
    (
        "[[irc]]",
        "one IRC network each: server, tls, nick, SASL or CertFP, channels, flood control.",
    ),
    (
        "[[matrix]]",
        "one Matrix homeserver each: user, password or access_token, rooms, end-to-end encryption.",
    ),
    (
        "[[mqtt]]",
        "one MQTT broker connection each: url, client certificate, credentials.",
    ),
    (
        "[broker]",
        "the embedded MQTT broker: listen address, optional login.",
    ),
    (
        "[[bridge]]",
        "rooms on different networks whose messages are relayed to each other.",
    ),
    (
        "[[relay]]",
        "MQTT events rendered by a template into chat rooms: topic, when, template, to.",
    ),
    (
        "[[watch]]",
        "package-update alerts: packages compared between our repository and upstream.",
    ),
    (
        "[meetings]",
        "the rooms that run MeetBot meetings, and idle_timeout; [meetings.mail], the minutes by \
         mail; [[meetings.schedule]], meetings at set times with reminders and a calendar.",
    ),
    (
        "[roles]",
        "role = [principals], e.g. admin = [\"libera:alice\"], for guarded commands.",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "SIGBOT_CONFIG",
        "the config file when --config is not given.",
    ),
    (
        "RUST_LOG",
        "a log filter (e.g. \"info,sigbot=debug\"); when set and not empty it replaces [log] level.",
    ),
    (
        "NOTIFY_SOCKET, WATCHDOG_USEC",
        "set by systemd for Type=notify: the bot sends READY=1 once every network is started and the web site listens, STATUS= lines, WATCHDOG=1 from its core task's heartbeat, and STOPPING=1 when it stops.",
    ),
    (
        "CREDENTIALS_DIRECTORY",
        "set by systemd with LoadCredential=; use it in the config as ${CREDENTIALS_DIRECTORY}.",
    ),
];

const SIGNALS: &[(&str, &str)] = &[
    ("SIGTERM, SIGINT", "stop after the queued work is done."),
    (
        "SIGHUP",
        "read the config file and the command files again and check them: a bad one is logged with its location and the running config stays; networks whose settings did not change keep their connections, the others are started, stopped or restarted.",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "/etc/sigbot/sigbot.toml",
        "the config of sigbot.service; sigbot@NAME.service reads /etc/sigbot/NAME.toml.",
    ),
    (
        "/etc/sigbot/credentials/",
        "the secrets sigbot.service hands to the bot (LoadCredential=): the file NAME is \
         read as ${CREDENTIALS_DIRECTORY}/sigbot_NAME; sigbot@NAME.service reads \
         /etc/sigbot/credentials/NAME/.",
    ),
    (
        "/var/lib/sigbot/",
        "the working directory of sigbot.service, where a relative data_dir lands.",
    ),
];

/// `sigbot check-config`: the config's summary, then the command files'; errors go to stderr
/// as `file:line:col: message`, without the `sigbot:` prefix of the other subcommands.
fn check_config(config: &std::path::Path, online: bool) -> ExitCode {
    let result = Config::load(config).and_then(|cfg| {
        print!("{}", cfg.summary());
        sigbot::config::commands::load_dir(&cfg.bot.commands_dir).map(|set| (cfg, set))
    });
    match result {
        Ok((cfg, set)) => {
            print!("{}", sigbot::config::commands::summary(&set));
            if online {
                return check_online(&cfg, &set);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `sigbot check-config --online`: one line per check as it completes, in config order.
fn check_online(cfg: &Config, set: &sigbot::core::CommandSet) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sigbot: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let failed = rt.block_on(sigbot::app::online::check_online(cfg, set, |c| {
        println!("{c}")
    }));
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn meetings(config: &std::path::Path, command: MeetingsCommand) -> anyhow::Result<()> {
    use sigbot::app::{archive, cli};
    match command {
        MeetingsCommand::Render { log, out, room } => {
            let written = archive::render_log_file(&log, &out, room.as_deref())?;
            for p in written {
                println!("{}", p.display());
            }
        }
        MeetingsCommand::Import { dir } => {
            let n = cli::import_meetings(config, &dir)?;
            println!("indexed {n} meeting(s) from {}", dir.display());
        }
    }
    Ok(())
}

fn run(cfg: Config, log_filter: LogFilter) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let on_reload = Box::new(move |cfg: &Config| log_filter.on_reload(cfg));
    let stopped = rt.block_on(sigbot::app::run_with(cfg, on_reload));
    // Every task has finished. What may still run is the console's blocking read of stdin,
    // which would otherwise keep the process alive until the next line is typed.
    rt.shutdown_background();
    stopped?;
    Ok(())
}

/// `sigbot audit --since 24h`: one line per entry, oldest first.
fn audit(config: &std::path::Path, since: &str) -> anyhow::Result<()> {
    for line in sigbot::app::cli::audit_lines(config, since)? {
        println!("{line}");
    }
    Ok(())
}

/// Logs go to stderr (stdout belongs to the console network), as text or JSON lines (`[log]
/// format`). `RUST_LOG`, when set and not empty, is the filter; else `[log] level` is, with the
/// noise of a few dependencies kept down.
fn init_tracing(log: LogConfig) -> LogFilter {
    use tracing_subscriber::filter::FilterExt as _;
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{EnvFilter, filter, fmt};
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let from_env = rust_log.as_deref().map(EnvFilter::try_new);
    let bad_rust_log = matches!(from_env, Some(Err(_)));
    let (levels, own_filter) = match from_env {
        Some(Ok(f)) => (f, false),
        _ => (default_filter(log.level), true),
    };
    // rumqttd logs the end of every client connection of the embedded broker at ERROR, a
    // clean DISCONNECT included ("router-drop", and at times "no-connection id N is already
    // gone" as the router sees that end twice): what happens on one client's connection is
    // left out unless RUST_LOG asks for it. The broker's own failures (its listener, its
    // router) are logged outside those spans.
    const BROKER_CLIENT_SPANS: [&str; 2] = ["remote_link", "[>] incoming"];
    let broker_clients = filter::dynamic_filter_fn(move |meta, cx| {
        !(own_filter
            && meta.target().starts_with("rumqttd")
            && cx.lookup_current().is_some_and(|span| {
                span.scope()
                    .any(|s| BROKER_CLIENT_SPANS.contains(&s.name()))
            }))
    });
    let layer = match log.format {
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (levels, handle) = tracing_subscriber::reload::Layer::new(levels);
    tracing_subscriber::registry()
        .with(layer.with_filter(levels.and(broker_clients)))
        .init();
    if bad_rust_log {
        tracing::warn!(
            rust_log = rust_log.as_deref().unwrap_or_default(),
            level = log.level.as_str(),
            "RUST_LOG is not a log filter: [log] level is used"
        );
    }
    LogFilter {
        handle,
        level: std::sync::Mutex::new(own_filter.then_some(log.level)),
    }
}

/// The level filter in force, replaced on a reload (SIGHUP, DESIGN §5 "Reload") when
/// `[log] level` changed and `RUST_LOG` does not set the filter.
struct LogFilter {
    handle: tracing_subscriber::reload::Handle<
        tracing_subscriber::EnvFilter,
        tracing_subscriber::Registry,
    >,
    /// The `[log] level` in force; `None` while `RUST_LOG` is the filter.
    level: std::sync::Mutex<Option<LogLevel>>,
}

impl LogFilter {
    fn on_reload(&self, cfg: &Config) {
        let mut level = self.level.lock().unwrap_or_else(|p| p.into_inner());
        let Some(old) = *level else {
            return;
        };
        let new = cfg.log.level;
        if new == old {
            return;
        }
        match self.handle.reload(default_filter(new)) {
            Ok(()) => {
                *level = Some(new);
                tracing::info!(
                    from = old.as_str(),
                    to = new.as_str(),
                    "SIGHUP: log level changed"
                );
            }
            Err(e) => tracing::error!(error = %e, "SIGHUP: log level not changed"),
        }
    }
}

/// `[log] level` for sigbot and its dependencies, except two that say too much: the Matrix
/// SDK warns on every message that it has no key backup, which the bot never sets up (at a
/// few messages a second that was a third of the log), and rumqttd's INFO is per packet.
fn default_filter(level: LogLevel) -> tracing_subscriber::EnvFilter {
    let broker = level.min(LogLevel::Warn);
    tracing_subscriber::EnvFilter::new(format!(
        "{},rumqttd={},matrix_sdk_crypto::backups=error",
        level.as_str(),
        broker.as_str()
    ))
}
