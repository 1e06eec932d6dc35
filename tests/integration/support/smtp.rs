//! A real SMTP server for the `[meetings.mail]` tests: aiosmtpd (in the Synapse virtualenv,
//! which scripts/test gives it) on a loopback port, requiring STARTTLS or speaking TLS from
//! the first byte (the harness's test CA signs its certificate), then AUTH with one user;
//! each mail it takes is written whole to a directory, one file per mail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::matrix::synapse_venv;
use super::mqtt::TlsFiles;
use super::{
    ProcessSpec, ServerProcess, free_port, port_accepts, temp_dir, wait_until, write_file,
};

pub const SMTP_USER: &str = "sigbot";
pub const SMTP_PASSWORD: &str = "mail-s3cret";

const SERVER: &str = r#"
import os, signal, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, outdir, user, password, mode = sys.argv[1:]

class Keep:
    async def handle_DATA(self, server, session, envelope):
        name = os.path.join(outdir, "%d.eml" % time.time_ns())
        with open(name + ".part", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(name + ".part", name)
        return "250 OK kept"

def login(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == user.encode() \
        and data.password == password.encode()
    return AuthResult(success=ok, handled=False)

tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
if mode == "starttls":
    c = Controller(Keep(), hostname="127.0.0.1", port=int(port), tls_context=tls,
                   require_starttls=True, authenticator=login, auth_required=True)
else:
    # TLS from the first byte (smtps); AUTH then needs no STARTTLS.
    c = Controller(Keep(), hostname="127.0.0.1", port=int(port), ssl_context=tls,
                   authenticator=login, auth_required=True, auth_require_tls=False)
c.start()
print("listening", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
c.stop()
"#;

/// aiosmtpd on `127.0.0.1:<port>`; killed on drop.
pub struct SmtpServer {
    pub port: u16,
    pub tls: TlsFiles,
    /// Where each received mail is written (`<ns>.eml`).
    pub mails: PathBuf,
    implicit_tls: bool,
    process: ServerProcess,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Prepares the server (STARTTLS) on a free port without starting it (a server that is
    /// down).
    pub fn new() -> Self {
        Self::with_mode(false)
    }

    /// Prepares a server that speaks TLS from the first byte (`smtps://`).
    pub fn implicit_tls() -> Self {
        Self::with_mode(true)
    }

    fn with_mode(implicit_tls: bool) -> Self {
        let dir = temp_dir("smtp");
        let tls = TlsFiles::generate(dir.path());
        let mails = dir.path().join("mails");
        std::fs::create_dir_all(&mails).unwrap();
        let script = dir.path().join("smtp_server.py");
        write_file(&script, SERVER);
        let python = synapse_venv().join("bin/python");
        assert!(
            python.exists(),
            "no virtualenv at {}: run scripts/test, which creates it with aiosmtpd",
            python.display()
        );
        let port = free_port();
        let spec = ProcessSpec::new("aiosmtpd", python, dir.path())
            .arg(&script)
            .arg(port.to_string())
            .arg(&tls.server_cert)
            .arg(&tls.server_key)
            .arg(&mails)
            .arg(SMTP_USER)
            .arg(SMTP_PASSWORD)
            .arg(if implicit_tls { "tls" } else { "starttls" });
        Self {
            port,
            tls,
            mails,
            implicit_tls,
            process: ServerProcess::new(spec),
            _dir: dir,
        }
    }

    /// Starts it and waits until it accepts connections.
    pub async fn start(&mut self) {
        self.process.start();
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        wait_until("aiosmtpd to listen", Duration::from_secs(30), || async {
            port_accepts(addr).await.then_some(())
        })
        .await;
    }

    pub fn url(&self) -> String {
        let scheme = if self.implicit_tls { "smtps" } else { "smtp" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The mails received so far, oldest first.
    pub fn received(&self) -> Vec<String> {
        received_in(&self.mails)
    }
}

fn received_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
        .collect()
}
