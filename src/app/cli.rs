//! The CLI subcommands that read the store: what they look up and the lines they print.
//! `main.rs` parses the arguments, prints, and turns errors into the exit status.

use std::path::Path;

use chrono::{SecondsFormat, TimeDelta, Utc};

use super::archive::{self, ArchiveError};
use crate::config::{Config, ConfigError};
use crate::core::AuditEntry;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--since {since:?}: write e.g. 24h, 7d, 30m")]
    Since {
        since: String,
        source: humantime::DurationError,
    },
    #[error("--since is too long")]
    SinceTooLong(#[source] chrono::OutOfRangeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// `sigbot audit --since 24h`: one line per entry, oldest first.
pub fn audit_lines(config: &Path, since: &str) -> Result<Vec<String>, CliError> {
    let cfg = Config::load(config)?;
    let back = humantime::parse_duration(since).map_err(|source| CliError::Since {
        since: since.to_owned(),
        source,
    })?;
    let from = Utc::now() - TimeDelta::from_std(back).map_err(CliError::SinceTooLong)?;
    let store = Store::open(&cfg.bot.data_dir)?;
    Ok(store.audit_since(from)?.iter().map(audit_line).collect())
}

fn audit_line(e: &AuditEntry) -> String {
    format!(
        "{} {} {} {} [{}] {}{}",
        e.time.to_rfc3339_opts(SecondsFormat::Secs, true),
        e.principal,
        e.room,
        e.command,
        e.args,
        e.result,
        e.http_status
            .map(|s| format!(" (HTTP {s})"))
            .unwrap_or_default()
    )
}

/// `sigbot meetings import DIR`: indexes an archive tree in the configured store; how many
/// meetings it found.
pub fn import_meetings(config: &Path, dir: &Path) -> Result<usize, CliError> {
    let cfg = Config::load(config)?;
    let store = Store::open(&cfg.bot.data_dir)?;
    Ok(archive::import_archive(&store, dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_line_names_who_did_what_where_and_the_http_status() {
        let mut e = AuditEntry {
            time: "2026-01-02T03:04:05.678Z".parse().unwrap(),
            principal: "irc:alice".into(),
            room: "libera/#ops".into(),
            command: "rebuild".into(),
            args: "pkg".into(),
            result: "ok".into(),
            http_status: Some(201),
        };
        assert_eq!(
            audit_line(&e),
            "2026-01-02T03:04:05Z irc:alice libera/#ops rebuild [pkg] ok (HTTP 201)"
        );
        e.http_status = None;
        assert!(audit_line(&e).ends_with("[pkg] ok"));
    }

    #[test]
    fn the_config_is_read_first_and_a_bad_since_says_how_to_write_one() {
        let err = audit_lines(Path::new("/nonexistent/sigbot.toml"), "1h").unwrap_err();
        assert!(matches!(err, CliError::Config(_)), "{err}");
        let since = humantime::parse_duration("soon").unwrap_err();
        let err = CliError::Since {
            since: "soon".into(),
            source: since,
        };
        assert_eq!(err.to_string(), "--since \"soon\": write e.g. 24h, 7d, 30m");
    }
}
