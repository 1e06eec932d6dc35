//! The bot's `sigbot.toml` for a test, built from typed pieces instead of pasted TOML text.
//!
//! [`BotConfig`] holds the whole document as a [`toml::Table`] and writes it out with the
//! `toml` serializer, so that quoting, paths and lists are always valid TOML and a test names
//! only what it is about:
//!
//! ```ignore
//! BotConfig::new()
//!     .console()
//!     .web(free_port())
//!     .irc(Section::irc("testnet", &server).set("channels", vec!["#sig"]))
//!     .bridge(Section::bridge("sig", &["testnet/#sig", "console/#local"]).set("max_lines", 2))
//!     .role("admin", &["console:tester"])
//!     .build()
//! ```
//!
//! A key or section the builder has no method for goes in as TOML text through
//! [`BotConfig::raw`] or [`Section::raw`]: the text is parsed and merged into the document
//! (arrays of tables and lists are extended, tables are merged key by key), so that it can
//! never produce a second `[roles]` header or a document the bot cannot parse. Configs whose
//! very text is under test (error locations in `check-config`) stay strings in their test.

use std::path::Path;

use toml::{Table, Value};

use super::LOCALHOST;
use super::irc::IrcServer;
use super::matrix::{MatrixUser, SynapseServer};

/// The nick the bot has in every config of [`BotConfig::new`].
pub const BOT_NICK: &str = "sigbot";

/// A whole `sigbot.toml`.
#[derive(Debug, Clone, Default)]
pub struct BotConfig {
    root: Table,
}

impl BotConfig {
    /// `[bot]` with `nick = "sigbot"` and `data_dir = "data"` (inside the bot's directory,
    /// which [`super::bot::Bot::start`] makes the working directory), and nothing else.
    pub fn new() -> Self {
        Self::empty().bot("nick", BOT_NICK).bot("data_dir", "data")
    }

    /// Not even `[bot]`: for a test that relies on the defaults of every key.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Sets `key` in `[bot]`.
    pub fn bot(mut self, key: &str, value: impl Into<Value>) -> Self {
        table_mut(&mut self.root, "bot").insert(key.to_owned(), value.into());
        self
    }

    /// `[bot] data_dir` as an absolute path.
    pub fn data_dir(self, dir: &Path) -> Self {
        self.bot("data_dir", path(dir))
    }

    /// `[bot] commands_dir`.
    pub fn commands_dir(self, dir: &Path) -> Self {
        self.bot("commands_dir", path(dir))
    }

    /// `[console]` with its defaults: network `console`, room `#local`.
    pub fn console(mut self) -> Self {
        table_mut(&mut self.root, "console");
        self
    }

    /// `[web]` listening on `port` of the loopback address.
    pub fn web(self, port: u16) -> Self {
        self.table(
            "web",
            Section::new().set("listen", format!("{LOCALHOST}:{port}")),
        )
    }

    /// Adds `members` (`network:user`) to role `role` in `[roles]`.
    pub fn role(mut self, role: &str, members: &[&str]) -> Self {
        let roles = table_mut(&mut self.root, "roles");
        let list = roles
            .entry(role.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(list) = list else {
            panic!("[roles] {role} is not a list");
        };
        list.extend(members.iter().map(|m| Value::from(*m)));
        self
    }

    /// `[meetings]` in `rooms` (`network/room`).
    pub fn meetings(self, rooms: &[&str]) -> Self {
        self.table("meetings", Section::new().set("rooms", rooms.to_vec()))
    }

    /// One `[[irc]]` network.
    pub fn irc(self, network: Section) -> Self {
        self.push("irc", network)
    }

    /// One `[[matrix]]` network.
    pub fn matrix(self, network: Section) -> Self {
        self.push("matrix", network)
    }

    /// One `[[mqtt]]` connection.
    pub fn mqtt(self, connection: Section) -> Self {
        self.push("mqtt", connection)
    }

    /// One `[[bridge]]`.
    pub fn bridge(self, bridge: Section) -> Self {
        self.push("bridge", bridge)
    }

    /// One `[[relay]]` route.
    pub fn relay(self, route: Section) -> Self {
        self.push("relay", route)
    }

    /// One `[[watch]]`.
    pub fn watch(self, watch: Section) -> Self {
        self.push("watch", watch)
    }

    /// Appends `entry` to the array of tables `[[kind]]`.
    pub fn push(mut self, kind: &str, entry: Section) -> Self {
        let array = self
            .root
            .entry(kind.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(array) = array else {
            panic!("{kind} is not an array of tables");
        };
        array.push(Value::Table(entry.0));
        self
    }

    /// Merges `section` into the table `[name]`.
    pub fn table(mut self, name: &str, section: Section) -> Self {
        merge(table_mut(&mut self.root, name), section.0);
        self
    }

    /// Merges TOML text into the document (see the module's documentation); panics with the
    /// text if it does not parse.
    pub fn raw(mut self, toml: &str) -> Self {
        merge(&mut self.root, parse(toml));
        self
    }

    /// The document as TOML text.
    pub fn build(&self) -> String {
        toml::to_string(&self.root).expect("a toml::Table always serializes")
    }

    /// The document as a table, for tests that compare configs.
    pub fn table_ref(&self) -> &Table {
        &self.root
    }
}

impl std::fmt::Display for BotConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.build())
    }
}

/// One table of the config: a network, a bridge, a route, or any other section.
#[derive(Debug, Clone, Default)]
pub struct Section(Table);

impl Section {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// `name = <name>`, the key every array-of-tables entry starts with.
    pub fn named(name: &str) -> Self {
        Self::new().set("name", name)
    }

    /// An IRC network on `server`'s plain-text port, with the bot's nick.
    pub fn irc(name: &str, server: &IrcServer) -> Self {
        Self::named(name)
            .set("server", format!("{LOCALHOST}:{}", server.port()))
            .set("tls", false)
            .set("nick", BOT_NICK)
    }

    /// An IRC network on `server`'s TLS port; no CA file, nick or login, which the test adds.
    pub fn irc_tls(name: &str, server: &IrcServer) -> Self {
        Self::named(name)
            .set("server", format!("{LOCALHOST}:{}", server.tls_port()))
            .set("tls", true)
    }

    /// A Matrix network on `synapse`, logged in as `user` with its password.
    pub fn matrix(name: &str, synapse: &SynapseServer, user: &MatrixUser) -> Self {
        Self::named(name)
            .set("homeserver", synapse.url())
            .set("user", user.user_id.as_str())
            .set("password", user.password.as_str())
    }

    /// An MQTT connection to `url`.
    pub fn mqtt(name: &str, url: impl Into<String>) -> Self {
        Self::named(name).set("url", url.into())
    }

    /// A bridge between `rooms` (`network/room`).
    pub fn bridge(name: &str, rooms: &[&str]) -> Self {
        Self::named(name).set("rooms", rooms.to_vec())
    }

    /// A relay route from MQTT connection `from`, topic filter `topic`, through `template`,
    /// to `to` (`network/room`).
    pub fn relay(name: &str, from: &str, topic: &str, template: &str, to: &[&str]) -> Self {
        Self::named(name)
            .set("from", from)
            .set("topic", topic)
            .set("template", template)
            .set("to", to.to_vec())
    }

    /// Sets `key` (a nested [`Section`] converts into a table).
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// Drops `key`, for the one test that wants a network without it.
    pub fn remove(mut self, key: &str) -> Self {
        self.0.remove(key);
        self
    }

    /// Merges TOML text (keys of this table, e.g. `sasl = { user = "a", password = "b" }`).
    pub fn raw(mut self, toml: &str) -> Self {
        merge(&mut self.0, parse(toml));
        self
    }
}

impl From<Section> for Value {
    fn from(section: Section) -> Value {
        Value::Table(section.0)
    }
}

/// A path as a TOML string.
fn path(path: &Path) -> String {
    path.to_str()
        .unwrap_or_else(|| panic!("not UTF-8: {}", path.display()))
        .to_owned()
}

fn parse(toml: &str) -> Table {
    toml.parse()
        .unwrap_or_else(|e| panic!("bad TOML in a test config: {e}\n{toml}"))
}

/// The table `[name]` of `root`, created empty if absent.
fn table_mut<'a>(root: &'a mut Table, name: &str) -> &'a mut Table {
    match root
        .entry(name.to_owned())
        .or_insert_with(|| Value::Table(Table::new()))
    {
        Value::Table(table) => table,
        other => panic!("[{name}] is not a table: {other}"),
    }
}

/// Puts `extra` into `into`: lists and arrays of tables are extended, tables merged key by
/// key, anything else replaced.
fn merge(into: &mut Table, extra: Table) {
    for (key, value) in extra {
        match (into.get_mut(&key), value) {
            (Some(Value::Array(old)), Value::Array(new)) => old.extend(new),
            (Some(Value::Table(old)), Value::Table(new)) => merge(old, new),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Table {
        text.parse().unwrap()
    }

    #[test]
    fn a_console_bot_is_the_document_it_names() {
        let built = BotConfig::new()
            .console()
            .web(4242)
            .role("admin", &["console:tester"])
            .build();
        assert_eq!(
            parsed(&built),
            parsed(
                r#"
[bot]
nick = "sigbot"
data_dir = "data"
[console]
[web]
listen = "127.0.0.1:4242"
[roles]
admin = ["console:tester"]
"#
            ),
            "{built}"
        );
        assert!(built.contains("[console]"), "{built}");
    }

    #[test]
    fn raw_text_merges_into_the_sections_it_names() {
        let built = BotConfig::new()
            .role("admin", &["console:a"])
            .raw("[roles]\nadmin = [\"console:b\"]\nreleng = [\"console:c\"]\n")
            .relay(Section::relay(
                "r",
                "forge",
                "a/#",
                "{{ msg.x }}\nline 2",
                &["console/#local"],
            ))
            .raw("[[relay]]\nname = \"s\"\n")
            .mqtt(
                Section::mqtt("forge", "mqtt://127.0.0.1:1")
                    .raw("ca_file = \"/ca.pem\"\nsasl = { mechanism = \"EXTERNAL\" }"),
            )
            .build();
        assert_eq!(
            parsed(&built),
            parsed(
                r#"
[bot]
nick = "sigbot"
data_dir = "data"
[roles]
admin = ["console:a", "console:b"]
releng = ["console:c"]
[[relay]]
name = "r"
from = "forge"
topic = "a/#"
template = """{{ msg.x }}
line 2"""
to = ["console/#local"]
[[relay]]
name = "s"
[[mqtt]]
name = "forge"
url = "mqtt://127.0.0.1:1"
ca_file = "/ca.pem"
sasl = { mechanism = "EXTERNAL" }
"#
            ),
            "{built}"
        );
    }

    #[test]
    fn nested_sections_and_paths_are_toml_values() {
        let built = BotConfig::empty()
            .data_dir(Path::new("/tmp/a \"quoted\" dir"))
            .watch(Section::named("hs").set(
                "ours",
                Section::new().set("repodata", "http://127.0.0.1:1/ours/"),
            ))
            .build();
        let table = parsed(&built);
        assert_eq!(
            table["bot"]["data_dir"].as_str(),
            Some("/tmp/a \"quoted\" dir")
        );
        assert_eq!(
            table["watch"][0]["ours"]["repodata"].as_str(),
            Some("http://127.0.0.1:1/ours/")
        );
        assert!(!table.contains_key("console"));
    }
}
