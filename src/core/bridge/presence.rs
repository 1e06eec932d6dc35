//! Joins, parts, quits, nick and topic changes across a bridge, and the
//! member lists they keep up to date.
//!
//! Every change updates who the bridge thinks is in the room, whatever the settings, so
//! that mention defusing and name disambiguation stay right. Relaying a change as a notice
//! to the other rooms is optional per kind and off by default.
//!
//! Netsplits are debounced: a QUIT whose reason looks like two server names (`*.net
//! *.split`, `hub.example.org leaf.example.org`), or a quit in a burst of quits, is not
//! relayed on its own; once the room has been quiet for [`SUMMARY_AFTER`] one line sums
//! them up. Those people coming back within [`REJOIN_SILENCE`] are not announced.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};

use super::{Bridges, SideKind, bridged, unhighlight};
use crate::core::action::{Action, SendKind};
use crate::core::event::{Presence, PresenceChange, RoomRef};
use crate::core::format::{self, irc_text};

/// Which changes a bridge relays; all off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceRelay {
    /// Joins, parts and kicks.
    pub join_part: bool,
    pub quits: bool,
    pub nick_changes: bool,
    pub topics: bool,
}

/// Quiet time after the last quit of a split or burst before its summary goes out.
pub const SUMMARY_AFTER: TimeDelta = TimeDelta::seconds(3);

/// More quits than this within [`BURST_WINDOW`] are a burst: summarised, not listed.
pub const BURST_QUITS: usize = 3;
pub const BURST_WINDOW: TimeDelta = TimeDelta::seconds(5);

/// People who left in a split or burst and join again within this are not announced.
pub const REJOIN_SILENCE: TimeDelta = TimeDelta::minutes(30);

/// Names listed in a summary before "and N more".
const SUMMARY_NAMES: usize = 5;

/// One room's quit debouncing.
#[derive(Debug, Default)]
pub(super) struct Splits {
    /// When recent quits happened, for burst detection.
    recent: VecDeque<DateTime<Utc>>,
    /// Quits held for the summary, in order.
    pending: Vec<String>,
    /// Whether a held quit had a netsplit reason.
    split: bool,
    last: Option<DateTime<Utc>>,
    /// Lower-cased nicks whose next join is silent, with when they left.
    silent_rejoin: HashMap<String, DateTime<Utc>>,
}

/// Whether a QUIT reason is what servers say on a netsplit: two server names.
pub fn is_netsplit_reason(reason: &str) -> bool {
    let mut parts = reason.split(' ');
    let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let server = |s: &str| {
        let labels: Vec<&str> = s.split('.').collect();
        labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
            })
    };
    a != b && server(a) && server(b)
}

impl Bridges {
    /// A change in a room: members updated, and a notice for the bridge's other rooms when
    /// the bridge relays that kind of change.
    pub fn presence(&mut self, p: &Presence, now: DateTime<Utc>) -> Vec<Action> {
        self.update_members(p);
        let Some(&bi) = self.by_room.get(&p.room) else {
            return Vec::new();
        };
        let spec = &self.settings.bridges[bi];
        let relay = spec.presence;
        let ignored = spec
            .ignore_nicks
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&p.nick))
            || spec.ignore_regex.iter().any(|r| r.is_match(&p.nick));
        if ignored {
            return Vec::new();
        }
        let key = p.nick.to_lowercase();
        let chan = &p.room.room;
        let splits = self.splits.entry(p.room.clone()).or_default();
        let notice = |nick_form: &dyn Fn(&str) -> String| -> String {
            let nick = nick_form(&p.nick);
            match &p.what {
                PresenceChange::Join => format!("* {nick} joined {chan}"),
                PresenceChange::Part { reason } => {
                    format!("* {nick} left {chan}{}", reason_suffix(reason))
                }
                PresenceChange::Kick { by, reason } => format!(
                    "* {nick} was kicked from {chan} by {}{}",
                    nick_form(by),
                    reason_suffix(reason)
                ),
                PresenceChange::Quit { reason } => {
                    format!("* {nick} quit{}", reason_suffix(reason))
                }
                PresenceChange::Nick { new } => {
                    format!("* {nick} is now known as {}", nick_form(new))
                }
                PresenceChange::Topic { text } => {
                    format!("* {nick} set the topic of {chan}: {}", clean(text))
                }
            }
        };
        let wanted = match &p.what {
            PresenceChange::Join => {
                let back_from_split = splits
                    .silent_rejoin
                    .remove(&key)
                    .is_some_and(|left| now - left <= REJOIN_SILENCE);
                relay.join_part && !back_from_split
            }
            PresenceChange::Part { .. } | PresenceChange::Kick { .. } => relay.join_part,
            PresenceChange::Quit { reason } => {
                let split = reason.as_deref().is_some_and(is_netsplit_reason);
                splits.recent.retain(|t| now - *t < BURST_WINDOW);
                splits.recent.push_back(now);
                let burst = splits.recent.len() > BURST_QUITS;
                if split || burst || !splits.pending.is_empty() {
                    splits.split |= split;
                    splits.last = Some(now);
                    splits.silent_rejoin.insert(key, now);
                    if relay.quits {
                        splits.pending.push(p.nick.clone());
                    }
                    false
                } else {
                    relay.quits
                }
            }
            PresenceChange::Nick { .. } => relay.nick_changes,
            PresenceChange::Topic { .. } => relay.topics,
        };
        if !wanted {
            return Vec::new();
        }
        let irc_form = notice(&|n| unhighlight(&clean(n)));
        let plain_form = notice(&|n| clean(n));
        self.to_other_rooms(bi, &p.room, &irc_form, &plain_form, now)
    }

    /// Summaries of the splits and bursts that have settled by `now`.
    pub fn presence_tick(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        let mut settled = Vec::new();
        for (room, s) in &mut self.splits {
            s.silent_rejoin
                .retain(|_, left| now - *left <= REJOIN_SILENCE);
            if s.pending.is_empty() || s.last.is_some_and(|l| now - l < SUMMARY_AFTER) {
                continue;
            }
            let names = std::mem::take(&mut s.pending);
            let split = std::mem::replace(&mut s.split, false);
            settled.push((room.clone(), names, split));
        }
        settled.sort();
        let mut out = Vec::new();
        for (room, names, split) in settled {
            let Some(&bi) = self.by_room.get(&room) else {
                continue;
            };
            let irc_form = summary(&names, split, |n| unhighlight(&clean(n)));
            let plain_form = summary(&names, split, clean);
            out.extend(self.to_other_rooms(bi, &room, &irc_form, &plain_form, now));
        }
        out
    }

    fn update_members(&mut self, p: &Presence) {
        let members = self.members.entry(p.room.clone()).or_default();
        match &p.what {
            PresenceChange::Join => {
                members.insert(p.nick.to_lowercase());
            }
            PresenceChange::Part { .. } | PresenceChange::Quit { .. } => {
                members.remove(&p.nick.to_lowercase());
            }
            PresenceChange::Kick { .. } => {
                // The kicked one is `nick`.
                members.remove(&p.nick.to_lowercase());
            }
            PresenceChange::Nick { new } => {
                members.remove(&p.nick.to_lowercase());
                members.insert(new.to_lowercase());
            }
            PresenceChange::Topic { .. } => {}
        }
    }

    /// Who the bridge thinks is in a room (lower-cased), for tests and diagnostics.
    pub fn members_of(&self, room: &RoomRef) -> Vec<String> {
        self.members
            .get(room)
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A bot notice for every other room of bridge `bi`: nicks unhighlighted on IRC.
    fn to_other_rooms(
        &self,
        bi: usize,
        from: &RoomRef,
        irc_form: &str,
        plain_form: &str,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let spec = &self.settings.bridges[bi];
        spec.rooms
            .iter()
            .filter(|r| *r != from)
            .map(|dest| {
                let text = match self.settings.sides.get(&dest.network) {
                    Some(SideKind::Matrix) => plain_form,
                    _ => irc_form,
                };
                bridged(
                    spec,
                    dest,
                    text.to_owned(),
                    None,
                    Vec::new(),
                    SendKind::Reply,
                    now,
                )
            })
            .collect()
    }
}

fn reason_suffix(reason: &Option<String>) -> String {
    match reason.as_deref().map(clean) {
        Some(r) if !r.is_empty() => format!(" ({r})"),
        _ => String::new(),
    }
}

/// One line, without formatting or anything IRC would read as a line end.
fn clean(s: &str) -> String {
    let plain = format::strip_irc_formatting(s);
    irc_text::clean(&plain.replace(['\r', '\n'], " "))
}

fn summary(names: &[String], split: bool, form: impl Fn(&str) -> String) -> String {
    let n = names.len();
    let listed: Vec<String> = names.iter().take(SUMMARY_NAMES).map(|s| form(s)).collect();
    let more = match n.saturating_sub(SUMMARY_NAMES) {
        0 => String::new(),
        m => format!(" and {m} more"),
    };
    let who = if n == 1 { "person" } else { "people" };
    let what = if split { "netsplit: " } else { "" };
    format!("* {what}{n} {who} quit ({}{more})", listed.join(", "))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use chrono::TimeZone as _;

    use super::*;
    use crate::core::bridge::{BridgeSettings, BridgeSpec};

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap() + TimeDelta::seconds(secs)
    }

    fn irc() -> RoomRef {
        RoomRef::new("libera", "#sig")
    }
    fn mx() -> RoomRef {
        RoomRef::new("fedora", "!room:example.org")
    }

    fn bridges(presence: PresenceRelay) -> Bridges {
        let sides: BTreeMap<String, SideKind> = [
            (
                "libera".to_owned(),
                SideKind::Irc {
                    nick_len: 9,
                    user_len: 10,
                },
            ),
            ("fedora".to_owned(), SideKind::Matrix),
        ]
        .into_iter()
        .collect();
        Bridges::new(
            BridgeSettings {
                bridges: vec![BridgeSpec {
                    matrix: Default::default(),
                    name: "sig".into(),
                    rooms: vec![irc(), mx()],
                    max_lines: 3,
                    ignore_nicks: vec!["otherbot".into()],
                    ignore_users: vec![],
                    ignore_regex: vec![],
                    staleness: Duration::from_secs(600),
                    max_mentions: 3,
                    presence,
                }],
                sides,
                public_url: None,
            },
            1,
        )
    }

    fn all() -> PresenceRelay {
        PresenceRelay {
            join_part: true,
            quits: true,
            nick_changes: true,
            topics: true,
        }
    }

    fn ev(nick: &str, what: PresenceChange) -> Presence {
        Presence {
            room: irc(),
            nick: nick.into(),
            what,
        }
    }

    fn quit(nick: &str, reason: &str) -> Presence {
        ev(
            nick,
            PresenceChange::Quit {
                reason: Some(reason.into()),
            },
        )
    }

    /// What the Matrix room was told.
    fn told(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Bridged(b) if b.room == mx() => {
                    assert_eq!(b.kind, SendKind::Reply, "a bot notice, not a relayed line");
                    Some(b.text.clone())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn nothing_is_relayed_by_default_but_members_are_tracked() {
        let mut b = bridges(PresenceRelay::default());
        b.set_members(&irc(), ["Alice".to_owned(), "bob".to_owned()]);
        let changes = [
            ev("carol", PresenceChange::Join),
            ev("bob", PresenceChange::Part { reason: None }),
            ev("Alice", PresenceChange::Nick { new: "al".into() }),
            quit("carol", "Client Quit"),
            ev(
                "al",
                PresenceChange::Topic {
                    text: "new topic".into(),
                },
            ),
        ];
        for c in changes {
            assert!(b.presence(&c, t(0)).is_empty(), "{c:?}");
        }
        assert_eq!(b.members_of(&irc()), ["al"]);
        assert!(b.presence_tick(t(60)).is_empty());
    }

    #[test]
    fn each_kind_reads_naturally_and_nicks_are_not_highlighted_on_irc() {
        let mut b = bridges(all());
        let cases = [
            (ev("alice", PresenceChange::Join), "* alice joined #sig"),
            (
                ev(
                    "alice",
                    PresenceChange::Part {
                        reason: Some("lunch\r\nQUIT".into()),
                    },
                ),
                "* alice left #sig (lunch QUIT)",
            ),
            (
                ev(
                    "bob",
                    PresenceChange::Kick {
                        by: "op".into(),
                        reason: None,
                    },
                ),
                "* bob was kicked from #sig by op",
            ),
            (quit("carol", "Ping timeout"), "* carol quit (Ping timeout)"),
            (
                ev(
                    "dave",
                    PresenceChange::Nick {
                        new: "dave2".into(),
                    },
                ),
                "* dave is now known as dave2",
            ),
            (
                ev(
                    "op",
                    PresenceChange::Topic {
                        text: "\x02Meeting\x02 at 15:00".into(),
                    },
                ),
                "* op set the topic of #sig: Meeting at 15:00",
            ),
        ];
        for (i, (change, want)) in cases.into_iter().enumerate() {
            // Far apart, so that quits are no burst.
            let got = b.presence(&change, t(i as i64 * 60));
            assert_eq!(told(&got), [want]);
        }
        // From Matrix to IRC, a nick gets a zero-width space.
        let mut b = bridges(all());
        let got = b.presence(
            &Presence {
                room: mx(),
                nick: "alice".into(),
                what: PresenceChange::Join,
            },
            t(0),
        );
        let Action::Bridged(line) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(line.room, irc());
        assert_eq!(line.text, "* a\u{200B}lice joined !room:example.org");
    }

    #[test]
    fn other_bots_and_rooms_outside_bridges_are_not_announced() {
        let mut b = bridges(all());
        assert!(
            b.presence(&ev("OtherBot", PresenceChange::Join), t(0))
                .is_empty()
        );
        let elsewhere = Presence {
            room: RoomRef::new("libera", "#elsewhere"),
            nick: "x".into(),
            what: PresenceChange::Join,
        };
        assert!(b.presence(&elsewhere, t(0)).is_empty());
    }

    #[test]
    fn netsplit_reasons_look_like_two_server_names() {
        assert!(is_netsplit_reason("*.net *.split"));
        assert!(is_netsplit_reason("hub.example.org leaf.example.org"));
        assert!(!is_netsplit_reason("Quit: bye"));
        assert!(!is_netsplit_reason("going to sleep"));
        assert!(!is_netsplit_reason("a.b a.b"));
        assert!(!is_netsplit_reason("see example.org and x.org"));
        assert!(!is_netsplit_reason("Ping timeout: 240 seconds"));
    }

    #[test]
    fn a_netsplit_is_one_summary_once_quiet_and_the_rejoins_are_silent() {
        let mut b = bridges(all());
        let nicks = ["a1", "a2", "a3", "a4", "a5", "a6", "a7"];
        b.set_members(&irc(), nicks.iter().map(|s| (*s).to_owned()));
        for (i, n) in nicks.iter().enumerate() {
            let got = b.presence(&quit(n, "*.net *.split"), t(i as i64 / 3));
            assert!(got.is_empty(), "{n}: {got:?}");
        }
        assert!(b.members_of(&irc()).is_empty());
        // Still splitting: nothing yet.
        assert!(b.presence_tick(t(3)).is_empty());
        let summary = b.presence_tick(t(5));
        assert_eq!(
            told(&summary),
            ["* netsplit: 7 people quit (a1, a2, a3, a4, a5 and 2 more)"]
        );
        assert_eq!(summary.len(), 1, "only the other room: {summary:?}");
        assert!(b.presence_tick(t(10)).is_empty(), "said once");
        // The split heals: nobody is announced, but they are members again.
        for n in nicks {
            assert!(b.presence(&ev(n, PresenceChange::Join), t(60)).is_empty());
        }
        assert_eq!(b.members_of(&irc()).len(), 7);
        // A later join of the same person is news again.
        let got = b.presence(&ev("a1", PresenceChange::Join), t(120));
        assert_eq!(told(&got), ["* a1 joined #sig"]);
    }

    #[test]
    fn a_burst_of_ordinary_quits_is_summed_up_after_the_first_few() {
        let mut b = bridges(all());
        let mut said = Vec::new();
        for (i, n) in ["q1", "q2", "q3", "q4", "q5"].iter().enumerate() {
            said.extend(told(&b.presence(&quit(n, "Ping timeout"), t(i as i64))));
        }
        assert_eq!(
            said,
            [
                "* q1 quit (Ping timeout)",
                "* q2 quit (Ping timeout)",
                "* q3 quit (Ping timeout)"
            ]
        );
        assert_eq!(told(&b.presence_tick(t(8))), ["* 2 people quit (q4, q5)"]);
    }

    #[test]
    fn a_rejoin_long_after_a_split_is_announced() {
        let mut b = bridges(all());
        b.presence(&quit("z", "irc1.example.org irc2.example.org"), t(0));
        b.presence_tick(t(10));
        let got = b.presence(&ev("z", PresenceChange::Join), t(0) + REJOIN_SILENCE * 2);
        assert_eq!(told(&got), ["* z joined #sig"]);
    }
}
