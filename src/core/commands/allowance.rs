//! How much a caller may make the bot say: the answers to built-in commands and to calls
//! that fail (usage errors, missing roles) come out of one allowance per caller, so that
//! nobody can turn the bot into a flood or a mass-highlight tool (DESIGN §6).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::core::event::IncomingMessage;

/// Answers a caller may get at once.
pub const BURST: u32 = 8;
/// One more answer becomes available this often.
pub const REFILL: TimeDelta = TimeDelta::seconds(4);

/// Who a cooldown belongs to: the principal, or on IRC without one the `user@host` the
/// message came from (so that a nick change keeps it), or as a last resort the nick.
pub fn caller_key(msg: &IncomingMessage) -> String {
    let s = &msg.sender;
    match (&s.principal, &s.mask) {
        (Some(p), _) => p.to_string(),
        (None, Some(mask)) => format!("{}/{} (no account)", msg.room.network, mask),
        (None, None) => format!(
            "{}/{} (no account)",
            msg.room.network,
            s.nick.to_lowercase()
        ),
    }
}

/// What an answer costs the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Within the allowance: answer.
    Granted,
    /// Past it, for the first time since the last answer: say "slow down" once, and when
    /// the next answer becomes available (in whole seconds, at least 1).
    Warn(i64),
    /// Past it, and told already: say nothing.
    Silent,
}

/// A caller's spent answers, kept as the time at which the last of them is back.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    whole_at: DateTime<Utc>,
    warned: bool,
}

#[derive(Debug, Default)]
pub struct Allowances {
    buckets: HashMap<String, Bucket>,
}

impl Allowances {
    /// Takes one answer from `key`'s allowance.
    pub fn spend(&mut self, key: &str, now: DateTime<Utc>) -> Spend {
        let limit = REFILL * (BURST as i32 - 1);
        let b = self.buckets.entry(key.to_owned()).or_insert(Bucket {
            whole_at: now,
            warned: false,
        });
        let start = b.whole_at.max(now);
        let ahead = start - now;
        if ahead > limit {
            if b.warned {
                return Spend::Silent;
            }
            b.warned = true;
            let wait = ahead - limit;
            let secs = wait.num_seconds() + i64::from(wait.subsec_nanos() > 0);
            return Spend::Warn(secs.max(1));
        }
        b.whole_at = start + REFILL;
        b.warned = false;
        Spend::Granted
    }

    /// Forgets the callers whose allowance is whole again.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        self.buckets.retain(|_, b| b.whole_at > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_burst_then_one_warning_then_silence_then_one_per_refill() {
        let mut a = Allowances::default();
        for _ in 0..BURST {
            assert_eq!(a.spend("k", t0()), Spend::Granted);
        }
        assert_eq!(a.spend("k", t0()), Spend::Warn(4));
        assert_eq!(a.spend("k", t0()), Spend::Silent);
        // Another caller is not held back.
        assert_eq!(a.spend("other", t0()), Spend::Granted);
        let later = t0() + REFILL;
        assert_eq!(a.spend("k", later), Spend::Granted);
        assert_eq!(a.spend("k", later), Spend::Warn(4));
        // Whole again after BURST refills: forgotten.
        a.prune(t0() + REFILL * (BURST as i32 + 1));
        assert!(a.buckets.is_empty());
    }
}
