//! Where a problem is: byte offsets and spans as `file:line:col`, and the small checks
//! (names, durations) that both the config and the command files make.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::ConfigError;

/// Turns byte offsets into `file:line:col` errors (for the config and the command files).
#[derive(Clone, Copy)]
pub(super) struct Locator<'a> {
    pub(super) text: &'a str,
    pub(super) path: &'a Path,
}

/// The characters a kind of name may use, and how an error message says so.
pub(super) struct NameRule {
    allowed: fn(char) -> bool,
    described: &'static str,
}

/// Networks, bridges and watches.
pub(super) const SECTION_NAME: NameRule = NameRule {
    allowed: |c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.',
    described: "letters, digits, '-', '_' or '.'",
};

/// Declarative commands and their aliases: what people type after the prefix.
pub(super) const COMMAND_NAME: NameRule = NameRule {
    allowed: |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_',
    described: "lower-case letters, digits, '-' or '_'",
};

/// Arguments of declarative commands, which templates name as `args.<name>`.
pub(super) const ARG_NAME: NameRule = NameRule {
    allowed: word_char,
    described: "letters, digits or '_'",
};

/// How the config's duration errors show the expected form.
pub(super) const CONFIG_DURATIONS: &str = "\"10s\", \"5m\"";
/// How the command files' duration errors show the expected form.
pub(super) const COMMAND_DURATIONS: &str = "\"10s\"";

impl Locator<'_> {
    pub(super) fn at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
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

    pub(super) fn span<T>(&self, s: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.at(s.span().start, message)
    }

    /// An error at `s` that names the key it is about: `key: message`.
    pub(super) fn span_key<T>(
        &self,
        s: &Spanned<T>,
        key: &str,
        message: impl std::fmt::Display,
    ) -> ConfigError {
        self.at(s.span().start, format!("{key}: {message}"))
    }

    pub(super) fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let offset = e.span().map_or(0, |s| s.start);
        self.at(offset, e.message().trim().replace('\n', " "))
    }

    /// A name that follows `rule`; the error reads `{what}"the name": use ...`.
    pub(super) fn name(
        &self,
        s: &Spanned<String>,
        rule: &NameRule,
        what: &str,
    ) -> Result<String, ConfigError> {
        let n = s.get_ref();
        if n.is_empty() || !n.chars().all(rule.allowed) {
            return Err(self.span(s, format!("{what}{n:?}: use {}", rule.described)));
        }
        Ok(n.clone())
    }

    /// A duration such as `"90s"` or `"5m"`, or `default` when the key is absent; `examples`
    /// is how the error shows the expected form.
    pub(super) fn duration(
        &self,
        s: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
        examples: &str,
    ) -> Result<Duration, ConfigError> {
        let Some(s) = s else { return Ok(default) };
        humantime::parse_duration(s.get_ref().trim()).map_err(|e| {
            self.span_key(
                s,
                key,
                format!(
                    "bad duration {:?} ({e}); write e.g. {examples}",
                    s.get_ref()
                ),
            )
        })
    }
}

/// ASCII letters, digits and `_`: what argument and environment variable names are made of.
pub(super) fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}
