//! What happens to Matrix messages (edits, reactions, removals, files), made readable in the
//! bridge's other rooms.

use chrono::{DateTime, Utc};

use super::content::Content;
use super::lines::{human_size, snippet, substitution};
use super::names::{clean_display_name, shorten};
use super::{Bridges, EditMode, MatrixRelay, Remembered};
use crate::core::action::Action;
use crate::core::event::{Activity, IncomingMessage, Media, MessageKind, RoomActivity, RoomRef};

impl Bridges {
    /// Makes what happened to a Matrix message readable in the bridge's other rooms:
    /// edits, replies' targets, reactions, removals and shared files.
    pub fn relay_activity(&mut self, act: &RoomActivity, now: DateTime<Utc>) -> Vec<Action> {
        let Some(&bi) = self.by_room.get(&act.room) else {
            return Vec::new();
        };
        let spec = self.settings.bridges[bi].clone();
        if act.encrypted && !spec.matrix.encrypted {
            return Vec::new();
        }
        let as_message = as_message(act);
        if Self::ignored(&spec, &as_message) {
            return Vec::new();
        }
        let mut actions = Vec::new();
        let name = self.shown_name(bi, &as_message);
        let room = &act.room;
        let said = match &act.what {
            Activity::Edit { of, text, html } => {
                self.edit(&spec.matrix, room, of, text, html.as_deref(), &mut actions)
            }
            Activity::Reaction { to, key } => self.reaction(&spec.matrix, room, to, key),
            Activity::Redaction { of, .. } => self.redaction(&spec.matrix, room, of, &name),
            Activity::Media(m) => Some(self.media(act, m, &name, now, &mut actions)),
        };
        let Some((content, emote)) = said else {
            return Vec::new();
        };
        self.deliver(bi, room, &name, &content, emote, now, &mut actions);
        actions
    }

    /// An edit as `s/old/new/` or `* new text` (per the bridge's edit mode), remembering the
    /// new text for later edits; `None` when edits are not relayed.
    fn edit(
        &mut self,
        relay: &MatrixRelay,
        room: &RoomRef,
        of: &str,
        text: &str,
        html: Option<&str>,
        actions: &mut Vec<Action>,
    ) -> Option<(Content, bool)> {
        if relay.edits == EditMode::Ignore {
            return None;
        }
        let new = Content::from_matrix(text, html, &mut |code: &str| self.code_link(code, actions));
        let memory = self.recent.entry(room.clone()).or_default();
        let old = memory.items.iter_mut().rev().find(|r| r.id == *of);
        let diff = match (relay.edits, &old) {
            (EditMode::Diff, Some(old)) => substitution(&old.plain, &new.plain),
            _ => None,
        };
        if let Some(old) = old {
            old.plain = new.plain.clone();
        }
        Some(match diff {
            Some(s) => (Content::plain(&s), false),
            None => (new.wrapped("* ", ""), false),
        })
    }

    /// `* nick reacted 👍 to "snippet"`; `None` when reactions are not relayed.
    fn reaction(
        &self,
        relay: &MatrixRelay,
        room: &RoomRef,
        to: &str,
        key: &str,
    ) -> Option<(Content, bool)> {
        if !relay.reactions {
            return None;
        }
        let key = shorten(&clean_display_name(key), 16);
        let text = match self.recall(room, to) {
            Some(r) => format!("reacted {key} to \"{}\"", snippet(&r.plain)),
            None => format!("reacted {key}"),
        };
        Some((Content::plain(&text), true))
    }

    /// `* nick deleted "snippet"`, only for messages the other side saw.
    fn redaction(
        &self,
        relay: &MatrixRelay,
        room: &RoomRef,
        of: &str,
        name: &str,
    ) -> Option<(Content, bool)> {
        if !relay.redactions {
            return None;
        }
        let r = self.recall(room, of)?;
        let text = if r.name == name {
            format!("deleted \"{}\"", snippet(&r.plain))
        } else {
            format!("deleted a message of {}: \"{}\"", r.name, snippet(&r.plain))
        };
        Some((Content::plain(&text), true))
    }

    /// `* nick sent cat.png (120 KB): URL`, remembered so that replies to it name the sender.
    fn media(
        &mut self,
        act: &RoomActivity,
        m: &Media,
        name: &str,
        now: DateTime<Utc>,
        actions: &mut Vec<Action>,
    ) -> (Content, bool) {
        let text = self.media_line(&act.room.network, m, actions);
        if let Some(id) = &act.id {
            self.recent
                .entry(act.room.clone())
                .or_default()
                .remember(id, name, &m.body, now);
        }
        (Content::plain(&text), true)
    }

    /// Remembers a message relayed into a Matrix room under the ID it got there (`text` is
    /// its body, `nick: text` or `* nick text`), so that replies and reactions to it name
    /// who said it.
    pub fn remember_delivered(&mut self, room: &RoomRef, id: &str, text: &str, now: DateTime<Utc>) {
        if !self.by_room.contains_key(room) {
            return;
        }
        let said = match text.strip_prefix("* ") {
            Some(emote) => emote.split_once(' '),
            None => text.split_once(": "),
        };
        if let Some((name, said)) = said {
            self.recent
                .entry(room.clone())
                .or_default()
                .remember(id, name, said, now);
        }
    }

    pub(super) fn recall(&self, room: &RoomRef, id: &str) -> Option<&Remembered> {
        self.recent.get(room)?.get(id)
    }

    /// `sent cat.png (120 KB): URL`, the URL serving the file from the bot's web site.
    fn media_line(&mut self, network: &str, m: &Media, actions: &mut Vec<Action>) -> String {
        let file = shorten(&clean_display_name(&m.body), 80);
        let file = if file.is_empty() {
            "a file".to_owned()
        } else {
            file
        };
        let described = match m.size {
            Some(size) => format!("{file} ({})", human_size(size)),
            None => file,
        };
        if m.encrypted {
            // Serving it would mean decrypting it for anyone who has the link.
            return format!("sent {described} (end-to-end encrypted, not shown here)");
        }
        if !m.url.starts_with("mxc://") {
            return format!("sent {described}");
        }
        let Some(base) = self.settings.public_url.clone() else {
            return format!("sent {described}");
        };
        let id = self.new_id();
        actions.push(Action::MediaLink {
            id: id.clone(),
            network: network.to_owned(),
            uri: m.url.clone(),
            name: m.body.clone(),
            mimetype: m.mimetype.clone(),
        });
        format!(
            "sent {described}: {}/media/{id}",
            base.trim_end_matches('/')
        )
    }
}

/// An activity as the message it carries, for the ignore rules and the sender's name.
fn as_message(act: &RoomActivity) -> IncomingMessage {
    IncomingMessage {
        room: act.room.clone(),
        sender: act.sender.clone(),
        kind: MessageKind::Text,
        text: match &act.what {
            Activity::Edit { text, .. } => text.clone(),
            Activity::Media(m) => m.body.clone(),
            _ => String::new(),
        },
        id: act.id.clone(),
        sent_at: act.sent_at,
    }
}
