//! `${ENV}` references: the one scanner, used to expand config strings and to turn the
//! references of command files into placeholders.
//!
//! `${NAME}` is a reference (NAME made of ASCII letters, digits and `_`), `$${` stands for a
//! literal `${`, and any other `$` is itself.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigError;
use super::locate::{Locator, word_char};

/// Why a string's references could not be rewritten.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ScanError {
    /// `${` without its `}`.
    Unclosed,
    /// `${...}` whose content is not a variable name.
    BadName(String),
    /// The caller refused the reference, with its message.
    Refused(String),
}

impl ScanError {
    /// The message for a bad name, the same wherever the reference was written.
    fn bad_name(name: &str) -> String {
        format!("bad environment variable name {name:?}")
    }
}

/// Copies `s`, letting `reference` write what stands in for each `${NAME}`.
pub(super) fn rewrite(
    s: &str,
    mut reference: impl FnMut(&str, &mut String) -> Result<(), String>,
) -> Result<String, ScanError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or(ScanError::Unclosed)?;
            let name = &tail[..end];
            if name.is_empty() || !name.chars().all(word_char) {
                return Err(ScanError::BadName(name.to_owned()));
            }
            reference(name, &mut out).map_err(ScanError::Refused)?;
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands `${NAME}` references with their values; an unset variable is an error.
pub fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    rewrite(s, |name, out| {
        let value = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        Ok(())
    })
    .map_err(|e| match e {
        ScanError::Unclosed => format!("unclosed ${{ in {:?}", redact_hint(s)),
        ScanError::BadName(name) => ScanError::bad_name(&name),
        ScanError::Refused(message) => message,
    })
}

/// Rewrites `${NAME}` references as `open NAME close` placeholders, telling `seen` each name.
/// The short "unclosed" message names no part of the string, which may hold a secret.
pub(super) fn placeholders(
    s: &str,
    open: char,
    close: char,
    mut seen: impl FnMut(&str),
) -> Result<String, String> {
    rewrite(s, |name, out| {
        seen(name);
        out.push(open);
        out.push_str(name);
        out.push(close);
        Ok(())
    })
    .map_err(|e| match e {
        ScanError::Unclosed => "unclosed ${".to_owned(),
        ScanError::BadName(name) => ScanError::bad_name(&name),
        ScanError::Refused(message) => message,
    })
}

fn redact_hint(s: &str) -> String {
    // The string may hold a secret around the reference: show only its shape.
    s.chars().take(12).collect::<String>() + "…"
}

/// Expands the references in every string of a parsed config, reporting a problem at the
/// string that has it.
pub(super) fn expand_env_table(
    table: &mut DeTable<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    loc: &Locator<'_>,
) -> Result<(), ConfigError> {
    for (_, value) in table.iter_mut() {
        expand_env_value(value, env, loc)?;
    }
    Ok(())
}

fn expand_env_value(
    value: &mut Spanned<DeValue<'_>>,
    env: &dyn Fn(&str) -> Option<String>,
    loc: &Locator<'_>,
) -> Result<(), ConfigError> {
    let start = value.span().start;
    match value.get_mut() {
        DeValue::String(s) if s.contains("${") => {
            let expanded = expand_env(s, env).map_err(|m| loc.at(start, m))?;
            *s = expanded.into();
        }
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                expand_env_value(item, env, loc)?;
            }
        }
        DeValue::Table(t) => expand_env_table(t, env, loc)?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_name_every_reference_once_each() {
        let mut names = Vec::new();
        let out = placeholders("a${X}b$${Y}c${Z}$", '<', '>', |n| names.push(n.to_owned()));
        assert_eq!(out.unwrap(), "a<X>b${Y}c<Z>$");
        assert_eq!(names, ["X", "Z"]);
    }

    #[test]
    fn both_uses_refuse_the_same_bad_references() {
        let env = |_: &str| Some("v".to_owned());
        for bad in ["${A-B}", "${}", "x ${A"] {
            assert!(expand_env(bad, &env).is_err(), "{bad}");
            assert!(placeholders(bad, '<', '>', |_| {}).is_err(), "{bad}");
        }
        assert_eq!(
            placeholders("${A", '<', '>', |_| {}).unwrap_err(),
            "unclosed ${"
        );
        assert_eq!(
            rewrite("${a b}", |_, _| Ok(())).unwrap_err(),
            ScanError::BadName("a b".to_owned())
        );
    }
}
