//! `[meetings.mail]`: the minutes of a finished meeting as a mail (composed when its files are
//! recorded, queued in the store in the same transaction), and the task that sends the queue
//! over SMTP with lettre, retrying with backoff until the server takes each mail.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use lettre::address::Envelope;
use lettre::message::MultiPart;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{MeetingMailConfig, SmtpSecurity};
use crate::core::format::escape_html;
use crate::core::meeting::Meeting;
use crate::store::{QueuedMail, Store};

/// The first wait after a failed attempt; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// The wait before attempt `attempts + 1`, `attempts` having failed.
pub(super) fn backoff(attempts: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(16)))
        .min(MAX_BACKOFF)
}

/// The minutes of `m` as a mail: subject `Minutes: <name> (<YYYY-MM-DD>)`, the text minutes
/// after the links to the HTML minutes and log, and the HTML minutes as the alternative.
pub(super) fn compose(
    cfg: &MeetingMailConfig,
    m: &Meeting,
    public_url: &str,
    now: DateTime<Utc>,
) -> Result<QueuedMail, String> {
    let url = format!(
        "{}/meetings/{}",
        public_url.trim_end_matches('/'),
        m.base_path()
    );
    let name = m
        .title
        .clone()
        .or_else(|| m.name.clone())
        .unwrap_or_else(|| m.file_name());
    let subject = format!("Minutes: {name} ({})", m.started.format("%Y-%m-%d"));
    // The minutes name their log by file name, beside them on the site; a mail is read
    // elsewhere, so its links to the log are absolute.
    let log_file = format!("{}.log.html", m.base_name());
    let log_url = format!("{url}.log.html");
    let minutes =
        crate::minutes::text::render(m).replace(&format!("{log_file} ."), &format!("{log_url} ."));
    let text =
        format!("Minutes: {url}.html\nMinutes (text): {url}.txt\nLog: {log_url}\n\n{minutes}");
    let html = crate::minutes::html::render(m).replace(
        &format!("href=\"{}", escape_html(&log_file)),
        &format!("href=\"{}", escape_html(&log_url)),
    );
    let domain = cfg.from.email.domain().to_owned();
    let message_id = format!("<{}.{}@{domain}>", m.base_name(), random_token());
    let mut b = Message::builder()
        .message_id(Some(message_id.clone()))
        .date(SystemTime::from(now))
        .from(cfg.from.clone())
        .subject(subject);
    for to in &cfg.to {
        b = b.to(to.clone());
    }
    let message = b
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| format!("cannot build the mail: {e}"))?;
    let envelope = message.envelope();
    Ok(QueuedMail {
        message_id,
        envelope_from: envelope.from().map(ToString::to_string).unwrap_or_default(),
        envelope_to: envelope.to().iter().map(ToString::to_string).collect(),
        message: message.formatted(),
        queued_at: now,
    })
}

fn random_token() -> String {
    use rand::Rng as _;
    let n: u128 = rand::rng().random();
    format!("{n:032x}")
}

/// The transport `cfg` describes.
fn transport(cfg: &MeetingMailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let host = cfg.smtp.host.clone();
    let tls = || -> Result<TlsParameters, String> {
        let mut b = TlsParameters::builder(host.clone());
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read ca_file {}: {e}", ca.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("bad ca_file {}: {e}", ca.display()))?;
            b = b
                .certificate_store(CertificateStore::None)
                .add_root_certificate(cert);
        }
        b.build_rustls().map_err(|e| format!("TLS setup: {e}"))
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(cfg.smtp.port)
        .timeout(Some(SMTP_TIMEOUT));
    b = match cfg.smtp.security {
        SmtpSecurity::Tls => b.tls(Tls::Wrapper(tls()?)),
        SmtpSecurity::StartTls => b.tls(Tls::Required(tls()?)),
        SmtpSecurity::Plain => b.tls(Tls::None),
    };
    if let Some((user, password)) = &cfg.login {
        b = b.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
    }
    Ok(b.build())
}

fn envelope(mail: &QueuedMail) -> Result<Envelope, String> {
    let from = mail
        .envelope_from
        .parse::<Address>()
        .map_err(|e| format!("bad envelope sender: {e}"))?;
    let to = mail
        .envelope_to
        .iter()
        .map(|a| a.parse::<Address>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad envelope recipient: {e}"))?;
    Envelope::new(Some(from), to).map_err(|e| format!("bad envelope: {e}"))
}

/// Sends the queue until `stop`: the oldest due mail first; a failure is logged and the mail
/// tried again after its backoff. `wake` is notified when a mail is queued.
pub(super) async fn run_sender(
    cfg: MeetingMailConfig,
    store: Store,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let smtp = match transport(&cfg) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(server = %cfg.smtp.url, error = %e, "meetings.mail: cannot set up SMTP; minutes stay queued");
            None
        }
    };
    loop {
        let now = Utc::now();
        let due = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.due_mail(now))
                .await
                .unwrap_or_else(|e| Ok(reader_failed(&e)))
        };
        match (due, &smtp) {
            (Ok(Some(row)), Some(smtp)) => {
                let sent = match envelope(&row.mail) {
                    Ok(env) => tokio::select! {
                        // Stopping ends a conversation under way: the mail stays queued (and
                        // is sent again, with the same Message-ID, if the server took it).
                        () = stop.cancelled() => return,
                        sent = smtp.send_raw(&env, &row.mail.message) => {
                            sent.map(|_| ()).map_err(|e| describe(&e))
                        }
                    },
                    Err(e) => Err(e),
                };
                let store = store.clone();
                let attempts = row.attempts + 1;
                let message_id = row.mail.message_id.clone();
                match sent {
                    Ok(()) => {
                        tracing::info!(message_id = %message_id, attempts, "meeting minutes mailed");
                        let _ = tokio::task::spawn_blocking(move || {
                            store.mail_sent(row.id, Utc::now()).inspect_err(
                                |e| tracing::error!(error = %e, "mail sent but not marked so"),
                            )
                        })
                        .await;
                    }
                    Err(e) => {
                        let wait = backoff(attempts);
                        tracing::warn!(message_id = %message_id, server = %cfg.smtp.url, attempts, retry_in = ?wait, error = %e, "meeting minutes not mailed; will retry");
                        let _ = tokio::task::spawn_blocking(move || {
                            store.mail_failed(row.id, &e, Utc::now(), wait).inspect_err(
                                |e| tracing::error!(error = %e, "mail failure not stored"),
                            )
                        })
                        .await;
                    }
                }
                continue;
            }
            (Err(e), _) => tracing::error!(error = %e, "cannot read the mail queue"),
            _ => {}
        }
        let next = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.next_mail_due())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
        };
        let wait = match (next, &smtp) {
            (Some(t), Some(_)) => (t - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            _ => MAX_BACKOFF,
        }
        .max(Duration::from_millis(50));
        tokio::select! {
            () = stop.cancelled() => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

fn reader_failed(e: &tokio::task::JoinError) -> Option<crate::store::MailRow> {
    tracing::error!(error = %e, "mail queue reader failed");
    None
}

/// An SMTP error for the log: lettre's words, what caused them when they do not already say
/// it, and what to check when the server refused the login.
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        let inner_text = inner.to_string();
        if !s.contains(&inner_text) {
            s.push_str(": ");
            s.push_str(&inner_text);
        }
        src = inner.source();
    }
    if e.status().is_some_and(|code| code.to_string() == "535") {
        s.push_str(" (the server refused the login: check [meetings.mail] user and password)");
    }
    s
}

/// Starts the sender when `[meetings.mail]` is set; what the meetings' writer needs.
pub(super) fn start_sender(
    cfg: &crate::config::Config,
    store: &Store,
    supervisor: &super::supervise::Supervisor,
    shutdown: &CancellationToken,
) -> Option<super::execute::MeetingsMail> {
    let mail = cfg.meeting_mail.clone()?;
    let wake = Arc::new(Notify::new());
    supervisor.spawn(
        "mail",
        run_sender(mail.clone(), store.clone(), wake.clone(), shutdown.clone()),
    );
    Some(super::execute::MeetingsMail {
        cfg: mail,
        public_url: cfg
            .web
            .as_ref()
            .map(|w| w.public_url.clone())
            .unwrap_or_default(),
        wake,
    })
}

/// Whether `m`'s minutes are mailed under `cfg`: a finished meeting of a covered room that
/// did not `#restrictlogs`.
pub(super) fn wanted(cfg: &MeetingMailConfig, m: &Meeting) -> bool {
    cfg.covers(&m.room) && !m.restrict_logs
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::config::SmtpServer;
    use crate::core::RoomRef;
    use crate::core::meeting::{JournalLine, replay};

    fn meeting(lines: &[&str]) -> Meeting {
        let t = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let journal: Vec<JournalLine> = lines
            .iter()
            .map(|text| JournalLine {
                time: t,
                nick: "alice".into(),
                text: (*text).into(),
                ..JournalLine::default()
            })
            .collect();
        let mut m = replay(&RoomRef::new("libera", "#sig"), &journal, "!").unwrap();
        m.add_line("alice", "#endmeeting", t, false);
        m
    }

    fn cfg(rooms: Option<Vec<RoomRef>>) -> MeetingMailConfig {
        MeetingMailConfig {
            to: vec!["List <list@example.org>".parse().unwrap()],
            from: "bot@example.org".parse().unwrap(),
            smtp: SmtpServer {
                url: "smtp://127.0.0.1:25".into(),
                host: "127.0.0.1".into(),
                port: 25,
                security: SmtpSecurity::Plain,
            },
            login: None,
            ca_file: None,
            rooms,
        }
    }

    #[test]
    fn the_mail_names_the_meeting_and_links_its_files() {
        let m = meeting(&["#startmeeting Budget review", "#info zebras"]);
        let now = Utc.with_ymd_and_hms(2026, 3, 4, 6, 0, 0).unwrap();
        let mail = compose(&cfg(None), &m, "https://meet.example.org/", now).unwrap();
        let text = String::from_utf8_lossy(&mail.message);
        assert!(
            text.contains("Subject: Minutes: Budget review (2026-03-04)"),
            "{text}"
        );
        assert!(
            text.contains(&format!("Message-ID: {}", mail.message_id)),
            "{text}"
        );
        assert!(
            mail.message_id.ends_with("@example.org>"),
            "{}",
            mail.message_id
        );
        assert!(
            text.contains("Date: Wed, 04 Mar 2026 06:00:00 +0000"),
            "{text}"
        );
        // The text part is quoted-printable: long lines are soft-broken with `=`.
        let unwrapped = text.replace("=\r\n", "");
        assert!(
            unwrapped.contains("Log: https://meet.example.org/meetings/sig/2026-03-04/budget_review.2026-03-04-05.06.log.html"),
            "{text}"
        );
        assert!(text.contains("multipart/alternative"), "{text}");
        // Both parts link the log absolutely: a mail is read away from the site.
        assert!(
            unwrapped.replace("\r\n", " ").contains("available at https://meet.example.org/meetings/sig/2026-03-04/budget_review.2026-03-04-05.06.log.html ."),
            "{text}"
        );
        assert!(
            unwrapped.contains("href=3D\"https://meet.example.org/meetings/sig/2026-03-04/budget_review.2026-03-04-05.06.log.html"),
            "{text}"
        );
        assert!(
            !unwrapped.contains("href=3D\"budget_review"),
            "no relative link is left: {text}"
        );
        assert_eq!(mail.envelope_from, "bot@example.org");
        assert_eq!(mail.envelope_to, ["list@example.org"]);
        // Another mail of the same meeting gets a Message-ID of its own.
        let again = compose(&cfg(None), &m, "https://meet.example.org", now).unwrap();
        assert_ne!(again.message_id, mail.message_id);
    }

    #[test]
    fn restricted_meetings_and_rooms_left_out_are_not_mailed() {
        let m = meeting(&["#startmeeting"]);
        assert!(wanted(&cfg(None), &m));
        assert!(!wanted(
            &cfg(Some(vec![RoomRef::new("libera", "#other")])),
            &m
        ));
        assert!(wanted(&cfg(Some(vec![RoomRef::new("libera", "#sig")])), &m));
        let secret = meeting(&["#startmeeting", "#restrictlogs"]);
        assert!(secret.restrict_logs, "the meeting restricted its logs");
        assert!(!wanted(&cfg(None), &secret));
    }

    #[test]
    fn backoff_doubles_from_five_seconds_up_to_fifteen_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(20));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
