//! One-time confirmation codes: asking, confirming, cancelling, expiring.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::Rng as _;

use super::{CONFIRM_WINDOW, Call, CommandSpec, Declarative, PendingConfirm};
use crate::core::action::Action;
use crate::core::commands::{excerpt, shown_name};
use crate::core::event::IncomingMessage;

/// The tag of a confirmation prompt, so that it can be edited once settled.
fn prompt_tag(code: &str) -> String {
    format!("confirm:{code}")
}

/// Rewrites a confirmation prompt once it is settled, so the room does not show a live code
/// that no longer works (on networks with edits).
fn settle_prompt(p: &PendingConfirm, outcome: &str) -> Action {
    let args = p.call.args_text();
    Action::Edit {
        room: p.call.room.clone(),
        tag: prompt_tag(&p.code),
        text: format!(
            "{}: {}{}{args}: {outcome}",
            p.call.name(),
            p.spec.name,
            if args.is_empty() { "" } else { " " }
        ),
    }
}

impl Declarative {
    /// Holds an accepted call until its caller confirms it with the code this gives them;
    /// only an identified account can confirm.
    pub(super) fn ask_confirmation(
        &mut self,
        spec: Arc<CommandSpec>,
        call: Call,
        prefix: &str,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        if call.principal.is_none() {
            return vec![
                Action::reply(
                    &call.room,
                    format!(
                        "{}: {} needs confirmation, and only an identified account can confirm",
                        call.name(),
                        spec.name
                    ),
                ),
                self.audit(&spec, &call, now, "refused: no account".into(), None),
            ];
        }
        let code = self.new_code();
        let args = call.args_text();
        let out = vec![
            Action::tagged_reply(
                &call.room,
                format!(
                    "{}: about to run {}{}{args}; to go ahead say {prefix}confirm {code} within 2 minutes ({prefix}cancel drops it)",
                    call.name(),
                    spec.name,
                    if args.is_empty() { "" } else { " " },
                ),
                prompt_tag(&code),
            ),
            self.audit(&spec, &call, now, "awaiting confirmation".into(), None),
        ];
        self.confirmations.push(PendingConfirm {
            code,
            spec,
            call,
            expires: now + CONFIRM_WINDOW,
        });
        out
    }

    /// `confirm CODE`.
    pub fn confirm(
        &mut self,
        code: &str,
        msg: &IncomingMessage,
        prefix: &str,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let room = &msg.room;
        let nick = &shown_name(&msg.sender.nick);
        let code = code.trim().to_lowercase();
        if code.is_empty() {
            return vec![Action::reply(room, format!("usage: {prefix}confirm CODE"))];
        }
        let Some(i) = self.confirmations.iter().position(|p| p.code == code) else {
            return vec![Action::reply(
                room,
                format!(
                    "{nick}: no command is waiting for code {} (used, cancelled or never given)",
                    excerpt(&code)
                ),
            )];
        };
        let p = &self.confirmations[i];
        let asker = Call {
            room: room.clone(),
            nick: msg.sender.nick.clone(),
            principal: msg.sender.principal.clone(),
            args: p.call.args.clone(),
        };
        if now > p.expires {
            let p = self.confirmations.remove(i);
            let audit = self.audit(&p.spec, &asker, now, "refused: code expired".into(), None);
            return vec![
                Action::reply(
                    room,
                    format!("{nick}: code {code} has expired; run {} again", p.spec.name),
                ),
                audit,
            ];
        }
        if p.call.principal.is_none()
            || asker.principal != p.call.principal
            || asker.room != p.call.room
        {
            let spec = p.spec.clone();
            let audit = self.audit(
                &spec,
                &asker,
                now,
                "refused: someone else's code".into(),
                None,
            );
            return vec![
                Action::reply(
                    room,
                    format!("{nick}: code {code} was not given to you in this room"),
                ),
                audit,
            ];
        }
        let p = self.confirmations.remove(i);
        let mut out = vec![
            self.audit(&p.spec, &p.call, now, "confirmed".into(), None),
            settle_prompt(&p, &format!("confirmed by {nick}")),
        ];
        if let Some(id) = &msg.id {
            out.push(Action::React {
                room: room.clone(),
                to: id.clone(),
                key: "\u{2705}".into(),
            });
        }
        out.extend(self.start(p.spec, p.call));
        out
    }

    /// `cancel`: drops the caller's pending confirmations in this room.
    pub fn cancel(&mut self, msg: &IncomingMessage, now: DateTime<Utc>) -> Vec<Action> {
        let room = &msg.room;
        let nick = &shown_name(&msg.sender.nick);
        let who = msg.sender.principal.as_ref();
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmations)
            .into_iter()
            .partition(|p| {
                who.is_some() && p.call.principal.as_ref() == who && &p.call.room == room
            });
        self.confirmations = rest;
        if mine.is_empty() {
            return vec![Action::reply(
                room,
                format!("{nick}: nothing is waiting for your confirmation here"),
            )];
        }
        let names: Vec<String> = mine.iter().map(|p| p.spec.name.clone()).collect();
        let mut out = vec![Action::reply(
            room,
            format!("{nick}: cancelled {}", names.join(", ")),
        )];
        for p in &mine {
            out.push(self.audit(&p.spec, &p.call, now, "cancelled".into(), None));
            out.push(settle_prompt(p, "cancelled"));
        }
        out
    }

    /// Drops expired confirmations and cooldowns.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        let (expired, live): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmations)
            .into_iter()
            .partition(|p| now > p.expires);
        self.confirmations = live;
        self.cooldowns.retain(|_, cd| now < cd.until);
        self.allowances.prune(now);
        expired
            .iter()
            .flat_map(|p| {
                [
                    self.audit(&p.spec, &p.call, now, "expired unconfirmed".into(), None),
                    settle_prompt(p, "expired unconfirmed"),
                ]
            })
            .collect()
    }

    fn new_code(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        loop {
            let code: String = (0..6)
                .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            if !self.confirmations.iter().any(|p| p.code == code) {
                return code;
            }
        }
    }
}
