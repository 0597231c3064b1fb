//! The benchmark's accounting, pure: from the Job events a contender's watcher recorded, which
//! (schedule, tick) pairs of the window never got a run, which got more than one run (told apart
//! by uid, so a run created and then deleted still counts), which runs were created before their
//! tick, and how late each pair's first run was seen.

use std::collections::{BTreeMap, BTreeSet};

/// What the watcher saw happen to a Job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Listed or added: the first time the watcher saw this uid.
    Seen,
    Deleted,
}

/// One Job event, as the watcher recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunEvent {
    pub kind: EventKind,
    /// The watcher's clock when the event arrived (Unix microseconds).
    pub observed_micros: i64,
    pub uid: String,
    pub name: String,
    /// The schedule that owns the run (empty when the Job says none).
    pub schedule: String,
    /// The tick the run is for (Unix seconds), when the Job says.
    pub tick: Option<i64>,
    /// The Job's `creationTimestamp` (Unix seconds, the API server's one-second resolution).
    pub created: Option<i64>,
}

/// What should have run: every schedule at every tick from `first_tick` to `last_tick`.
pub struct Expected {
    pub schedules: Vec<String>,
    pub first_tick: i64,
    pub last_tick: i64,
    /// Seconds between ticks.
    pub period: i64,
}

impl Expected {
    fn ticks(&self) -> impl Iterator<Item = i64> + '_ {
        let step = usize::try_from(self.period.max(1)).unwrap_or(1);
        (self.first_tick..=self.last_tick).step_by(step)
    }
}

/// A run with its earliest sighting and creation time.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub uid: String,
    pub name: String,
    pub first_seen_micros: i64,
    pub created: Option<i64>,
    pub deleted: bool,
}

impl Run {
    /// Created, or seen, before the instant it was scheduled for.
    fn before(&self, tick: i64) -> bool {
        self.first_seen_micros < tick.saturating_mul(1_000_000) || self.created.is_some_and(|c| c < tick)
    }
}

pub type Pair = (String, i64);

/// The accounting of one contender.
#[derive(Debug, Default)]
pub struct Tally {
    /// Expected pairs that no run arrived for.
    pub missed: Vec<Pair>,
    /// Pairs with more than one run (any tick the watcher saw), with their runs.
    pub duplicated: BTreeMap<Pair, Vec<Run>>,
    /// Runs created or seen before their tick (any tick the watcher saw).
    pub early: Vec<(Pair, Run)>,
    /// Runs the watcher saw deleted.
    pub deleted: usize,
    /// For each expected pair that got a run: seconds from the tick to its first run being seen.
    pub lags: Vec<f64>,
    /// The slowest of those lags at the first tick.
    pub first_tick_max_lag: Option<f64>,
}

impl Tally {
    /// Runs beyond the first of their (schedule, tick).
    pub fn duplicate_runs(&self) -> usize {
        self.duplicated.values().map(|runs| runs.len().saturating_sub(1)).sum()
    }
}

/// Runs grouped by (schedule, tick), one entry per uid; events without a tick are left out.
fn runs_by_pair(events: &[RunEvent]) -> BTreeMap<Pair, BTreeMap<String, Run>> {
    let mut by_pair: BTreeMap<Pair, BTreeMap<String, Run>> = BTreeMap::new();
    for e in events {
        let Some(tick) = e.tick else { continue };
        let runs = by_pair.entry((e.schedule.clone(), tick)).or_default();
        let run = runs.entry(e.uid.clone()).or_insert_with(|| Run {
            uid: e.uid.clone(),
            name: e.name.clone(),
            first_seen_micros: e.observed_micros,
            created: e.created,
            deleted: false,
        });
        run.first_seen_micros = run.first_seen_micros.min(e.observed_micros);
        run.created = run.created.or(e.created);
        run.deleted |= e.kind == EventKind::Deleted;
    }
    by_pair
}

pub fn tally(expected: &Expected, events: &[RunEvent]) -> Tally {
    let by_pair = runs_by_pair(events);
    let mut tally = Tally::default();
    for ((schedule, tick), runs) in &by_pair {
        let pair = (schedule.clone(), *tick);
        tally.deleted += runs.values().filter(|r| r.deleted).count();
        for run in runs.values().filter(|r| r.before(*tick)) {
            tally.early.push((pair.clone(), run.clone()));
        }
        if runs.len() > 1 {
            tally.duplicated.insert(pair, runs.values().cloned().collect());
        }
    }
    let schedules: BTreeSet<&String> = expected.schedules.iter().collect();
    for schedule in schedules {
        for tick in expected.ticks() {
            let pair = (schedule.clone(), tick);
            let first_seen = by_pair
                .get(&pair)
                .and_then(|runs| runs.values().map(|r| r.first_seen_micros).min());
            match first_seen {
                Some(micros) => {
                    let lag = micros.saturating_sub(tick.saturating_mul(1_000_000)) as f64 / 1e6;
                    tally.lags.push(lag);
                    if tick == expected.first_tick {
                        tally.first_tick_max_lag = Some(tally.first_tick_max_lag.map_or(lag, |m| m.max(lag)));
                    }
                }
                None => tally.missed.push(pair),
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_040; // a minute boundary
    const MICROS: i64 = 1_000_000;

    fn expected(schedules: &[&str], ticks: i64) -> Expected {
        Expected {
            schedules: schedules.iter().map(|s| s.to_string()).collect(),
            first_tick: T0,
            last_tick: T0 + 60 * (ticks - 1),
            period: 60,
        }
    }

    /// A run of `schedule` for `tick`, seen `after_ms` after the tick, created that second.
    fn seen(uid: &str, schedule: &str, tick: i64, after_ms: i64) -> RunEvent {
        let observed_micros = tick * MICROS + after_ms * 1000;
        RunEvent {
            kind: EventKind::Seen,
            observed_micros,
            uid: uid.into(),
            name: format!("{schedule}-{tick}"),
            schedule: schedule.into(),
            tick: Some(tick),
            created: Some(observed_micros.div_euclid(MICROS)),
        }
    }

    fn deleted(run: &RunEvent, after_ms: i64) -> RunEvent {
        RunEvent {
            kind: EventKind::Deleted,
            observed_micros: run.observed_micros + after_ms * 1000,
            ..run.clone()
        }
    }

    #[test]
    fn every_pair_once_on_time() {
        let events = vec![
            seen("a0", "a", T0, 100),
            seen("b0", "b", T0, 300),
            seen("a1", "a", T0 + 60, 200),
            seen("b1", "b", T0 + 60, 400),
        ];
        let t = tally(&expected(&["a", "b"], 2), &events);
        assert!(t.missed.is_empty());
        assert_eq!(t.duplicate_runs(), 0);
        assert!(t.early.is_empty());
        assert_eq!(t.lags.len(), 4);
        assert_eq!(t.first_tick_max_lag, Some(0.3));
    }

    #[test]
    fn a_deleted_and_recreated_run_is_a_duplicate() {
        let first = seen("uid-1", "a", T0, 100);
        // Same name (runs are named by tick), a new uid: the first is gone, the second is extra.
        let events = vec![first.clone(), deleted(&first, 500), seen("uid-2", "a", T0, 900)];
        let t = tally(&expected(&["a"], 1), &events);
        assert_eq!(t.duplicate_runs(), 1);
        assert_eq!(t.deleted, 1);
        let runs = &t.duplicated[&("a".to_string(), T0)];
        assert_eq!(
            runs.iter().map(|r| r.uid.as_str()).collect::<Vec<_>>(),
            ["uid-1", "uid-2"]
        );
        assert!(t.missed.is_empty());
        // The pair's lag is its first run's.
        assert_eq!(t.lags, [0.1]);
    }

    #[test]
    fn a_run_seen_twice_by_uid_is_one_run() {
        let run = seen("uid-1", "a", T0, 100);
        let relisted = RunEvent {
            observed_micros: run.observed_micros + 30 * MICROS,
            ..run.clone()
        };
        let t = tally(&expected(&["a"], 1), &[run.clone(), relisted, deleted(&run, 40_000)]);
        assert_eq!(t.duplicate_runs(), 0);
        assert_eq!(t.lags, [0.1]);
    }

    #[test]
    fn a_missing_tick_at_the_end_of_the_window_is_missed() {
        // Runs for the first two ticks only: a count of gaps between runs would see none.
        let events = vec![seen("a0", "a", T0, 100), seen("a1", "a", T0 + 60, 100)];
        let t = tally(&expected(&["a"], 3), &events);
        assert_eq!(t.missed, [("a".to_string(), T0 + 120)]);
    }

    #[test]
    fn missed_is_the_expected_set_minus_the_arrivals_not_a_count() {
        // Three runs for three expected pairs, but one is a duplicate and one is for a tick
        // before the window: one pair is missed, whatever the count says.
        let events = vec![
            seen("a0", "a", T0, 100),
            seen("a0-again", "a", T0, 200),
            seen("b-before", "b", T0 - 60, 100),
        ];
        let t = tally(&expected(&["a", "b"], 1), &events);
        assert_eq!(t.missed, [("b".to_string(), T0)]);
        assert_eq!(t.duplicate_runs(), 1);
    }

    #[test]
    fn a_run_before_its_tick_is_early() {
        let mut by_clock = seen("early-seen", "a", T0, -5);
        by_clock.created = Some(T0); // creationTimestamp alone would not tell
        let mut by_timestamp = seen("early-created", "b", T0, 50);
        by_timestamp.created = Some(T0 - 1);
        let on_time = seen("on-time", "c", T0, 0);
        let t = tally(&expected(&["a", "b", "c"], 1), &[by_clock, by_timestamp, on_time]);
        let early: Vec<&str> = t.early.iter().map(|(_, r)| r.uid.as_str()).collect();
        assert_eq!(early, ["early-seen", "early-created"]);
        assert!(t.missed.is_empty());
    }

    #[test]
    fn events_without_a_tick_count_for_nothing() {
        let mut unlabelled = seen("x", "a", T0, 100);
        unlabelled.tick = None;
        let t = tally(&expected(&["a"], 1), &[unlabelled]);
        assert_eq!(t.missed.len(), 1);
        assert_eq!(t.duplicate_runs(), 0);
    }
}
