//! What the pages are made of: each schedule with its runs, read as `kubectl swf` reads it.
//! Pure: built from objects, no client and no clock.

use std::sync::Arc;

use jiff::Timestamp;

use crate::{
    model::{crd::Summary, stored::SwfObject},
    plugin::view::Viewed,
    scheduling::{
        runstate::{self, ObservedRun, Outcome},
        validate::Validated,
    },
};

/// One schedule and its runs (those owned by it).
pub struct Entry<'a> {
    pub viewed: Viewed<'a>,
    pub runs: &'a [ObservedRun],
}

impl<'a> Entry<'a> {
    pub fn new(obj: &'a SwfObject, runs: &'a [ObservedRun], default_tz: &str) -> Self {
        Entry {
            viewed: Viewed::new(obj, default_tz),
            runs,
        }
    }

    /// With the spec validated already.
    pub fn with(obj: &'a SwfObject, runs: &'a [ObservedRun], validated: Result<Arc<Validated>, String>) -> Self {
        Entry {
            viewed: Viewed::with(obj, validated),
            runs,
        }
    }

    pub fn key(&self) -> (&str, &str) {
        (self.viewed.namespace(), self.viewed.name())
    }

    /// Finished runs that failed since the last success.
    pub fn failure_streak(&self) -> usize {
        runstate::failure_streak(self.runs).len()
    }

    pub fn active(&self) -> usize {
        match self.runs {
            [] => self.viewed.obj.status.workflow_history.active.len(),
            runs => runs.iter().filter(|r| r.is_active()).count(),
        }
    }

    /// What needs a person's attention, if anything: an invalid spec, an error condition, a
    /// suspension. (Disabled is a choice, not a problem.)
    pub fn problem(&self) -> Option<String> {
        if let Err(e) = &self.viewed.validated {
            return Some(format!("invalid spec: {e}"));
        }
        if let Some(s) = &self.viewed.obj.status.suspension
            && s.suspended_at.is_some()
        {
            return Some(format!(
                "suspended after {} failed runs in a row (spec.failurePolicy); resume it",
                s.failed_runs.len()
            ));
        }
        let condition = self.viewed.condition();
        if condition.starts_with("Error") {
            let message = crate::scheduling::status::summary_condition(&self.viewed.obj.status)
                .and_then(|c| c.message.clone())
                .unwrap_or_default();
            return Some(format!("{condition}: {message}"));
        }
        None
    }

    /// kstatus' reading: Ready, Stalled (with the reason), or "-".
    pub fn readiness(&self) -> String {
        let conditions = &self.viewed.obj.status.conditions;
        let stalled = conditions
            .iter()
            .find(|c| c.type_ == crate::scheduling::status::STALLED && c.status == "True");
        if let Some(c) = stalled {
            return format!("Stalled ({})", c.reason.as_deref().unwrap_or_default());
        }
        match conditions.iter().find(|c| c.type_ == crate::scheduling::status::READY) {
            Some(c) if c.status == "True" => "Ready".into(),
            Some(c) => format!("Not ready ({})", c.reason.as_deref().unwrap_or_default()),
            None => "-".into(),
        }
    }

    /// When the current pause (disabled or suspended) began, if the schedule is paused: the
    /// suspension's time, else the Disabled condition's transition, else `now`.
    pub fn paused_since(&self, now: Timestamp) -> Option<(Timestamp, &'static str)> {
        let why = self.viewed.paused()?;
        let suspended = self
            .viewed
            .obj
            .status
            .suspension
            .as_ref()
            .and_then(|s| s.suspended_at.as_ref())
            .map(|t| t.0);
        let disabled = crate::scheduling::status::summary_condition(&self.viewed.obj.status)
            .filter(|c| Summary::of(c) == Some(Summary::Disabled))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0);
        let label = if why == "disabled" { "disabled" } else { "suspended" };
        Some((suspended.or(disabled).unwrap_or(now), label))
    }
}

/// A run's outcome in one word (shown beside its colour).
pub fn outcome_word(r: &ObservedRun) -> &'static str {
    match r.outcome {
        Outcome::Active => "running",
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed",
    }
}

/// A run's span: from its start (else its creation, else its tick) to its finish, or `now`
/// while it runs.
pub fn run_span(r: &ObservedRun, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
    let s = &r.status;
    let start = s
        .started_at
        .as_ref()
        .or(s.created_at.as_ref())
        .or(s.scheduled_at.as_ref())
        .map(|t| t.0)?;
    let end = match r.outcome {
        Outcome::Active => now,
        _ => s.finished_at.as_ref().map_or(start, |t| t.0),
    };
    Some((start, end.max(start)))
}
