//! Pure scheduling: which ticks are due, given the validated spec, the trigger state (from
//! status and from the runs that exist) and `now`. No I/O and no clock: every function takes
//! `now`. KFP's rules and each deliberate difference are listed in docs/kfp-compatibility.md:
//! - cron ticks are strictly after the last tick, else after `startTime`, else after the
//!   creation time; a `startTime` in the past with catch-up backfills from it (KFP);
//! - periodic ticks are `anchor + k·interval` (k ≥ 1), the anchor being the last tick, else
//!   `startTime`, else creation (KFP); a `startTime` moved past the last tick runs at
//!   `startTime` itself (KFP); noCatchup keeps the grid (KFP restarts it at `now`);
//! - a tick at exactly `endTime` still runs (KFP); ticks before 1970 never run;
//! - ticks at or before `skipThrough` never run: it is set when a paused schedule is
//!   re-enabled (KFP #8344 backfills a pause), when `concurrencyPolicy: Skip` or `Replace`
//!   drops a tick, and when a tick is abandoned after failed creates;
//! - catch-up runs every missed tick, oldest first, as many per pass as free slots allow
//!   (KFP: one per 10 s sync); noCatchup and `Replace` run only the latest due tick, found
//!   directly (no walk over the missed ticks).

use jiff::{SignedDuration, Timestamp, tz::TimeZone};

use crate::{
    crd::ConcurrencyPolicy,
    cron::{CalendarSchedule, CronExpr},
};

/// When ticks happen.
#[derive(Clone, Debug)]
pub enum Cadence {
    Cron(Box<CalendarSchedule>),
    /// Periodic schedules and `@every`.
    Every {
        seconds: i64,
    },
    /// No trigger: one run right after creation (KFP's one-off).
    Once,
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub cadence: Cadence,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub time_zone: TimeZone,
}

impl Schedule {
    pub fn cron(expr: CronExpr, start: Option<Timestamp>, end: Option<Timestamp>, time_zone: TimeZone) -> Self {
        let cadence = match expr {
            CronExpr::Calendar(c) => Cadence::Cron(c),
            CronExpr::Every { seconds } => Cadence::Every { seconds },
        };
        Schedule {
            cadence,
            start,
            end,
            time_zone,
        }
    }

    fn within_end(&self, t: Timestamp) -> Option<Timestamp> {
        match self.end {
            Some(end) if t > end => None,
            _ => Some(t),
        }
    }
}

/// What the operator remembers between passes (from `status.trigger`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TriggerState {
    pub last_triggered: Option<Timestamp>,
    pub last_index: i64,
    pub skip_through: Option<Timestamp>,
}

#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    pub schedule: &'a Schedule,
    pub enabled: bool,
    pub no_catchup: bool,
    pub max_concurrency: usize,
    pub policy: ConcurrencyPolicy,
    pub created: Timestamp,
    pub state: TriggerState,
    pub active: usize,
    pub now: Timestamp,
}

/// One run to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedRun {
    pub scheduled: Timestamp,
    pub index: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub runs: Vec<PlannedRun>,
    /// How many of the oldest active runs to delete first (`Replace`).
    pub replace: usize,
    /// Ticks dropped because no slot was free (`Skip`).
    pub skipped: Vec<Timestamp>,
    /// Trigger state after the runs are created.
    pub state: TriggerState,
    /// The next tick not yet run (may be in the past when it waits for a slot).
    pub next: Option<Timestamp>,
    /// True when `next` is due but waits for an active run to finish.
    pub waiting: bool,
}

/// No tick before the Unix epoch runs: a run's `workflowEpoch` label is its tick in Unix
/// seconds, and a label value cannot start with `-`.
const EARLIEST_FLOOR: Timestamp = Timestamp::constant(-1, 0);

/// The exclusive lower bound of ticks still to run, and the anchor of a periodic grid.
fn floor_and_anchor(input: &PlanInput) -> (Timestamp, Timestamp) {
    let s = input.schedule;
    let last = input.state.last_triggered;
    let mut anchor = last.or(s.start).unwrap_or(input.created);
    if let (Some(start), Some(last)) = (s.start, last)
        && start > last
    {
        // startTime moved past the last tick: KFP runs at startTime itself, then on its grid.
        anchor = match s.cadence {
            Cadence::Every { seconds } => start.checked_sub(SignedDuration::from_secs(seconds)).unwrap_or(start),
            _ => start,
        };
    }
    let floor = [Some(anchor), input.state.skip_through, Some(EARLIEST_FLOOR)]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(anchor);
    (floor, anchor)
}

/// First tick strictly after `floor`.
fn first_after(s: &Schedule, floor: Timestamp, anchor: Timestamp) -> Option<Timestamp> {
    let t = match &s.cadence {
        Cadence::Cron(c) => c.next_after(floor, &s.time_zone)?,
        Cadence::Every { seconds } => {
            let k = if floor < anchor {
                1
            } else {
                floor.duration_since(anchor).as_secs() / seconds + 1
            };
            grid(anchor, *seconds, k)?
        }
        Cadence::Once => return None,
    };
    s.within_end(t)
}

/// Up to `count` ticks strictly after `after`, in order (a periodic grid is anchored at
/// `anchor`: the last tick, else startTime, else the creation time). For display.
pub fn ticks_after(s: &Schedule, after: Timestamp, anchor: Timestamp, count: usize) -> Vec<Timestamp> {
    let mut ticks = Vec::with_capacity(count);
    let mut t = after;
    while ticks.len() < count {
        match first_after(s, t, anchor) {
            Some(next) if next > t => {
                ticks.push(next);
                t = next;
            }
            _ => break,
        }
    }
    ticks
}

/// Latest tick at or before `t` (and strictly after `floor`).
pub fn latest_at_or_before(s: &Schedule, t: Timestamp, floor: Timestamp, anchor: Timestamp) -> Option<Timestamp> {
    let t = match s.end {
        Some(end) if end < t => end,
        _ => t,
    };
    let tick = match &s.cadence {
        Cadence::Cron(c) => c.latest_at_or_before(t, &s.time_zone)?,
        Cadence::Every { seconds } => {
            if t < anchor {
                return None;
            }
            let k = t.duration_since(anchor).as_secs() / seconds;
            if k < 1 {
                return None;
            }
            grid(anchor, *seconds, k)?
        }
        Cadence::Once => return None,
    };
    (tick > floor).then_some(tick)
}

fn grid(anchor: Timestamp, seconds: i64, k: i64) -> Option<Timestamp> {
    anchor
        .checked_add(SignedDuration::from_secs(seconds.checked_mul(k)?))
        .ok()
}

/// Decides what to run now. Pure: the same input always gives the same plan.
pub fn plan(input: &PlanInput) -> Plan {
    match input.schedule.cadence {
        Cadence::Once => plan_once(input),
        _ if !input.enabled => Plan {
            // Nothing triggers while disabled (KFP shows a next time that never runs).
            runs: Vec::new(),
            replace: 0,
            skipped: Vec::new(),
            state: input.state.clone(),
            next: None,
            waiting: false,
        },
        _ => plan_recurring(input),
    }
}

/// KFP's one-off: one run, scheduled at the creation time.
fn plan_once(input: &PlanInput) -> Plan {
    let mut state = input.state.clone();
    let mut runs = Vec::new();
    let due = input.enabled && state.last_index == 0;
    if due && input.active < input.max_concurrency {
        state.last_index += 1;
        state.last_triggered = Some(input.created);
        runs.push(PlannedRun {
            scheduled: input.created,
            index: state.last_index,
        });
    }
    let next = (state.last_index == 0 && input.enabled).then_some(input.created);
    Plan {
        runs,
        replace: 0,
        skipped: Vec::new(),
        waiting: next.is_some(),
        state,
        next,
    }
}

/// Ticks due now, oldest first: every missed tick up to `wanted` (catch-up), or only the
/// latest one (noCatchup, Replace).
fn due_ticks(input: &PlanInput, floor: Timestamp, anchor: Timestamp) -> Vec<Timestamp> {
    if input.no_catchup || input.policy == ConcurrencyPolicy::Replace {
        return latest_at_or_before(input.schedule, input.now, floor, anchor)
            .into_iter()
            .collect();
    }
    let mut due = Vec::new();
    let mut cursor = floor;
    while due.len() < input.max_concurrency.max(1) {
        match first_after(input.schedule, cursor, anchor) {
            Some(t) if t <= input.now => {
                due.push(t);
                cursor = t;
            }
            _ => break,
        }
    }
    due
}

fn plan_recurring(input: &PlanInput) -> Plan {
    let (floor, anchor) = floor_and_anchor(input);
    let mut plan = Plan {
        runs: Vec::new(),
        replace: 0,
        skipped: Vec::new(),
        state: input.state.clone(),
        next: None,
        waiting: false,
    };
    let due = due_ticks(input, floor, anchor);
    if input.policy == ConcurrencyPolicy::Replace && !due.is_empty() {
        // The latest due tick replaces what runs (as CronJob's Replace); earlier missed ticks
        // are dropped, since the run moves `lastTriggeredTime` past them.
        plan.replace = (input.active + 1).saturating_sub(input.max_concurrency);
    }
    let slots = match input.policy {
        ConcurrencyPolicy::Replace => due.len(),
        _ => input.max_concurrency.saturating_sub(input.active),
    };
    let mut floor = floor;
    for (i, &t) in due.iter().enumerate() {
        if i < slots {
            plan.state.last_index += 1;
            plan.runs.push(PlannedRun {
                scheduled: t,
                index: plan.state.last_index,
            });
            plan.state.last_triggered = Some(t);
            floor = t;
        } else if input.policy == ConcurrencyPolicy::Skip {
            plan.skipped.push(t);
            floor = t;
        }
    }
    if input.policy == ConcurrencyPolicy::Skip && !plan.skipped.is_empty() {
        // Everything already due is dropped, not only the ticks looked at.
        if let Some(t) = latest_at_or_before(input.schedule, input.now, floor, anchor) {
            floor = t;
        }
        plan.state.skip_through = Some(floor);
    }
    plan.next = first_after(input.schedule, floor, anchor);
    plan.waiting = plan.next.is_some_and(|t| t <= input.now);
    if plan.waiting && input.no_catchup {
        // noCatchup: the tick that will run when a slot frees is the latest due one (KFP shows it).
        plan.next = latest_at_or_before(input.schedule, input.now, floor, anchor).or(plan.next);
    }
    plan
}

/// The schedule in words, for `kubectl get` (e.g. `cron 0 0 * * * * (UTC)`).
pub fn describe(trigger: &crate::crd::Trigger, tz: &str) -> String {
    if let Some(c) = &trigger.cron_schedule {
        format!("{} ({tz})", c.cron)
    } else if let Some(p) = &trigger.periodic_schedule {
        format!("every {}s", p.interval_second.max(1))
    } else {
        "once".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cron;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cron_schedule(expr: &str) -> Schedule {
        Schedule::cron(cron::parse(expr).unwrap(), None, None, TimeZone::UTC)
    }

    fn every(seconds: i64) -> Schedule {
        Schedule {
            cadence: Cadence::Every { seconds },
            start: None,
            end: None,
            time_zone: TimeZone::UTC,
        }
    }

    fn input<'a>(schedule: &'a Schedule, created: &str, now: &str) -> PlanInput<'a> {
        PlanInput {
            schedule,
            enabled: true,
            no_catchup: false,
            max_concurrency: 1,
            policy: ConcurrencyPolicy::Wait,
            created: at(created),
            state: TriggerState::default(),
            active: 0,
            now: at(now),
        }
    }

    fn times(p: &Plan) -> Vec<String> {
        p.runs.iter().map(|r| r.scheduled.to_string()).collect()
    }

    #[test]
    fn first_cron_tick_is_strictly_after_creation() {
        let s = cron_schedule("0 0 * * * *");
        let p = plan(&input(&s, "2026-01-01T10:00:00Z", "2026-01-01T10:59:59Z"));
        assert!(p.runs.is_empty());
        assert_eq!(p.next, Some(at("2026-01-01T11:00:00Z")));
        assert!(!p.waiting);
        let p = plan(&input(&s, "2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z"));
        assert_eq!(times(&p), vec!["2026-01-01T11:00:00Z"]);
        assert_eq!(p.runs[0].index, 1);
        assert_eq!(p.state.last_triggered, Some(at("2026-01-01T11:00:00Z")));
        assert_eq!(p.next, Some(at("2026-01-01T12:00:00Z")));
    }

    #[test]
    fn past_start_time_backfills_oldest_first_up_to_free_slots() {
        let mut s = cron_schedule("0 0 * * * *");
        s.start = Some(at("2026-01-01T00:00:00Z"));
        let mut i = input(&s, "2026-01-01T05:30:00Z", "2026-01-01T05:30:00Z");
        i.max_concurrency = 3;
        i.active = 1;
        let p = plan(&i);
        // A tick exactly at startTime is not run (KFP): 01:00, 02:00 first.
        assert_eq!(times(&p), vec!["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]);
        assert_eq!(p.next, Some(at("2026-01-01T03:00:00Z")));
        assert!(p.waiting, "03:00 is due and waits for a slot");
    }

    #[test]
    fn no_catchup_runs_only_the_latest_tick_even_after_years_down() {
        let s = cron_schedule("* * * * * *");
        // Ten years of per-second ticks (~315M): a tick-by-tick walk would not finish.
        let mut i = input(&s, "2016-01-01T00:00:00Z", "2026-01-31T00:00:00.700Z");
        i.no_catchup = true;
        i.state.last_triggered = Some(at("2016-01-01T00:00:05Z"));
        i.state.last_index = 5;
        let p = plan(&i);
        assert_eq!(times(&p), vec!["2026-01-31T00:00:00Z"]);
        assert_eq!(p.runs[0].index, 6);
        assert_eq!(p.next, Some(at("2026-01-31T00:00:01Z")));
    }

    #[test]
    fn catch_up_after_downtime_runs_each_missed_tick_with_its_own_time() {
        let s = cron_schedule("0 0 * * * *");
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T03:10:00Z");
        i.state.last_triggered = Some(at("2026-01-01T00:00:00Z"));
        i.max_concurrency = 10;
        let p = plan(&i);
        assert_eq!(
            times(&p),
            vec!["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z"]
        );
        assert_eq!(p.runs.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(p.next, Some(at("2026-01-01T04:00:00Z")));
    }

    #[test]
    fn max_concurrency_makes_a_due_tick_wait_and_keep_its_time() {
        let s = cron_schedule("0 0 * * * *");
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T01:30:00Z");
        i.active = 1;
        let p = plan(&i);
        assert!(p.runs.is_empty());
        assert!(p.waiting);
        assert_eq!(p.next, Some(at("2026-01-01T01:00:00Z")));
        // The run finishes at 02:30: the 01:00 tick runs then, with its own time.
        i.active = 0;
        i.now = at("2026-01-01T02:30:00Z");
        assert_eq!(times(&plan(&i)), vec!["2026-01-01T01:00:00Z"]);
    }

    #[test]
    fn skip_policy_drops_due_ticks_without_a_slot() {
        let s = cron_schedule("0 0 * * * *");
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T03:30:00Z");
        i.active = 1;
        i.policy = ConcurrencyPolicy::Skip;
        let p = plan(&i);
        assert!(p.runs.is_empty());
        assert_eq!(p.state.skip_through, Some(at("2026-01-01T03:00:00Z")));
        assert_eq!(p.next, Some(at("2026-01-01T04:00:00Z")));
        assert!(!p.waiting);
    }

    #[test]
    fn replace_policy_deletes_the_oldest_active_run() {
        let s = cron_schedule("0 0 * * * *");
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T01:00:01Z");
        i.active = 1;
        i.policy = ConcurrencyPolicy::Replace;
        let p = plan(&i);
        assert_eq!(p.replace, 1);
        assert_eq!(times(&p), vec!["2026-01-01T01:00:00Z"]);
    }

    #[test]
    fn disabled_runs_nothing_and_reenable_does_not_backfill() {
        let s = cron_schedule("0 0 * * * *");
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T05:30:00Z");
        i.enabled = false;
        let p = plan(&i);
        assert!(p.runs.is_empty());
        assert_eq!(p.next, None, "nothing triggers while disabled");
        // Re-enabled at 05:30 (skipThrough recorded by the reconciler): nothing before runs.
        i.enabled = true;
        i.state.skip_through = Some(at("2026-01-01T05:30:00Z"));
        let p = plan(&i);
        assert!(p.runs.is_empty());
        assert_eq!(p.next, Some(at("2026-01-01T06:00:00Z")));
    }

    #[test]
    fn end_time_is_inclusive_then_the_schedule_ends() {
        let mut s = cron_schedule("0 0 * * * *");
        s.end = Some(at("2026-01-01T02:00:00Z"));
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T05:00:00Z");
        i.max_concurrency = 10;
        let p = plan(&i);
        assert_eq!(times(&p), vec!["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]);
        assert_eq!(p.next, None);
        i.no_catchup = true;
        assert_eq!(times(&plan(&i)), vec!["2026-01-01T02:00:00Z"]);
    }

    #[test]
    fn periodic_first_tick_is_start_plus_interval_and_stays_on_grid() {
        let mut s = every(60);
        s.start = Some(at("2026-01-01T00:00:30Z"));
        let i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T00:01:29Z");
        let p = plan(&i);
        assert!(p.runs.is_empty());
        assert_eq!(p.next, Some(at("2026-01-01T00:01:30Z")));
        // noCatchup after 10 minutes down: the latest grid tick, not "now".
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T00:11:45Z");
        i.no_catchup = true;
        i.state.last_triggered = Some(at("2026-01-01T00:01:30Z"));
        i.state.last_index = 1;
        let p = plan(&i);
        assert_eq!(times(&p), vec!["2026-01-01T00:11:30Z"]);
        assert_eq!(p.next, Some(at("2026-01-01T00:12:30Z")));
    }

    #[test]
    fn periodic_without_start_counts_from_creation() {
        let s = every(10);
        let p = plan(&input(&s, "2026-01-01T00:00:00Z", "2026-01-01T00:00:10Z"));
        assert_eq!(times(&p), vec!["2026-01-01T00:00:10Z"]);
    }

    #[test]
    fn one_off_runs_once_at_creation() {
        let s = Schedule {
            cadence: Cadence::Once,
            start: None,
            end: None,
            time_zone: TimeZone::UTC,
        };
        let i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z");
        let p = plan(&i);
        assert_eq!(times(&p), vec!["2026-01-01T00:00:00Z"]);
        let mut i2 = i.clone();
        i2.state = p.state;
        assert!(plan(&i2).runs.is_empty());
        assert_eq!(plan(&i2).next, None);
    }

    #[test]
    fn dst_gap_tick_runs_once_in_the_schedule_zone() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let s = Schedule::cron(cron::parse("0 30 2 * * *").unwrap(), None, None, ny);
        let mut i = input(&s, "2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z");
        i.max_concurrency = 10;
        // Mar 8 02:30 does not exist in New York: it runs at 03:00 EDT (07:00Z), once.
        assert_eq!(times(&plan(&i)), vec!["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]);
    }
}
