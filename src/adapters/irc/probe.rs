//! `sigbot check-config --online` for one IRC network: connects as the driver does (the same
//! TCP and TLS setup, so an untrusted certificate fails the same way), registers through the
//! driver's own [`Session`] (CAP negotiation, SASL, the server password), and QUITs once the
//! server has welcomed it. It joins nothing and queues nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use irc::proto::{Command, Message, Response};

use super::connection::{self, Reader, Writer, read_line, write_line};
use super::history::LastSeen;
use super::session::{Session, SessionEnd, Wire};
use crate::config::IrcConfig;

/// How long the whole check may take, connection included.
const CHECK_TIMEOUT: Duration = Duration::from_secs(45);

/// Connects, registers and QUITs: what went well, or why it failed, in words for an operator.
pub async fn probe(cfg: &IrcConfig) -> Result<String, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, probe_unbounded(cfg)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no welcome from the server within {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    }
}

async fn probe_unbounded(cfg: &IrcConfig) -> Result<String, String> {
    let (mut reader, mut writer) = connection::connect(cfg)
        .await
        .map_err(|e| explain_connect(&e))?;
    let mut s = Session::new(Arc::new(cfg.clone()), Instant::now());
    let mut seen = LastSeen::default();
    s.hello();
    write_registration(&mut s, &mut writer).await?;
    let mut buf = Vec::with_capacity(1024);
    let outcome = loop {
        let line = match read_line(&mut reader, &mut buf).await {
            Ok(Some(line)) => line,
            Ok(None) => break Err("the server closed the connection while registering".into()),
            Err(e) => break Err(format!("read failed: {e}")),
        };
        if let Some(refusal) = refusal(&line) {
            break Err(refusal);
        }
        match s.handle_line(&line, &mut seen, Instant::now()) {
            Some(SessionEnd::Lost(why)) => break Err(why),
            Some(SessionEnd::Shutdown) => break Err("stopped".into()),
            None => {}
        }
        write_registration(&mut s, &mut writer).await?;
        if s.registered {
            break welcomed(cfg, &s);
        }
    };
    quit(&mut reader, &mut writer).await;
    outcome
}

/// What a registered session says about the login the config asks for.
fn welcomed(cfg: &IrcConfig, s: &Session) -> Result<String, String> {
    let tls = if cfg.tls { "TLS, " } else { "" };
    match &cfg.sasl {
        None => Ok(format!("{tls}registered as {}", s.nick)),
        Some(_) if !s.caps.contains("sasl") => Err("the server offers no SASL".into()),
        Some(_) if !s.logged_in => Err("SASL did not log in".into()),
        Some(_) => Ok(format!(
            "{tls}SASL credentials accepted, registered as {}",
            s.nick
        )),
    }
}

/// A server line that ends the check: refused credentials or a ban.
fn refusal(line: &str) -> Option<String> {
    let msg: Message = line.parse().ok()?;
    let Command::Response(resp, args) = &msg.command else {
        return None;
    };
    let text = args.last().map(String::as_str).unwrap_or("");
    match resp {
        Response::ERR_SASLFAIL | Response::ERR_SASLABORT | Response::ERR_SASLTOOLONG => {
            Some(format!("SASL credentials refused ({text})"))
        }
        Response::ERR_PASSWDMISMATCH => Some(format!("server password refused ({text})")),
        Response::ERR_YOUREBANNEDCREEP => Some(format!("banned from the server ({text})")),
        _ => None,
    }
}

/// Writes what the session wants written at once; what it would queue (joins, NickServ) is
/// not for a check.
async fn write_registration(s: &mut Session, w: &mut Writer) -> Result<(), String> {
    for wire in s.out.drain(..) {
        if let Wire::Now(line) | Wire::Counted(line) = wire {
            write_line(w, &line)
                .await
                .map_err(|e| format!("write failed: {e}"))?;
        }
    }
    s.events.clear();
    Ok(())
}

/// Says goodbye and waits a little for the server to close the connection.
async fn quit(reader: &mut Reader, writer: &mut Writer) {
    if write_line(writer, "QUIT :sigbot check-config")
        .await
        .is_err()
    {
        return;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = read_line(reader, &mut buf).await {}
    })
    .await;
}

/// A connection failure, with a hint where the cause is a certificate.
fn explain_connect(e: &std::io::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    let lower = text.to_lowercase();
    if lower.contains("invalid peer certificate") || lower.contains("unknownissuer") {
        text.push_str(
            "; the server's certificate is not trusted (check ca_file and the host name in server)",
        );
    } else if lower.contains("connection refused") {
        text.push_str("; nothing listens there");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_and_bans_end_the_check_with_the_server_s_words() {
        assert_eq!(
            refusal(":srv 904 sigbot :SASL authentication failed").as_deref(),
            Some("SASL credentials refused (SASL authentication failed)")
        );
        assert_eq!(
            refusal(":srv 464 * :Password incorrect").as_deref(),
            Some("server password refused (Password incorrect)")
        );
        assert_eq!(refusal(":srv 001 sigbot :Welcome"), None);
        assert_eq!(refusal("not a line at all"), None);
    }
}
