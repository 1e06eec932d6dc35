//! Reading `commands/*.toml` (DESIGN §6) into a validated [`CommandSet`].
//!
//! Two stages, like the config: serde reads the `Raw*` structs of `raw.rs`
//! (`deny_unknown_fields`, with spans), then `CommandCheck` builds the [`CommandSpec`],
//! compiling patterns and templates so that a bad file is refused at load with
//! `file:line:col: key: message`, never at run time.
//!
//! `${ENV}` is allowed only in request fields (URL, headers, query, body, Koji hub and
//! parameters, repodata URL). It becomes a placeholder that only the executor fills in, so a
//! secret never reaches a template, a reply, a log line or the audit log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use toml::Spanned;

use super::locate::{ARG_NAME, COMMAND_DURATIONS, COMMAND_NAME, Locator};
use super::raw::{RawArg, RawCommand, RawHttp, RawKoji, RawReply, RawRepodata};
use super::{ConfigError, env};
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
    let raw: RawCommand = toml::from_str(text).map_err(|e| loc.toml_error(&e))?;
    CommandCheck::new(loc, env).check(raw)
}

/// Checks one command file, one method per part of the definition, collecting the
/// `${NAME}` references of its request fields on the way.
struct CommandCheck<'a> {
    loc: Locator<'a>,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Referenced and set: handed to the executor with the spec.
    found: BTreeMap<String, Secret>,
    /// Referenced but unset: the command is disabled, not the whole set.
    missing: BTreeSet<String>,
}

impl<'a> CommandCheck<'a> {
    fn new(loc: Locator<'a>, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        CommandCheck {
            loc,
            env,
            found: BTreeMap::new(),
            missing: BTreeSet::new(),
        }
    }

    /// The parts in the order a command file is usually written.
    fn check(mut self, raw: RawCommand) -> Result<Parsed, ConfigError> {
        let (name, aliases, names) = self.names(&raw.name, &raw.aliases)?;
        let args = self.args(&raw.args)?;
        let usage = self.usage(raw.usage.as_ref(), &name, &args)?;
        let role = self.role(raw.role.as_ref())?;
        let action = self.action(&raw)?;
        let reply = self.reply(raw.reply.get_ref(), &name)?;
        let summary = raw.summary.get_ref().trim().to_owned();
        if summary.is_empty() {
            return Err(self.loc.span_key(&raw.summary, "summary", "is empty"));
        }
        if !self.missing.is_empty() {
            let vars: Vec<String> = self.missing.into_iter().collect();
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
            cooldown: self.duration(&raw.cooldown, "cooldown", Duration::ZERO)?,
            action,
            reply,
            secrets: self.found.into_iter().collect(),
        };
        Ok(Parsed::Ready(Box::new(spec), names))
    }

    /// The name and aliases, checked, and each with its offset for clashes between files.
    fn names(
        &self,
        name: &Spanned<String>,
        aliases: &[Spanned<String>],
    ) -> Result<(String, Vec<String>, NameOffsets), ConfigError> {
        let first = self.command_name(name, "name")?;
        let mut names = vec![(first.clone(), name.span().start)];
        let mut seen = BTreeSet::from([first.clone()]);
        let mut checked = Vec::new();
        for a in aliases {
            let n = self.command_name(a, "aliases")?;
            if !seen.insert(n.clone()) {
                return Err(self
                    .loc
                    .span_key(a, "aliases", format!("{n:?} is listed twice")));
            }
            names.push((n.clone(), a.span().start));
            checked.push(n);
        }
        Ok((first, checked, names))
    }

    fn command_name(&self, n: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
        let v = self.loc.name(n, &COMMAND_NAME, &format!("{key}: "))?;
        if Builtin::lookup(&v).is_some() {
            return Err(self
                .loc
                .span_key(n, key, format!("{v:?} is a built-in command")));
        }
        Ok(v)
    }

    fn args(&self, raw: &[RawArg]) -> Result<Vec<ArgSpec>, ConfigError> {
        let loc = &self.loc;
        let mut args = Vec::new();
        let mut arg_names = BTreeSet::new();
        for (i, a) in raw.iter().enumerate() {
            let key = format!("args[{i}]");
            let n = loc.name(&a.name, &ARG_NAME, &format!("{key}.name: "))?;
            if !arg_names.insert(n.clone()) {
                return Err(loc.span_key(
                    &a.name,
                    &format!("{key}.name"),
                    format!("{n:?} is declared twice"),
                ));
            }
            if a.rest && i + 1 != raw.len() {
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
                name: n,
                pattern,
                rest: a.rest,
            });
        }
        Ok(args)
    }

    /// The usage line as written, or one made of the name and the arguments.
    fn usage(
        &self,
        raw: Option<&Spanned<String>>,
        name: &str,
        args: &[ArgSpec],
    ) -> Result<String, ConfigError> {
        match raw {
            Some(u) => {
                if !u.get_ref().starts_with(name) {
                    return Err(self.loc.span_key(
                        u,
                        "usage",
                        format!("should start with the command name {name:?}"),
                    ));
                }
                Ok(u.get_ref().clone())
            }
            None => Ok(std::iter::once(name.to_owned())
                .chain(args.iter().map(|a| format!("<{}>", a.name)))
                .collect::<Vec<_>>()
                .join(" ")),
        }
    }

    fn role(&self, raw: Option<&Spanned<String>>) -> Result<Option<String>, ConfigError> {
        match raw {
            Some(r) if r.get_ref().trim().is_empty() => {
                Err(self.loc.span_key(r, "role", "is empty"))
            }
            r => Ok(r.map(|r| r.get_ref().clone())),
        }
    }

    /// Exactly one of the action tables.
    fn action(&mut self, raw: &RawCommand) -> Result<ActionSpec, ConfigError> {
        let given: Vec<usize> = [
            raw.http.as_ref().map(|s| s.span().start),
            raw.koji.as_ref().map(|s| s.span().start),
            raw.repodata.as_ref().map(|s| s.span().start),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() != 1 {
            let at = given.get(1).copied().unwrap_or(raw.name.span().start);
            return Err(self.loc.at(
                at,
                "action: a command has exactly one action table: [http], [koji] or [repodata]",
            ));
        }
        match (&raw.http, &raw.koji, &raw.repodata) {
            (Some(h), _, _) => self.http(h.get_ref()).map(ActionSpec::Http),
            (_, Some(k), _) => self.koji(k.get_ref()).map(ActionSpec::Koji),
            (_, _, Some(r)) => self.repodata(r.get_ref()).map(ActionSpec::Repodata),
            (None, None, None) => unreachable!("exactly one action was checked above"),
        }
    }

    fn http(&mut self, h: &RawHttp) -> Result<HttpSpec, ConfigError> {
        let loc = self.loc;
        check_url(&loc, &h.url, "http.url")?;
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
        let headers = self.pairs(&h.headers, "http.headers")?;
        let query = self.pairs(&h.query, "http.query")?;
        let body = self.body(h)?;
        let mut expect = Vec::new();
        for e in &h.expect {
            if !(100..600).contains(e.get_ref()) {
                return Err(loc.span_key(e, "http.expect", "is not an HTTP status"));
            }
            expect.push(*e.get_ref());
        }
        Ok(HttpSpec {
            method,
            url: self.template(&h.url, "http.url")?,
            headers,
            query,
            body,
            timeout: self.duration(&h.timeout, "http.timeout", DEFAULT_TIMEOUT)?,
            expect,
        })
    }

    /// At most one of `json`, `form` and `body`.
    fn body(&mut self, h: &RawHttp) -> Result<BodySpec, ConfigError> {
        let bodies = [h.json.is_some(), h.form.is_some(), h.body.is_some()];
        if bodies.iter().filter(|b| **b).count() > 1 {
            return Err(self
                .loc
                .span_key(&h.url, "http", "give one of json, form or body"));
        }
        Ok(if let Some(j) = &h.json {
            BodySpec::Json(self.value(j, "http.json")?)
        } else if let Some(f) = &h.form {
            BodySpec::Form(self.pairs(f, "http.form")?)
        } else if let Some(b) = &h.body {
            BodySpec::Text(self.template(b, "http.body")?)
        } else {
            BodySpec::None
        })
    }

    fn koji(&mut self, k: &RawKoji) -> Result<KojiSpec, ConfigError> {
        check_url(&self.loc, &k.hub, "koji.hub")?;
        if !KOJI_METHODS.contains(&k.method.get_ref().as_str()) {
            return Err(self.loc.span_key(
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
            .map(|(i, p)| self.value(p, &format!("koji.params[{i}]")))
            .collect::<Result<_, _>>()?;
        let kwargs = k
            .kwargs
            .iter()
            .map(|(n, v)| Ok((n.clone(), self.value(v, &format!("koji.kwargs.{n}"))?)))
            .collect::<Result<_, ConfigError>>()?;
        Ok(KojiSpec {
            hub: self.template(&k.hub, "koji.hub")?,
            method: k.method.get_ref().clone(),
            params,
            kwargs,
            timeout: self.duration(&k.timeout, "koji.timeout", DEFAULT_TIMEOUT)?,
        })
    }

    fn repodata(&mut self, r: &RawRepodata) -> Result<RepodataSpec, ConfigError> {
        check_url(&self.loc, &r.url, "repodata.url")?;
        Ok(RepodataSpec {
            url: self.template(&r.url, "repodata.url")?,
            package: self.template(&r.package, "repodata.package")?,
            timeout: self.duration(&r.timeout, "repodata.timeout", Duration::from_secs(60))?,
        })
    }

    /// The replies, which may not hold secrets; the missing ones take their defaults.
    fn reply(&self, raw: &RawReply, name: &str) -> Result<ReplySpec, ConfigError> {
        let loc = &self.loc;
        Ok(ReplySpec {
            success: plain_template(loc, &raw.success, "reply.success")?,
            not_found: match &raw.not_found {
                Some(t) => plain_template(loc, t, "reply.not_found")?,
                None => format!("{name}: nothing found"),
            },
            error: match &raw.error {
                Some(t) => plain_template(loc, t, "reply.error")?,
                None => format!("{name} failed: {{{{ error }}}}"),
            },
        })
    }

    fn duration(
        &self,
        s: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        self.loc.duration(s, key, default, COMMAND_DURATIONS)
    }

    /// Rewrites `${NAME}` references as placeholders, noting each as found or missing.
    fn take(&mut self, s: &str) -> Result<String, String> {
        let (env, found, missing) = (self.env, &mut self.found, &mut self.missing);
        env::placeholders(s, SECRET_OPEN, SECRET_CLOSE, |name| match env(name) {
            Some(value) => {
                found.insert(name.to_owned(), Secret::new(value));
            }
            None => {
                missing.insert(name.to_owned());
            }
        })
    }

    /// A request template: secrets taken, syntax checked.
    fn template(&mut self, s: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
        let t = self
            .take(s.get_ref())
            .map_err(|m| self.loc.span_key(s, key, m))?;
        check_template(&self.loc, s, key, &t)?;
        Ok(t)
    }

    /// Request templates by name (headers, query, form), in name order.
    fn pairs(
        &mut self,
        map: &BTreeMap<String, Spanned<String>>,
        key: &str,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        map.iter()
            .map(|(k, v)| Ok((k.clone(), self.template(v, &format!("{key}.{k}"))?)))
            .collect()
    }

    /// A JSON or XML-RPC value whose strings are request templates.
    fn value(
        &mut self,
        v: &Spanned<toml::Value>,
        key: &str,
    ) -> Result<serde_json::Value, ConfigError> {
        self.value_inner(v.get_ref())
            .map_err(|m| self.loc.span_key(v, key, m))
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

/// A command's name and aliases, each with its offset in the file.
type NameOffsets = Vec<(String, usize)>;

/// A file that checked out, or one whose secrets are not in the environment.
enum Parsed {
    /// The command, and its names and aliases with their offsets, so that the caller can
    /// report clashes between files.
    Ready(Box<CommandSpec>, NameOffsets),
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
