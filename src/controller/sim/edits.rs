//! What a user does to the ScheduledWorkflow: its first spec, random edits of one field at a
//! time, backfill ranges, and the calm phase's spec. Cron expressions are 6-field robfig
//! expressions that fire on fixed seconds of every minute, so the simulation knows their ticks
//! without the operator's cron code.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::{
    dice::Dice,
    time::{secs, whole},
};
use crate::model::crd::{
    ConcurrencyPolicy, CronSchedule, FailurePolicy, PeriodicSchedule, RunTemplate, ScheduledWorkflowSpec, Trigger,
};

/// The cron schedules a seed may use, with the seconds of each minute they fire at.
pub const CRONS: [(&str, &[i64]); 4] = [
    ("*/20 * * * * *", &[0, 20, 40]),
    ("0 * * * * *", &[0]),
    ("15,45 * * * * *", &[15, 45]),
    ("*/30 * * * * *", &[0, 30]),
];

/// The seconds of each minute `cron` fires at, if it is one of `CRONS`.
pub fn cron_seconds(cron: &str) -> Option<&'static [i64]> {
    CRONS.iter().find(|(c, _)| *c == cron).map(|(_, s)| *s)
}

/// The longest gap between two ticks of the spec's trigger, in seconds; `None` for a one-off.
pub fn gap(spec: &ScheduledWorkflowSpec) -> Option<i64> {
    if let Some(p) = &spec.trigger.periodic_schedule {
        return Some(p.interval_second.max(1));
    }
    let seconds = cron_seconds(&spec.trigger.cron_schedule.as_ref()?.cron)?;
    let gaps = seconds.windows(2).map(|w| w[1] - w[0]);
    Some(
        gaps.chain([60 + seconds[0] - seconds[seconds.len() - 1]])
            .max()
            .unwrap_or(60),
    )
}

/// The periodic interval, if the trigger is periodic.
pub fn interval(spec: &ScheduledWorkflowSpec) -> Option<i64> {
    spec.trigger
        .periodic_schedule
        .as_ref()
        .map(|p| p.interval_second.max(1))
}

fn near(d: &mut Dice, now: Timestamp, back: i64, ahead: i64) -> Option<Time> {
    Some(Time(whole(now) + secs(d.range(-back, ahead))))
}

fn random_trigger(d: &mut Dice, one_off: f64) -> Trigger {
    if d.chance(one_off) {
        return Trigger::default();
    }
    if d.chance(0.5) {
        let cron = d.pick(&CRONS).0.to_string();
        let cron_schedule = Some(CronSchedule {
            cron,
            ..Default::default()
        });
        return Trigger {
            cron_schedule,
            ..Default::default()
        };
    }
    let periodic_schedule = Some(PeriodicSchedule {
        interval_second: d.range(10, 120),
        ..Default::default()
    });
    Trigger {
        periodic_schedule,
        ..Default::default()
    }
}

/// The trigger's startTime and endTime, if it has a window (a one-off has none).
fn window(spec: &mut ScheduledWorkflowSpec) -> Option<(&mut Option<Time>, &mut Option<Time>)> {
    let t = &mut spec.trigger;
    if let Some(c) = t.cron_schedule.as_mut() {
        return Some((&mut c.start_time, &mut c.end_time));
    }
    t.periodic_schedule
        .as_mut()
        .map(|p| (&mut p.start_time, &mut p.end_time))
}

/// The trigger's endTime, if set.
pub fn end_time(spec: &ScheduledWorkflowSpec) -> Option<jiff::Timestamp> {
    let t = &spec.trigger;
    let cron = t.cron_schedule.as_ref().and_then(|c| c.end_time.as_ref());
    let periodic = t.periodic_schedule.as_ref().and_then(|p| p.end_time.as_ref());
    cron.or(periodic).map(|e| e.0)
}

fn maybe(d: &mut Dice, lo: i64, hi: i64) -> Option<i64> {
    (!d.chance(0.3)).then(|| d.range(lo, hi))
}

/// The spec the schedule is created with.
pub fn initial(d: &mut Dice, now: Timestamp, one_off: bool) -> ScheduledWorkflowSpec {
    let mut spec = ScheduledWorkflowSpec {
        enabled: !d.chance(0.15),
        run_template: Some(RunTemplate {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            metadata: None,
            spec: Some(json!({}).into()),
        }),
        trigger: if one_off {
            Trigger::default()
        } else {
            random_trigger(d, 0.1)
        },
        ..Default::default()
    };
    if d.chance(0.4)
        && let Some((start, _)) = window(&mut spec)
    {
        *start = near(d, now, 1800, 0); // catch-up from the past
    }
    spec.max_concurrency = maybe(d, 1, 3);
    spec.max_history = maybe(d, 0, 3); // a small status is a fast seed
    if d.chance(0.3) {
        spec.successful_runs_history_limit = maybe(d, 0, 3).map(|v| v as i32);
    }
    if d.chance(0.3) {
        spec.failure_policy = Some(FailurePolicy {
            suspend_after_consecutive_failures: Some(d.range(1, 3)),
        });
    }
    spec
}

/// The failing family's spec (`driver::FAILING`): a failure policy of 1-3 failures and at
/// most one failed run kept, so pruning and the failure policy meet.
pub fn failing(d: &mut Dice, spec: &mut ScheduledWorkflowSpec) {
    spec.failure_policy = Some(FailurePolicy {
        suspend_after_consecutive_failures: Some(d.range(1, 3)),
    });
    spec.failed_runs_history_limit = Some(d.range(0, 1) as i32);
}

#[derive(Clone, Copy)]
enum Field {
    Trigger,
    Start,
    End,
    Enabled,
    MaxConcurrency,
    Policy,
    NoCatchup,
    SucceededLimit,
    FailedLimit,
    FailurePolicy,
}

const FIELDS: [(u32, Field); 10] = [
    (2, Field::Trigger),
    (2, Field::Start),
    (1, Field::End),
    (3, Field::Enabled),
    (2, Field::MaxConcurrency),
    (2, Field::Policy),
    (1, Field::NoCatchup),
    (2, Field::SucceededLimit),
    (2, Field::FailedLimit),
    (2, Field::FailurePolicy),
];

/// How a seed's user edits: a one-off seed keeps its (absent) trigger; a seed may favour one
/// concurrency policy, backfills that reach into the future, or keep flipping between Wait
/// and Replace with one slot (swarm testing: seeds that differ more find more; Replace
/// meeting a backfill that ran the latest tick while Wait held the schedule back is rare
/// otherwise). `past_end` (only in the past-endTime family, `driver::PAST_END`): endTime
/// moved into the past and lifted again, and backfills of the latest ticks, which lie after
/// endTime (Replace meeting a tick the backfill ran while the schedule did not claim it).
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub one_off: bool,
    pub policy: Option<ConcurrencyPolicy>,
    pub ahead: bool,
    pub flip: bool,
    pub past_end: bool,
    /// The failing family (`driver::FAILING`): the spec always has a failure policy.
    pub failing: bool,
}

/// Changes one field at random; says which.
pub fn edit(d: &mut Dice, now: Timestamp, spec: &mut ScheduledWorkflowSpec, style: Style) -> &'static str {
    if style.past_end && d.chance(0.35) {
        return past_end(d, now, spec);
    }
    if style.flip && d.chance(0.6) {
        return flip(spec);
    }
    match d.weighted(&FIELDS) {
        Field::Trigger if !style.one_off => {
            let window = window(spec).map(|(s, e)| (s.clone(), e.clone()));
            spec.trigger = random_trigger(d, 0.15);
            if let (Some((s, e)), Some((start, end))) = (window, self::window(spec)) {
                (*start, *end) = (s, e);
            }
            "trigger"
        }
        Field::Trigger | Field::Enabled => {
            spec.enabled = !spec.enabled;
            "enabled"
        }
        Field::Start => {
            let value = if d.chance(0.25) { None } else { near(d, now, 1800, 300) };
            if let Some((start, _)) = window(spec) {
                *start = value;
            }
            "startTime"
        }
        Field::End => {
            let value = if d.chance(0.4) { None } else { near(d, now, 300, 1800) };
            if let Some((_, end)) = window(spec) {
                *end = value;
            }
            "endTime"
        }
        Field::MaxConcurrency => {
            spec.max_concurrency = maybe(d, 1, 3);
            "maxConcurrency"
        }
        Field::Policy => {
            let policies = [None, Some(ConcurrencyPolicy::Wait), Some(ConcurrencyPolicy::Skip)];
            let replace = [Some(ConcurrencyPolicy::Replace)];
            spec.concurrency_policy = match style.policy {
                Some(p) if d.chance(0.6) => Some(p),
                _ => {
                    let choices = if d.chance(0.35) { &replace[..] } else { &policies[..] };
                    *d.pick(choices)
                }
            };
            "concurrencyPolicy"
        }
        Field::NoCatchup => {
            spec.no_catchup = *d.pick(&[None, Some(true), Some(false)]);
            "noCatchup"
        }
        Field::SucceededLimit => {
            spec.successful_runs_history_limit = maybe(d, 0, 3).map(|v| v as i32);
            "successfulRunsHistoryLimit"
        }
        Field::FailedLimit => {
            spec.failed_runs_history_limit = maybe(d, 0, 3).map(|v| v as i32);
            "failedRunsHistoryLimit"
        }
        Field::FailurePolicy if style.failing => {
            failing(d, spec);
            "failurePolicy"
        }
        Field::FailurePolicy => {
            spec.failure_policy = maybe(d, 1, 3).map(|n| FailurePolicy {
                suspend_after_consecutive_failures: Some(n),
            });
            "failurePolicy"
        }
    }
}

/// endTime a few ticks in the past, or lifted when it is set.
fn past_end(d: &mut Dice, now: Timestamp, spec: &mut ScheduledWorkflowSpec) -> &'static str {
    let gap = gap(spec).unwrap_or(30);
    if let Some((_, end)) = window(spec) {
        *end = match end {
            Some(_) => None,
            None => Some(Time(whole(now) - secs(gap * d.range(2, 4)))),
        };
    }
    "endTime (past or lifted)"
}

/// One slot, and Wait becomes Replace (or Replace Wait).
fn flip(spec: &mut ScheduledWorkflowSpec) -> &'static str {
    let replace = spec.concurrency_policy == Some(ConcurrencyPolicy::Replace);
    spec.concurrency_policy = Some(if replace {
        ConcurrencyPolicy::Wait
    } else {
        ConcurrencyPolicy::Replace
    });
    spec.max_concurrency = Some(1);
    "concurrencyPolicy (flip)"
}

/// A backfill range `<from>/<to>` of a few to a few dozen ticks: mostly in the past, sometimes
/// reaching into the future.
pub fn backfill_range(d: &mut Dice, now: Timestamp, spec: &ScheduledWorkflowSpec, style: Style) -> String {
    let gap = gap(spec).unwrap_or(30);
    let now = whole(now);
    if style.past_end && end_time(spec).is_some_and(|e| e < now - secs(gap)) {
        return format!("{}/{}", now - secs(gap), now + secs(1));
    }
    let (from, to) = if style.ahead || d.chance(0.2) {
        (now - secs(gap * d.range(1, 10)), now + secs(gap * d.range(1, 5)))
    } else {
        let from = now - secs(gap * d.range(1, 40) + d.range(0, gap));
        (from, from + secs(gap * d.range(2, 30)))
    };
    format!("{from}/{to}")
}

/// The calm phase's spec: enabled, no endTime (nor a startTime still to come), Wait,
/// maxConcurrency 3, no failure policy; the trigger is kept, except that a one-off becomes
/// periodic when `to_periodic` is given. The description changes, so the edit is a new
/// generation (it wakes a pass even when nothing else changed).
pub fn calm(spec: &mut ScheduledWorkflowSpec, now: Timestamp, to_periodic: Option<i64>) {
    spec.enabled = true;
    spec.concurrency_policy = Some(ConcurrencyPolicy::Wait);
    spec.max_concurrency = Some(3);
    spec.failure_policy = None;
    spec.description = Some("calm".into());
    if let (Some(interval_second), None) = (to_periodic, gap(spec)) {
        spec.trigger.periodic_schedule = Some(PeriodicSchedule {
            interval_second,
            ..Default::default()
        });
    }
    if let Some((start, end)) = window(spec) {
        *end = None;
        if start.as_ref().is_some_and(|s| s.0 > now) {
            *start = None;
        }
    }
}

/// The spec in a few words, for the trace.
pub fn describe(spec: &ScheduledWorkflowSpec) -> String {
    let t = &spec.trigger;
    let (what, start, end) = match (&t.cron_schedule, &t.periodic_schedule) {
        (Some(c), _) => (format!("cron '{}'", c.cron), &c.start_time, &c.end_time),
        (None, Some(p)) => (format!("every {}s", p.interval_second), &p.start_time, &p.end_time),
        (None, None) => ("one-off".to_string(), &None, &None),
    };
    let mut words = vec![what];
    let time = |t: &Option<Time>| t.as_ref().map(|t| super::time::tick(t.0));
    words.extend(time(start).map(|s| format!("start {s}")));
    words.extend(time(end).map(|s| format!("end {s}")));
    words.push(if spec.enabled { "enabled" } else { "DISABLED" }.into());
    words.extend(spec.max_concurrency.map(|m| format!("maxConcurrency {m}")));
    words.extend(spec.concurrency_policy.map(|p| format!("{p:?}")));
    words.extend(spec.no_catchup.filter(|n| *n).map(|_| "noCatchup".to_string()));
    words.extend(
        spec.successful_runs_history_limit
            .map(|n| format!("keep {n} succeeded")),
    );
    words.extend(spec.failed_runs_history_limit.map(|n| format!("keep {n} failed")));
    let suspend = spec
        .failure_policy
        .as_ref()
        .and_then(|f| f.suspend_after_consecutive_failures);
    words.extend(suspend.map(|n| format!("suspend after {n}")));
    words.join(", ")
}
