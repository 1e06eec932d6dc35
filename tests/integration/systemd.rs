//! Running under systemd: the real binary speaks the notification protocol on
//! `$NOTIFY_SOCKET` (READY, STATUS, WATCHDOG, STOPPING), and the units in `dist/` pass
//! `systemd-analyze verify` and are hardened to an exposure of 1.5 or less; the sysusers and
//! tmpfiles snippets are read by systemd's own tools.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tokio::net::UnixDatagram;

use crate::support::bot::{Bot, bot_binary};
use crate::support::{BotConfig, LOCALHOST, free_port, repo_root, require_program, temp_dir};

const T: Duration = Duration::from_secs(30);

const UNITS: [&str; 2] = ["sigbot.service", "sigbot@.service"];

/// Every notification the bot sent, one datagram each, in order.
struct Notifications {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Notifications {
    fn bind(path: &Path) -> Self {
        Notifications {
            socket: UnixDatagram::bind(path).expect("bind the notification socket"),
            seen: Vec::new(),
        }
    }

    /// Waits for the next datagram that contains `needle` (a whole line of it).
    async fn wait_for(&mut self, needle: &str) -> String {
        let mut buf = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let n = tokio::time::timeout_at(deadline, self.socket.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} from the bot; it sent {:?}", self.seen))
                .expect("read a notification");
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.push(message.clone());
            if message
                .lines()
                .any(|l| l == needle || l.starts_with(needle))
            {
                return message;
            }
        }
    }
}

#[tokio::test]
async fn the_bot_notifies_ready_status_watchdog_and_stopping() {
    let dir = temp_dir("notify");
    let socket_path = dir.path().join("notify.sock");
    let mut notes = Notifications::bind(&socket_path);
    let web = free_port();
    let config = BotConfig::new().console().web(web).build();
    let socket = socket_path.display().to_string();
    // A 2 s watchdog: the bot beats at least every second.
    let env = [
        ("NOTIFY_SOCKET", socket.as_str()),
        ("WATCHDOG_USEC", "2000000"),
    ];
    let mut bot = Bot::start_with_env(dir.path(), &config, &env);

    let ready = notes.wait_for("READY=1").await;
    // The web site listens by the time READY comes, and it is the first thing said.
    assert!(
        std::net::TcpStream::connect((LOCALHOST, web)).is_ok(),
        "READY=1 before the web site listens"
    );
    assert_eq!(notes.seen.len(), 1, "{:?}", notes.seen);
    let status = ready
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS= with READY=1: {ready:?}"));
    assert!(
        status.ends_with(&format!("; web site on {LOCALHOST}:{web}")),
        "{status}"
    );
    // The status follows the networks; the core task's heartbeat feeds the watchdog.
    notes.wait_for("STATUS=1/1 networks connected;").await;
    notes.wait_for("WATCHDOG=1").await;
    bot.say("!ping").await;
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> pong"
    );

    let stopped = tokio::spawn(async move {
        let code = bot.terminate(T).await;
        (code, bot)
    });
    let stopping = notes.wait_for("STOPPING=1").await;
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    let (code, bot) = stopped.await.unwrap();
    assert_eq!(code, Some(0), "{}", bot.log_tail(20));
}

/// `dist/NAME` as written, for a test to change.
fn unit_text(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("dist").join(name)).unwrap()
}

/// Copies of the units whose ExecStart is the binary under test (verify wants it to exist),
/// the template also as an instance, and the manual page their `Documentation=` names.
fn units_to_verify(dir: &Path) -> (Vec<PathBuf>, PathBuf) {
    let binary = bot_binary().display().to_string();
    let mut units = Vec::new();
    for name in UNITS {
        let text = unit_text(name);
        assert!(
            text.contains("\nExecStart=/usr/bin/sigbot run --config /etc/sigbot/"),
            "{name}: ExecStart"
        );
        let text = text.replace(
            "ExecStart=/usr/bin/sigbot ",
            &format!("ExecStart={binary} "),
        );
        let mut names = vec![name.to_owned()];
        if name.ends_with("@.service") {
            names.push(name.replace("@.", "@example."));
        }
        for n in names {
            let path = dir.join(&n);
            std::fs::write(&path, &text).unwrap();
            units.push(path);
        }
    }
    let man = dir.join("man");
    std::fs::create_dir_all(man.join("man1")).unwrap();
    let page = Command::new(bot_binary()).arg("man").output().unwrap();
    assert!(page.status.success());
    std::fs::write(man.join("man1/sigbot.1"), page.stdout).unwrap();
    (units, man)
}

#[test]
fn the_units_verify_and_are_hardened() {
    let analyze = require_program("systemd-analyze", "apt-get install systemd");
    let dir = temp_dir("units");
    let (units, man) = units_to_verify(dir.path());
    for unit in &units {
        let out = Command::new(&analyze)
            .arg("verify")
            .arg(unit)
            .env("MANPATH", &man)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "systemd-analyze verify {}:\n{said}",
            unit.display()
        );

        let out = Command::new(&analyze)
            .args(["security", "--offline=true", "--no-pager"])
            .arg(unit)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        let exposure: f64 = report
            .lines()
            .find_map(|l| l.split_once("Overall exposure level for "))
            .and_then(|(_, rest)| rest.split_once(": "))
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no overall exposure in:\n{report}"));
        assert!(
            exposure <= 1.5,
            "{}: exposure {exposure} above 1.5:\n{report}",
            unit.display()
        );
    }
}

#[test]
fn the_sysusers_and_tmpfiles_snippets_are_read_by_systemd() {
    let root = temp_dir("sysroot");
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let sysusers = require_program("systemd-sysusers", "apt-get install systemd");
    let out = Command::new(sysusers)
        .arg(format!("--root={}", root.path().display()))
        .arg(repo_root().join("dist/sigbot.sysusers"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("sigbot:"))
        .unwrap_or_else(|| panic!("no sigbot user: {passwd}"));
    let fields: Vec<&str> = user.split(':').collect();
    assert_eq!(fields[5], "/var/lib/sigbot", "{user}");
    assert!(fields[6].ends_with("nologin"), "{user}");

    // Creating root-owned directories takes root; elsewhere the snippet is only parsed.
    let probe = root.path().join("probe");
    std::fs::write(&probe, "").unwrap();
    let is_root = std::fs::metadata(&probe).unwrap().uid() == 0;
    let tmpfiles = require_program("systemd-tmpfiles", "apt-get install systemd");
    let mut cmd = Command::new(tmpfiles);
    cmd.arg(format!("--root={}", root.path().display()));
    if is_root {
        cmd.arg("--create");
    } else {
        cmd.arg("--cat-config");
    }
    let out = cmd
        .arg(repo_root().join("dist/sigbot.tmpfiles"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if is_root {
        let credentials = std::fs::metadata(root.path().join("etc/sigbot/credentials")).unwrap();
        assert!(credentials.is_dir());
        assert_eq!(credentials.permissions().mode() & 0o777, 0o700);
    }
}
