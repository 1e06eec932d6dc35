//! Matrix timeline events (as JSON) to core events, and back for what the bot sends.
//!
//! Pure functions over `serde_json::Value`: the same code reads plain and decrypted events,
//! and every case is unit-tested from literal JSON.

use chrono::{DateTime, TimeZone as _, Utc};
use serde_json::Value;

use crate::core::{
    Activity, Event, IncomingMessage, Media, MediaKind, MessageKind, Principal, RichMessage,
    RoomActivity, RoomRef, Sender,
};

/// The only `format` of `formatted_body` the spec defines.
const HTML_FORMAT: &str = "org.matrix.custom.html";

/// The facts about a timeline event the adapter needs before converting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub event_id: &'a str,
    pub sender: &'a str,
    pub event_type: &'a str,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Reads the envelope of an event; `None` for events without one (never in a timeline).
pub fn envelope(ev: &Value) -> Option<Envelope<'_>> {
    Some(Envelope {
        event_id: ev.get("event_id")?.as_str()?,
        sender: ev.get("sender")?.as_str()?,
        event_type: ev.get("type")?.as_str()?,
        sent_at: ev
            .get("origin_server_ts")
            .and_then(Value::as_i64)
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
    })
}

/// The name a Matrix user goes by in the bot's rooms (meeting logs and minutes, command
/// replies): the display name, else the user ID's local part; followed by the user ID,
/// `Alice (@alice:example.org)`, when another member of the room uses the same name, so that
/// two people never count as one attendee. `ambiguous` is the SDK's
/// verdict from the room's member list.
pub fn sender_name(user_id: &str, display_name: Option<&str>, ambiguous: bool) -> String {
    let localpart = || {
        user_id
            .trim_start_matches('@')
            .split(':')
            .next()
            .unwrap_or(user_id)
    };
    let name = display_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(localpart);
    if ambiguous && name != user_id {
        format!("{name} ({user_id})")
    } else {
        name.to_owned()
    }
}

/// Whether events of this type may become core events (others are not worth looking at).
pub fn is_wanted(event_type: &str) -> bool {
    matches!(
        event_type,
        "m.room.message" | "m.reaction" | "m.room.redaction"
    )
}

/// Which events of one room's timeline in one sync the core should see.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Indexes into the timeline, oldest first.
    pub handle: Vec<usize>,
    /// Events older than the catch-up window, skipped.
    pub too_old: usize,
    /// Indexes of events that stayed encrypted (no key).
    pub undecryptable: Vec<usize>,
}

/// Selects from a timeline (oldest first): after the bot's own join when the timeline holds
/// it (what precedes is history from before the bot was there), never the bot's own events,
/// nothing sent before `cutoff`, and only event types the core uses.
pub fn select(timeline: &[Value], own: &str, cutoff: DateTime<Utc>) -> Selection {
    let start = timeline
        .iter()
        .rposition(|v| is_own_join(v, own))
        .map_or(0, |i| i + 1);
    let mut sel = Selection::default();
    for (i, value) in timeline.iter().enumerate().skip(start) {
        let Some(env) = envelope(value) else {
            continue;
        };
        if env.sender == own {
            continue;
        }
        if env.sent_at.is_some_and(|t| t < cutoff) {
            sel.too_old += 1;
        } else if env.event_type == "m.room.encrypted" {
            sel.undecryptable.push(i);
        } else if is_wanted(env.event_type) {
            sel.handle.push(i);
        }
    }
    sel
}

/// Whether `ev` is `user_id` joining the room (not a profile change while joined).
pub fn is_own_join(ev: &Value, user_id: &str) -> bool {
    ev["type"] == "m.room.member"
        && ev["state_key"] == user_id
        && ev["content"]["membership"] == "join"
        && ev["unsigned"]["prev_content"]["membership"] != "join"
}

/// The sender of the invitation for `user_id` among an invited room's stripped state.
pub fn inviter<'a>(
    stripped_state: impl IntoIterator<Item = &'a Value>,
    user_id: &str,
) -> Option<String> {
    stripped_state
        .into_iter()
        .find(|ev| {
            ev["type"] == "m.room.member"
                && ev["state_key"] == user_id
                && ev["content"]["membership"] == "invite"
        })
        .and_then(|ev| ev["sender"].as_str().map(str::to_owned))
}

/// Whether an invitation from `sender` is accepted: `allowed` holds user IDs
/// (`@ngompa:fedora.im`) and server names (`fedoraproject.org`).
pub fn invite_allowed(allowed: &[String], sender: &str) -> bool {
    let server = sender.split_once(':').map(|(_, s)| s);
    allowed.iter().any(|entry| {
        let entry = entry.trim();
        if entry.starts_with('@') {
            entry == sender
        } else {
            server == Some(entry.trim_start_matches(':'))
        }
    })
}

/// Converts one timeline event into a core event. `nick` is the sender's display name;
/// `encrypted` says whether the room is end-to-end encrypted (then every message is a
/// [`RichMessage`], which carries that). Returns `None` for events the core has no use for
/// (state, redacted content, unknown).
pub fn to_core_event(ev: &Value, room: &RoomRef, nick: &str, encrypted: bool) -> Option<Event> {
    let env = envelope(ev)?;
    let sender = Sender {
        nick: nick.to_owned(),
        principal: Some(Principal::new(&room.network, env.sender)),
        mask: None,
    };
    let content = ev.get("content")?;
    let activity = |what| {
        Some(Event::Activity(RoomActivity {
            room: room.clone(),
            sender: sender.clone(),
            id: Some(env.event_id.to_owned()),
            sent_at: env.sent_at,
            what,
            encrypted,
        }))
    };
    match env.event_type {
        "m.room.message" => {}
        "m.reaction" => return activity(reaction(content)?),
        "m.room.redaction" => return activity(redaction(ev, content)?),
        _ => return None,
    }
    if content["m.relates_to"]["rel_type"] == "m.replace" {
        return activity(edit(content)?);
    }
    let body = content["body"].as_str()?;
    if let Some(kind) = media_kind(content["msgtype"].as_str()?) {
        return activity(media(kind, body, content)?);
    }
    Some(message_event(room, sender, &env, content, body, encrypted))
}

/// An annotation (`m.reaction`); `None` for other relations.
fn reaction(content: &Value) -> Option<Activity> {
    let rel = &content["m.relates_to"];
    if rel["rel_type"] != "m.annotation" {
        return None;
    }
    Some(Activity::Reaction {
        to: rel["event_id"].as_str()?.to_owned(),
        key: rel["key"].as_str()?.to_owned(),
    })
}

fn redaction(ev: &Value, content: &Value) -> Option<Activity> {
    // Room versions up to 10 put `redacts` at the top, 11 in the content.
    let of = content["redacts"].as_str().or(ev["redacts"].as_str())?;
    Some(Activity::Redaction {
        of: of.to_owned(),
        reason: content["reason"].as_str().map(str::to_owned),
    })
}

/// An `m.replace` edit: its new content, not the `* `-prefixed fallback.
fn edit(content: &Value) -> Option<Activity> {
    let new = &content["m.new_content"];
    Some(Activity::Edit {
        of: content["m.relates_to"]["event_id"].as_str()?.to_owned(),
        text: new["body"].as_str()?.to_owned(),
        html: html_of(new),
    })
}

fn media_kind(msgtype: &str) -> Option<MediaKind> {
    match msgtype {
        "m.image" => Some(MediaKind::Image),
        "m.file" => Some(MediaKind::File),
        "m.video" => Some(MediaKind::Video),
        "m.audio" => Some(MediaKind::Audio),
        _ => None,
    }
}

/// A file message: a plain `url`, or the `file` of an encrypted attachment.
fn media(kind: MediaKind, body: &str, content: &Value) -> Option<Activity> {
    let (url, encrypted) = match content["url"].as_str() {
        Some(url) => (url, false),
        None => (content["file"]["url"].as_str()?, true),
    };
    Some(Activity::Media(Media {
        kind,
        body: body.to_owned(),
        url: url.to_owned(),
        mimetype: content["info"]["mimetype"].as_str().map(str::to_owned),
        size: content["info"]["size"].as_u64(),
        encrypted,
    }))
}

/// A text, notice or emote; one with HTML, a reply or from an encrypted room becomes a
/// [`RichMessage`].
fn message_event(
    room: &RoomRef,
    sender: Sender,
    env: &Envelope<'_>,
    content: &Value,
    body: &str,
    encrypted: bool,
) -> Event {
    let kind = match content["msgtype"].as_str() {
        Some("m.notice") => MessageKind::Notice,
        Some("m.emote") => MessageKind::Emote,
        // m.text, and unknown types whose `body` is the readable fallback the spec requires.
        _ => MessageKind::Text,
    };
    let reply_to = content["m.relates_to"]["m.in_reply_to"]["event_id"]
        .as_str()
        .map(str::to_owned);
    let mut html = html_of(content);
    let text = if reply_to.is_some() {
        html = html.map(|h| strip_reply_html(&h));
        strip_reply_fallback(body)
    } else {
        body.to_owned()
    };
    let message = IncomingMessage {
        room: room.clone(),
        sender,
        kind,
        text,
        id: Some(env.event_id.to_owned()),
        sent_at: env.sent_at,
    };
    if html.is_none() && reply_to.is_none() && !encrypted {
        Event::Message(message)
    } else {
        Event::RichMessage(RichMessage {
            message,
            html,
            reply_to,
            encrypted,
        })
    }
}

fn html_of(content: &Value) -> Option<String> {
    (content["format"] == HTML_FORMAT)
        .then(|| content["formatted_body"].as_str().map(str::to_owned))
        .flatten()
}

/// Removes the quoted fallback (`> <@a:b> text` lines, then one empty line) that older
/// clients put at the start of a reply's body.
pub fn strip_reply_fallback(body: &str) -> String {
    if !body.starts_with("> ") {
        return body.to_owned();
    }
    let mut lines = body.lines().peekable();
    while lines.next_if(|l| l.starts_with('>')).is_some() {}
    lines.next_if(|l| l.is_empty());
    lines.collect::<Vec<_>>().join("\n")
}

/// Removes the `<mx-reply>...</mx-reply>` fallback from a reply's HTML.
pub fn strip_reply_html(html: &str) -> String {
    match (html.find("<mx-reply>"), html.find("</mx-reply>")) {
        (Some(start), Some(end)) if end > start => {
            format!("{}{}", &html[..start], &html[end + "</mx-reply>".len()..])
        }
        _ => html.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn room() -> RoomRef {
        RoomRef::new("fedora", "!abc:example.org")
    }

    #[test]
    fn two_members_sharing_a_display_name_are_told_apart_by_user_id() {
        let one = sender_name("@alice:example.org", Some("Alice"), true);
        let two = sender_name("@alice2:other.net", Some("Alice"), true);
        assert_eq!(one, "Alice (@alice:example.org)");
        assert_eq!(two, "Alice (@alice2:other.net)");
        assert_ne!(one, two);
    }

    #[test]
    fn a_unique_display_name_is_used_alone_and_a_missing_one_is_the_local_part() {
        assert_eq!(sender_name("@bob:example.org", Some("Bob"), false), "Bob");
        assert_eq!(sender_name("@bob:example.org", None, false), "bob");
        assert_eq!(sender_name("@bob:example.org", Some("  "), false), "bob");
        // Someone whose display name is another member's local part.
        assert_eq!(
            sender_name("@bob:example.org", None, true),
            "bob (@bob:example.org)"
        );
    }

    fn event(event_type: &str, content: Value) -> Value {
        json!({
            "type": event_type,
            "event_id": "$ev1",
            "sender": "@alice:example.org",
            "origin_server_ts": 1_700_000_000_000_i64,
            "content": content,
        })
    }

    fn alice() -> Sender {
        Sender {
            nick: "Alice".into(),
            principal: Some(Principal::new("fedora", "@alice:example.org")),
            mask: None,
        }
    }

    fn activity(ev: Value) -> Activity {
        match to_core_event(&ev, &room(), "Alice", false) {
            Some(Event::Activity(a)) => {
                assert_eq!(a.sender, alice());
                assert_eq!(a.id.as_deref(), Some("$ev1"));
                a.what
            }
            other => panic!("not an activity: {other:?}"),
        }
    }

    #[test]
    fn plain_text_notice_and_emote_are_messages_with_the_user_id_as_principal() {
        for (msgtype, kind) in [
            ("m.text", MessageKind::Text),
            ("m.notice", MessageKind::Notice),
            ("m.emote", MessageKind::Emote),
        ] {
            let ev = event(
                "m.room.message",
                json!({"msgtype": msgtype, "body": "!ping"}),
            );
            let Some(Event::Message(m)) = to_core_event(&ev, &room(), "Alice", false) else {
                panic!("not a message");
            };
            assert_eq!(m.kind, kind);
            assert_eq!(m.text, "!ping");
            assert_eq!(m.sender, alice());
            assert_eq!(
                m.sender.principal.unwrap().to_string(),
                "fedora:@alice:example.org"
            );
            assert_eq!(m.id.as_deref(), Some("$ev1"));
            assert_eq!(m.sent_at.unwrap().timestamp(), 1_700_000_000);
        }
    }

    #[test]
    fn messages_of_encrypted_rooms_say_so() {
        let ev = event("m.room.message", json!({"msgtype": "m.text", "body": "hi"}));
        let Some(Event::RichMessage(r)) = to_core_event(&ev, &room(), "Alice", true) else {
            panic!("not rich");
        };
        assert!(r.encrypted);
        assert_eq!(r.message.text, "hi");
        let ev = event(
            "m.reaction",
            json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$o", "key": "x"}}),
        );
        let Some(Event::Activity(a)) = to_core_event(&ev, &room(), "Alice", true) else {
            panic!("not an activity");
        };
        assert!(a.encrypted);
    }

    #[test]
    fn formatted_replies_lose_their_fallback() {
        let ev = event(
            "m.room.message",
            json!({
                "msgtype": "m.text",
                "body": "> <@bob:example.org> hello\n> there\n\n!ping",
                "format": "org.matrix.custom.html",
                "formatted_body": "<mx-reply><blockquote>hello</blockquote></mx-reply><b>!ping</b>",
                "m.relates_to": {"m.in_reply_to": {"event_id": "$orig"}},
            }),
        );
        let Some(Event::RichMessage(r)) = to_core_event(&ev, &room(), "Alice", false) else {
            panic!("not rich");
        };
        assert_eq!(r.message.text, "!ping");
        assert_eq!(r.html.as_deref(), Some("<b>!ping</b>"));
        assert_eq!(r.reply_to.as_deref(), Some("$orig"));
    }

    #[test]
    fn replies_without_fallback_keep_their_body() {
        let ev = event(
            "m.room.message",
            json!({"msgtype": "m.text", "body": "> quoted on purpose",
                   "m.relates_to": {"m.in_reply_to": {"event_id": "$o"}}}),
        );
        let Some(Event::RichMessage(r)) = to_core_event(&ev, &room(), "Alice", false) else {
            panic!("not rich");
        };
        assert_eq!(r.message.text, "");
        let ev = event(
            "m.room.message",
            json!({"msgtype": "m.text", "body": "just text",
                   "m.relates_to": {"m.in_reply_to": {"event_id": "$o"}}}),
        );
        let Some(Event::RichMessage(r)) = to_core_event(&ev, &room(), "Alice", false) else {
            panic!("not rich");
        };
        assert_eq!(r.message.text, "just text");
    }

    #[test]
    fn edits_reactions_and_redactions_are_activities() {
        let edit = event(
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "* fixed",
                "m.new_content": {"msgtype": "m.text", "body": "fixed",
                                  "format": "org.matrix.custom.html", "formatted_body": "<i>fixed</i>"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"},
            }),
        );
        assert_eq!(
            activity(edit),
            Activity::Edit {
                of: "$orig".into(),
                text: "fixed".into(),
                html: Some("<i>fixed</i>".into())
            }
        );
        let reaction = event(
            "m.reaction",
            json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$orig", "key": "👍"}}),
        );
        assert_eq!(
            activity(reaction),
            Activity::Reaction {
                to: "$orig".into(),
                key: "👍".into()
            }
        );
        let mut old = event("m.room.redaction", json!({"reason": "spam"}));
        old["redacts"] = json!("$orig");
        let new = event("m.room.redaction", json!({"redacts": "$orig"}));
        assert_eq!(
            activity(old),
            Activity::Redaction {
                of: "$orig".into(),
                reason: Some("spam".into())
            }
        );
        assert_eq!(
            activity(new),
            Activity::Redaction {
                of: "$orig".into(),
                reason: None
            }
        );
    }

    #[test]
    fn media_plain_and_encrypted() {
        let img = event(
            "m.room.message",
            json!({"msgtype": "m.image", "body": "cat.png", "url": "mxc://example.org/cat",
                   "info": {"mimetype": "image/png", "size": 1234}}),
        );
        assert_eq!(
            activity(img),
            Activity::Media(Media {
                kind: MediaKind::Image,
                body: "cat.png".into(),
                url: "mxc://example.org/cat".into(),
                mimetype: Some("image/png".into()),
                size: Some(1234),
                encrypted: false,
            })
        );
        for (msgtype, kind) in [
            ("m.file", MediaKind::File),
            ("m.video", MediaKind::Video),
            ("m.audio", MediaKind::Audio),
        ] {
            let ev = event(
                "m.room.message",
                json!({"msgtype": msgtype, "body": "x", "file": {"url": "mxc://e/x"}}),
            );
            let Activity::Media(m) = activity(ev) else {
                panic!("not media")
            };
            assert_eq!(
                (m.kind, m.encrypted, m.url.as_str()),
                (kind, true, "mxc://e/x")
            );
        }
    }

    #[test]
    fn state_and_redacted_events_are_ignored() {
        let member = event("m.room.member", json!({"membership": "join"}));
        assert_eq!(to_core_event(&member, &room(), "Alice", false), None);
        let redacted = event("m.room.message", json!({}));
        assert_eq!(to_core_event(&redacted, &room(), "Alice", false), None);
    }

    #[test]
    fn selection_skips_history_own_events_and_what_is_too_old() {
        let at = |secs: i64, sender: &str, event_type: &str| {
            json!({
                "type": event_type, "event_id": format!("${secs}"), "sender": sender,
                "origin_server_ts": secs * 1000, "state_key": sender,
                "content": {"msgtype": "m.text", "body": "x", "membership": "join"},
            })
        };
        let cutoff = Utc.timestamp_opt(100, 0).unwrap();
        let timeline = [
            at(150, "@a:e", "m.room.message"), // before the bot joined: history
            at(151, "@bot:e", "m.room.member"), // the bot joins
            at(90, "@a:e", "m.room.message"),  // too old
            at(152, "@bot:e", "m.room.message"), // the bot's own
            at(153, "@a:e", "m.room.encrypted"), // no key
            at(154, "@a:e", "m.room.topic"),   // not for the core
            at(155, "@a:e", "m.reaction"),
            at(156, "@a:e", "m.room.message"),
        ];
        assert_eq!(
            select(&timeline, "@bot:e", cutoff),
            Selection {
                handle: vec![6, 7],
                too_old: 1,
                undecryptable: vec![4]
            }
        );
        // Without the join in this sync, the whole timeline is new.
        assert_eq!(select(&timeline[2..], "@bot:e", cutoff).handle, vec![4, 5]);
        assert_eq!(select(&timeline[..1], "@bot:e", cutoff).handle, vec![0]);
    }

    #[test]
    fn own_join_is_told_from_a_profile_change() {
        let mut join = event("m.room.member", json!({"membership": "join"}));
        join["state_key"] = json!("@bot:example.org");
        assert!(is_own_join(&join, "@bot:example.org"));
        assert!(!is_own_join(&join, "@other:example.org"));
        join["unsigned"] = json!({"prev_content": {"membership": "join"}});
        assert!(!is_own_join(&join, "@bot:example.org"));
    }

    #[test]
    fn invites_are_allowed_by_user_or_server() {
        let allowed = vec![
            "@ngompa:fedora.im".to_owned(),
            "fedoraproject.org".to_owned(),
        ];
        assert!(invite_allowed(&allowed, "@ngompa:fedora.im"));
        assert!(invite_allowed(&allowed, "@anyone:fedoraproject.org"));
        assert!(!invite_allowed(&allowed, "@mallory:fedora.im"));
        assert!(!invite_allowed(&allowed, "@x:evil.fedoraproject.org"));
        assert!(!invite_allowed(&[], "@ngompa:fedora.im"));
        let state = [json!({
            "type": "m.room.member", "state_key": "@bot:e", "sender": "@ngompa:fedora.im",
            "content": {"membership": "invite"}
        })];
        assert_eq!(
            inviter(&state, "@bot:e").as_deref(),
            Some("@ngompa:fedora.im")
        );
        assert_eq!(inviter(&state, "@other:e"), None);
    }
}
