//! The outgoing side of an IRC connection: a bounded priority queue drained by a token
//! bucket. Pure (time is passed in), so its behaviour is unit-tested without a clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::adapters::Receipt;
use crate::core::Priority;

/// A token bucket: `burst` lines at once, then `per_second` lines a second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_second: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(burst: u32, per_second: f64, now: Instant) -> Self {
        let capacity = f64::from(burst.max(1));
        Self {
            capacity,
            tokens: capacity,
            per_second,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.last = now;
    }

    /// Takes a token if one is there; else says how long until one will be.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }
}

/// One raw line waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedLine {
    pub line: String,
    pub priority: Priority,
    pub queued_at: Instant,
    /// Set on the last line of a message whose sender waits for a receipt.
    pub receipt: Receipt,
}

/// What the queue dropped, for logs and counters: nothing is dropped silently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    pub stale: u64,
    pub overflow: u64,
}

/// Outgoing lines by priority (protocol, command replies, relayed text), FIFO within each.
#[derive(Debug)]
pub struct SendQueue {
    lanes: [VecDeque<QueuedLine>; 3],
    limit: usize,
    staleness: Duration,
    pub dropped: Dropped,
}

impl SendQueue {
    pub fn new(limit: usize, staleness: Duration) -> Self {
        Self {
            lanes: Default::default(),
            limit: limit.max(1),
            staleness,
            dropped: Dropped::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.lanes.iter().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a line. When the queue is full, the oldest line of the lowest priority present
    /// is dropped (and counted) to make room; protocol lines always get in.
    pub fn push(&mut self, line: String, priority: Priority, now: Instant) -> Option<QueuedLine> {
        self.push_with_receipt(line, priority, now, Receipt::default())
    }

    /// Like [`SendQueue::push`], with a receipt reported when the line is written (by the
    /// caller) or dropped (here: the line evicted or gone stale is reported `dropped`).
    pub fn push_with_receipt(
        &mut self,
        line: String,
        priority: Priority,
        now: Instant,
        receipt: Receipt,
    ) -> Option<QueuedLine> {
        let mut evicted = None;
        if self.len() >= self.limit {
            for lane in self.lanes.iter_mut().rev() {
                if let Some(old) = lane.pop_front() {
                    self.dropped.overflow += 1;
                    old.receipt.dropped();
                    evicted = Some(old);
                    break;
                }
            }
        }
        self.lanes[priority as usize].push_back(QueuedLine {
            line,
            priority,
            queued_at: now,
            receipt,
        });
        evicted
    }

    /// The next line to send, skipping (and counting) lines older than the staleness limit.
    pub fn pop(&mut self, now: Instant) -> Option<Result<QueuedLine, QueuedLine>> {
        for lane in &mut self.lanes {
            if let Some(line) = lane.pop_front() {
                if now.saturating_duration_since(line.queued_at) > self.staleness {
                    self.dropped.stale += 1;
                    line.receipt.dropped();
                    return Some(Err(line));
                }
                return Some(Ok(line));
            }
        }
        None
    }

    /// The priority of the line that `pop` would return next.
    pub fn peek_priority(&self) -> Option<Priority> {
        self.lanes
            .iter()
            .find_map(|lane| lane.front().map(|l| l.priority))
    }

    /// Puts a line back at the head of its lane (it could not be written).
    pub fn unpop(&mut self, line: QueuedLine) {
        self.lanes[line.priority as usize].push_front(line);
    }

    /// Forgets the protocol lines of a session that ended: they mean nothing to the next.
    pub fn clear_protocol(&mut self) {
        self.lanes[Priority::Protocol as usize].clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_paces() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, 2.0, t0);
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        let wait = b.try_take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.try_take(t0 + Duration::from_millis(499)).is_err());
        assert!(b.try_take(t0 + Duration::from_millis(1000)).is_ok());
    }

    #[test]
    fn bucket_never_holds_more_than_its_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, 10.0, t0);
        let later = t0 + Duration::from_secs(100);
        assert!(b.try_take(later).is_ok());
        assert!(b.try_take(later).is_ok());
        assert!(b.try_take(later).is_err());
    }

    #[test]
    fn priorities_drain_in_order_fifo_within() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(10, Duration::from_secs(600));
        q.push("relay1".into(), Priority::Relay, t0);
        q.push("cmd1".into(), Priority::Command, t0);
        q.push("PONG".into(), Priority::Protocol, t0);
        q.push("relay2".into(), Priority::Relay, t0);
        let order: Vec<String> = std::iter::from_fn(|| q.pop(t0))
            .map(|r| r.unwrap().line)
            .collect();
        assert_eq!(order, ["PONG", "cmd1", "relay1", "relay2"]);
    }

    #[test]
    fn stale_lines_are_dropped_and_counted() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(10, Duration::from_secs(60));
        q.push("old".into(), Priority::Relay, t0);
        q.push("new".into(), Priority::Relay, t0 + Duration::from_secs(50));
        let later = t0 + Duration::from_secs(70);
        assert_eq!(q.pop(later).unwrap().unwrap_err().line, "old");
        assert_eq!(q.pop(later).unwrap().unwrap().line, "new");
        assert_eq!(q.dropped.stale, 1);
    }

    #[test]
    fn receipts_report_dropped_lines() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(1, Duration::from_secs(60));
        let (r1, mut rx1) = Receipt::new();
        let (r2, mut rx2) = Receipt::new();
        q.push_with_receipt("a".into(), Priority::Relay, t0, r1);
        q.push_with_receipt("b".into(), Priority::Relay, t0, r2);
        assert_eq!(rx1.try_recv(), Ok(crate::adapters::Delivery::Dropped));
        let stale = q.pop(t0 + Duration::from_secs(61)).unwrap().unwrap_err();
        assert_eq!(stale.line, "b");
        assert_eq!(rx2.try_recv(), Ok(crate::adapters::Delivery::Dropped));
    }

    #[test]
    fn a_full_queue_drops_the_oldest_lowest_priority_line() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(2, Duration::from_secs(60));
        q.push("r1".into(), Priority::Relay, t0);
        q.push("c1".into(), Priority::Command, t0);
        let evicted = q.push("c2".into(), Priority::Command, t0).unwrap();
        assert_eq!(evicted.line, "r1");
        assert_eq!(q.dropped.overflow, 1);
        assert_eq!(q.len(), 2);
    }
}
