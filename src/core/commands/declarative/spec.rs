//! The validated command definitions that `commands/*.toml` describe.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use crate::core::secret::Secret;

/// One positional argument: its name (for templates) and the pattern the whole word must match.
#[derive(Debug, Clone)]
pub struct ArgSpec {
    pub name: String,
    /// Anchored: matches the whole argument.
    pub pattern: Regex,
    /// Takes the rest of the line (only the last argument may).
    pub rest: bool,
}

/// A request body; strings inside are templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySpec {
    None,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct HttpSpec {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: BodySpec,
    pub timeout: Duration,
    /// Statuses that mean success; empty: any 2xx.
    pub expect: Vec<u16>,
}

#[derive(Debug, Clone)]
pub struct KojiSpec {
    pub hub: String,
    pub method: String,
    /// Positional parameters; strings are templates.
    pub params: Vec<serde_json::Value>,
    /// Keyword parameters (Koji's `__starstar` struct); strings are templates.
    pub kwargs: Vec<(String, serde_json::Value)>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct RepodataSpec {
    pub url: String,
    pub package: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum ActionSpec {
    Http(HttpSpec),
    Koji(KojiSpec),
    Repodata(RepodataSpec),
}

impl ActionSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ActionSpec::Http(_) => "http",
            ActionSpec::Koji(_) => "koji",
            ActionSpec::Repodata(_) => "repodata",
        }
    }

    pub(super) fn timeout(&self) -> Duration {
        match self {
            ActionSpec::Http(h) => h.timeout,
            ActionSpec::Koji(k) => k.timeout,
            ActionSpec::Repodata(r) => r.timeout,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReplySpec {
    pub success: String,
    pub not_found: String,
    pub error: String,
}

/// One validated declarative command.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub name: String,
    pub aliases: Vec<String>,
    pub summary: String,
    pub usage: String,
    pub args: Vec<ArgSpec>,
    pub role: Option<String>,
    pub confirm: bool,
    pub cooldown: Duration,
    pub action: ActionSpec,
    pub reply: ReplySpec,
    /// The secrets the request fields refer to, by environment variable name.
    pub secrets: Vec<(String, Secret)>,
}

impl CommandSpec {
    /// Invocations of guarded commands go to the audit log.
    pub fn audited(&self) -> bool {
        self.role.is_some() || self.confirm
    }
}

/// The loaded set of commands, looked up by name or alias.
#[derive(Debug, Default)]
pub struct CommandSet {
    commands: Vec<Arc<CommandSpec>>,
    by_name: BTreeMap<String, usize>,
    /// Commands left out, with the reason (a secret not in the environment).
    disabled: Vec<String>,
}

impl CommandSet {
    /// Builds a set; names and aliases must be unique (the loader reports clashes first).
    pub fn new(commands: Vec<CommandSpec>) -> Result<Self, String> {
        let mut set = CommandSet::default();
        for c in commands {
            let i = set.commands.len();
            for n in std::iter::once(&c.name).chain(&c.aliases) {
                if set.by_name.insert(n.clone(), i).is_some() {
                    return Err(format!("two commands are named {n:?}"));
                }
            }
            set.commands.push(Arc::new(c));
        }
        Ok(set)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<CommandSpec>> {
        self.by_name.get(name).map(|&i| &self.commands[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &CommandSpec> {
        self.commands.iter().map(|c| c.as_ref())
    }

    pub fn set_disabled(&mut self, disabled: Vec<String>) {
        self.disabled = disabled;
    }

    pub fn disabled(&self) -> &[String] {
        &self.disabled
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

/// A command set on its way into the core (compared by identity: sets are not comparable).
#[derive(Clone)]
pub struct CommandSetHandle(pub Arc<CommandSet>);

impl PartialEq for CommandSetHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for CommandSetHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandSet({} commands)", self.0.len())
    }
}
