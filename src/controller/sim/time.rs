//! Simulated time: one clock the driver moves and every operator instance reads (through
//! `Clock::from_fn`); nothing in the simulation reads the real clock.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use jiff::{SignedDuration, Timestamp};

/// When the simulated world begins (the schedule is created a few seconds later).
pub const EPOCH: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

#[derive(Clone)]
pub struct SimClock(Arc<AtomicI64>);

impl SimClock {
    pub fn starting_at(t: Timestamp) -> Self {
        SimClock(Arc::new(AtomicI64::new(t.as_millisecond())))
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::from_millisecond(self.0.load(Ordering::SeqCst)).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Moves the clock to `t` (never back).
    pub fn set(&self, t: Timestamp) {
        self.0.fetch_max(t.as_millisecond(), Ordering::SeqCst);
    }
}

/// `t` cut to whole seconds, as the API server stores times.
pub fn whole(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

pub fn secs(s: i64) -> SignedDuration {
    SignedDuration::from_secs(s)
}

pub fn millis(ms: i64) -> SignedDuration {
    SignedDuration::from_millis(ms)
}

/// Seconds since the world began, for trace lines (`T+312.250`).
pub fn rel(t: Timestamp) -> String {
    let ms = t.as_millisecond() - EPOCH * 1000;
    format!("T+{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// A tick in a trace line: its offset and its instant (`T+300 (00:05:00Z)`).
pub fn tick(t: Timestamp) -> String {
    let s = t.as_second() - EPOCH;
    format!("T+{s} ({})", t.strftime("%H:%M:%SZ"))
}
