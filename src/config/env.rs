//! `${ENV}` references: the one scanner, used to expand config strings and to turn the
//! references of command files into placeholders.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigError;
use super::locate::Locator;

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

/// Expands `${NAME}` references; `$${` stands for a literal `${`.
pub fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {:?}", redact_hint(s)))?;
            let name = &tail[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad environment variable name {name:?}"));
            }
            let value =
                env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn redact_hint(s: &str) -> String {
    // The string may hold a secret around the reference: show only its shape.
    s.chars().take(12).collect::<String>() + "…"
}
