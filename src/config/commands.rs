//! Reading `commands/*.toml` (DESIGN §6) into a validated [`CommandSet`].
//!
//! Two stages, like the config: serde reads the `Raw*` structs (`deny_unknown_fields`, with
//! spans), then [`check`] builds the [`CommandSpec`], compiling patterns and templates so that
//! a bad file is refused at load with `file:line:col: key: message`, never at run time.
//!
//! `${ENV}` is allowed only in request fields (URL, headers, query, body, Koji hub and
//! parameters, repodata URL). It becomes a placeholder that only the executor fills in, so a
//! secret never reaches a template, a reply, a log line or the audit log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use toml::Spanned;

use super::raw::RawCommand;
use super::{ConfigError, Locator};
use crate::core::Builtin;
use crate::core::Secret;
use crate::core::commands::declarative::{
    ActionSpec, ArgSpec, BodySpec, CommandSet, CommandSpec, HttpSpec, KojiSpec, ReplySpec,
    RepodataSpec, SECRET_CLOSE, SECRET_OPEN, template_env,
};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const KOJI_METHODS: [&str; 3] = ["getLatestBuilds", "listTagged", "getBuild"];

/// Reads every `*.toml` in `dir`, in name order. A missing directory is an empty set.
pub fn load_dir(dir: &Path) -> Result<CommandSet, ConfigError> {
    load_dir_with_env(dir, &|name| std::env::var(name).ok())
}

pub fn load_dir_with_env(
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CommandSet, ConfigError> {
    let io_err = |path: &Path, e: std::io::Error| ConfigError {
        file: path.to_owned(),
        line: 0,
        col: 0,
        message: format!("cannot read: {e}"),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(dir = %dir.display(), "commands directory does not exist; no declarative commands");
            return Ok(CommandSet::default());
        }
        Err(e) => return Err(io_err(dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut specs = Vec::new();
    let mut taken: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut disabled = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
        let loc = Locator {
            text: &text,
            path: &path,
        };
        let (spec, names) = match parse_command(&text, &path, env)? {
            Parsed::Ready(spec, names) => (*spec, names),
            Parsed::Disabled { name, why } => {
                tracing::warn!(file = %path.display(), command = %name, reason = %why, "command disabled");
                disabled.push(format!("{name} ({}: {why})", path.display()));
                continue;
            }
        };
        for (n, offset) in names {
            if let Some(other) = taken.insert(n.clone(), path.clone()) {
                return Err(loc.at(
                    offset,
                    format!("name: {n:?} is already defined in {}", other.display()),
                ));
            }
        }
        specs.push(spec);
    }
    let mut set = CommandSet::new(specs).map_err(|m| ConfigError {
        file: dir.to_owned(),
        line: 0,
        col: 0,
        message: m,
    })?;
    set.set_disabled(disabled);
    Ok(set)
}

/// Parses one command from text (tests, and tools that check a single file). A secret that
/// is not in `env` is an error here.
pub fn parse_str(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CommandSpec, ConfigError> {
    match parse_command(text, path, env)? {
        Parsed::Ready(spec, _) => Ok(*spec),
        Parsed::Disabled { why, .. } => Err(ConfigError {
            file: path.to_owned(),
            line: 0,
            col: 0,
            message: why,
        }),
    }
}

/// Parses one command file.
fn parse_command(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, ConfigError> {
    let loc = Locator { text, path };
    let raw: RawCommand = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        loc.at(offset, e.message().trim().replace('\n', " "))
    })?;
    check(raw, &loc, env)
}

fn check_name(loc: &Locator<'_>, n: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
    let v = n.get_ref();
    let ok = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(loc.span_key(
            n,
            key,
            format!("{v:?}: use lower-case letters, digits, '-' or '_'"),
        ));
    }
    if Builtin::lookup(v).is_some() {
        return Err(loc.span_key(n, key, format!("{v:?} is a built-in command")));
    }
    Ok(v.clone())
}

fn duration(
    loc: &Locator<'_>,
    s: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match s {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s.get_ref().trim()).map_err(|e| {
            loc.span_key(
                s,
                key,
                format!("bad duration {:?} ({e}); write e.g. \"10s\"", s.get_ref()),
            )
        }),
    }
}

/// Collects `${NAME}` references as secrets, turning them into placeholders.
struct Secrets<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    found: BTreeMap<String, Secret>,
    /// Referenced but unset: the command is disabled, not the whole set.
    missing: BTreeSet<String>,
}

impl Secrets<'_> {
    fn take(&mut self, s: &str) -> Result<String, String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(tail) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("${") {
                let end = tail.find('}').ok_or("unclosed ${")?;
                let name = &tail[..end];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("bad environment variable name {name:?}"));
                }
                match (self.env)(name) {
                    Some(value) => {
                        self.found.insert(name.to_owned(), Secret::new(value));
                    }
                    None => {
                        self.missing.insert(name.to_owned());
                    }
                }
                out.push(SECRET_OPEN);
                out.push_str(name);
                out.push(SECRET_CLOSE);
                rest = &tail[end + 1..];
            } else {
                out.push('$');
                rest = &after[1..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A request template: secrets taken, syntax checked.
    fn template(
        &mut self,
        loc: &Locator<'_>,
        s: &Spanned<String>,
        key: &str,
    ) -> Result<String, ConfigError> {
        let t = self
            .take(s.get_ref())
            .map_err(|m| loc.span_key(s, key, m))?;
        check_template(loc, s, key, &t)?;
        Ok(t)
    }

    fn value(
        &mut self,
        loc: &Locator<'_>,
        v: &Spanned<toml::Value>,
        key: &str,
    ) -> Result<serde_json::Value, ConfigError> {
        self.value_inner(v.get_ref())
            .map_err(|m| loc.span_key(v, key, m))
    }

    fn value_inner(&mut self, v: &toml::Value) -> Result<serde_json::Value, String> {
        Ok(match v {
            toml::Value::String(s) => {
                let t = self.take(s)?;
                template_env()
                    .template_from_str(&t)
                    .map_err(|e| format!("template: {e}"))?;
                serde_json::Value::String(t)
            }
            toml::Value::Integer(i) => (*i).into(),
            toml::Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .ok_or("not a finite number")?,
            toml::Value::Boolean(b) => (*b).into(),
            toml::Value::Datetime(d) => d.to_string().into(),
            toml::Value::Array(a) => serde_json::Value::Array(
                a.iter()
                    .map(|x| self.value_inner(x))
                    .collect::<Result<_, _>>()?,
            ),
            toml::Value::Table(t) => serde_json::Value::Object(
                t.iter()
                    .map(|(k, x)| Ok((k.clone(), self.value_inner(x)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }
}

fn check_template(
    loc: &Locator<'_>,
    s: &Spanned<String>,
    key: &str,
    source: &str,
) -> Result<(), ConfigError> {
    template_env()
        .template_from_str(source)
        .map(drop)
        .map_err(|e| loc.span_key(s, key, format!("template: {e}")))
}

/// A template that must not hold secrets (replies, usage...).
fn plain_template(
    loc: &Locator<'_>,
    s: &Spanned<String>,
    key: &str,
) -> Result<String, ConfigError> {
    if s.get_ref().contains("${") {
        return Err(loc.span_key(
            s,
            key,
            "${ENV} is only allowed in request fields (url, headers, query, body, hub, params), so that secrets stay out of replies",
        ));
    }
    check_template(loc, s, key, s.get_ref())?;
    Ok(s.get_ref().clone())
}

fn check_url(loc: &Locator<'_>, s: &Spanned<String>, key: &str) -> Result<(), ConfigError> {
    let v = s.get_ref().trim_start();
    if v.starts_with("http://") || v.starts_with("https://") || v.starts_with("{{") {
        Ok(())
    } else {
        Err(loc.span_key(s, key, "must be an http:// or https:// URL"))
    }
}

fn check(
    raw: RawCommand,
    loc: &Locator<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, ConfigError> {
    let name = check_name(loc, &raw.name, "name")?;
    let mut names = vec![(name.clone(), raw.name.span().start)];
    let mut seen = BTreeSet::from([name.clone()]);
    let mut aliases = Vec::new();
    for a in &raw.aliases {
        let n = check_name(loc, a, "aliases")?;
        if !seen.insert(n.clone()) {
            return Err(loc.span_key(a, "aliases", format!("{n:?} is listed twice")));
        }
        names.push((n.clone(), a.span().start));
        aliases.push(n);
    }

    let mut args = Vec::new();
    let mut arg_names = BTreeSet::new();
    for (i, a) in raw.args.iter().enumerate() {
        let key = format!("args[{i}]");
        let n = a.name.get_ref();
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(loc.span_key(
                &a.name,
                &format!("{key}.name"),
                format!("{n:?}: use letters, digits or '_'"),
            ));
        }
        if !arg_names.insert(n.clone()) {
            return Err(loc.span_key(
                &a.name,
                &format!("{key}.name"),
                format!("{n:?} is declared twice"),
            ));
        }
        if a.rest && i + 1 != raw.args.len() {
            return Err(loc.span_key(
                &a.name,
                &format!("{key}.rest"),
                "only the last argument may take the rest of the line",
            ));
        }
        let pattern = Regex::new(&format!("^(?:{})$", a.pattern.get_ref())).map_err(|e| {
            loc.span_key(
                &a.pattern,
                &format!("{key}.pattern"),
                format!(
                    "bad regular expression: {}",
                    e.to_string().replace('\n', " ")
                ),
            )
        })?;
        args.push(ArgSpec {
            name: n.clone(),
            pattern,
            rest: a.rest,
        });
    }

    let usage = match &raw.usage {
        Some(u) => {
            if !u.get_ref().starts_with(&name) {
                return Err(loc.span_key(
                    u,
                    "usage",
                    format!("should start with the command name {name:?}"),
                ));
            }
            u.get_ref().clone()
        }
        None => std::iter::once(name.clone())
            .chain(args.iter().map(|a| format!("<{}>", a.name)))
            .collect::<Vec<_>>()
            .join(" "),
    };

    let role = raw.role.as_ref().map(|r| r.get_ref().clone());
    if let Some(r) = &raw.role
        && r.get_ref().trim().is_empty()
    {
        return Err(loc.span_key(r, "role", "is empty"));
    }

    let mut secrets = Secrets {
        env,
        found: BTreeMap::new(),
        missing: BTreeSet::new(),
    };
    let actions = [
        raw.http.as_ref().map(|s| s.span().start),
        raw.koji.as_ref().map(|s| s.span().start),
        raw.repodata.as_ref().map(|s| s.span().start),
    ];
    let given: Vec<usize> = actions.iter().flatten().copied().collect();
    if given.len() != 1 {
        let at = given.get(1).copied().unwrap_or(raw.name.span().start);
        return Err(loc.at(
            at,
            "action: a command has exactly one action table: [http], [koji] or [repodata]",
        ));
    }
    let action = if let Some(h) = &raw.http {
        let h = h.get_ref();
        check_url(loc, &h.url, "http.url")?;
        let method = match &h.method {
            None => "GET".to_owned(),
            Some(m) => {
                let v = m.get_ref().to_ascii_uppercase();
                if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].contains(&v.as_str()) {
                    return Err(loc.span_key(
                        m,
                        "http.method",
                        format!("{:?} is not an HTTP method sigbot sends", m.get_ref()),
                    ));
                }
                v
            }
        };
        let mut pairs = |map: &BTreeMap<String, Spanned<String>>, key: &str| {
            map.iter()
                .map(|(k, v)| Ok((k.clone(), secrets.template(loc, v, &format!("{key}.{k}"))?)))
                .collect::<Result<Vec<_>, ConfigError>>()
        };
        let headers = pairs(&h.headers, "http.headers")?;
        let query = pairs(&h.query, "http.query")?;
        let bodies = [h.json.is_some(), h.form.is_some(), h.body.is_some()];
        if bodies.iter().filter(|b| **b).count() > 1 {
            return Err(loc.span_key(&h.url, "http", "give one of json, form or body"));
        }
        let body = if let Some(j) = &h.json {
            BodySpec::Json(secrets.value(loc, j, "http.json")?)
        } else if let Some(f) = &h.form {
            BodySpec::Form(pairs(f, "http.form")?)
        } else if let Some(b) = &h.body {
            BodySpec::Text(secrets.template(loc, b, "http.body")?)
        } else {
            BodySpec::None
        };
        let mut expect = Vec::new();
        for e in &h.expect {
            if !(100..600).contains(e.get_ref()) {
                return Err(loc.span_key(e, "http.expect", "is not an HTTP status"));
            }
            expect.push(*e.get_ref());
        }
        ActionSpec::Http(HttpSpec {
            method,
            url: secrets.template(loc, &h.url, "http.url")?,
            headers,
            query,
            body,
            timeout: duration(loc, &h.timeout, "http.timeout", DEFAULT_TIMEOUT)?,
            expect,
        })
    } else if let Some(k) = &raw.koji {
        let k = k.get_ref();
        check_url(loc, &k.hub, "koji.hub")?;
        if !KOJI_METHODS.contains(&k.method.get_ref().as_str()) {
            return Err(loc.span_key(
                &k.method,
                "koji.method",
                format!(
                    "{:?}: use one of {}",
                    k.method.get_ref(),
                    KOJI_METHODS.join(", ")
                ),
            ));
        }
        let params = k
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| secrets.value(loc, p, &format!("koji.params[{i}]")))
            .collect::<Result<_, _>>()?;
        let kwargs = k
            .kwargs
            .iter()
            .map(|(n, v)| {
                Ok((
                    n.clone(),
                    secrets.value(loc, v, &format!("koji.kwargs.{n}"))?,
                ))
            })
            .collect::<Result<_, ConfigError>>()?;
        ActionSpec::Koji(KojiSpec {
            hub: secrets.template(loc, &k.hub, "koji.hub")?,
            method: k.method.get_ref().clone(),
            params,
            kwargs,
            timeout: duration(loc, &k.timeout, "koji.timeout", DEFAULT_TIMEOUT)?,
        })
    } else if let Some(r) = &raw.repodata {
        let r = r.get_ref();
        check_url(loc, &r.url, "repodata.url")?;
        ActionSpec::Repodata(RepodataSpec {
            url: secrets.template(loc, &r.url, "repodata.url")?,
            package: secrets.template(loc, &r.package, "repodata.package")?,
            timeout: duration(loc, &r.timeout, "repodata.timeout", Duration::from_secs(60))?,
        })
    } else {
        unreachable!("exactly one action was checked above")
    };

    let reply = raw.reply.get_ref();
    let reply = ReplySpec {
        success: plain_template(loc, &reply.success, "reply.success")?,
        not_found: match &reply.not_found {
            Some(t) => plain_template(loc, t, "reply.not_found")?,
            None => format!("{name}: nothing found"),
        },
        error: match &reply.error {
            Some(t) => plain_template(loc, t, "reply.error")?,
            None => format!("{name} failed: {{{{ error }}}}"),
        },
    };
    let summary = raw.summary.get_ref().trim().to_owned();
    if summary.is_empty() {
        return Err(loc.span_key(&raw.summary, "summary", "is empty"));
    }

    if !secrets.missing.is_empty() {
        let vars: Vec<String> = secrets.missing.into_iter().collect();
        return Ok(Parsed::Disabled {
            name,
            why: format!("environment variable {} is not set", vars.join(", ")),
        });
    }
    let spec = CommandSpec {
        name,
        aliases,
        summary,
        usage,
        args,
        role,
        confirm: raw.confirm,
        cooldown: duration(loc, &raw.cooldown, "cooldown", Duration::ZERO)?,
        action,
        reply,
        secrets: secrets.found.into_iter().collect(),
    };
    Ok(Parsed::Ready(Box::new(spec), names))
}

/// A file that checked out, or one whose secrets are not in the environment.
enum Parsed {
    /// The command, and its names and aliases with their offsets, so that the caller can
    /// report clashes between files.
    Ready(Box<CommandSpec>, Vec<(String, usize)>),
    Disabled {
        name: String,
        why: String,
    },
}

/// For `check-config`: one line per command.
pub fn summary(set: &CommandSet) -> String {
    let mut s = String::new();
    for d in set.disabled() {
        s.push_str(&format!("command disabled: {d}\n"));
    }
    for c in set.iter() {
        let mut flags = Vec::new();
        if let Some(r) = &c.role {
            flags.push(format!("role {r}"));
        }
        if c.confirm {
            flags.push("confirm".to_owned());
        }
        s.push_str(&format!(
            "command {}: {}{}\n",
            c.name,
            c.action.kind(),
            if flags.is_empty() {
                String::new()
            } else {
                format!(" ({})", flags.join(", "))
            }
        ));
    }
    s
}

#[cfg(test)]
mod run_tests;
#[cfg(test)]
mod tests;
