//! The rules every pass must keep, checked after every step against the world's logs (never
//! against the operator's own records): which runs may exist (`ticks.rs`: I1, I2, I7, I9),
//! slots and liveness (`slots.rs`: I3, I6, I8), status and the failure policy (`history.rs`:
//! I4, I5), the calm phase at the end of a seed (`calm.rs`: I10), and I11 spec never written
//! (the controller writes only the status subresource; `api.rs` notes any other write of the
//! ScheduledWorkflow, and a status PATCH carrying more than `status`). Each failure names its
//! rule, the step and the objects involved; each rule is reported once per seed (its first
//! failure), so one broken rule does not hide another.

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::{
    history,
    instance::Lag,
    records::{Incarnation, Seq},
    slots, ticks,
    world::World,
};
use crate::{
    controller::reconcile::Next,
    model::{crd::ScheduledWorkflowSpec, keys::RESUME_ANNOTATION, stored::SwfObject},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    I1,
    I2,
    I3,
    /// I3 broken while the instance's cache had undelivered events for the runs counted.
    I3Stale,
    I4,
    I5,
    I6,
    I7,
    /// I7 broken by a pass whose view had not yet been told of the pause.
    I7Stale,
    I8,
    I9,
    I10,
    I11,
    /// The simulation itself: a request it does not serve, passes that never stop.
    Harness,
}

impl Rule {
    pub fn title(self) -> &'static str {
        match self {
            Rule::I1 => "I1 one run per tick",
            Rule::I2 => "I2 no run before its tick",
            Rule::I3 => "I3 concurrency",
            Rule::I3Stale => "I3 concurrency (stale cache)",
            Rule::I4 => "I4 status never goes backwards",
            Rule::I5 => "I5 failure policy",
            Rule::I6 => "I6 no stall",
            Rule::I7 => "I7 pause",
            Rule::I7Stale => "I7 pause (stale view)",
            Rule::I8 => "I8 Replace deletes only to make room",
            Rule::I9 => "I9 one grid",
            Rule::I10 => "I10 calm phase",
            Rule::I11 => "I11 spec never written",
            Rule::Harness => "H harness",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    pub rule: Rule,
    pub seq: Seq,
    pub at: Timestamp,
    pub detail: String,
}

/// What rules find: each with its rule and what it saw.
pub type Findings = Vec<(Rule, String)>;

/// What was true when a pass started (the oracle's side and the instance's).
#[derive(Clone, Debug)]
pub struct PassStart {
    pub id: u64,
    pub seq: Seq,
    pub incarnation: Incarnation,
    pub lag: Lag,
    /// The view's resourceVersion and generation.
    pub view_rv: u64,
    pub generation: i64,
    /// From the view's spec: maxConcurrency (clamped 1..10), the periodic interval, the
    /// failure policy's threshold.
    pub max_concurrency: usize,
    pub interval: Option<i64>,
    pub threshold: Option<usize>,
    /// The view carries a resume value status has not recorded as served.
    pub resume_pending: bool,
    pub last_resume: Option<String>,
    pub suspended: bool,
}

/// How a pass ended.
pub struct PassEnd<'a> {
    pub start: &'a PassStart,
    pub result: &'a Result<Next, String>,
    pub requests: &'a [super::records::Request],
    /// The pass's runs are the ones created before this moment (the first attempt of a pass
    /// that read the object afresh after a status write conflicted); `None`: all new runs.
    pub before: Option<Seq>,
}

#[derive(Default)]
pub struct Checker {
    pub violations: Vec<Violation>,
    reported: BTreeSet<Rule>,
    runs_checked: usize,
    writes_checked: usize,
    spec_writes_checked: usize,
    /// The start of the pass that last served a resume value (I5 counts finishes after it).
    resume_seq: Seq,
    grids: ticks::Grids,
}

fn view_spec(view: &SwfObject) -> Option<&ScheduledWorkflowSpec> {
    view.spec.as_ref().ok()
}

/// `start` with what it takes from the instance's view of the object.
fn with_view(start: PassStart, view: &SwfObject) -> PassStart {
    let spec = view_spec(view);
    let resume = view
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RESUME_ANNOTATION));
    PassStart {
        view_rv: super::instance::rv_of(view),
        generation: view.metadata.generation.unwrap_or(0),
        max_concurrency: max_concurrency(spec),
        interval: spec.and_then(super::edits::interval),
        threshold: threshold(spec),
        resume_pending: resume.is_some_and(|v| !v.is_empty() && Some(v) != start.last_resume.as_ref()),
        ..start
    }
}

pub fn max_concurrency(spec: Option<&ScheduledWorkflowSpec>) -> usize {
    let value = spec.and_then(|s| s.max_concurrency).unwrap_or(1).clamp(1, 10);
    usize::try_from(value).unwrap_or(1)
}

fn threshold(spec: Option<&ScheduledWorkflowSpec>) -> Option<usize> {
    let n = spec?.failure_policy.as_ref()?.suspend_after_consecutive_failures?;
    usize::try_from(n.clamp(1, 100)).ok()
}

impl Checker {
    /// Records what the rules need from before a pass.
    pub fn pass_start(&self, id: u64, w: &World, view: &SwfObject, incarnation: Incarnation, lag: Lag) -> PassStart {
        let moment = PassStart {
            id,
            seq: w.seq(),
            incarnation,
            lag,
            last_resume: history::last_resume(w.status()),
            suspended: super::status_json::suspended(w.status()),
            view_rv: 0,
            generation: 0,
            max_concurrency: 1,
            interval: None,
            threshold: None,
            resume_pending: false,
        };
        with_view(moment, view)
    }

    /// The start of the second attempt of a pass that read `fresh` from the API server after
    /// its status write conflicted: the same moment, status and run events, the newest object.
    pub fn reread(start: &PassStart, fresh: &SwfObject) -> PassStart {
        let mut lag = start.lag.clone();
        lag.foreign_swf = false;
        with_view(PassStart { lag, ..start.clone() }, fresh)
    }

    /// Checks everything a pass did.
    pub fn pass_end(&mut self, w: &World, end: &PassEnd) {
        let mut found = Findings::new();
        let mine = w.runs[self.runs_checked..]
            .iter()
            .take_while(|r| end.before.is_none_or(|before| r.created.seq < before))
            .count();
        let new_runs = self.runs_checked..self.runs_checked + mine;
        let end_of_runs = new_runs.end;
        for i in new_runs.clone() {
            ticks::check_creation(w, i, end.start, &mut self.grids, &mut found);
            slots::check_creation(w, i, end.start, &mut found);
        }
        let served = history::last_resume(w.status()) != end.start.last_resume;
        history::check_failure_policy(w, end, new_runs, served, self.resume_seq, &mut found);
        if served {
            self.resume_seq = end.start.seq;
        }
        slots::check_stall(w, end, &mut found);
        slots::check_replace(w, end, &mut found);
        self.runs_checked = end_of_runs;
        self.after_step(w, found);
    }

    /// Checks what any step may have changed (status writes, requests the server missed).
    pub fn after_step(&mut self, w: &World, mut found: Findings) {
        for k in self.writes_checked..w.statuses.len() {
            history::check_status_write(w, k, &mut found);
        }
        self.writes_checked = w.statuses.len();
        for write in &w.spec_writes[self.spec_writes_checked..] {
            found.push((Rule::I11, format!("the operator wrote the ScheduledWorkflow: {write}")));
        }
        self.spec_writes_checked = w.spec_writes.len();
        for request in &w.unexpected {
            found.push((
                Rule::Harness,
                format!("the simulated API server does not serve {request}"),
            ));
        }
        for (rule, detail) in found {
            self.report(w, rule, detail);
        }
    }

    /// A harness failure stops the seed (its passes never stop, or a request is not served).
    pub fn halted(&self) -> bool {
        self.reported.contains(&Rule::Harness)
    }

    pub fn report(&mut self, w: &World, rule: Rule, detail: String) {
        if self.reported.insert(rule) {
            self.violations.push(Violation {
                rule,
                seq: w.seq(),
                at: w.now(),
                detail,
            });
        }
    }
}
