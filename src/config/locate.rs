//! Where a problem is: byte offsets and spans as `file:line:col`, and the small checks
//! (names, durations) that both the config and the command files make.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::ConfigError;

/// Turns byte offsets into `file:line:col` errors (for the config and the command files).
pub(crate) struct Locator<'a> {
    pub(crate) text: &'a str,
    pub(crate) path: &'a Path,
}

impl Locator<'_> {
    pub(crate) fn at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..offset].chars().count() + 1;
        ConfigError {
            file: self.path.to_owned(),
            line,
            col,
            message: message.into(),
        }
    }

    pub(crate) fn span<T>(&self, s: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.at(s.span().start, message)
    }

    /// An error at `s` that names the key it is about: `key: message`.
    pub(crate) fn span_key<T>(
        &self,
        s: &Spanned<T>,
        key: &str,
        message: impl std::fmt::Display,
    ) -> ConfigError {
        self.at(s.span().start, format!("{key}: {message}"))
    }

    pub(crate) fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let offset = e.span().map_or(0, |s| s.start);
        self.at(offset, e.message().trim().replace('\n', " "))
    }
}

pub(super) fn parse_duration(
    loc: &Locator<'_>,
    s: &Spanned<String>,
    key: &str,
) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s.get_ref().trim()).map_err(|e| {
        loc.span(
            s,
            format!(
                "{key}: bad duration {:?} ({e}); write e.g. \"10s\", \"5m\"",
                s.get_ref()
            ),
        )
    })
}

pub(super) fn opt_duration(
    loc: &Locator<'_>,
    s: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match s {
        Some(s) => parse_duration(loc, s, key),
        None => Ok(default),
    }
}

pub(super) fn check_name(
    loc: &Locator<'_>,
    name: &Spanned<String>,
    what: &str,
) -> Result<String, ConfigError> {
    let n = name.get_ref();
    if n.is_empty()
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(loc.span(
            name,
            format!("{what} name {n:?}: use letters, digits, '-', '_' or '.'"),
        ));
    }
    Ok(n.clone())
}
