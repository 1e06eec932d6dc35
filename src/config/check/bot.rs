//! `[bot]`: the bot's nick, command prefix and directories.

use std::path::PathBuf;

use super::Checker;
use crate::config::raw::RawBot;
use crate::config::{BotConfig, ConfigError};

impl Checker<'_> {
    pub(super) fn bot(&self, raw: &RawBot) -> Result<BotConfig, ConfigError> {
        if let Some(n) = &raw.nick
            && (n.get_ref().is_empty()
                || n.get_ref()
                    .contains(|c: char| c.is_whitespace() || c.is_control()))
        {
            return Err(self.loc.span(n, "bot.nick must be one word"));
        }
        if let Some(p) = &raw.prefix
            && (p.get_ref().is_empty() || p.get_ref().contains(char::is_whitespace))
        {
            return Err(self
                .loc
                .span(p, "bot.prefix must be non-empty and without spaces"));
        }
        Ok(BotConfig {
            nick: raw
                .nick
                .as_ref()
                .map_or_else(|| "sigbot".to_owned(), |n| n.get_ref().clone()),
            prefix: raw
                .prefix
                .as_ref()
                .map_or_else(|| "!".to_owned(), |p| p.get_ref().clone()),
            data_dir: PathBuf::from(raw.data_dir.as_deref().unwrap_or("data")),
            commands_dir: PathBuf::from(raw.commands_dir.as_deref().unwrap_or("commands")),
        })
    }
}
