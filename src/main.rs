use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sigbot::config::Config;

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
        Command::Meetings { command } => match meetings(&cli.config, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sigbot: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run => {
            let log_filter = init_tracing();
            let cfg = match Config::load(&cli.config) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
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

/// Logs go to stderr (stdout belongs to the console network); `RUST_LOG` filters them.
fn init_tracing() -> LogFilter {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::prelude::*;
    // The Matrix SDK warns on every message that it has no key backup, which the bot never
    // sets up: at a few messages a second that was a third of the log.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rumqttd=warn,matrix_sdk_crypto::backups=error"));
    let (filter, log_filter) = LogFilter::reloadable(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    log_filter
}

/// The log filter in force, replaceable while the bot runs (SIGHUP, DESIGN §5 "Reload").
struct LogFilter(
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
);

impl LogFilter {
    fn reloadable(
        filter: tracing_subscriber::EnvFilter,
    ) -> (
        tracing_subscriber::reload::Layer<
            tracing_subscriber::EnvFilter,
            tracing_subscriber::Registry,
        >,
        LogFilter,
    ) {
        let (layer, handle) = tracing_subscriber::reload::Layer::new(filter);
        (layer, LogFilter(handle))
    }

    /// After a reload: the config has no log level of its own yet (the filter comes from
    /// `RUST_LOG` at start), so the filter in force stays. This is where a `[log] level`
    /// key is applied, with [`LogFilter::set`].
    fn on_reload(&self, _cfg: &Config) {}

    /// Replaces the filter with `directives` (`RUST_LOG` syntax); a bad one is logged and
    /// the filter in force stays.
    #[allow(dead_code)]
    fn set(&self, directives: &str) {
        match tracing_subscriber::EnvFilter::try_new(directives) {
            Ok(filter) => match self.0.reload(filter) {
                Ok(()) => tracing::info!(filter = directives, "log filter changed"),
                Err(e) => tracing::error!(error = %e, "log filter not changed"),
            },
            Err(e) => {
                tracing::error!(filter = directives, error = %e, "bad log filter; the one in force stays")
            }
        }
    }
}
