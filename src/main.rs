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
    CheckConfig,
    /// Print the version.
    Version,
    /// Print the audit log of guarded commands (role or confirmation).
    Audit {
        /// How far back to look, e.g. 24h, 7d, 30m.
        #[arg(long, default_value = "24h")]
        since: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Version => {
            println!("sigbot {}", sigbot::VERSION);
            ExitCode::SUCCESS
        }
        Command::CheckConfig => match Config::load(&cli.config) {
            Ok(cfg) => {
                print!("{}", cfg.summary());
                match sigbot::command_files::load_dir(&cfg.bot.commands_dir) {
                    Ok(set) => {
                        print!("{}", sigbot::command_files::summary(&set));
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Audit { since } => match audit(&cli.config, &since) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sigbot: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run => {
            init_tracing();
            let cfg = match Config::load(&cli.config) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            match run(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sigbot: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run(cfg: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(sigbot::app::run(cfg))?;
    Ok(())
}

/// `sigbot audit --since 24h`: one line per entry, oldest first.
fn audit(config: &std::path::Path, since: &str) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let back = humantime::parse_duration(since)
        .with_context(|| format!("--since {since:?}: write e.g. 24h, 7d, 30m"))?;
    let from =
        chrono::Utc::now() - chrono::TimeDelta::from_std(back).context("--since is too long")?;
    let store = sigbot::store::Store::open(&cfg.bot.data_dir)?;
    for e in store.audit_since(from)? {
        println!(
            "{} {} {} {} [{}] {}{}",
            e.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            e.principal,
            e.room,
            e.command,
            e.args,
            e.result,
            e.http_status
                .map(|s| format!(" (HTTP {s})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Logs go to stderr (stdout belongs to the console network); `RUST_LOG` filters them.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
