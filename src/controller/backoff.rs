//! Per-object retry delays: exponential from `FIRST_RETRY` to `MAX_RETRY`, reset by a pass
//! that succeeds; and how often the create of one tick has failed (see
//! `docs/architecture.md`, "When a run cannot be created").

use std::{collections::HashMap, sync::Mutex, time::Duration};

use jiff::Timestamp;

/// The first retry after a failed pass.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);
/// Retries never wait longer than this.
pub const MAX_RETRY: Duration = Duration::from_secs(300);
/// Entries kept at most; past it the table starts over (objects deleted while failing would
/// otherwise stay in it).
const MAX_ENTRIES: usize = 50_000;

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    failures: u32,
    /// The tick whose create keeps failing, and how many times it has.
    tick: Option<(Timestamp, u32)>,
}

/// Keyed by object uid.
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<String, Entry>>);

/// The delay before retry number `failures` (1-based).
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

impl Backoff {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> T) -> T {
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() > MAX_ENTRIES {
            map.clear();
        }
        f(&mut map)
    }

    /// Records a failed pass; returns how long to wait before the next.
    pub fn failed(&self, uid: &str) -> Duration {
        self.with(|m| {
            let e = m.entry(uid.to_string()).or_default();
            e.failures = e.failures.saturating_add(1);
            delay(e.failures)
        })
    }

    /// A pass succeeded: the next failure starts from `FIRST_RETRY` again.
    pub fn succeeded(&self, uid: &str) {
        self.with(|m| m.remove(uid));
    }

    /// Records a failed create of `tick`; returns how many times that tick has failed.
    pub fn tick_failed(&self, uid: &str, tick: Timestamp) -> u32 {
        self.with(|m| {
            let e = m.entry(uid.to_string()).or_default();
            let attempts = match e.tick {
                Some((t, n)) if t == tick => n.saturating_add(1),
                _ => 1,
            };
            e.tick = Some((tick, attempts));
            attempts
        })
    }

    /// How many entries are kept (for tests and the cache-size metric).
    pub fn len(&self) -> usize {
        self.with(|m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_five_seconds_to_five_minutes_and_resets_on_success() {
        let b = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|_| b.failed("u").as_secs()).collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.failed("other").as_secs(), 5, "per object");
        b.succeeded("u");
        assert_eq!(b.failed("u").as_secs(), 5);
        assert_eq!(delay(u32::MAX), MAX_RETRY);
    }

    #[test]
    fn counts_failures_per_tick() {
        let b = Backoff::default();
        let t1 = Timestamp::from_second(60).unwrap();
        let t2 = Timestamp::from_second(120).unwrap();
        assert_eq!(b.tick_failed("u", t1), 1);
        assert_eq!(b.tick_failed("u", t1), 2);
        assert_eq!(b.tick_failed("u", t2), 1, "a new tick starts over");
        b.succeeded("u");
        assert_eq!(b.tick_failed("u", t2), 1);
    }
}
