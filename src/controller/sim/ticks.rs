//! Rules about which runs may be created, checked at each creation (counted by creation, not by
//! the runs that survive):
//! - I1 one run per tick: a creation of tick t when an earlier run of t was created breaks it,
//!   unless every earlier run of t is excused: deleted by a user (not the operator) before, or,
//!   when the new run serves backfill request V, deleted (by anyone) before V was first set on
//!   the object. Each run-now value gets at most one run ever.
//! - I2 no run before its tick: scheduled and backfill runs are created at or after their tick.
//! - I7 pause: a scheduled run of tick t breaks it when the spec had `enabled: false` (or the
//!   status was suspended) at t and the schedule had had a run before that pause began (ticks
//!   that fall while disabled are not run on re-enable: docs/failure-policy.md, KFP #8344's
//!   difference). When the creating pass's view had not been told of the pause yet, it is
//!   reported apart (I7 stale view).
//! - I9 one grid: for a periodic schedule, a backfill run of tick b and a scheduled run of tick
//!   s created under the same spec generation satisfy (b - s) mod intervalSecond == 0.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::{
    api::cause_name,
    invariants::{Findings, PassStart, Rule},
    records::{Cause, Origin, RunRecord, Seq},
    status_json::suspended,
    time::tick,
    world::World,
};
use crate::model::keys::BACKFILL_ANNOTATION;

/// Per spec generation of a periodic schedule: its interval, and the ticks of its scheduled
/// and its backfill runs.
#[derive(Default)]
pub struct Grids(BTreeMap<i64, Grid>);

#[derive(Default)]
struct Grid {
    scheduled: Vec<Timestamp>,
    backfill: Vec<Timestamp>,
}

pub fn check_creation(w: &World, i: usize, start: &PassStart, grids: &mut Grids, found: &mut Findings) {
    let run = &w.runs[i];
    one_run_per_tick(w, i, found);
    let Some(t) = run.tick.filter(|_| run.origin.is_tick()) else {
        return;
    };
    if run.created.at < t {
        found.push((
            Rule::I2,
            format!(
                "{} created at {}, before its tick",
                run.describe(),
                super::time::rel(run.created.at)
            ),
        ));
    }
    if run.origin == Origin::Scheduled {
        pause(w, run, t, start, found);
    }
    if let Some(interval) = start.interval {
        one_grid(grids, run, t, start.generation, interval, found);
    }
}

fn one_run_per_tick(w: &World, i: usize, found: &mut Findings) {
    let run = &w.runs[i];
    if let Origin::RunNow(v) = &run.origin {
        if let Some(earlier) = w.runs[..i].iter().find(|r| r.origin == run.origin) {
            let detail = format!(
                "{} serves run-now value {v:?}, already served by {}",
                run.describe(),
                earlier.describe()
            );
            found.push((Rule::I1, detail));
        }
        return;
    }
    let earlier: Vec<&RunRecord> = w.runs[..i]
        .iter()
        .filter(|r| r.origin.is_tick() && r.tick == run.tick)
        .collect();
    if earlier.is_empty() {
        return;
    }
    let seq = run.created.seq;
    let requested = match &run.origin {
        Origin::Backfill(v) => w.first_set.get(&(BACKFILL_ANNOTATION.to_string(), v.clone())).copied(),
        _ => None,
    };
    // Each earlier run is excused on its own: a user deleted it, or it was gone before this
    // run's backfill request was set (one may be each: pruned before a new request, and the
    // run that request's predecessor made deleted by a user before this one reached it).
    let excused = |r: &&RunRecord| r.deleted_by_user_before(seq) || requested.is_some_and(|at| r.deleted_before(at));
    if !earlier.iter().all(excused) {
        let history: Vec<String> = earlier.iter().map(|r| life(r)).collect();
        let requested = requested.map_or(String::new(), |s| {
            format!("; its backfill request was first set at step #{s}")
        });
        let detail = format!(
            "{} is a second run of its tick: {}{requested}",
            run.describe(),
            history.join("; ")
        );
        found.push((Rule::I1, detail));
    }
}

/// A run's life in a few words: created, finished, deleted.
pub fn life(r: &RunRecord) -> String {
    let (seq, at) = (r.created.seq, super::time::rel(r.created.at));
    let mut words = vec![format!("{} created by pass {} at #{seq} {at}", r.describe(), r.pass)];
    if let Some(f) = &r.finished {
        let how = if f.failed { "failed" } else { "succeeded" };
        words.push(format!("{how} at #{}", f.when.seq));
    }
    if let Some(d) = &r.deleted {
        words.push(format!("deleted by {} at #{}", cause_name(d.by), d.when.seq));
    }
    words.join(", ")
}

/// A pause that covers an instant: when it began (the edit or status write), and who knew.
struct Pause {
    what: &'static str,
    since: Seq,
    rv: u64,
    by: Cause,
}

/// Whether `(at, seq)` comes before tick `t` of a creation at `created`: the state "at t" is
/// what the changes up to t made (a change at exactly t counts if it came before the creation).
fn before(at: Timestamp, seq: Seq, t: Timestamp, created: Seq) -> bool {
    at < t || (at == t && seq < created)
}

fn disabled_at(w: &World, t: Timestamp, created: Seq) -> Option<Pause> {
    let upto = w
        .edits
        .iter()
        .take_while(|e| before(e.when.at, e.when.seq, t, created))
        .count();
    let edits = &w.edits[..upto];
    let last = edits.last().filter(|e| !e.spec.enabled)?;
    let first = edits
        .iter()
        .rev()
        .take_while(|e| !e.spec.enabled)
        .last()
        .unwrap_or(last);
    Some(Pause {
        what: "disabled",
        since: first.when.seq,
        rv: first.rv,
        by: Cause::User,
    })
}

fn suspended_at(w: &World, t: Timestamp, created: Seq) -> Option<Pause> {
    let upto = w
        .statuses
        .iter()
        .take_while(|s| before(s.when.at, s.when.seq, t, created))
        .count();
    let writes = &w.statuses[..upto];
    let last = writes.last().filter(|s| suspended(&s.status))?;
    let first = writes
        .iter()
        .rev()
        .take_while(|s| suspended(&s.status))
        .last()
        .unwrap_or(last);
    Some(Pause {
        what: "suspended",
        since: first.when.seq,
        rv: first.rv,
        by: first.by,
    })
}

fn pause(w: &World, run: &RunRecord, t: Timestamp, start: &PassStart, found: &mut Findings) {
    let created = run.created.seq;
    for pause in [disabled_at(w, t, created), suspended_at(w, t, created)]
        .into_iter()
        .flatten()
    {
        let Some(earlier) = w.runs.iter().find(|r| r.created.seq < pause.since) else {
            continue;
        };
        let known = start.view_rv >= pause.rv || pause.by == Cause::Operator(start.incarnation);
        let rule = if known { Rule::I7 } else { Rule::I7Stale };
        let detail = format!(
            "{} runs tick {}, which fell while the schedule was {} (since step #{}; it had run before: {}); created by pass {} (view rv {})",
            run.describe(),
            tick(t),
            pause.what,
            pause.since,
            earlier.name,
            start.id,
            start.view_rv
        );
        found.push((rule, detail));
        return;
    }
}

fn one_grid(grids: &mut Grids, run: &RunRecord, t: Timestamp, generation: i64, interval: i64, found: &mut Findings) {
    let grid = grids.0.entry(generation).or_default();
    let (mine, others) = match run.origin {
        Origin::Backfill(_) => (&mut grid.backfill, &grid.scheduled),
        _ => (&mut grid.scheduled, &grid.backfill),
    };
    let off = others
        .iter()
        .find(|o| (t.as_second() - o.as_second()).rem_euclid(interval) != 0);
    if let Some(other) = off {
        let detail = format!(
            "{} is not on the grid of the {} run of tick {} (generation {generation}, every {interval}s)",
            run.describe(),
            if run.origin.is_backfill() {
                "scheduled"
            } else {
                "backfill"
            },
            tick(*other)
        );
        found.push((Rule::I9, detail));
    }
    mine.push(t);
}
