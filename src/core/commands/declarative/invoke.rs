//! Running a command: role, cooldown and argument checks before the request starts.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::{ArgSpec, Call, CommandSpec, Cooldown, Declarative, SECRET_CLOSE, SECRET_OPEN};
use crate::core::action::Action;
use crate::core::commands::acl::Roles;
use crate::core::commands::allowance::caller_key;
use crate::core::event::IncomingMessage;

impl Declarative {
    /// Someone ran a declarative command: the role, the cooldown, the arguments and, for
    /// commands that ask for it, the confirmation come before the request starts.
    pub fn invoke(
        &mut self,
        spec: Arc<CommandSpec>,
        raw_args: &str,
        msg: &IncomingMessage,
        roles: &Roles,
        prefix: &str,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let mut call = Call {
            room: msg.room.clone(),
            nick: msg.sender.nick.clone(),
            principal: msg.sender.principal.clone(),
            args: Vec::new(),
        };
        if let Some(role) = &spec.role
            && !roles.has(call.principal.as_ref(), role)
        {
            call.args = vec![("line".into(), raw_args.to_owned())];
            self.count(&spec.name, "refused");
            let mut out = self.answer_within_allowance(
                msg,
                now,
                format!("{}: {} needs the {role} role", call.name(), spec.name),
            );
            out.push(self.audit(&spec, &call, now, "refused: no role".into(), None));
            return out;
        }
        let cooldown_key = (spec.name.clone(), caller_key(msg));
        if let Some(refused) = self.cooling_down(&spec, &cooldown_key, &call, raw_args, now) {
            self.count(&spec.name, "cooldown");
            return refused;
        }
        call.args = match parse_args(&spec.args, raw_args) {
            Ok(a) => a,
            Err(why) => {
                self.count(&spec.name, "error");
                return self.answer_within_allowance(
                    msg,
                    now,
                    format!("{}: {why}; usage: {prefix}{}", call.name(), spec.usage),
                );
            }
        };
        if !spec.cooldown.is_zero() {
            let until = now + TimeDelta::from_std(spec.cooldown).unwrap_or(TimeDelta::zero());
            self.cooldowns.insert(
                cooldown_key,
                Cooldown {
                    until,
                    warned: false,
                },
            );
        }
        if spec.confirm {
            return self.ask_confirmation(spec, call, prefix, now);
        }
        self.start(spec, call)
    }

    /// The answer to a call made while the caller's cooldown runs, if it runs: one "slow
    /// down" per cooldown period, then silence, so that a flood gets one answer.
    fn cooling_down(
        &mut self,
        spec: &CommandSpec,
        key: &(String, String),
        call: &Call,
        raw_args: &str,
        now: DateTime<Utc>,
    ) -> Option<Vec<Action>> {
        let cd = self.cooldowns.get_mut(key).filter(|cd| now < cd.until)?;
        let mut out = Vec::new();
        if !cd.warned {
            cd.warned = true;
            let left = (cd.until - now).num_seconds().max(1);
            out.push(Action::reply(
                &call.room,
                format!("{}: slow down; {} again in {left}s", call.name(), spec.name),
            ));
        }
        if spec.audited() {
            let call = Call {
                args: vec![("line".into(), raw_args.to_owned())],
                ..call.clone()
            };
            out.push(self.audit(spec, &call, now, "refused: cooldown".into(), None));
        }
        Some(out)
    }

    /// `text` as the reply to a refused call when the caller's allowance has room for it.
    fn answer_within_allowance(
        &mut self,
        msg: &IncomingMessage,
        now: DateTime<Utc>,
        text: String,
    ) -> Vec<Action> {
        match self.allow(msg, now) {
            Ok(()) => vec![Action::reply(&msg.room, text)],
            Err(held) => held,
        }
    }
}

/// Splits the argument line into the declared arguments and checks their patterns.
fn parse_args(specs: &[ArgSpec], line: &str) -> Result<Vec<(String, String)>, String> {
    if line.contains([SECRET_OPEN, SECRET_CLOSE]) {
        return Err("arguments contain characters that are not allowed".into());
    }
    let mut rest = line.trim();
    let mut out = Vec::new();
    for spec in specs {
        let word = if spec.rest {
            std::mem::take(&mut rest)
        } else {
            let (w, r) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            rest = r.trim_start();
            w
        };
        if word.is_empty() {
            return Err(format!("missing <{}>", spec.name));
        }
        if !spec.pattern.is_match(word) {
            return Err(format!("<{}> does not look right", spec.name));
        }
        out.push((spec.name.clone(), word.to_owned()));
    }
    if !rest.is_empty() {
        return Err("too many arguments".into());
    }
    Ok(out)
}
