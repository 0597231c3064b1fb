//! Rules about slots:
//! - I3 concurrency: right after a scheduled or run-now creation, the schedule's own active
//!   runs in the world (not backfill runs, not finished, not being deleted), the new one
//!   included, are at most the `maxConcurrency` (clamped to 1..10) of the spec the instance
//!   saw; after a backfill creation, the active backfill runs are. Broken while the instance
//!   had undelivered events about the runs counted, it is reported apart (I3 stale cache), to
//!   confirm or refute "a new owner briefly over maxConcurrency".
//! - I6 no stall: after a pass that succeeded, when the world's spec is enabled, the status is
//!   neither suspended nor `Error`, `status.trigger.nextTriggeredTime` is due, the world shows
//!   a free slot and the instance had no undelivered events from others (other than about
//!   Jobs the pass read back itself after a 409), the pass's next
//!   wake-up is at most 10 s away. The same for a backfill: phase `Running`, `nextTick` due,
//!   fewer active backfill runs than maxConcurrency, and `nextTick` not one the schedule may
//!   still create itself (after its floor, up to `endTime`, while enabled and not suspended:
//!   the backfill leaves those to the schedule and waits with it).
//! - I8 Replace deletes only to make room: a pass that deletes an active run must, later in
//!   the same pass, POST a scheduled run of a newer tick, which is created, refused by a fault,
//!   or (409) found to be a scheduled run when read back; not a backfill's.

use std::time::Duration;

use jiff::Timestamp;

use super::{
    invariants::{Findings, PassEnd, PassStart, Rule, max_concurrency},
    records::{Detail, Origin},
    status_json::{summary_type, suspended, time_at},
    world::World,
};
use crate::{controller::reconcile::Next, model::crd::BackfillPhase};

/// I6's bound on the next wake-up when a due tick has a free slot.
const PROMPT: Duration = Duration::from_secs(10);
/// How long the operator counts a run known only from the status (`runs::RECENT_TTL`).
const RECORDED_TTL: Duration = Duration::from_secs(60);

pub fn check_creation(w: &World, i: usize, start: &PassStart, found: &mut Findings) {
    let run = &w.runs[i];
    let bound = start.max_concurrency;
    if run.busy.len() <= bound {
        return;
    }
    let others: Vec<&str> = run
        .busy
        .iter()
        .filter(|&&b| b != i)
        .map(|&b| w.runs[b].name.as_str())
        .collect();
    let stale = others.iter().any(|n| start.lag.jobs.contains(*n));
    let class = if run.origin.is_backfill() { "backfill" } else { "own" };
    let detail = format!(
        "pass {} created {}: {} {class} runs active (maxConcurrency {bound}): {}",
        start.id,
        run.describe(),
        run.busy.len(),
        others.join(", ")
    );
    found.push((if stale { Rule::I3Stale } else { Rule::I3 }, detail));
}

fn active(w: &World, backfill: bool) -> usize {
    w.jobs
        .values()
        .filter(|j| w.runs[j.run].active() && w.runs[j.run].origin.is_backfill() == backfill)
        .count()
}

pub fn check_stall(w: &World, end: &PassEnd, found: &mut Findings) {
    let Ok(next) = end.result else { return };
    let prompt = matches!(next, Next::After(d) if *d <= PROMPT);
    let status = w.status();
    if prompt || excused(end) || recorded_wait(w, next) || suspended(status) || summary_type(status) == Some("Error") {
        return;
    }
    let now = w.now();
    let free = max_concurrency(Some(&w.swf.spec));
    let due = |pointer: &str| time_at(status, pointer).is_some_and(|t| t <= now);
    let schedule = w.swf.spec.enabled && due("/trigger/nextTriggeredTime") && active(w, false) < free;
    let running = status.pointer("/backfill/phase").and_then(|p| p.as_str()) == Some(BackfillPhase::Running.as_str());
    let backfill = running
        && due("/backfill/nextTick")
        && active(w, true) < free
        && !schedules_own(w, time_at(status, "/backfill/nextTick"));
    if schedule || backfill {
        let what = if schedule {
            "the schedule's next tick"
        } else {
            "the backfill's next tick"
        };
        let detail = format!(
            "pass {} left {what} due with a free slot and wakes {next:?}: trigger {}, backfill {}",
            end.start.id,
            status.get("trigger").cloned().unwrap_or_default(),
            status.get("backfill").cloned().unwrap_or_default()
        );
        found.push((Rule::I6, detail));
    }
}

/// The pass could not have known better: it had not been told of something another hand
/// did. Events about a Job the pass read back itself (a 409 then a GET) do not excuse it: it
/// saw that Job's state (issue 18's bug 4: an adopted run that had already finished frees its
/// slot, and the pass must plan again rather than wait for that Job's events).
fn excused(end: &PassEnd) -> bool {
    let lag = &end.start.lag;
    let read_back = |name: &String| {
        end.requests
            .iter()
            .any(|r| &r.name == name && r.code == 200 && matches!(r.detail, Detail::Get { .. }))
    };
    lag.foreign_swf || lag.foreign_job_names.iter().any(|n| !read_back(n))
}

/// The slot is held by a run the status lists as active that the world no longer has: the
/// operator counts such a run for 60 s after its creation (`runs::recorded_unseen`, issue 18
/// R12: at a handover, a run of the old owner the cache does not show yet) and looks again
/// when it expires. Waiting for that is not a stall; waiting longer is.
fn recorded_wait(w: &World, next: &Next) -> bool {
    let gone = |e: &serde_json::Value| e["name"].as_str().is_some_and(|n| !w.jobs.contains_key(n));
    let listed = w.status().pointer("/workflowHistory/active").and_then(|a| a.as_array());
    let holds = listed.is_some_and(|active| active.iter().any(gone));
    holds && matches!(next, Next::After(d) if *d <= RECORDED_TTL + PROMPT)
}

/// A tick the schedule itself may still create (after its floor, up to `endTime`, while it
/// is enabled and not suspended): the backfill leaves it to the schedule (one creator per
/// tick, docs/architecture.md), so waiting for it is the schedule's wait, not a stall.
fn schedules_own(w: &World, tick: Option<Timestamp>) -> bool {
    let status = w.status();
    let floor = time_at(status, "/trigger/lastTriggeredTime").max(time_at(status, "/trigger/skipThrough"));
    let end = super::edits::end_time(&w.swf.spec);
    let enabled = w.swf.spec.enabled && !suspended(status);
    tick.is_some_and(|t| enabled && Some(t) > floor && end.is_none_or(|e| t <= e))
}

pub fn check_replace(w: &World, end: &PassEnd, found: &mut Findings) {
    let requests = end.requests;
    for (k, deletion) in requests.iter().enumerate() {
        if !matches!(deletion.detail, Detail::Delete { was_active: true }) {
            continue;
        }
        let victim = w
            .runs
            .iter()
            .rev()
            .find(|r| r.name == deletion.name && r.created.seq < deletion.seq);
        let victim_tick = victim.and_then(|r| r.tick);
        if let Some(v) = victim.filter(|v| matches!(v.origin, Origin::RunNow(_))) {
            let detail = format!(
                "pass {} deleted {}, a run a person asked for",
                end.start.id,
                v.describe()
            );
            found.push((Rule::I8, detail));
            continue;
        }
        let later = &requests[k + 1..];
        if later
            .iter()
            .any(|r| r.fault.is_some() && !matches!(r.detail, Detail::Create { .. }))
        {
            continue; // the pass was cut short by a fault before it could create
        }
        let made_room = later.iter().enumerate().any(|(j, r)| match &r.detail {
            Detail::Create {
                tick,
                origin: Origin::Scheduled,
            } if *tick > victim_tick => match r.code {
                201 | 500 => true,
                409 => later[j + 1..].iter().any(|g| {
                    g.name == r.name
                        && matches!(
                            &g.detail,
                            Detail::Get {
                                found: Some((Origin::Scheduled, _))
                            }
                        )
                }),
                _ => false,
            },
            _ => false,
        });
        if !made_room {
            let what = victim.map_or(deletion.name.clone(), |v| v.describe());
            let after: Vec<String> = later
                .iter()
                .map(|r| format!("{} {} {}", r.method, r.name, r.code))
                .collect();
            let detail = format!(
                "pass {} deleted active run {what} and then: [{}]",
                end.start.id,
                after.join(", ")
            );
            found.push((Rule::I8, detail));
        }
    }
}
