//! Sending one message to every other room of its bridge, in each side's form.

use chrono::{DateTime, Utc};

use super::content::Content;
use super::lines::{cut_with_link, irc_lines, line_budget, matrix_message};
use super::{BridgeSpec, Bridges, SideKind, bridged};
use crate::core::action::{Action, SendKind};
use crate::core::event::RoomRef;
use crate::core::format;

/// One message as `name` says it, the same for every destination room.
struct Said<'a> {
    name: &'a str,
    content: &'a Content,
    emote: bool,
    now: DateTime<Utc>,
}

impl Bridges {
    /// Sends a message, as `name` says it, to every room of bridge `bi` but `source`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deliver(
        &mut self,
        bi: usize,
        source: &RoomRef,
        name: &str,
        content: &Content,
        emote: bool,
        now: DateTime<Utc>,
        actions: &mut Vec<Action>,
    ) {
        let spec = self.settings.bridges[bi].clone();
        let from_matrix = matches!(
            self.settings.sides.get(&source.network),
            Some(SideKind::Matrix)
        );
        let said = Said {
            name,
            content,
            emote,
            now,
        };
        // One paste serves every IRC room of the bridge: made at the first that needs it.
        let mut paste: Option<Option<String>> = None;
        for dest in spec.rooms.iter().filter(|r| *r != source) {
            let side = self
                .settings
                .sides
                .get(&dest.network)
                .cloned()
                .unwrap_or(SideKind::Console);
            match side {
                SideKind::Matrix => {
                    actions.push(self.matrix_copy(&spec, dest, &said, from_matrix));
                }
                SideKind::Irc { .. } | SideKind::Console => {
                    self.line_copies(&spec, dest, &side, &said, &mut paste, actions);
                }
            }
        }
    }

    /// The message for a Matrix room: bold name, HTML, and pills for the members it names
    /// (unless it comes from Matrix, where people mention each other with pills already).
    fn matrix_copy(
        &self,
        spec: &BridgeSpec,
        dest: &RoomRef,
        said: &Said<'_>,
        from_matrix: bool,
    ) -> Action {
        let content = said.content;
        let text_html = content
            .html
            .clone()
            .unwrap_or_else(|| format::text_to_html(&content.plain));
        let (text_html, mentions) = if from_matrix {
            (text_html, Vec::new())
        } else {
            self.pills(dest, &text_html, spec.max_mentions)
        };
        let (body, html) = matrix_message(said.name, &content.plain, &text_html, said.emote);
        bridged(
            spec,
            dest,
            body,
            Some(html),
            mentions,
            SendKind::Relay,
            said.now,
        )
    }

    /// The message as IRC (or console) lines: defused, split to the line budget, and past
    /// `max_lines` cut with a link to a paste of all of it.
    fn line_copies(
        &mut self,
        spec: &BridgeSpec,
        dest: &RoomRef,
        side: &SideKind,
        said: &Said<'_>,
        paste: &mut Option<Option<String>>,
        actions: &mut Vec<Action>,
    ) {
        let budget = line_budget(side, &dest.room);
        let text = self.defuse(dest, &said.content.irc, spec.max_mentions);
        let lines = irc_lines(said.name, &text, said.emote, budget);
        let lines = if lines.len() > spec.max_lines {
            let url = match paste {
                Some(u) => u.clone(),
                None => {
                    let u = self.new_paste(&said.content.plain, actions);
                    *paste = Some(u.clone());
                    u
                }
            };
            cut_with_link(said.name, lines, spec.max_lines, url.as_deref(), said.emote)
        } else {
            lines
        };
        for l in lines {
            actions.push(bridged(
                spec,
                dest,
                l,
                None,
                Vec::new(),
                SendKind::Relay,
                said.now,
            ));
        }
    }
}
