//! Reconnect delays shared by the network drivers.

use std::time::Duration;

/// Exponential backoff with jitter: about 1 s doubling up to 5 min.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            attempt: 0,
            base,
            max,
        }
    }

    /// The next delay: base·2^n capped at max, with ±25 % jitter (never above max).
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let factor = 0.75 + 0.5 * jitter.clamp(0.0, 1.0);
        exp.mul_f64(factor).min(self.max)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let d: Vec<u64> = (0..12).map(|_| b.next_delay(0.5).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        b.reset();
        assert_eq!(b.next_delay(0.5), Duration::from_secs(1));
    }

    #[test]
    fn backoff_jitter_stays_within_a_quarter() {
        let mut lo = Backoff::new(Duration::from_secs(8), Duration::from_secs(300));
        let mut hi = lo.clone();
        assert_eq!(lo.next_delay(0.0), Duration::from_secs(6));
        assert_eq!(hi.next_delay(1.0), Duration::from_secs(10));
    }
}
