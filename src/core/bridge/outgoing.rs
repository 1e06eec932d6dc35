//! The bot's own words on IRC, whatever made them (command replies, meeting lines, relayed
//! MQTT events, a bridge's notices, answers copied across a bridge), shaped like the lines
//! the bridge relays for people: mentions defused and at most `max_lines` lines, the rest on
//! a paste. A channel's anti-spam bot cannot tell who made the bot speak.

use std::collections::HashMap;

use super::lines::{cut_lines, line_budget};
use super::{Bridges, SideKind};
use crate::core::action::{Action, SendKind};
use crate::core::event::RoomRef;
use crate::core::format::irc_text;

/// Lines one message of the bot may become in an IRC room outside any bridge (a bridge's
/// rooms use its own `max_lines`), the link line included.
pub const DEFAULT_MAX_LINES: usize = 3;
/// Members a line of the bot may mention in an IRC room outside any bridge before they are
/// defused (a bridge's rooms use its own `max_mentions`).
pub const DEFAULT_MAX_MENTIONS: usize = 5;

impl Bridges {
    /// The actions, with every text the bot sends to an IRC room defused and cut to
    /// `max_lines` (with the [`Action::Paste`] of the whole text before the action that
    /// links to it). Relayed lines of people come out of the bridge shaped already.
    pub fn shape_for_irc(&mut self, actions: Vec<Action>) -> Vec<Action> {
        if !self
            .settings
            .sides
            .values()
            .any(|s| matches!(s, SideKind::Irc { .. }))
        {
            return actions;
        }
        // One paste per text, however many IRC rooms get it.
        let mut pastes: HashMap<String, Option<String>> = HashMap::new();
        let mut out = Vec::with_capacity(actions.len());
        for mut action in actions {
            match &mut action {
                Action::Send { room, text, .. } => {
                    self.shape(room, text, &mut pastes, &mut out);
                }
                Action::Bridged(b) if b.kind == SendKind::Reply => {
                    self.shape(&b.room, &mut b.text, &mut pastes, &mut out);
                }
                Action::Relay(batch) => {
                    for m in &mut batch.messages {
                        self.shape(&m.room, &mut m.text, &mut pastes, &mut out);
                    }
                }
                _ => {}
            }
            out.push(action);
        }
        out
    }

    /// Shapes `text` in place when `room` is on IRC.
    fn shape(
        &mut self,
        room: &RoomRef,
        text: &mut String,
        pastes: &mut HashMap<String, Option<String>>,
        out: &mut Vec<Action>,
    ) {
        let side = match self.settings.sides.get(&room.network) {
            Some(side @ SideKind::Irc { .. }) => side.clone(),
            _ => return,
        };
        let (max_mentions, max_lines) = self
            .bridge_of(room)
            .map_or((DEFAULT_MAX_MENTIONS, DEFAULT_MAX_LINES), |b| {
                (b.max_mentions, b.max_lines)
            });
        let defused = self.defuse(room, text, max_mentions);
        let lines = irc_text::split_lines(&defused, line_budget(&side, &room.room));
        if lines.len() <= max_lines {
            *text = defused;
            return;
        }
        let url = match pastes.get(text.as_str()) {
            Some(url) => url.clone(),
            None => {
                let url = self.new_paste(text, out);
                pastes.insert(text.clone(), url.clone());
                url
            }
        };
        *text = cut_lines(lines, max_lines, url.as_deref(), "").join("\n");
    }
}
