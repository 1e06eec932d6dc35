//! Keys remembered until a time, in bounded memory: the relay's dedup keys and the
//! meetings' message keys.
//!
//! Each key is kept as a 128-bit BLAKE3 digest of its text (16 bytes, whatever the key's
//! length: a sender cannot make an entry large), and at most `cap` keys are kept. Past the
//! cap, expired keys go first, then those closest to expiry: a duplicate older than the last
//! `cap` keys is no longer recognised, which is the price of memory that cannot grow without
//! bound whatever the event rate.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

/// The digest a key is remembered by. 128 bits: a collision among a few million keys has a
/// probability of about 2^-85.
fn digest(key: &str) -> u128 {
    let d = blake3::hash(key.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&d.as_bytes()[..16]);
    u128::from_le_bytes(first)
}

/// The cap of [`ExpiringKeys::default`]: 100,000 keys take about 4 MB.
pub const DEFAULT_CAP: usize = 100_000;

/// Keys with the time until which each is remembered.
#[derive(Debug, Clone)]
pub struct ExpiringKeys {
    until: HashMap<u128, DateTime<Utc>>,
    cap: usize,
}

impl Default for ExpiringKeys {
    fn default() -> Self {
        ExpiringKeys::new(DEFAULT_CAP)
    }
}

impl ExpiringKeys {
    /// At most `cap` keys (at least 1).
    pub fn new(cap: usize) -> ExpiringKeys {
        ExpiringKeys {
            until: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// Whether `key` is remembered and has not expired at `now`.
    pub fn contains(&self, key: &str, now: DateTime<Utc>) -> bool {
        self.until.get(&digest(key)).is_some_and(|u| *u > now)
    }

    /// Remembers `key` until `until` (the later time, if it was remembered already).
    pub fn insert(&mut self, key: &str, until: DateTime<Utc>) {
        let slot = self.until.entry(digest(key)).or_insert(until);
        *slot = (*slot).max(until);
        if self.until.len() > self.cap {
            self.shrink();
        }
    }

    /// Forgets the keys expired at `now`.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        self.until.retain(|_, u| *u > now);
    }

    pub fn len(&self) -> usize {
        self.until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    /// Back to 7/8 of the cap, forgetting the keys that expire first, so that the next
    /// `cap / 8` inserts need no work: each insert costs O(1) amortised.
    fn shrink(&mut self) {
        let keep = self.cap - self.cap / 8;
        let drop = self.until.len().saturating_sub(keep);
        if drop == 0 {
            return;
        }
        let mut times: Vec<DateTime<Utc>> = self.until.values().copied().collect();
        let (_, cutoff, _) = times.select_nth_unstable(drop - 1);
        let cutoff = *cutoff;
        // Everything strictly before the cutoff goes, then keys at the cutoff until enough
        // have gone (several keys can share one time).
        let mut left = drop;
        self.until.retain(|_, u| {
            if *u < cutoff {
                left -= 1;
                false
            } else {
                true
            }
        });
        if left > 0 {
            self.until.retain(|_, u| {
                if left > 0 && *u == cutoff {
                    left -= 1;
                    false
                } else {
                    true
                }
            });
        }
        self.until.shrink_to(self.cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_key_is_known_until_it_expires() {
        let mut k = ExpiringKeys::new(10);
        k.insert("a", t(10));
        assert!(k.contains("a", t(9)));
        assert!(!k.contains("a", t(10)));
        assert!(!k.contains("b", t(0)));
        k.prune(t(10));
        assert!(k.is_empty());
    }

    #[test]
    fn inserting_again_keeps_the_later_expiry() {
        let mut k = ExpiringKeys::new(10);
        k.insert("a", t(20));
        k.insert("a", t(10));
        assert!(k.contains("a", t(15)));
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn past_the_cap_the_keys_closest_to_expiry_go_first() {
        let mut k = ExpiringKeys::new(1000);
        for i in 0..5000 {
            k.insert(&format!("key {i}"), t(i) + TimeDelta::hours(1));
            assert!(k.len() <= 1000, "{} keys after {i} inserts", k.len());
        }
        // The latest keys are all known; the earliest are forgotten.
        for i in 4875..5000 {
            assert!(k.contains(&format!("key {i}"), t(5000)), "key {i}");
        }
        assert!(!k.contains("key 0", t(5000)));
        assert!(!k.contains("key 3999", t(5000)));
    }

    #[test]
    fn many_keys_with_one_expiry_still_stay_under_the_cap() {
        let mut k = ExpiringKeys::new(100);
        for i in 0..1000 {
            k.insert(&format!("{i}"), t(60));
        }
        assert!(k.len() <= 100);
        assert!(k.contains("999", t(0)));
    }

    #[test]
    fn a_long_key_costs_what_a_short_one_does() {
        let mut k = ExpiringKeys::new(10);
        let long = "x".repeat(1 << 20);
        k.insert(&long, t(10));
        assert!(k.contains(&long, t(0)));
        assert!(!k.contains(&long[1..], t(0)));
    }
}
