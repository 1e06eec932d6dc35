//! `[log]`: the log's format and level.

use super::Checker;
use crate::config::raw::RawLog;
use crate::config::{ConfigError, LogConfig, LogFormat, LogLevel};

impl Checker<'_> {
    pub(super) fn log(&self, raw: Option<&RawLog>) -> Result<LogConfig, ConfigError> {
        let Some(raw) = raw else {
            return Ok(LogConfig::default());
        };
        let format = match &raw.format {
            None => LogFormat::Text,
            Some(f) => match f.get_ref().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(self.loc.span(
                        f,
                        format!("log.format {other:?}: write \"text\" or \"json\""),
                    ));
                }
            },
        };
        let level = match &raw.level {
            None => LogLevel::default(),
            Some(l) => LogLevel::NAMES
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(l.get_ref()))
                .map(|(_, level)| *level)
                .ok_or_else(|| {
                    self.loc.span(
                        l,
                        format!(
                            "log.level {:?}: write one of error, warn, info, debug, trace \
                             (RUST_LOG takes a filter with targets)",
                            l.get_ref()
                        ),
                    )
                })?,
        };
        Ok(LogConfig { format, level })
    }
}
