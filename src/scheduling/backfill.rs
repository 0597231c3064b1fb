//! Pure backfill planning: the ticks a schedule would have fired in a requested range, and
//! which of them to create now. No I/O and no clock. The request is the annotation
//! `scheduledworkflows.kubeflow.org/backfill: <from>/<to>`; docs/backfill.md has the rules:
//! - the range is closed-open: a tick `t` runs when `from <= t < to`;
//! - `from` and `to` are RFC 3339 instants (`2026-01-01T00:00:00Z`), or civil date-times or
//!   dates (`2026-01-01T00:00`, `2026-01-01`) read in the schedule's time zone;
//! - ticks are the schedule's own, from the one tick model (`ticks::Grid`, through the same
//!   origin as the planner's); `startTime` and `endTime` do not limit a backfill (the range is
//!   the request), ticks before 1970 and ticks not yet due never run;
//! - a tick that already has a run (of any kind: scheduled, an earlier backfill, KFP's) is
//!   not run again; the ones up to `through` (status) are done and never looked at again;
//! - a tick the schedule may still create itself (`schedule::Claim`: after its floor, while it
//!   is not paused) is left to it: counted once the schedule has run it, created by the
//!   backfill only if the schedule passes it without a run. So a tick has one creator;
//! - backfill runs count against their own `maxConcurrency`, separately from the schedule's
//!   own runs, so a backfill never delays, skips or replaces a scheduled tick.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp, civil, tz::TimeZone};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    model::crd::{BackfillPhase, BackfillStatus},
    scheduling::{
        schedule::{Cadence, Claim, Schedule},
        ticks::{EARLIEST, Grid},
    },
};

/// A backfill of more ticks than this is refused: split the range.
pub const MAX_TICKS: usize = 10_000;

/// A requested range, closed-open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub from: Timestamp,
    pub to: Timestamp,
}

/// One end of the range: an instant, or a civil time / date in the schedule's zone.
fn instant(text: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    let civil = text
        .parse::<civil::DateTime>()
        .or_else(|_| {
            text.parse::<civil::Date>()
                .map(|d| d.to_datetime(civil::Time::midnight()))
        })
        .map_err(|_| {
            format!(
                "{text:?} is not an RFC 3339 time (2026-01-01T00:00:00Z), a local time (2026-01-01T00:00) or a date"
            )
        })?;
    civil
        .to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|e| format!("{text:?} in the schedule's time zone: {e}"))
}

/// Reads `<from>/<to>` (ISO 8601's interval form).
pub fn parse_range(value: &str, tz: &TimeZone) -> Result<Range, String> {
    let (from, to) = value
        .split_once('/')
        .ok_or_else(|| format!("{value:?} is not a range: write <from>/<to>, e.g. 2026-01-01/2026-02-01"))?;
    let range = Range {
        from: instant(from, tz)?,
        to: instant(to, tz)?,
    };
    if range.to <= range.from {
        return Err(format!("{value:?}: the end is not after the start"));
    }
    Ok(range)
}

/// The schedule's ticks in `range`, oldest first (on the schedule's own grid: the same one
/// the planner walks); `Err` when there are more than `MAX_TICKS`.
pub fn ticks(grid: Grid, range: Range) -> Result<Vec<Timestamp>, String> {
    let from = range.from.max(EARLIEST);
    let before = from.checked_sub(SignedDuration::from_nanos(1)).unwrap_or(from);
    let ticks: Vec<Timestamp> = grid
        .from(before)
        .take_while(|t| *t < range.to)
        .take(MAX_TICKS + 1)
        .collect();
    if ticks.len() > MAX_TICKS {
        return Err(format!(
            "the range holds more than {MAX_TICKS} ticks of this schedule; split it into smaller ranges"
        ));
    }
    Ok(ticks)
}

/// What one pass knows about a backfill in progress.
pub struct Input<'a> {
    /// Every tick of the range, oldest first (`ticks`).
    pub ticks: &'a [Timestamp],
    /// The last tick handled by earlier passes (status), if any.
    pub through: Option<Timestamp>,
    /// Ticks that have a run now.
    pub existing: &'a BTreeSet<Timestamp>,
    /// Active runs of this backfill.
    pub active: usize,
    pub max_concurrency: usize,
    /// Ticks the schedule may still create itself: left to it.
    pub claim: &'a Claim,
    pub now: Timestamp,
}

/// What to do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Ticks to create, oldest first.
    pub create: Vec<Timestamp>,
    /// The last tick handled once `create` exists (every tick up to it has a run).
    pub through: Option<Timestamp>,
    /// Ticks with a run once `create` exists.
    pub done: usize,
    /// The first tick without a run after `create`: waiting for a slot or for its time.
    pub next: Option<Timestamp>,
}

pub fn batch(input: &Input) -> Batch {
    let mut plan = Batch {
        create: Vec::new(),
        through: input.through,
        done: 0,
        next: None,
    };
    let mut slots = input.max_concurrency.saturating_sub(input.active);
    let mut contiguous = true;
    for &t in input.ticks {
        let handled = input.through.is_some_and(|through| t <= through) || input.existing.contains(&t);
        let creatable = !handled && plan.next.is_none() && t <= input.now && slots > 0 && !input.claim.covers(t);
        if creatable {
            slots -= 1;
            plan.create.push(t);
        }
        if handled || creatable {
            plan.done += 1;
            if contiguous {
                plan.through = plan.through.max(Some(t));
            }
        } else {
            contiguous = false;
            plan.next = plan.next.or(Some(t));
        }
    }
    plan
}

/// A backfill request as one pass sees it: the annotation, read against what status recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The annotation value.
    pub value: String,
    pub range: Result<Range, String>,
    /// Handled up to here by earlier passes of the same request.
    pub through: Option<Timestamp>,
    /// Finished, failed or invalid already: nothing more to do for this value.
    pub settled: bool,
}

impl Request {
    /// The request in the annotation, if any. A value equal to the recorded one continues it
    /// (a Cancelled one too: re-adding a removed value resumes where it stopped); any other
    /// value starts over.
    pub fn read(annotation: Option<&str>, current: Option<&BackfillStatus>, tz: &TimeZone) -> Option<Request> {
        let value = annotation.map(str::trim).filter(|v| !v.is_empty())?;
        let same = current.filter(|c| c.range == value);
        Some(Request {
            value: value.to_string(),
            range: parse_range(value, tz),
            through: same.and_then(|c| c.through.as_ref()).map(|t| t.0),
            settled: same.is_some_and(|c| {
                matches!(
                    c.phase(),
                    Some(BackfillPhase::Finished | BackfillPhase::Failed | BackfillPhase::Invalid)
                )
            }),
        })
    }

    /// A tick this request has still to handle: a run of it must not be pruned meanwhile, or
    /// it would run again.
    pub fn pending(&self, t: Timestamp) -> bool {
        match &self.range {
            Ok(r) if !self.settled => r.from <= t && t < r.to && self.through.is_none_or(|through| t > through),
            _ => false,
        }
    }
}

/// What status records as handled by the backfill: its range's ticks `from..=through`, each of
/// which had a run created (or was skipped for a name conflict). The schedule passes them.
pub fn record(status: Option<&BackfillStatus>, tz: &TimeZone) -> Option<(Timestamp, Timestamp)> {
    let status = status?;
    let through = status.through.as_ref()?.0;
    let range = parse_range(&status.range, tz).ok()?;
    Some((range.from, through))
}

/// What a pass does about backfill.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Nothing to create; status.backfill becomes this.
    Report(Option<BackfillStatus>),
    /// Create `plan.create` (in order), then report with `progress`.
    Work {
        request: Request,
        ticks: Vec<Timestamp>,
        plan: Batch,
    },
}

/// The schedule and its runs, as a pass sees them.
pub struct Situation<'a> {
    pub schedule: &'a Schedule,
    /// The schedule's grid (the planner's: `TriggerState::position`).
    pub grid: Grid<'a>,
    /// Ticks the schedule may still create itself.
    pub claim: Claim,
    /// Ticks with a run.
    pub existing: &'a BTreeSet<Timestamp>,
    /// Active backfill runs.
    pub active: usize,
    pub max_concurrency: usize,
    pub now: Timestamp,
}

/// Decides the pass's backfill step.
pub fn decide(request: Option<Request>, current: Option<&BackfillStatus>, s: &Situation) -> Decision {
    let Some(request) = request else {
        // Removing the annotation cancels what has not started; the record stays.
        let cancelled = current.cloned().map(|mut c| {
            if c.phase() == Some(BackfillPhase::Running) {
                c.phase = BackfillPhase::Cancelled.into();
                c.message = Some("the backfill annotation was removed; runs already created were kept".into());
                c.next_tick = None;
            }
            c
        });
        return Decision::Report(cancelled);
    };
    if request.settled {
        return Decision::Report(current.cloned());
    }
    let ticks = match (&request.range, &s.schedule.cadence) {
        (_, Cadence::Once) => Err("a schedule with no trigger (one-off) has no ticks to backfill".to_string()),
        (Ok(range), _) => ticks(s.grid, *range),
        (Err(e), _) => Err(e.clone()),
    };
    let ticks = match ticks {
        Ok(ticks) => ticks,
        Err(message) => return Decision::Report(Some(invalid(&request, message))),
    };
    let plan = batch(&Input {
        ticks: &ticks,
        through: request.through,
        existing: s.existing,
        active: s.active,
        max_concurrency: s.max_concurrency,
        claim: &s.claim,
        now: s.now,
    });
    Decision::Work { request, ticks, plan }
}

/// The request cannot run (any more: a spec edit can make a running one invalid). What it
/// handled stays recorded (`through`), so the schedule still passes those ticks.
fn invalid(request: &Request, message: String) -> BackfillStatus {
    BackfillStatus {
        range: request.value.clone(),
        phase: BackfillPhase::Invalid.into(),
        message: Some(message),
        through: request.through.map(Time),
        ..Default::default()
    }
}

/// status.backfill after the pass created `created` (a prefix of the plan's ticks).
pub fn progress(
    request: &Request,
    ticks: &[Timestamp],
    existing: &BTreeSet<Timestamp>,
    created: &[Timestamp],
    claim: &Claim,
    now: Timestamp,
) -> BackfillStatus {
    let mut have = existing.clone();
    have.extend(created.iter().copied());
    let after = batch(&Input {
        ticks,
        through: request.through,
        existing: &have,
        active: 0,
        max_concurrency: 0,
        claim,
        now,
    });
    let finished = after.next.is_none();
    BackfillStatus {
        range: request.value.clone(),
        phase: if finished {
            BackfillPhase::Finished
        } else {
            BackfillPhase::Running
        }
        .into(),
        message: after.next.and_then(|t| waiting_for(t, claim, now)),
        total: i64::try_from(ticks.len()).unwrap_or(i64::MAX),
        done: i64::try_from(after.done).unwrap_or(i64::MAX),
        through: after.through.map(Time),
        next_tick: after.next.map(Time),
    }
}

/// Why the backfill waits for tick `t`, when it is not a free slot.
fn waiting_for(t: Timestamp, claim: &Claim, now: Timestamp) -> Option<String> {
    if claim.covers(t) {
        Some(format!(
            "the tick {t} is the schedule's own (not yet passed by it): the backfill counts the schedule's run of it, or runs it if the schedule skips it"
        ))
    } else if t > now {
        Some(format!("the next tick of the range, {t}, is still to come"))
    } else {
        None
    }
}

/// status.backfill when a create failed for a lasting reason after its retries.
pub fn failed(previous: BackfillStatus, message: String) -> BackfillStatus {
    BackfillStatus {
        phase: BackfillPhase::Failed.into(),
        message: Some(message),
        next_tick: None,
        ..previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cron(expr: &str, tz: &str) -> Schedule {
        let tz = TimeZone::get(tz).unwrap();
        Schedule::cron(crate::scheduling::cron::parse(expr).unwrap(), None, None, tz)
    }

    fn every(seconds: i64) -> Schedule {
        Schedule {
            cadence: Cadence::Every { seconds },
            start: None,
            end: None,
            time_zone: TimeZone::UTC,
        }
    }

    #[test]
    fn a_range_is_instants_or_local_times_in_the_schedule_zone() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let r = parse_range("2026-01-01T00:00:00Z/2026-01-04T00:00:00Z", &berlin).unwrap();
        assert_eq!((r.from, r.to), (at("2026-01-01T00:00:00Z"), at("2026-01-04T00:00:00Z")));
        let r = parse_range("2026-01-01/2026-01-02T06:00", &berlin).unwrap();
        assert_eq!((r.from, r.to), (at("2025-12-31T23:00:00Z"), at("2026-01-02T05:00:00Z")));
        for bad in [
            "2026-01-01",
            "2026-01-02/2026-01-01",
            "soon/later",
            "2026-01-01/2026-01-01",
        ] {
            assert!(parse_range(bad, &berlin).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn three_days_of_an_hourly_schedule_are_72_ticks_closed_open() {
        let s = cron("0 0 * * * *", "UTC");
        let range = parse_range("2026-01-01T00:00:00Z/2026-01-04T00:00:00Z", &TimeZone::UTC).unwrap();
        let ticks = ticks(Grid::new(&s, at("2026-06-01T00:00:00Z")), range).unwrap();
        assert_eq!(ticks.len(), 72);
        assert_eq!(ticks[0], at("2026-01-01T00:00:00Z"));
        assert_eq!(ticks[71], at("2026-01-03T23:00:00Z"));
    }

    #[test]
    fn a_daily_local_time_keeps_its_wall_clock_across_dst() {
        // Berlin springs forward on 2026-03-29: 08:30 local is 07:30Z before, 06:30Z after.
        let s = cron("0 30 8 * * *", "Europe/Berlin");
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let range = parse_range("2026-03-28/2026-03-31", &berlin).unwrap();
        let ticks = ticks(Grid::new(&s, at("2026-06-01T00:00:00Z")), range).unwrap();
        assert_eq!(
            ticks,
            vec![
                at("2026-03-28T07:30:00Z"),
                at("2026-03-29T06:30:00Z"),
                at("2026-03-30T06:30:00Z")
            ]
        );
    }

    #[test]
    fn a_periodic_grid_extends_back_from_its_anchor() {
        let anchor = at("2026-01-10T00:20:00Z");
        let range = Range {
            from: at("2026-01-01T00:00:00Z"),
            to: at("2026-01-01T03:00:00Z"),
        };
        let ticks = ticks(Grid::new(&every(3600), anchor), range).unwrap();
        assert_eq!(
            ticks,
            vec![
                at("2026-01-01T00:20:00Z"),
                at("2026-01-01T01:20:00Z"),
                at("2026-01-01T02:20:00Z")
            ]
        );
    }

    #[test]
    fn too_many_ticks_are_refused_and_ticks_before_1970_never_run() {
        let range = Range {
            from: at("2026-01-01T00:00:00Z"),
            to: at("2026-01-02T00:00:00Z"),
        };
        assert!(ticks(Grid::new(&every(1), range.from), range).is_err());
        // The bound is exact: 10,000 ticks are one request, 10,001 are refused.
        let seconds = |n: i64| Range {
            from: range.from,
            to: range.from + SignedDuration::from_secs(n),
        };
        let per_second = every(1);
        let grid = Grid::new(&per_second, range.from);
        assert_eq!(ticks(grid, seconds(10_000)).map(|t| t.len()), Ok(MAX_TICKS));
        assert!(ticks(grid, seconds(10_001)).is_err());
        let early = Range {
            from: at("1969-12-31T22:00:00Z"),
            to: at("1970-01-01T02:00:00Z"),
        };
        let got = ticks(Grid::new(&cron("0 0 * * * *", "UTC"), range.from), early).unwrap();
        assert_eq!(got, vec![at("1970-01-01T00:00:00Z"), at("1970-01-01T01:00:00Z")]);
    }

    fn hours(n: i64) -> Vec<Timestamp> {
        (0..n)
            .map(|h| at("2026-01-01T00:00:00Z") + SignedDuration::from_hours(h))
            .collect()
    }

    #[test]
    fn creates_within_free_slots_and_skips_ticks_that_have_runs() {
        let ticks = hours(6);
        let existing: BTreeSet<_> = [ticks[1], ticks[4]].into();
        let p = batch(&Input {
            ticks: &ticks,
            through: None,
            existing: &existing,
            active: 1,
            max_concurrency: 3,
            claim: &Claim::NONE,
            now: at("2026-06-01T00:00:00Z"),
        });
        assert_eq!(p.create, vec![ticks[0], ticks[2]]);
        assert_eq!(p.through, Some(ticks[2]));
        assert_eq!(p.next, Some(ticks[3]));
        assert_eq!(p.done, 4, "0, 1, 2 and 4 have runs");
    }

    #[test]
    fn ticks_up_to_through_are_never_run_again_and_future_ticks_wait() {
        let ticks = hours(4);
        let p = batch(&Input {
            ticks: &ticks,
            through: Some(ticks[1]),
            existing: &BTreeSet::new(),
            active: 0,
            max_concurrency: 10,
            claim: &Claim::NONE,
            now: ticks[2],
        });
        assert_eq!(p.create, vec![ticks[2]]);
        assert_eq!((p.through, p.next, p.done), (Some(ticks[2]), Some(ticks[3]), 3));
        let finished = batch(&Input {
            ticks: &ticks,
            through: Some(ticks[3]),
            existing: &BTreeSet::new(),
            active: 0,
            max_concurrency: 1,
            claim: &Claim::NONE,
            now: ticks[3],
        });
        assert_eq!((finished.create.len(), finished.next, finished.done), (0, None, 4));
    }

    /// Found by the simulation (seed 204 once R3 was fixed): a running backfill whose schedule
    /// an edit turned into a one-off became Invalid and lost `through`, its record of the
    /// ticks it had handled (I4: status went backwards).
    #[test]
    fn a_request_made_invalid_by_a_spec_edit_keeps_what_it_handled() {
        let once = Schedule {
            cadence: Cadence::Once,
            start: None,
            end: None,
            time_zone: TimeZone::UTC,
        };
        let range = "2026-01-01T00:00:00Z/2026-01-01T04:00:00Z";
        let through = Some(Time(at("2026-01-01T01:00:00Z")));
        let running = BackfillStatus {
            range: range.into(),
            phase: BackfillPhase::Running.into(),
            through: through.clone(),
            ..Default::default()
        };
        let request = Request::read(Some(range), Some(&running), &TimeZone::UTC);
        let now = at("2026-01-01T05:00:00Z");
        let situation = Situation {
            schedule: &once,
            grid: Grid::new(&once, now),
            claim: Claim::NONE,
            existing: &BTreeSet::new(),
            active: 0,
            max_concurrency: 1,
            now,
        };
        let Decision::Report(Some(status)) = decide(request, Some(&running), &situation) else {
            panic!("a one-off has no ticks to backfill: reported, not worked");
        };
        assert_eq!(status.phase(), Some(BackfillPhase::Invalid));
        assert_eq!(status.through, through);
    }

    fn status(range: &str, phase: BackfillPhase, through: Option<&str>) -> BackfillStatus {
        BackfillStatus {
            range: range.into(),
            phase: phase.into(),
            through: through.map(|t| Time(at(t))),
            next_tick: Some(Time(at("2026-01-01T03:00:00Z"))),
            ..Default::default()
        }
    }

    /// History pruning asks `pending`: a run of a tick the request has still to handle is
    /// kept, or the tick would run again. The range is closed-open; `through` is handled.
    #[test]
    fn a_request_is_pending_for_the_ticks_of_its_range_after_through() {
        let range = "2026-01-01T01:00:00Z/2026-01-01T04:00:00Z";
        let read = |current: Option<&BackfillStatus>| Request::read(Some(range), current, &TimeZone::UTC).unwrap();
        let pending = |r: &Request, times: [&str; 4]| times.map(|t| r.pending(at(&format!("2026-01-01T{t}Z"))));
        let edges = ["00:59:59", "01:00:00", "03:59:59", "04:00:00"];
        assert_eq!(pending(&read(None), edges), [false, true, true, false]);
        let through = status(range, BackfillPhase::Running, Some("2026-01-01T02:00:00Z"));
        let around = ["01:00:00", "02:00:00", "02:00:01", "03:00:00"];
        assert_eq!(pending(&read(Some(&through)), around), [false, false, true, true]);
        let finished = status(range, BackfillPhase::Finished, None);
        assert_eq!(pending(&read(Some(&finished)), edges), [false; 4]);
        let invalid = Request::read(Some("soon/later"), None, &TimeZone::UTC).unwrap();
        assert!(!invalid.pending(at("2026-01-01T02:00:00Z")));
    }

    /// The ticks status records as handled, which the schedule passes.
    #[test]
    fn the_record_is_the_range_start_through_the_last_tick_handled() {
        let range = "2026-01-01T01:00:00Z/2026-01-01T04:00:00Z";
        let handled = status(range, BackfillPhase::Cancelled, Some("2026-01-01T02:00:00Z"));
        assert_eq!(
            record(Some(&handled), &TimeZone::UTC),
            Some((at("2026-01-01T01:00:00Z"), at("2026-01-01T02:00:00Z")))
        );
        let none_yet = status(range, BackfillPhase::Running, None);
        assert_eq!(record(Some(&none_yet), &TimeZone::UTC), None);
        let bad = status("soon/later", BackfillPhase::Invalid, Some("2026-01-01T02:00:00Z"));
        assert_eq!(record(Some(&bad), &TimeZone::UTC), None);
    }

    fn situation(schedule: &Schedule, now: Timestamp) -> Situation<'_> {
        static NONE: BTreeSet<Timestamp> = BTreeSet::new();
        Situation {
            schedule,
            grid: Grid::new(schedule, now),
            claim: Claim::NONE,
            existing: &NONE,
            active: 0,
            max_concurrency: 1,
            now,
        }
    }

    /// Removing the annotation cancels a running backfill and keeps its record; a finished
    /// one stays finished. An invalid range is reported with the value and the reason.
    #[test]
    fn removing_the_annotation_cancels_only_a_running_backfill() {
        let hourly = every(3600);
        let now = at("2026-01-01T05:00:00Z");
        let range = "2026-01-01T01:00:00Z/2026-01-01T04:00:00Z";
        let report = |current: &BackfillStatus| match decide(None, Some(current), &situation(&hourly, now)) {
            Decision::Report(Some(s)) => s,
            other => panic!("{other:?}"),
        };
        let running = status(range, BackfillPhase::Running, Some("2026-01-01T02:00:00Z"));
        let cancelled = report(&running);
        assert_eq!(cancelled.phase(), Some(BackfillPhase::Cancelled));
        assert_eq!((cancelled.through, cancelled.next_tick), (running.through, None));
        assert!(cancelled.message.is_some_and(|m| m.contains("removed")));
        let finished = status(range, BackfillPhase::Finished, Some("2026-01-01T03:00:00Z"));
        assert_eq!(report(&finished), finished);

        let bad = Request::read(Some("soon/later"), None, &TimeZone::UTC);
        let Decision::Report(Some(invalid)) = decide(bad, None, &situation(&hourly, now)) else {
            panic!("an invalid range is reported");
        };
        assert_eq!(
            (invalid.phase(), invalid.range.as_str()),
            (Some(BackfillPhase::Invalid), "soon/later")
        );
        assert!(invalid.message.is_some_and(|m| !m.is_empty()));
    }

    /// A backfill whose next tick is still to come says so; one whose tick is due now waits
    /// only for a slot, which needs no message.
    #[test]
    fn progress_says_when_the_next_tick_is_still_to_come() {
        let range = "2026-01-01T01:00:00Z/2026-01-01T04:00:00Z";
        let request = Request::read(Some(range), None, &TimeZone::UTC).unwrap();
        let ticks = hours(4)[1..].to_vec();
        let progress_at = |now: &str| progress(&request, &ticks, &BTreeSet::new(), &ticks[..1], &Claim::NONE, at(now));
        let early = progress_at("2026-01-01T01:30:00Z");
        assert_eq!(early.next_tick, Some(Time(ticks[1])));
        assert!(early.message.is_some_and(|m| m.contains("still to come")));
        assert_eq!(progress_at("2026-01-01T02:00:00Z").message, None, "due now");
        assert_eq!(progress_at("2026-01-01T02:30:00Z").message, None, "due");
    }

    /// A create that failed for good ends the backfill: Failed with the reason, nothing next,
    /// what it handled kept.
    #[test]
    fn a_failed_backfill_keeps_its_record_and_says_why() {
        let running = status(
            "2026-01-01T01:00:00Z/2026-01-01T04:00:00Z",
            BackfillPhase::Running,
            Some("2026-01-01T02:00:00Z"),
        );
        let failed = failed(running.clone(), "forbidden".into());
        assert_eq!(failed.phase(), Some(BackfillPhase::Failed));
        assert_eq!(failed.message.as_deref(), Some("forbidden"));
        assert_eq!(
            (failed.next_tick, failed.through, failed.range),
            (None, running.through, running.range)
        );
    }
}
