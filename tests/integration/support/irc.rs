//! InspIRCd 3 with Anope 2 services, and a raw IRC client.
//!
//! The server offers the IRCv3 capabilities the bot relies on (`account-tag`, `extended-join`,
//! `account-notify`, `message-tags`, `server-time`, `echo-message`, `batch`, `multi-prefix`,
//! `cap-notify`, `chghost`, `sasl`...) and bot mode (`+B`). Anope's NickServ registers accounts
//! without e-mail confirmation, and SASL PLAIN logs in to them.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::config::BOT_NICK;
use super::{
    EXCHANGE_TIMEOUT, LOCALHOST, ProcessSpec, Recent, SERVER_START_TIMEOUT, ServerProcess,
    free_port, port_accepts, random_token, require_program, running_as_root, temp_dir, wait_until,
    write_file,
};

/// The IRC server's name, as in the prefix of its numerics.
pub const SERVER_NAME: &str = "irc.sigbot.test";
/// The services server's name (Anope).
pub const SERVICES_NAME: &str = "services.sigbot.test";
/// The network name in `RPL_ISUPPORT` (`NETWORK=`).
pub const NETWORK_NAME: &str = "SigbotTest";

const INSTALL_HINT: &str = "run scripts/test, which installs it (apt-get install inspircd anope)";

/// The connect class every client of an [`IrcServer`] gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrcClass {
    /// No flood control at all (no fakelag, no command rate limit, huge send and receive queues):
    /// for tests that push many lines quickly.
    Unlimited,
    /// Like a public network (Libera): no fakelag, but a client that sends more than
    /// [`IrcClass::PUBLIC_BURST`] commands at once, or more than [`IrcClass::PUBLIC_RATE`] a second for long,
    /// is disconnected with `ERROR :Closing link: ... [Excess Flood]`.
    PublicNetwork,
}

impl IrcClass {
    /// How many commands in a row a [`IrcClass::PublicNetwork`] client may send at once.
    pub const PUBLIC_BURST: u32 = 20;
    /// Commands a second a [`IrcClass::PublicNetwork`] client may keep sending after its burst.
    pub const PUBLIC_RATE: f64 = 10.0;

    /// The InspIRCd `<connect>` block of this class.
    fn connect_block(self) -> String {
        // threshold: penalty (one per command) past which the client is cut off, fakelag being
        // off; commandrate: penalty forgiven per second, in thousandths.
        let (threshold, commandrate, recvq, softsendq, hardsendq) = match self {
            Self::Unlimited => (
                1_000_000,
                1_000_000_000,
                10_485_760,
                10_485_760,
                104_857_600,
            ),
            Self::PublicNetwork => (
                Self::PUBLIC_BURST,
                (Self::PUBLIC_RATE * 1000.0) as u32,
                8_192,
                8_192,
                1_048_576,
            ),
        };
        format!(
            r#"<connect name="{self:?}" allow="*" maxchans="100" timeout="30" pingfreq="120"
         threshold="{threshold}" commandrate="{commandrate}" fakelag="no"
         recvq="{recvq}" softsendq="{softsendq}" hardsendq="{hardsendq}"
         localmax="1000" globalmax="1000" limit="100000" useident="no" resolvehostnames="no">"#
        )
    }
}

/// InspIRCd with Anope linked to it, on free loopback ports, in a temporary directory.
///
/// Dropping it kills both.
#[derive(Debug)]
pub struct IrcServer {
    class: IrcClass,
    port: u16,
    tls_port: u16,
    tls: super::mqtt::TlsFiles,
    link_port: u16,
    inspircd: ServerProcess,
    anope: ServerProcess,
    // Last: removed after the processes are killed.
    dir: tempfile::TempDir,
}

impl IrcServer {
    /// Starts InspIRCd and Anope and waits until clients can connect and log in with SASL.
    pub async fn start(class: IrcClass) -> Self {
        Self::start_with(class, true).await
    }

    /// Like [`IrcServer::start`], on a server that does not offer the `account-tag`
    /// capability: clients learn accounts only from extended-join, account-notify and WHOX.
    pub async fn start_without_account_tag(class: IrcClass) -> Self {
        Self::start_with(class, false).await
    }

    async fn start_with(class: IrcClass, account_tag: bool) -> Self {
        let inspircd_bin = require_program("inspircd", INSTALL_HINT);
        let anope_bin = require_program("anope", INSTALL_HINT);
        let dir = temp_dir("irc");
        let port = free_port();
        let tls_port = free_port();
        let link_port = free_port();
        let link_password = random_token(24);

        let root = dir.path();
        for sub in [
            "inspircd/data",
            "inspircd/logs",
            "anope/conf",
            "anope/db",
            "anope/logs",
        ] {
            std::fs::create_dir_all(root.join(sub)).expect("create server directories");
        }
        write_file(&root.join("motd.txt"), "sigbot integration test server\n");
        std::fs::create_dir_all(root.join("tls")).expect("create tls directory");
        let tls = super::mqtt::TlsFiles::generate(&root.join("tls"));
        write_file(
            &root.join("inspircd/inspircd.conf"),
            inspircd_config(root, class, port, tls_port, &tls, link_port, &link_password).replace(
                "<module name=\"ircv3_accounttag\">\n",
                if account_tag {
                    "<module name=\"ircv3_accounttag\">\n"
                } else {
                    ""
                },
            ),
        );
        write_file(
            &root.join("anope/conf/services.conf"),
            anope_config(root, link_port, &link_password),
        );
        if running_as_root() {
            // Anope runs as nobody (see ProcessSpec::drop_root): let it reach and own its files.
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))
                .expect("chmod the IRC temp dir");
            chown_nobody_recursively(&root.join("anope"));
        }

        let inspircd = ServerProcess::spawn(
            ProcessSpec::new("inspircd", inspircd_bin, root)
                .arg("--runasroot")
                .arg("--nofork")
                .arg("--config")
                .arg(root.join("inspircd/inspircd.conf")),
        );
        let anope_dir = root.join("anope");
        let mut anope_spec = ProcessSpec::new("anope", anope_bin, &anope_dir)
            .arg("--nofork")
            .arg(dir_arg("--confdir", &anope_dir.join("conf")))
            .arg(dir_arg("--dbdir", &anope_dir.join("db")))
            .arg(dir_arg("--logdir", &anope_dir.join("logs")))
            .arg("--modulesdir=/usr/lib/anope")
            .arg("--localedir=/usr/share/locale")
            .drop_root();
        anope_spec.log = root.join("anope.log");
        // Started once InspIRCd listens, so that its first link attempt succeeds.
        let anope = ServerProcess::new(anope_spec);

        let mut server = Self {
            class,
            port,
            tls_port,
            tls,
            link_port,
            inspircd,
            anope,
            dir,
        };
        server.wait_ready().await;
        server
    }

    /// The address clients connect to: always `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        LOCALHOST
    }

    /// The plaintext client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS client port (certificate from [`IrcServer::tls_files`]; client certificates are
    /// requested, so CertFP works).
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The CA, server and client certificates of the TLS listener.
    pub fn tls_files(&self) -> &super::mqtt::TlsFiles {
        &self.tls
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `irc.sigbot.test`, the source of server numerics.
    pub fn server_name(&self) -> &'static str {
        SERVER_NAME
    }

    /// `services.sigbot.test`, the server NickServ is on.
    pub fn services_name(&self) -> &'static str {
        SERVICES_NAME
    }

    /// `SigbotTest`.
    pub fn network_name(&self) -> &'static str {
        NETWORK_NAME
    }

    pub fn class(&self) -> IrcClass {
        self.class
    }

    /// The temporary directory with the configs and the logs (`inspircd.log`, `anope.log`,
    /// `inspircd/logs/ircd.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills InspIRCd with `SIGKILL`: every client is cut off and new connections are refused.
    /// Anope stays up, looking for its uplink, as real services would.
    pub fn stop(&mut self) {
        self.inspircd.kill();
    }

    /// Starts the network again on the same port (after [`IrcServer::stop`], or as a crash and
    /// restart if it is running), and waits until it is ready. Services are restarted too,
    /// keeping their accounts (Anope saves them when it exits on `SIGTERM`).
    pub async fn restart(&mut self) {
        self.inspircd.kill();
        self.anope.terminate(Duration::from_secs(10)).await;
        self.inspircd.start();
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let addr = self.addr();
        let inspircd = &mut self.inspircd;
        wait_until(
            "inspircd to accept connections",
            SERVER_START_TIMEOUT,
            || {
                inspircd.assert_running();
                async move { port_accepts(addr).await.then_some(()) }
            },
        )
        .await;

        let anope_log = self.dir.path().join("anope.log");
        let log_start = std::fs::metadata(&anope_log).map_or(0, |m| m.len() as usize);
        self.anope.start();
        let anope = &mut self.anope;
        let synced = format!("SERVER: {SERVICES_NAME} (sigbot test services) is done syncing");
        wait_until("anope to link to inspircd", SERVER_START_TIMEOUT, || {
            anope.assert_running();
            let log = std::fs::read(&anope_log).unwrap_or_default();
            let new = String::from_utf8_lossy(log.get(log_start..).unwrap_or_default());
            let linked = new.contains(&synced);
            async move { linked.then_some(()) }
        })
        .await;

        // Services sent their burst; make sure the IRC server has taken it in.
        let mut probe = IrcClient::connect(self, &format!("probe{}", random_token(6))).await;
        probe.send("ISON NickServ").await;
        let reply = probe
            .wait_for(EXCHANGE_TIMEOUT, |l| l.command == "303")
            .await;
        assert!(
            reply.text().eq_ignore_ascii_case("NickServ"),
            "NickServ is not online after anope linked: {}",
            reply.raw
        );
        probe.quit().await;
    }

    /// Registers the NickServ account `account` (also its nick) with `password`, as a user would
    /// with `/msg NickServ REGISTER`, and waits for NickServ to confirm it.
    pub async fn register_account(&self, account: &str, password: &str) {
        let mut client = IrcClient::connect(self, account).await;
        client
            .privmsg(
                "NickServ",
                &format!("REGISTER {password} {account}@example.org"),
            )
            .await;
        let notice = client
            .wait_for(EXCHANGE_TIMEOUT, |l| {
                l.command == "NOTICE" && l.nick() == Some("NickServ")
            })
            .await;
        assert_eq!(
            strip_formatting(notice.text()),
            format!("Nickname {account} registered."),
            "NickServ did not register {account}"
        );
        client.quit().await;
    }
}

fn dir_arg(flag: &str, dir: &Path) -> String {
    format!("{flag}={}", dir.display())
}

fn chown_nobody_recursively(path: &Path) {
    std::os::unix::fs::chown(path, Some(65534), Some(65534))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("list directory") {
            chown_nobody_recursively(&entry.expect("directory entry").path());
        }
    }
}

fn inspircd_config(
    root: &Path,
    class: IrcClass,
    port: u16,
    tls_port: u16,
    tls: &super::mqtt::TlsFiles,
    link_port: u16,
    link_password: &str,
) -> String {
    let (cert, key, ca) = (
        tls.server_cert.display(),
        tls.server_key.display(),
        tls.ca_cert.display(),
    );
    let root = root.display();
    let connect = class.connect_block();
    format!(
        r#"<server name="{SERVER_NAME}" description="sigbot test server" id="0SB" network="{NETWORK_NAME}">
<admin name="sigbot tests" nick="admin" email="admin@sigbot.test">
<path configdir="{root}/inspircd" datadir="{root}/inspircd/data" logdir="{root}/inspircd/logs"
      moduledir="/usr/lib/inspircd/modules">
<pid file="{root}/inspircd/data/inspircd.pid">
<bind address="{LOCALHOST}" port="{port}" type="clients">
<bind address="{LOCALHOST}" port="{link_port}" type="servers">
<bind address="{LOCALHOST}" port="{tls_port}" type="clients" sslprofile="tls">
<module name="ssl_gnutls">
<module name="sslinfo">
<sslprofile name="tls" provider="gnutls" certfile="{cert}" keyfile="{key}" cafile="{ca}"
            requestclientcert="yes" hash="sha256">
{connect}
<files motd="{root}/motd.txt">
<dns timeout="1">
<performance nouserdns="yes" clonesonconnect="no">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{root}/inspircd/logs/ircd.log">

<module name="cap">
<module name="ircv3">
<module name="ircv3_accounttag">
<module name="ircv3_batch">
<module name="ircv3_capnotify">
<module name="ircv3_chghost">
<module name="ircv3_ctctags">
<module name="ircv3_echomessage">
<module name="ircv3_msgid">
<module name="ircv3_servertime">
<module name="namesx">
<module name="uhnames">
<module name="botmode">
<module name="services_account">
<module name="sasl">
<sasl target="{SERVICES_NAME}" requiressl="no">

# Anope's link, and what its inspircd3 protocol module requires.
<module name="spanningtree">
<module name="hidechans">
<module name="svshold">
<module name="chghost">
<module name="chgident">
<link name="{SERVICES_NAME}" ipaddr="{LOCALHOST}" port="{link_port}" allowmask="127.0.0.0/8"
      sendpass="{link_password}" recvpass="{link_password}">
<uline server="{SERVICES_NAME}" silent="yes">
"#
    )
}

fn anope_config(root: &Path, link_port: u16, link_password: &str) -> String {
    let root = root.display();
    format!(
        r#"uplink
{{
	host = "{LOCALHOST}"
	ipv6 = no
	ssl = no
	port = {link_port}
	password = "{link_password}"
}}
serverinfo
{{
	name = "{SERVICES_NAME}"
	description = "sigbot test services"
	id = "0SA"
	pid = "{root}/anope/anope.pid"
	motd = "{root}/motd.txt"
}}
module
{{
	name = "inspircd3"
	use_server_side_mlock = yes
	use_server_side_topiclock = yes
}}
networkinfo
{{
	networkname = "{NETWORK_NAME}"
	nicklen = 30
	userlen = 10
	hostlen = 64
	chanlen = 64
	modelistsize = 100
	vhost_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-"
	allow_undotted_vhosts = false
	disallow_start_or_end = ".-"
}}
options
{{
	/* InspIRCd's own casemapping; anything else refuses to link. */
	casemap = "rfc1459"
	seed = {seed}
	strictpasswords = no
	badpasslimit = 1000
	badpasstimeout = 1s
	updatetimeout = 5m
	expiretimeout = 30m
	readtimeout = 5s
	warningtimeout = 4h
	timeoutcheck = 1s
	retrywait = 1s
	hideprivilegedcommands = yes
	hideregisteredcommands = yes
}}
mail {{ usemail = no }}
module
{{
	name = "db_flatfile"
	database = "anope.db"
	/* No backups: Anope quits at its first save if the backups directory is missing. */
	keepbackups = 0
	fork = no
}}
module {{ name = "enc_sha256" }}
module {{ name = "m_sasl" }}

service
{{
	nick = "NickServ"
	user = "services"
	host = "{SERVICES_NAME}"
	gecos = "Nickname Registration Service"
}}
module
{{
	name = "nickserv"
	client = "NickServ"
	forceemail = no
	confirmemailchanges = no
	defaults = "ns_secure ns_private hide_email hide_mask memo_signon memo_receive"
	regdelay = 0s
	expire = 0
	secureadmins = yes
	modeonid = yes
	hidenetsplitquit = no
	killquick = 20s
	kill = 60s
	enforceruser = "enforcer"
	enforcerhost = "{SERVICES_NAME}"
	releasetimeout = 1m
	guestnickprefix = "Guest"
	nonicknameownership = no
	passlen = 64
}}
command {{ service = "NickServ"; name = "HELP"; command = "generic/help"; }}
module {{ name = "ns_register"; registration = "none"; resenddelay = 0s }}
command {{ service = "NickServ"; name = "REGISTER"; command = "nickserv/register"; }}
module {{ name = "ns_identify"; maxlogins = 100 }}
command {{ service = "NickServ"; name = "IDENTIFY"; command = "nickserv/identify"; }}
module {{ name = "ns_logout" }}
command {{ service = "NickServ"; name = "LOGOUT"; command = "nickserv/logout"; }}
module {{ name = "ns_info" }}
command {{ service = "NickServ"; name = "INFO"; command = "nickserv/info"; }}
module {{ name = "ns_cert"; max = 5 }}
command {{ service = "NickServ"; name = "CERT"; command = "nickserv/cert"; }}
module {{ name = "ns_group"; maxaliases = 16; nogroupchange = yes }}
command {{ service = "NickServ"; name = "GROUP"; command = "nickserv/group"; }}

log
{{
	target = "services.log"
	admin = "*"
	override = "*"
	commands = "*"
	servers = "*"
	users = "connect disconnect nick"
	other = "*"
	rawio = no
	debug = no
}}
"#,
        seed = rand::random::<u32>(),
    )
}

/// One IRC protocol line, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrcLine {
    /// The line as received, without CR LF.
    pub raw: String,
    /// IRCv3 message tags, values unescaped.
    pub tags: Vec<(String, Option<String>)>,
    /// The source (`nick!user@host` or a server name), without the leading `:`.
    pub source: Option<String>,
    /// The command or numeric, upper-cased.
    pub command: String,
    /// The parameters, the trailing one included, without its `:`.
    pub params: Vec<String>,
}

impl IrcLine {
    /// Parses one line (without its CR LF). Never fails: junk gives an odd command.
    pub fn parse(raw: &str) -> Self {
        let mut rest = raw;
        let mut tags = Vec::new();
        if let Some(tagged) = rest.strip_prefix('@') {
            let (tag_text, after) = tagged.split_once(' ').unwrap_or((tagged, ""));
            for tag in tag_text.split(';').filter(|t| !t.is_empty()) {
                match tag.split_once('=') {
                    Some((key, value)) => tags.push((key.to_owned(), Some(unescape_tag(value)))),
                    None => tags.push((tag.to_owned(), None)),
                }
            }
            rest = after.trim_start_matches(' ');
        }
        let mut source = None;
        if let Some(sourced) = rest.strip_prefix(':') {
            let (src, after) = sourced.split_once(' ').unwrap_or((sourced, ""));
            source = Some(src.to_owned());
            rest = after.trim_start_matches(' ');
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_owned());
                break;
            }
            let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(param.to_owned());
            rest = after;
        }
        Self {
            raw: raw.to_owned(),
            tags,
            source,
            command: command.to_ascii_uppercase(),
            params,
        }
    }

    /// The value of tag `key`, `Some("")` for a tag without a value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// The nick part of the source.
    pub fn nick(&self) -> Option<&str> {
        let source = self.source.as_deref()?;
        Some(source.split_once('!').map_or(source, |(nick, _)| nick))
    }

    /// Parameter `index`.
    pub fn param(&self, index: usize) -> Option<&str> {
        self.params.get(index).map(String::as_str)
    }

    /// The last parameter (the text of a PRIVMSG or NOTICE), or `""`.
    pub fn text(&self) -> &str {
        self.params.last().map_or("", String::as_str)
    }

    /// Whether this is a `PRIVMSG` to `target` (case-insensitive) whose text is `text`.
    pub fn is_privmsg(&self, target: &str, text: &str) -> bool {
        self.command == "PRIVMSG"
            && self
                .param(0)
                .is_some_and(|t| t.eq_ignore_ascii_case(target))
            && self.text() == text
    }

    /// Whether this is a `PRIVMSG` from `nick`.
    pub fn is_privmsg_from(&self, nick: &str) -> bool {
        self.command == "PRIVMSG" && self.nick() == Some(nick)
    }

    /// Whether this is a NAMES reply (353) that lists `nick`, with or without its status
    /// prefixes and `!user@host` (the `multi-prefix` and `userhost-in-names` forms).
    pub fn names_include(&self, nick: &str) -> bool {
        self.command == "353"
            && self.text().split(' ').any(|n| {
                let n = n.trim_start_matches(['@', '+']);
                n.split('!').next() == Some(nick)
            })
    }
}

/// Whether `line` is something the bot said: a `PRIVMSG` from [`BOT_NICK`].
pub fn from_bot(line: &IrcLine) -> bool {
    line.is_privmsg_from(BOT_NICK)
}

/// `text` without mIRC formatting codes (bold, colours, italics, underline, reverse, reset...).
pub fn strip_formatting(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x02' | '\x0f' | '\x11' | '\x16' | '\x1d' | '\x1e' | '\x1f' => {}
            // Colour: \x03 then up to two digits, optionally a comma and up to two digits.
            '\x03' => {
                if skip_two_digits(&mut chars) > 0 && chars.peek() == Some(&',') {
                    let mut ahead = chars.clone();
                    ahead.next();
                    if ahead.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                        skip_two_digits(&mut chars);
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn skip_two_digits(chars: &mut std::iter::Peekable<std::str::Chars>) -> usize {
    let mut skipped = 0;
    while skipped < 2 && chars.peek().is_some_and(char::is_ascii_digit) {
        chars.next();
        skipped += 1;
    }
    skipped
}

fn unescape_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// How an [`IrcClient`] registers with the server.
#[derive(Debug, Clone)]
pub struct IrcConnectOptions {
    pub nick: String,
    pub user: String,
    pub realname: String,
    /// IRCv3 capabilities to request; connecting fails if the server does not offer one.
    pub caps: Vec<String>,
    /// Log in to this NickServ account with this password through SASL PLAIN.
    pub sasl: Option<(String, String)>,
}

impl IrcConnectOptions {
    /// Every capability the test server offers that a bot may use.
    pub const ALL_CAPS: &[&str] = &[
        "account-notify",
        "account-tag",
        "away-notify",
        "batch",
        "cap-notify",
        "chghost",
        "echo-message",
        "extended-join",
        "message-tags",
        "multi-prefix",
        "server-time",
        "userhost-in-names",
    ];

    /// No capabilities, no SASL; user name and real name derived from `nick`.
    pub fn new(nick: &str) -> Self {
        Self {
            nick: nick.to_owned(),
            user: nick.chars().take(10).collect(),
            realname: format!("{nick} (sigbot test)"),
            caps: Vec::new(),
            sasl: None,
        }
    }

    /// Requests `caps`.
    pub fn caps(mut self, caps: &[&str]) -> Self {
        self.caps.extend(caps.iter().map(|c| (*c).to_owned()));
        self
    }

    /// Requests every capability in [`IrcConnectOptions::ALL_CAPS`].
    pub fn all_caps(self) -> Self {
        self.caps(Self::ALL_CAPS)
    }

    /// Logs in with SASL PLAIN (requests the `sasl` capability).
    pub fn sasl(mut self, account: &str, password: &str) -> Self {
        self.sasl = Some((account.to_owned(), password.to_owned()));
        self
    }
}

/// Why [`IrcClient::try_wait_for`] returned no line.
#[derive(Debug)]
pub enum WaitError {
    /// Nothing matched in time.
    Timeout,
    /// The server closed the connection first.
    Closed,
}

/// A raw IRC client: sends lines as given and lets the test wait for lines it receives.
///
/// A background task reads the socket and answers `PING` at once, so a client the test does not
/// read from for a while stays connected.
#[derive(Debug)]
pub struct IrcClient {
    nick: String,
    writer: Arc<Mutex<OwnedWriteHalf>>,
    incoming: mpsc::UnboundedReceiver<String>,
    reader: JoinHandle<()>,
    recent: Recent,
    registration: Vec<IrcLine>,
    caps: Vec<String>,
    account: Option<String>,
}

impl IrcClient {
    /// Connects to `server` as `nick` without capabilities and waits for the welcome (001).
    pub async fn connect(server: &IrcServer, nick: &str) -> Self {
        Self::connect_with(server.addr(), IrcConnectOptions::new(nick)).await
    }

    /// Connects to `addr`, registers as `options` says and waits for the welcome (001).
    /// Panics if a capability is refused or SASL fails.
    pub async fn connect_with(addr: SocketAddr, options: IrcConnectOptions) -> Self {
        let mut client = Self::connect_unregistered(addr).await;
        client.register(&options).await;
        client
    }

    /// Only opens the connection: the test sends `NICK`/`USER` (or nothing) itself.
    pub async fn connect_unregistered(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect to IRC server {addr}: {e}"));
        let (read, write) = stream.into_split();
        let writer = Arc::new(Mutex::new(write));
        let (tx, incoming) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_lines(BufReader::new(read), tx, Arc::clone(&writer)));
        Self {
            nick: String::new(),
            writer,
            incoming,
            reader,
            recent: Recent::default(),
            registration: Vec::new(),
            caps: Vec::new(),
            account: None,
        }
    }

    async fn register(&mut self, options: &IrcConnectOptions) {
        let mut wanted = options.caps.clone();
        if options.sasl.is_some() {
            wanted.push("sasl".to_owned());
        }
        if !wanted.is_empty() {
            self.send("CAP LS 302").await;
        }
        self.send(&format!("NICK {}", options.nick)).await;
        self.send(&format!("USER {} 0 * :{}", options.user, options.realname))
            .await;

        let mut offered: Vec<String> = Vec::new();
        let deadline = Instant::now() + EXCHANGE_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = match self.try_wait_for(remaining, |_| true).await {
                Ok(line) => line,
                Err(e) => panic!(
                    "IRC registration of {} failed: {e:?}; last lines:\n{}",
                    options.nick,
                    self.recent.dump()
                ),
            };
            self.registration.push(line.clone());
            let subcommand = line.param(1).unwrap_or_default();
            match line.command.as_str() {
                "CAP" if subcommand == "LS" => {
                    offered.extend(
                        line.text()
                            .split(' ')
                            .map(|c| c.split('=').next().unwrap_or(c).to_owned()),
                    );
                    // "CAP * LS * :..." announces that more LS lines follow.
                    if line.param(2) == Some("*") {
                        continue;
                    }
                    if let Some(missing) = wanted.iter().find(|c| !offered.contains(c)) {
                        panic!(
                            "IRC server does not offer capability {missing}: {}",
                            line.raw
                        );
                    }
                    self.send(&format!("CAP REQ :{}", wanted.join(" "))).await;
                }
                "CAP" if subcommand == "ACK" => {
                    self.caps
                        .extend(line.text().split_whitespace().map(str::to_owned));
                    if options.sasl.is_some() {
                        self.send("AUTHENTICATE PLAIN").await;
                    } else {
                        self.send("CAP END").await;
                    }
                }
                "CAP" if subcommand == "NAK" => {
                    panic!("IRC server refused capabilities: {}", line.raw)
                }
                "AUTHENTICATE" if line.text() == "+" => {
                    let (account, password) = options.sasl.as_ref().expect("SASL requested");
                    let plain = format!("{account}\0{account}\0{password}");
                    let encoded = base64::engine::general_purpose::STANDARD.encode(plain);
                    self.send(&format!("AUTHENTICATE {encoded}")).await;
                }
                "900" => self.account = line.param(2).map(str::to_owned),
                "903" => self.send("CAP END").await,
                "902" | "904" | "905" | "906" | "908" => {
                    panic!("SASL login of {} failed: {}", options.nick, line.raw)
                }
                "432" | "433" | "436" => {
                    panic!("IRC server refused nick {}: {}", options.nick, line.raw)
                }
                "001" => {
                    self.nick = line.param(0).unwrap_or(&options.nick).to_owned();
                    return;
                }
                "ERROR" => panic!("IRC server closed the link: {}", line.raw),
                _ => {}
            }
        }
    }

    /// The nick the server welcomed this client with.
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// The account SASL logged in to (from `RPL_LOGGEDIN`, 900).
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// The capabilities the server acknowledged.
    pub fn caps(&self) -> &[String] {
        &self.caps
    }

    /// The lines received during registration, up to and including 001.
    pub fn registration(&self) -> &[IrcLine] {
        &self.registration
    }

    /// Sends one line (CR LF is added); panics if the connection is gone.
    pub async fn send(&self, line: &str) {
        if let Err(e) = self.try_send(line).await {
            panic!("send {line:?} as {}: {e}", self.nick);
        }
    }

    /// Sends one line (CR LF is added).
    pub async fn try_send(&self, line: &str) -> std::io::Result<()> {
        let mut writer = self.writer.lock().await;
        writer.write_all(format!("{line}\r\n").as_bytes()).await
    }

    /// Sends `PRIVMSG target :text`.
    pub async fn privmsg(&self, target: &str, text: &str) {
        self.send(&format!("PRIVMSG {target} :{text}")).await;
    }

    /// Joins `channel` and waits for the end of its names list (366).
    pub async fn join(&mut self, channel: &str) {
        self.send(&format!("JOIN {channel}")).await;
        let reply = self
            .wait_for(EXCHANGE_TIMEOUT, |l| {
                let about_channel = l.param(1).is_some_and(|c| c.eq_ignore_ascii_case(channel));
                let refusal = matches!(
                    l.command.as_str(),
                    "403" | "405" | "471" | "473" | "474" | "475" | "477"
                );
                about_channel && (l.command == "366" || refusal)
            })
            .await;
        assert_eq!(
            reply.command, "366",
            "could not join {channel}: {}",
            reply.raw
        );
    }

    /// Joins `channel` and waits until `nick` is in it too: its JOIN, or its name in the
    /// NAMES reply when it was there first. The wait is long because a bot that has just
    /// started may still be connecting.
    pub async fn join_and_wait_for(&mut self, channel: &str, nick: &str, timeout: Duration) {
        self.send(&format!("JOIN {channel}")).await;
        self.wait_for(timeout, |l| {
            (l.command == "JOIN" && l.nick() == Some(nick)) || l.names_include(nick)
        })
        .await;
    }

    /// Waits for the next line that `matches`, dropping the lines before it. Panics on timeout
    /// or disconnection with the last lines received.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        matches: impl FnMut(&IrcLine) -> bool,
    ) -> IrcLine {
        match self.try_wait_for(timeout, matches).await {
            Ok(line) => line,
            Err(e) => panic!(
                "{} waited {timeout:?} for a line but got {e:?}; last lines received:\n{}",
                self.nick,
                self.recent.dump()
            ),
        }
    }

    /// Waits for the next raw line that matches the regular expression `pattern`.
    pub async fn wait_for_regex(&mut self, timeout: Duration, pattern: &str) -> IrcLine {
        let re = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("bad regex: {e}"));
        self.wait_for(timeout, |l| re.is_match(&l.raw)).await
    }

    /// Like [`IrcClient::wait_for`], but says why nothing matched instead of panicking.
    pub async fn try_wait_for(
        &mut self,
        timeout: Duration,
        mut matches: impl FnMut(&IrcLine) -> bool,
    ) -> Result<IrcLine, WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Err(_) => return Err(WaitError::Timeout),
                Ok(None) => return Err(WaitError::Closed),
                Ok(Some(raw)) => {
                    self.recent.push(&raw);
                    let line = IrcLine::parse(&raw);
                    if matches(&line) {
                        return Ok(line);
                    }
                }
            }
        }
    }

    /// Waits until the server closes the connection and returns its `ERROR` line, if it sent
    /// one. Panics if the connection is still open after `timeout`.
    pub async fn wait_for_disconnect(&mut self, timeout: Duration) -> Option<IrcLine> {
        let mut error = None;
        match self
            .try_wait_for(timeout, |l| {
                if l.command == "ERROR" {
                    error = Some(l.clone());
                }
                false
            })
            .await
        {
            Err(WaitError::Closed) => error,
            other => panic!(
                "{} still connected after {timeout:?} ({other:?}); last lines:\n{}",
                self.nick,
                self.recent.dump()
            ),
        }
    }

    /// Sends `QUIT` and waits (briefly) for the server to close the connection.
    pub async fn quit(mut self) {
        if self.try_send("QUIT :bye").await.is_ok() {
            let _ = self.try_wait_for(EXCHANGE_TIMEOUT, |_| false).await;
        }
    }
}

impl Drop for IrcClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Forwards every line but `PING` to `tx`, answering `PING` itself; ends at EOF.
async fn read_lines(
    mut reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    tx: mpsc::UnboundedSender<String>,
    writer: Arc<Mutex<OwnedWriteHalf>>,
) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let raw = String::from_utf8_lossy(&buf)
            .trim_end_matches(['\r', '\n'])
            .to_owned();
        let line = IrcLine::parse(&raw);
        if line.command == "PING" {
            let pong = format!("PONG :{}\r\n", line.text());
            let _ = writer.lock().await.write_all(pong.as_bytes()).await;
            continue;
        }
        if tx.send(raw).is_err() {
            return;
        }
    }
}
