//! I10, the calm phase at the end of every seed (liveness: every due tick runs). Faults off,
//! events delivered promptly, the backfill annotation removed, a resume served if suspended,
//! the spec enabled, no endTime, Wait, maxConcurrency 3, no failure policy (the trigger is
//! kept; a one-off becomes periodic in half the seeds), runs finishing 1-3 s after creation;
//! then ten ticks pass. Every tick of the schedule's grid in the window has exactly one run,
//! created at most 5 s after its tick. The window is (calm start + 2 intervals, calm end - 1
//! interval], opened later when the ticks missed before the calm phase are still being caught
//! up (catch-up runs every missed tick, oldest first, 3 at a time here): it opens at the
//! first run created for the latest due tick, which must come within 2 intervals plus 2 s per
//! tick that can have been missed (generous). A periodic grid's phase is the operator's to choose (its anchor), so the runs
//! in the window must be exactly one interval apart and leave no interval without a tick.
//! A one-off that stays one has exactly one scheduled run ever: if it had none before the
//! calm phase, it gets one during it (and none after a scheduled run, as KFP's one-off).

use jiff::Timestamp;

use super::{
    edits::{cron_seconds, gap},
    invariants::{Findings, Rule},
    records::{Origin, RunRecord, Seq},
    time::{secs, tick},
    world::World,
};

/// A run is created at most this long after its tick in the calm phase.
const LATE: i64 = 5;
/// Ticks in the window (the calm phase lasts 2 + 7 + 1 intervals once any catch-up is done).
const TICKS: i64 = 7;
/// How long a one-off's calm phase lasts.
const ONE_OFF: i64 = 200;

enum Cadence {
    Cron(&'static [i64]),
    Periodic,
    OneOff,
}

pub struct Calm {
    start: Timestamp,
    start_seq: Seq,
    /// When the catch-up must be over: a run of a tick after `start` exists.
    pub deadline: Timestamp,
    /// The end of the calm phase, once known.
    pub end: Option<Timestamp>,
    /// The catch-up was not over by `deadline`.
    overdue: bool,
    /// The window checked: (from, to].
    from: Timestamp,
    to: Timestamp,
    interval: i64,
    cadence: Cadence,
}

/// The calm phase as it starts now (after its edit).
pub fn begin(w: &World) -> Calm {
    let spec = &w.swf.spec;
    let start = w.now();
    let cadence = match (&spec.trigger.cron_schedule, &spec.trigger.periodic_schedule) {
        (Some(c), _) => cron_seconds(&c.cron).map_or(Cadence::OneOff, Cadence::Cron),
        (None, Some(_)) => Cadence::Periodic,
        (None, None) => Cadence::OneOff,
    };
    let interval = gap(spec).unwrap_or(ONE_OFF);
    let one_off = matches!(cadence, Cadence::OneOff);
    let catch_up = if one_off { 0 } else { 2 * missed(w, start, interval) };
    Calm {
        start,
        start_seq: w.seq(),
        deadline: start + secs(2 * interval + catch_up),
        end: one_off.then(|| start + secs(ONE_OFF)),
        overdue: false,
        from: start,
        to: start + secs(ONE_OFF),
        interval,
        cadence,
    }
}

impl Calm {
    /// The tick of the first run created in the calm phase for the latest tick due at its
    /// creation (no later tick was due yet): the catch-up is over.
    pub fn caught_up(&self, w: &World) -> Option<Timestamp> {
        let in_calm = |r: &&RunRecord| r.created.seq > self.start_seq && r.origin.is_tick();
        let latest = |r: &RunRecord| r.tick.filter(|t| *t + secs(self.interval) > r.created.at);
        w.runs.iter().rev().filter(in_calm).filter_map(latest).min()
    }

    /// Opens the window after the catch-up (`caught_up`, or the deadline when it was not over
    /// by then: the check then fails); returns the end of the calm phase.
    pub fn open(&mut self, caught_up: Option<Timestamp>) -> Timestamp {
        self.overdue = caught_up.is_none();
        let at = caught_up.unwrap_or(self.deadline);
        self.from = at.max(self.start + secs(2 * self.interval));
        self.to = self.from + secs(TICKS * self.interval);
        let end = self.to + secs(self.interval);
        self.end = Some(end);
        end
    }
}

/// At most how many ticks were due and not run when the calm phase began: the ticks since the
/// last scheduled run (else since startTime or the creation, whichever is earlier).
fn missed(w: &World, now: Timestamp, interval: i64) -> i64 {
    let last = w
        .runs
        .iter()
        .filter(|r| r.origin == Origin::Scheduled)
        .filter_map(|r| r.tick)
        .max();
    let t = &w.swf.spec.trigger;
    let start = t.cron_schedule.as_ref().and_then(|c| c.start_time.as_ref());
    let start = start.or(t.periodic_schedule.as_ref().and_then(|p| p.start_time.as_ref()));
    let since = last.unwrap_or_else(|| start.map_or(w.swf.created, |s| s.0.min(w.swf.created)));
    let shortest = match gap(&w.swf.spec) {
        Some(_) if t.cron_schedule.is_some() => 15,
        _ => interval,
    };
    (now.as_second() - since.as_second()).max(0) / shortest + 1
}

pub fn check(w: &World, calm: &Calm) -> Findings {
    let mut found = Findings::new();
    let problem = match calm.cadence {
        Cadence::OneOff => one_off(w, calm),
        _ if calm.overdue => Some(format!(
            "the catch-up after the calm phase began ({}) was not over by {}, the most it may take",
            tick(calm.start),
            tick(calm.deadline)
        )),
        Cadence::Cron(seconds) => grid(w, calm, &cron_ticks(calm, seconds)),
        Cadence::Periodic => periodic(w, calm),
    };
    if let Some(problem) = problem {
        let window = format!("window ({}, {}]", tick(calm.from), tick(calm.to));
        found.push((Rule::I10, format!("{problem} ({window}, every {}s)", calm.interval)));
    }
    found
}

fn in_window<'a>(w: &'a World, calm: &Calm) -> Vec<&'a RunRecord> {
    let mut runs: Vec<&RunRecord> = w
        .runs
        .iter()
        .filter(|r| r.origin.is_tick() && r.tick.is_some_and(|t| t > calm.from && t <= calm.to))
        .collect();
    runs.sort_by_key(|r| (r.tick, r.created.seq));
    runs
}

fn cron_ticks(calm: &Calm, seconds: &[i64]) -> Vec<Timestamp> {
    (calm.from.as_second() + 1..=calm.to.as_second())
        .filter(|s| seconds.contains(&s.rem_euclid(60)))
        .filter_map(|s| Timestamp::from_second(s).ok())
        .collect()
}

/// Each expected tick has exactly one run, on time; no run of another tick.
fn grid(w: &World, calm: &Calm, expected: &[Timestamp]) -> Option<String> {
    let runs = in_window(w, calm);
    for t in expected {
        let of_t: Vec<&&RunRecord> = runs.iter().filter(|r| r.tick == Some(*t)).collect();
        if of_t.len() != 1 {
            return Some(format!("tick {} has {} runs", tick(*t), of_t.len()));
        }
    }
    runs.iter()
        .find(|r| r.tick.is_some_and(|t| !expected.contains(&t)))
        .map(|r| format!("{} is not a tick of the schedule", r.describe()))
        .or_else(|| runs.iter().find_map(|r| late(r)))
}

fn late(r: &RunRecord) -> Option<String> {
    let t = r.tick?;
    (r.created.at > t + secs(LATE)).then(|| format!("{} was created {} after its tick", r.describe(), r.created.at - t))
}

/// The runs in the window are one interval apart, from within an interval of its start to
/// within an interval of its end.
fn periodic(w: &World, calm: &Calm) -> Option<String> {
    let runs = in_window(w, calm);
    let Some(first) = runs.first().and_then(|r| r.tick) else {
        return Some("no run in the window".into());
    };
    if first > calm.from + secs(calm.interval) {
        return Some(format!("the first run in the window is of tick {}", tick(first)));
    }
    let expected: Vec<Timestamp> = (0..)
        .map(|k| first + secs(k * calm.interval))
        .take_while(|t| *t <= calm.to)
        .collect();
    grid(w, calm, &expected)
}

fn one_off(w: &World, calm: &Calm) -> Option<String> {
    let scheduled = |r: &&RunRecord| r.origin == Origin::Scheduled;
    let before: Vec<&RunRecord> = w
        .runs
        .iter()
        .filter(scheduled)
        .filter(|r| r.created.seq <= calm.start_seq)
        .collect();
    let during: Vec<&RunRecord> = w
        .runs
        .iter()
        .filter(scheduled)
        .filter(|r| r.created.seq > calm.start_seq)
        .collect();
    let wanted = usize::from(before.is_empty());
    (during.len() != wanted).then(|| {
        let names = |rs: &[&RunRecord]| rs.iter().map(|r| r.describe()).collect::<Vec<_>>().join(", ");
        format!(
            "a one-off with {} scheduled runs before the calm phase [{}] got {} during it [{}]; expected {wanted}",
            before.len(),
            names(&before),
            during.len(),
            names(&during)
        )
    })
}
