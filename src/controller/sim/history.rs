//! Rules about what status records:
//! - I4 status never goes backwards: across the world's successive status writes,
//!   `trigger.lastTriggeredTime`, `trigger.lastWorkflowIndex` and `trigger.skipThrough` never
//!   decrease (nor disappear), and `backfill.through` never decreases while `backfill.range`
//!   is unchanged.
//! - I5 failure policy, in finish order. The oracle's streak: the schedule's finished runs
//!   (every origin), ordered by the finish time they report (ties: tick, then name), after
//!   the last success, counting only runs that finished after the pass that served the last
//!   resume value, leaving out runs users deleted (runs the operator deleted still count:
//!   pruning must not change the answer). With threshold N in the spec: when the instance has
//!   no undelivered events from others about Jobs, no unserved resume value, and the streak is
//!   at least N as a pass starts, that pass creates no scheduled or backfill run and, if it
//!   succeeds, leaves `status.suspension.suspendedAt` set (unless it found the spec unusable:
//!   an `Error` summary, written before the failure policy is read). Conversely a pass that
//!   newly sets `suspendedAt` must see a streak of at least N, counted as the instance could:
//!   a user deletion or a success it has not been told of yet does not count against it.

use std::ops::Range;

use serde_json::Value;

use super::{
    invariants::{Findings, PassEnd, Rule},
    records::{RunRecord, Seq},
    status_json::{summary_type, suspended, time_at},
    world::World,
};

pub fn last_resume(status: &Value) -> Option<String> {
    status.pointer("/suspension/lastResume")?.as_str().map(str::to_string)
}

/// The oracle's failure streak as it was at step `at`: failed runs after the last success in
/// finish order, that finished after step `resumed`, among the runs `counts` keeps.
pub fn streak(w: &World, at: Seq, resumed: Seq, counts: impl Fn(&RunRecord) -> bool) -> usize {
    let finished_by = |r: &RunRecord| r.finished.as_ref().is_some_and(|f| f.when.seq < at);
    let mut finished: Vec<&RunRecord> = w.runs.iter().filter(|r| finished_by(r) && counts(r)).collect();
    let key = |r: &RunRecord| (r.finished.as_ref().map(|f| f.reported), r.tick, r.name.clone());
    finished.sort_by_key(|r| key(r));
    let failing = |r: &&RunRecord| r.finished.as_ref().is_some_and(|f| f.failed);
    let after_success = finished.iter().rposition(|r| !failing(r)).map_or(0, |i| i + 1);
    finished[after_success..]
        .iter()
        .filter(|r| r.finished.as_ref().is_some_and(|f| f.when.seq > resumed))
        .count()
}

pub fn check_failure_policy(
    w: &World,
    end: &PassEnd,
    created: Range<usize>,
    served: bool,
    resumed: Seq,
    found: &mut Findings,
) {
    let start = end.start;
    let n = start.threshold;
    let fresh = !start.lag.foreign_jobs() && !start.resume_pending;
    let oracle = || streak(w, start.seq, resumed, |r| !r.deleted_by_user_before(start.seq));
    if let Some((n, streak)) = n.filter(|_| fresh).map(|n| (n, oracle())).filter(|(n, s)| s >= n) {
        let runs = &w.runs[created];
        if let Some(r) = runs.iter().find(|r| r.origin.is_tick()) {
            let detail = format!(
                "pass {} created {} with a failure streak of {streak} (suspend after {n})",
                start.id,
                r.describe()
            );
            found.push((Rule::I5, detail));
        } else if end.result.is_ok() && !suspended(w.status()) && summary_type(w.status()) != Some("Error") {
            let detail = format!(
                "after pass {} the schedule is not suspended with a failure streak of {streak} (suspend after {n})",
                start.id
            );
            found.push((Rule::I5, detail));
        }
    }
    // (The attempt of a pass whose status write conflicted wrote no status.)
    if start.suspended || !suspended(w.status()) || end.before.is_some() {
        return;
    }
    // Newly suspended: the streak as the instance may have seen it. Of the runs it had not been
    // told everything about, a user deletion may not have reached it (the run still counts)
    // and a success may not have (the run is still active for it, which breaks no streak).
    let told = |r: &RunRecord| !start.lag.jobs.contains(&r.name);
    let succeeded = |r: &RunRecord| r.finished.as_ref().is_some_and(|f| !f.failed);
    let seen = if served {
        0
    } else {
        streak(w, start.seq, resumed, |r| {
            let deleted = r.deleted_by_user_before(start.seq) && told(r);
            !deleted && (told(r) || !succeeded(r))
        })
    };
    if n.is_none_or(|n| seen < n) {
        let why = if served {
            " (it served a resume value in the same pass)"
        } else {
            ""
        };
        let detail = format!(
            "pass {} suspended the schedule with a failure streak of {seen}{why} (suspend after {}): {}",
            start.id,
            n.map_or("-".into(), |n| n.to_string()),
            w.status().pointer("/suspension").cloned().unwrap_or_default()
        );
        found.push((Rule::I5, detail));
    }
}

const NEVER_BACK: [&str; 2] = ["/trigger/lastTriggeredTime", "/trigger/skipThrough"];

pub fn check_status_write(w: &World, k: usize, found: &mut Findings) {
    let new = &w.statuses[k];
    let old = k.checked_sub(1).map_or(&Value::Null, |j| &w.statuses[j].status);
    let mut back = Vec::new();
    for field in NEVER_BACK {
        let (was, is) = (time_at(old, field), time_at(&new.status, field));
        if was.is_some() && is < was {
            back.push(format!("{field} {was:?} -> {is:?}"));
        }
    }
    let index = |s: &Value| s.pointer("/trigger/lastWorkflowIndex").and_then(Value::as_i64);
    if index(old).is_some() && index(&new.status) < index(old) {
        back.push(format!(
            "lastWorkflowIndex {:?} -> {:?}",
            index(old),
            index(&new.status)
        ));
    }
    let range = |s: &Value| s.pointer("/backfill/range").cloned();
    let through = |s: &Value| time_at(s, "/backfill/through");
    if range(old).is_some()
        && range(old) == range(&new.status)
        && through(old).is_some()
        && through(&new.status) < through(old)
    {
        back.push(format!(
            "backfill.through {:?} -> {:?}",
            through(old),
            through(&new.status)
        ));
    }
    if !back.is_empty() {
        let detail = format!(
            "status write #{} by pass {} went backwards: {}",
            new.when.seq,
            new.pass,
            back.join(", ")
        );
        found.push((Rule::I4, detail));
    }
}
