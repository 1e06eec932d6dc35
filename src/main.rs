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
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
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

/// Logs go to stderr (stdout belongs to the console network); `RUST_LOG` filters them.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rumqttd=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
