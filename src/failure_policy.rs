//! Pure: `spec.failurePolicy.suspendAfterConsecutiveFailures` (kubeflow/pipelines#8294).
//! docs/failure-policy.md has the rules:
//! - the streak is read from the runs that exist (`runstate::failure_streak`): finished runs in
//!   the order they finished, after the last success; only runs that finished after the last
//!   resume count;
//! - once the streak reaches N the schedule is suspended, and stays so (a later success of a
//!   run-now run does not lift it) until a new value of the `resume` annotation, or until the
//!   policy is removed from the spec;
//! - while suspended no scheduled or backfill run is created; ticks that fall meanwhile are not
//!   run on resume (as after a re-enable).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    crd::SuspensionStatus,
    runstate::{self, ObservedRun},
};

/// Why the summary condition says `Disabled` while the spec says `enabled: true`.
pub const SUSPENDED_REASON: &str = "SuspendedAfterFailures";

pub struct Input<'a> {
    /// `suspendAfterConsecutiveFailures`, if the spec sets it.
    pub threshold: Option<usize>,
    pub runs: &'a [ObservedRun],
    pub current: Option<&'a SuspensionStatus>,
    /// The `resume` annotation's value.
    pub resume: Option<&'a str>,
    pub now: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// What status.suspension becomes.
    pub status: Option<SuspensionStatus>,
    /// This pass suspended it (publish one Warning event).
    pub newly_suspended: bool,
    /// This pass served a new resume value.
    pub resumed: bool,
}

impl Decision {
    pub fn suspended(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.suspended_at.is_some())
    }
}

pub fn decide(input: &Input) -> Decision {
    let mut status = input.current.cloned().unwrap_or_default();
    let was_suspended = status.suspended_at.is_some();
    let resume = input.resume.filter(|v| !v.is_empty());
    let resumed = resume.is_some() && status.last_resume.as_deref() != resume;
    if resumed {
        status.suspended_at = None;
        status.failed_runs.clear();
        status.last_resume = resume.map(str::to_string);
        status.resumed_at = Some(Time(input.now));
    }
    match input.threshold {
        None => {
            status.suspended_at = None;
            status.failed_runs.clear();
        }
        Some(n) if status.suspended_at.is_none() => {
            let since = status.resumed_at.as_ref().map(|t| t.0);
            let streak: Vec<&ObservedRun> = runstate::failure_streak(input.runs)
                .into_iter()
                .filter(|r| since.is_none_or(|s| r.status.finished_at.as_ref().is_some_and(|f| f.0 > s)))
                .collect();
            if streak.len() >= n.max(1) {
                status.suspended_at = Some(Time(input.now));
                status.failed_runs = streak[streak.len() - n.max(1)..]
                    .iter()
                    .map(|r| r.status.name.clone())
                    .collect();
            }
        }
        Some(_) => {} // suspended: stays so until resumed
    }
    let newly_suspended = !was_suspended && status.suspended_at.is_some();
    Decision {
        status: (status != SuspensionStatus::default()).then_some(status),
        newly_suspended,
        resumed,
    }
}

/// The summary condition's message while suspended.
pub fn message(status: &SuspensionStatus, name: &str) -> String {
    format!(
        "Suspended after {} runs in a row failed ({}); resume with `kubectl swf resume {name}` \
         (a new value of the scheduledworkflows.kubeflow.org/resume annotation).",
        status.failed_runs.len(),
        status.failed_runs.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{crd::WorkflowStatus, runstate::Outcome};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn run(name: &str, outcome: Outcome, finished: &str) -> ObservedRun {
        ObservedRun {
            status: WorkflowStatus {
                name: name.into(),
                finished_at: Some(Time(at(finished))),
                ..Default::default()
            },
            outcome,
            tick: None,
            run_now: None,
            backfill: None,
            deleting: false,
        }
    }

    fn decide_with(runs: &[ObservedRun], current: Option<&SuspensionStatus>, resume: Option<&str>) -> Decision {
        decide(&Input {
            threshold: Some(3),
            runs,
            current,
            resume,
            now: at("2026-01-01T12:00:00Z"),
        })
    }

    #[test]
    fn three_failures_in_a_row_suspend_and_name_the_runs() {
        let mut runs = vec![
            run("a", Outcome::Failed, "2026-01-01T01:00:00Z"),
            run("b", Outcome::Succeeded, "2026-01-01T02:00:00Z"),
            run("c", Outcome::Failed, "2026-01-01T03:00:00Z"),
            run("d", Outcome::Failed, "2026-01-01T04:00:00Z"),
        ];
        let two = decide_with(&runs, None, None);
        assert!(!two.suspended() && two.status.is_none());
        runs.push(run("e", Outcome::Failed, "2026-01-01T05:00:00Z"));
        let three = decide_with(&runs, None, None);
        assert!(three.suspended() && three.newly_suspended);
        let status = three.status.unwrap();
        assert_eq!(status.failed_runs, ["c", "d", "e"]);
        // Sticky: a later success does not lift it; the event is not repeated.
        runs.push(run("f", Outcome::Succeeded, "2026-01-01T06:00:00Z"));
        let later = decide_with(&runs, Some(&status), None);
        assert!(later.suspended() && !later.newly_suspended);
    }

    #[test]
    fn a_new_resume_value_lifts_it_and_the_count_restarts() {
        let mut runs: Vec<_> = ["01", "02", "03"]
            .iter()
            .map(|h| run(h, Outcome::Failed, &format!("2026-01-01T{h}:00:00Z")))
            .collect();
        let suspended = decide_with(&runs, None, None).status.unwrap();
        assert!(suspended.suspended_at.is_some());
        let resumed = decide_with(&runs, Some(&suspended), Some("new"));
        assert!(
            resumed.resumed && !resumed.suspended(),
            "the old failures do not count again"
        );
        let status = resumed.status.unwrap();
        runs.push(run("late1", Outcome::Failed, "2026-01-01T13:00:00Z"));
        runs.push(run("late2", Outcome::Failed, "2026-01-01T14:00:00Z"));
        assert!(!decide_with(&runs, Some(&status), Some("new")).suspended());
        runs.push(run("late3", Outcome::Failed, "2026-01-01T15:00:00Z"));
        assert!(decide_with(&runs, Some(&status), Some("new")).suspended());
    }

    #[test]
    fn removing_the_policy_lifts_a_suspension() {
        let runs: Vec<_> = ["01", "02", "03"]
            .iter()
            .map(|h| run(h, Outcome::Failed, &format!("2026-01-01T{h}:00:00Z")))
            .collect();
        let suspended = decide_with(&runs, None, None).status.unwrap();
        let d = decide(&Input {
            threshold: None,
            runs: &runs,
            current: Some(&suspended),
            resume: None,
            now: at("2026-01-01T12:00:00Z"),
        });
        assert!(!d.suspended() && d.status.is_none());
    }
}
