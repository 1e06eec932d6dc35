//! `[meetings]`: the rooms where MeetBot commands work, when an idle meeting ends, and
//! where the minutes are mailed.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use toml::Spanned;

use super::Checker;
use crate::config::raw::{RawMeetingRooms, RawMeetings};
use crate::config::{ConfigError, MeetingMailConfig, MeetingRooms, SmtpSecurity, SmtpServer};

impl Checker<'_> {
    pub(super) fn meetings(&self, raw: Option<&RawMeetings>) -> Result<MeetingRooms, ConfigError> {
        let Some(m) = raw else {
            return Ok(MeetingRooms::None);
        };
        match m.rooms.get_ref() {
            RawMeetingRooms::All(s) if s == "all" => Ok(MeetingRooms::All),
            RawMeetingRooms::All(s) => Err(self.loc.span(
                &m.rooms,
                format!("meetings.rooms {s:?}: give a list of rooms or \"all\""),
            )),
            RawMeetingRooms::List(rooms) => Ok(MeetingRooms::Some(self.chat_rooms(rooms)?)),
        }
    }

    /// `[meetings] idle_timeout`: 3 hours unless set; never zero.
    pub(super) fn meeting_idle_timeout(
        &self,
        raw: Option<&RawMeetings>,
    ) -> Result<Duration, ConfigError> {
        let Some(s) = raw.and_then(|m| m.idle_timeout.as_ref()) else {
            return Ok(MEETING_IDLE_TIMEOUT);
        };
        let d = self.duration(&Some(s.clone()), "idle_timeout", MEETING_IDLE_TIMEOUT)?;
        if d.is_zero() {
            return Err(self
                .loc
                .span(s, "meetings.idle_timeout must be longer than 0s".to_owned()));
        }
        Ok(d)
    }
}

/// How long a meeting may go without a line before it is ended, by default.
pub const MEETING_IDLE_TIMEOUT: Duration = Duration::from_secs(3 * 3600);

impl Checker<'_> {
    /// `[meetings.mail]`: addresses that lettre reads, an `smtp`/`smtps` URL, a whole login,
    /// and rooms that hold meetings.
    pub(super) fn meeting_mail(
        &self,
        raw: Option<&RawMeetings>,
        meetings: &MeetingRooms,
    ) -> Result<Option<MeetingMailConfig>, ConfigError> {
        let Some(m) = raw.and_then(|m| m.mail.as_ref()) else {
            return Ok(None);
        };
        if m.to.get_ref().is_empty() {
            return Err(self.loc.span(
                &m.to,
                "meetings.mail.to is empty: give at least one address".to_owned(),
            ));
        }
        let to =
            m.to.get_ref()
                .iter()
                .map(|a| self.mailbox(a, "to"))
                .collect::<Result<Vec<_>, _>>()?;
        let from = self.mailbox(&m.from, "from")?;
        let smtp = self.smtp_server(&m.smtp)?;
        let login = match (&m.user, &m.password) {
            (Some(u), Some(p)) => Some((u.get_ref().clone(), self.secret(p, "password")?)),
            (None, None) => None,
            (Some(u), None) => {
                return Err(self.loc.span(
                    u,
                    "meetings.mail.user needs a password (give both or neither)".to_owned(),
                ));
            }
            (None, Some(p)) => {
                return Err(self.loc.span(
                    p,
                    "meetings.mail.password needs a user (give both or neither)".to_owned(),
                ));
            }
        };
        let rooms = match &m.rooms {
            None => None,
            Some(list) => {
                let mut rooms = Vec::with_capacity(list.len());
                for r in list {
                    let room = self.chat_room(r)?;
                    if !meetings.contains(&room) {
                        return Err(self.loc.span(
                            r,
                            format!(
                                "meetings.mail.rooms: {room} holds no meetings \
                                 (it is not in meetings.rooms)"
                            ),
                        ));
                    }
                    rooms.push(room);
                }
                Some(rooms)
            }
        };
        Ok(Some(MeetingMailConfig {
            to,
            from,
            smtp,
            login,
            ca_file: m.ca_file.as_ref().map(PathBuf::from),
            rooms,
        }))
    }

    /// A mail address, `list@example.org` or `Name <list@example.org>`, as lettre reads it.
    fn mailbox(&self, s: &Spanned<String>, key: &str) -> Result<Mailbox, ConfigError> {
        s.get_ref().trim().parse::<Mailbox>().map_err(|e| {
            self.loc.span(
                s,
                format!(
                    "meetings.mail.{key}: bad mail address {:?}: {e}",
                    s.get_ref()
                ),
            )
        })
    }

    /// `smtps://host[:465]` (TLS), `smtp://host[:587]` (STARTTLS), or `smtp://host:25` on a
    /// loopback host (plain).
    fn smtp_server(&self, s: &Spanned<String>) -> Result<SmtpServer, ConfigError> {
        let url = s.get_ref().trim();
        let (tls, rest) = if let Some(r) = url.strip_prefix("smtps://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("smtp://") {
            (false, r)
        } else {
            return Err(self.loc.span(
                s,
                format!("meetings.mail.smtp {url:?} must start with smtps:// or smtp://"),
            ));
        };
        let hostport = Spanned::new(s.span(), rest.trim_end_matches('/').to_owned());
        let (host, port) = self.host_port(&hostport, if tls { 465 } else { 587 })?;
        if host.is_empty() {
            return Err(self
                .loc
                .span(s, format!("meetings.mail.smtp {url:?} names no host")));
        }
        let security = if tls {
            SmtpSecurity::Tls
        } else if port == 25 {
            if !is_loopback(&host) {
                return Err(self.loc.span(
                    s,
                    format!(
                        "meetings.mail.smtp {url:?}: plain SMTP on port 25 only to a loopback \
                         host; use smtps://{host}:465 or smtp://{host}:587 (STARTTLS)"
                    ),
                ));
            }
            SmtpSecurity::Plain
        } else {
            SmtpSecurity::StartTls
        };
        Ok(SmtpServer {
            url: url.to_owned(),
            host,
            port,
            security,
        })
    }
}

/// `localhost` or a loopback IP address.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
