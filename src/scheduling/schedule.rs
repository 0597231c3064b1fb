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

use std::collections::BTreeSet;

use jiff::{Timestamp, tz::TimeZone};

use crate::{
    model::crd::ConcurrencyPolicy,
    scheduling::{
        cron::{CalendarSchedule, CronExpr},
        ticks::Position,
    },
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

    /// A tick at exactly `endTime` still runs (KFP).
    pub fn within_end(&self, t: Timestamp) -> bool {
        self.end.is_none_or(|end| t <= end)
    }
}

/// What the operator remembers between passes (from `status.trigger`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TriggerState {
    pub last_triggered: Option<Timestamp>,
    pub last_index: i64,
    pub skip_through: Option<Timestamp>,
}

impl TriggerState {
    /// Where the schedule stands on its grid (see `ticks::Position`).
    pub fn position(&self, schedule: &Schedule, created: Timestamp) -> Position {
        Position::of(schedule, self.last_triggered, self.skip_through, created)
    }
}

/// Ticks after the schedule's floor that it must pass without creating a run: they already
/// have one (a backfill's, one KFP's controller made, one created before a crash), or a
/// backfill recorded them as handled.
#[derive(Clone, Debug, Default)]
pub struct Taken {
    /// Ticks with a run now.
    pub ticks: BTreeSet<Timestamp>,
    /// The current backfill's handled range, `from..=through`.
    pub backfill: Option<(Timestamp, Timestamp)>,
}

/// No tick taken (a schedule with no runs and no backfill).
pub static NOTHING_TAKEN: Taken = Taken {
    ticks: BTreeSet::new(),
    backfill: None,
};

impl Taken {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.ticks.contains(&t) || self.backfill.is_some_and(|(from, through)| from <= t && t <= through)
    }
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
    pub taken: &'a Taken,
    pub active: usize,
    /// Of the active runs, how many `Replace` may delete: not a run whose tick a backfill in
    /// progress has still to handle (it would run that tick again).
    pub replaceable: usize,
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

impl Plan {
    fn nothing(state: TriggerState) -> Plan {
        Plan {
            runs: Vec::new(),
            replace: 0,
            skipped: Vec::new(),
            state,
            next: None,
            waiting: false,
        }
    }

    fn create(&mut self, t: Timestamp) {
        self.state.last_index += 1;
        self.runs.push(PlannedRun {
            scheduled: t,
            index: self.state.last_index,
        });
        self.state.last_triggered = Some(t);
    }

    /// Moves the floor past `t` without a run of the schedule's own (skipped, or taken).
    fn pass(&mut self, t: Timestamp) {
        self.state.skip_through = self.state.skip_through.max(Some(t));
    }

    fn floor(&self, position: Position) -> Timestamp {
        let handled = self.state.last_triggered.max(self.state.skip_through);
        handled.map_or(position.floor, |h| h.max(position.floor))
    }
}

/// The ticks the schedule itself may still create: after `after`, up to `end`. A backfill
/// leaves them to the schedule, and history limits keep a run of one (deleting it would make
/// its tick due again). See docs/architecture.md, "Has this tick run?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    after: Option<Timestamp>,
    end: Option<Timestamp>,
}

impl Claim {
    /// Claims nothing (a schedule that will create no tick).
    pub const NONE: Claim = Claim { after: None, end: None };

    /// `paused`: disabled, or suspended by the failure policy. A paused schedule never creates
    /// a tick that falls while it is paused: re-enabled after any run it skips through that
    /// moment, and having had no run there is nothing it could run twice.
    pub fn of(schedule: &Schedule, state: &TriggerState, created: Timestamp, paused: bool, now: Timestamp) -> Claim {
        if let Cadence::Once = schedule.cadence {
            // The one-off's only tick is its creation time, until it has triggered.
            let before = created.checked_sub(jiff::SignedDuration::from_nanos(1)).ok();
            return Claim {
                after: before.filter(|_| state.last_triggered.is_none()),
                end: Some(created),
            };
        }
        let floor = state.position(schedule, created).floor;
        Claim {
            after: Some(if paused { floor.max(now) } else { floor }),
            end: schedule.end,
        }
    }

    /// The claim as it would be without `endTime`: an edit lifting endTime hands the ticks
    /// after it back to the schedule, so a run of one of them is no proof it will never run.
    pub fn ignoring_end(self) -> Claim {
        Claim { end: None, ..self }
    }

    pub fn covers(&self, t: Timestamp) -> bool {
        self.after.is_some_and(|after| t > after) && self.end.is_none_or(|end| t <= end)
    }
}

/// A walk over taken ticks is bounded by the runs that exist and one backfill range; this caps
/// it all the same, so no input can make a pass walk for long.
const MAX_WALK: usize = 20_000;

/// Decides what to run now. Pure: the same input always gives the same plan.
pub fn plan(input: &PlanInput) -> Plan {
    match input.schedule.cadence {
        Cadence::Once => plan_once(input),
        // Nothing triggers while disabled (KFP shows a next time that never runs).
        _ if !input.enabled => Plan::nothing(input.state.clone()),
        _ => plan_recurring(input),
    }
}

/// KFP's one-off: one run, scheduled at the creation time, unless the schedule has triggered
/// (`lastTriggeredTime`, as KFP's `getNextScheduledEpochForOneTimeRun`; a run-now run does not
/// count).
fn plan_once(input: &PlanInput) -> Plan {
    let mut plan = Plan::nothing(input.state.clone());
    let due = input.enabled && input.state.last_triggered.is_none() && !input.taken.contains(input.created);
    if due && input.active < input.max_concurrency {
        plan.create(input.created);
    }
    plan.next = due.then_some(input.created).filter(|_| plan.runs.is_empty());
    plan.waiting = plan.next.is_some();
    plan
}

fn plan_recurring(input: &PlanInput) -> Plan {
    let position = input.state.position(input.schedule, input.created);
    let mut plan = Plan::nothing(input.state.clone());
    let latest_only = input.no_catchup || input.policy == ConcurrencyPolicy::Replace;
    if latest_only {
        plan_latest(input, position, &mut plan);
    } else {
        plan_catch_up(input, position, &mut plan);
    }
    if plan.next.is_none() {
        plan.next = first_open_after(input, position, plan.floor(position));
    }
    plan.waiting = plan.next.is_some_and(|t| t <= input.now);
    plan
}

/// The latest tick due, ignoring any missed before it (noCatchup, Replace): found directly,
/// with no walk over the missed ticks.
fn plan_latest(input: &PlanInput, position: Position, plan: &mut Plan) {
    let due_until = input.schedule.end.map_or(input.now, |end| end.min(input.now));
    let grid = position.grid(input.schedule);
    let Some(t) = grid.at_or_before(due_until).filter(|t| *t > position.floor) else {
        return;
    };
    if input.taken.contains(t) {
        plan.pass(t);
    } else if input.policy == ConcurrencyPolicy::Replace {
        // The latest due tick replaces what runs (as CronJob's Replace); earlier missed ticks
        // are dropped, since the run moves `lastTriggeredTime` past them.
        let room = (input.active + 1).saturating_sub(input.max_concurrency);
        if room <= input.replaceable {
            plan.replace = room;
            plan.create(t);
        } else {
            // What runs is a backfill's still-to-come tick: it waits for a slot instead.
            plan.next = Some(t);
        }
    } else if input.active < input.max_concurrency {
        plan.create(t);
    } else if input.policy == ConcurrencyPolicy::Skip {
        plan.skipped.push(t);
        plan.pass(t);
    } else {
        // noCatchup: the tick that runs when a slot frees is the latest due one (KFP shows it).
        plan.next = Some(t);
    }
}

/// Every missed tick, oldest first, as many as free slots allow; ticks that are taken are
/// passed; with `Skip`, everything due beyond the free slots is dropped.
fn plan_catch_up(input: &PlanInput, position: Position, plan: &mut Plan) {
    let slots = input.max_concurrency.saturating_sub(input.active);
    let grid = position.grid(input.schedule);
    let due = grid
        .from(position.floor)
        .take_while(|t| *t <= input.now && input.schedule.within_end(*t))
        .take(MAX_WALK);
    for t in due {
        if input.taken.contains(t) {
            plan.pass(t);
        } else if plan.runs.len() < slots {
            plan.create(t);
        } else if input.policy == ConcurrencyPolicy::Skip {
            // Everything already due is dropped, not only this tick.
            let due_until = input.schedule.end.map_or(input.now, |end| end.min(input.now));
            plan.skipped.push(t);
            plan.pass(grid.at_or_before(due_until).unwrap_or(t).max(t));
            return;
        } else {
            plan.next = Some(t); // waits for a slot, with its own time
            return;
        }
    }
}

/// The first tick after `floor` that is not taken, within the window.
fn first_open_after(input: &PlanInput, position: Position, floor: Timestamp) -> Option<Timestamp> {
    position
        .grid(input.schedule)
        .from(floor)
        .take(MAX_WALK)
        .take_while(|t| input.schedule.within_end(*t))
        .find(|t| !input.taken.contains(*t))
}

/// The next `count` ticks the schedule itself would run strictly after `after` (or after its
/// floor, when later), within its window: what `check`, `kubectl swf` and `migrate-check` show.
pub fn upcoming(schedule: &Schedule, position: Position, after: Timestamp, count: usize) -> Vec<Timestamp> {
    position
        .grid(schedule)
        .from(position.floor.max(after))
        .take_while(|t| schedule.within_end(*t))
        .take(count)
        .collect()
}

/// The schedule in words, for `kubectl get` (e.g. `cron 0 0 * * * * (UTC)`).
pub fn describe(trigger: &crate::model::crd::Trigger, tz: &str) -> String {
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
    use crate::scheduling::cron;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cron_schedule(expr: &str) -> Schedule {
        Schedule::cron(cron::parse(expr).unwrap(), None, None, TimeZone::UTC)
    }

    fn once() -> Schedule {
        Schedule {
            cadence: Cadence::Once,
            start: None,
            end: None,
            time_zone: TimeZone::UTC,
        }
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
            taken: &NOTHING_TAKEN,
            active: 0,
            replaceable: 0,
            now: at(now),
        }
    }

    fn times(p: &Plan) -> Vec<String> {
        p.runs.iter().map(|r| r.scheduled.to_string()).collect()
    }

    #[test]
    fn a_backfill_takes_only_the_ticks_it_has_handled() {
        let t = |m: u32| at(&format!("2026-01-01T00:{m:02}:00Z"));
        let taken = Taken {
            ticks: BTreeSet::new(),
            backfill: Some((t(2), t(4))),
        };
        assert!(!taken.contains(t(1)), "before the range");
        assert!([2, 3, 4].into_iter().all(|m| taken.contains(t(m))), "from..=through");
        assert!(!taken.contains(t(5)), "after through: not handled yet");
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
        i.replaceable = 1;
        i.policy = ConcurrencyPolicy::Replace;
        let p = plan(&i);
        assert_eq!(p.replace, 1);
        assert_eq!(times(&p), vec!["2026-01-01T01:00:00Z"]);
    }

    /// Replace deletes exactly as many runs as make one slot: with 2 of 2 active, one; with 1 of
    /// 2, none.
    #[test]
    fn replace_makes_exactly_one_slot() {
        let s = cron_schedule("0 0 * * * *");
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T01:00:01Z");
        i.policy = ConcurrencyPolicy::Replace;
        i.max_concurrency = 2;
        (i.active, i.replaceable) = (2, 2);
        assert_eq!(plan(&i).replace, 1);
        (i.active, i.replaceable) = (1, 1);
        let p = plan(&i);
        assert_eq!((p.replace, times(&p)), (0, vec!["2026-01-01T01:00:00Z".to_string()]));
    }

    /// noCatchup with every slot taken: the latest due tick waits, with its own time.
    #[test]
    fn no_catchup_waits_for_a_slot_with_the_latest_due_tick() {
        let s = cron_schedule("0 0 * * * *");
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T05:30:00Z");
        i.no_catchup = true;
        i.max_concurrency = 2;
        i.active = 2;
        let p = plan(&i);
        assert!(p.runs.is_empty());
        assert_eq!((p.next, p.waiting), (Some(at("2026-01-01T05:00:00Z")), true));
        i.active = 1;
        assert_eq!(times(&plan(&i)), vec!["2026-01-01T05:00:00Z"]);
    }

    /// noCatchup whose latest due tick is the floor itself, its run since deleted: the tick
    /// is not run again (deleting a run never makes its tick due again).
    #[test]
    fn no_catchup_does_not_run_the_floor_tick_again_after_its_run_is_deleted() {
        let s = cron_schedule("0 0 * * * *");
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T05:30:00Z");
        i.no_catchup = true;
        i.state.last_triggered = Some(at("2026-01-01T05:00:00Z"));
        i.state.last_index = 5;
        let p = plan(&i);
        assert!(p.runs.is_empty(), "{:?}", times(&p));
        assert_eq!((p.next, p.waiting), (Some(at("2026-01-01T06:00:00Z")), false));
    }

    /// noCatchup after endTime: the latest tick due is the last one at or before endTime.
    #[test]
    fn no_catchup_past_end_time_runs_the_last_tick_before_it() {
        let mut s = cron_schedule("0 0 * * * *");
        s.end = Some(at("2026-01-01T03:30:00Z"));
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T05:30:00Z");
        i.no_catchup = true;
        let p = plan(&i);
        assert_eq!(times(&p), vec!["2026-01-01T03:00:00Z"]);
        assert_eq!(p.next, None, "the schedule has ended");
    }

    /// Issue 18, R1: a run whose tick a backfill in progress has still to handle is not
    /// replaced (the backfill would run its tick again); the due tick waits for a slot.
    #[test]
    fn replace_waits_when_what_runs_may_not_be_deleted() {
        let s = cron_schedule("0 0 * * * *");
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T01:00:01Z");
        i.policy = ConcurrencyPolicy::Replace;
        i.active = 1;
        i.replaceable = 0;
        let p = plan(&i);
        assert_eq!((p.replace, times(&p)), (0, vec![]));
        assert_eq!(p.next, Some(at("2026-01-01T01:00:00Z")), "waits for a slot");
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

    /// KFP: a startTime moved past the last tick runs the schedule from startTime, and no tick
    /// between the last one and startTime runs.
    #[test]
    fn a_start_time_moved_past_the_last_tick_runs_from_it_and_nothing_between() {
        let mut hourly = every(3600);
        hourly.start = Some(at("2026-01-01T05:00:00Z"));
        let mut i = input(&hourly, "2026-01-01T00:00:00Z", "2026-01-01T06:30:00Z");
        i.max_concurrency = 10;
        i.state.last_triggered = Some(at("2026-01-01T01:00:00Z"));
        i.state.last_index = 1;
        assert_eq!(times(&plan(&i)), vec!["2026-01-01T05:00:00Z", "2026-01-01T06:00:00Z"]);
        let mut cron = cron_schedule("0 0 * * * *");
        cron.start = Some(at("2026-01-01T05:00:00Z"));
        let mut i = input(&cron, "2026-01-01T00:00:00Z", "2026-01-01T06:30:00Z");
        i.max_concurrency = 10;
        i.state.last_triggered = Some(at("2026-01-01T01:00:00Z"));
        assert_eq!(
            times(&plan(&i)),
            vec!["2026-01-01T06:00:00Z"],
            "cron: strictly after startTime"
        );
    }

    #[test]
    fn one_off_runs_once_at_creation() {
        let s = once();
        let i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z");
        let p = plan(&i);
        assert_eq!(times(&p), vec!["2026-01-01T00:00:00Z"]);
        let mut i2 = i.clone();
        i2.state = p.state;
        assert!(plan(&i2).runs.is_empty());
        assert_eq!(plan(&i2).next, None);
    }

    /// A one-off whose slots are all taken (run-now runs) waits for one, at its own time.
    #[test]
    fn a_one_off_waits_for_a_free_slot() {
        let s = once();
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z");
        i.max_concurrency = 2;
        i.active = 2;
        let p = plan(&i);
        assert!(p.runs.is_empty());
        assert_eq!((p.next, p.waiting), (Some(at("2026-01-01T00:00:00Z")), true));
        i.active = 1;
        assert_eq!(times(&plan(&i)), vec!["2026-01-01T00:00:00Z"]);
    }

    /// A claim reaches up to and including endTime: a tick exactly at endTime is the schedule's.
    #[test]
    fn a_claim_covers_its_end_time_and_nothing_after() {
        let claim = Claim {
            after: Some(at("2026-01-01T00:00:00Z")),
            end: Some(at("2026-01-01T01:00:00Z")),
        };
        assert!(!claim.covers(at("2026-01-01T00:00:00Z")), "after is exclusive");
        assert!(claim.covers(at("2026-01-01T01:00:00Z")), "end is inclusive");
        assert!(!claim.covers(at("2026-01-01T01:00:01Z")));
        assert!(claim.ignoring_end().covers(at("2026-01-01T01:00:01Z")));
    }

    #[test]
    fn the_schedule_in_words() {
        let trigger = |t: serde_json::Value| serde_json::from_value::<crate::model::crd::Trigger>(t).unwrap();
        let cron = trigger(serde_json::json!({"cronSchedule": {"cron": "0 0 * * * *"}}));
        assert_eq!(describe(&cron, "Europe/Paris"), "0 0 * * * * (Europe/Paris)");
        let every = trigger(serde_json::json!({"periodicSchedule": {"intervalSecond": 30}}));
        assert_eq!(describe(&every, "UTC"), "every 30s");
        let zero = trigger(serde_json::json!({"periodicSchedule": {"intervalSecond": 0}}));
        assert_eq!(describe(&zero, "UTC"), "every 1s", "as the interval is clamped");
        assert_eq!(describe(&trigger(serde_json::json!({})), "UTC"), "once");
    }

    /// Issue 18, bug 9: a run-now served before the one-off's own run raised the index, and
    /// the one-off read that as "already ran" (KFP reads `lastTriggeredTime`).
    #[test]
    fn a_one_off_runs_even_after_a_run_now_was_served_first() {
        let s = once();
        let mut i = input(&s, "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z");
        i.state.last_index = 1; // the run-now run
        let p = plan(&i);
        assert_eq!(times(&p), vec!["2026-01-01T00:00:00Z"]);
        assert_eq!(p.runs[0].index, 2);
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
