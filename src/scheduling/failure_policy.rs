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

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    model::crd::SuspensionStatus,
    scheduling::runstate::{self, ObservedRun},
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
        (status.resumed_after, status.resumed_after_runs) = watermark(input.runs);
    }
    match input.threshold {
        None => {
            status.suspended_at = None;
            status.failed_runs.clear();
        }
        Some(n) if status.suspended_at.is_none() => {
            let streak = streak(input.runs, &status);
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

/// The failure streak that counts: `runstate::failure_streak`, less the runs that had
/// finished when the schedule was last resumed.
fn streak<'a>(runs: &'a [ObservedRun], status: &SuspensionStatus) -> Vec<&'a ObservedRun> {
    runstate::failure_streak(runs)
        .into_iter()
        .filter(|r| counts_after_resume(r, status))
        .collect()
}

/// A run counts when it finished after the resume's watermark, on the runs' own clock. Status
/// written before the watermark existed has only `resumedAt` (the operator's clock).
fn counts_after_resume(run: &ObservedRun, status: &SuspensionStatus) -> bool {
    let finished = run.status.finished_at.as_ref().map(|t| t.0);
    match (&status.resumed_after, &status.resumed_at) {
        (Some(after), _) => {
            finished > Some(after.0)
                || (finished == Some(after.0) && !status.resumed_after_runs.contains(&run.status.name))
        }
        (None, Some(at)) => finished > Some(at.0),
        (None, None) => true,
    }
}

/// The latest finish time among `runs`, and the runs that finished exactly then.
fn watermark(runs: &[ObservedRun]) -> (Option<Time>, Vec<String>) {
    let finished = || runs.iter().filter_map(|r| Some((r.status.finished_at.as_ref()?.0, r)));
    let Some(latest) = finished().map(|(t, _)| t).max() else {
        // Nothing has finished: every later finish counts. Not `None`, which would fall back
        // to `resumedAt`, the operator's clock, against the runs' (found by the simulation).
        return (Some(Time(Timestamp::UNIX_EPOCH)), Vec::new());
    };
    let mut at_latest: Vec<String> = finished()
        .filter(|(t, _)| *t == latest)
        .map(|(_, r)| r.status.name.clone())
        .collect();
    at_latest.sort();
    (Some(Time(latest)), at_latest)
}

/// Runs that history limits must keep while a policy is set, so pruning cannot change what
/// the policy sees: the runs named in the suspension, the last success (it ends the streak
/// before it), and the last `threshold` failures of the streak that counts.
pub fn protected<'a>(
    runs: &'a [ObservedRun],
    threshold: Option<usize>,
    current: Option<&SuspensionStatus>,
) -> BTreeSet<&'a str> {
    let Some(n) = threshold else {
        return BTreeSet::new();
    };
    let status = current.cloned().unwrap_or_default();
    let mut keep: BTreeSet<&str> = runs
        .iter()
        .filter(|r| status.failed_runs.contains(&r.status.name))
        .map(|r| r.status.name.as_str())
        .collect();
    if let Some(success) = runstate::last_success(runs) {
        keep.insert(success.status.name.as_str());
    }
    let streak = streak(runs, &status);
    keep.extend(streak.iter().rev().take(n.max(1)).map(|r| r.status.name.as_str()));
    keep
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
    use crate::{model::crd::WorkflowStatus, scheduling::runstate::Outcome};

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
            origin: Default::default(),
            deleting: false,
            recorded_only: false,
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

    /// Issue 18, bug 8: the runs' clock an hour ahead of the operator's: failures that
    /// finished before the resume looked newer than it, and undid it at once.
    #[test]
    fn a_cluster_clock_ahead_of_the_operators_does_not_undo_a_resume() {
        // The operator's clock says 12:00; the runs finished at 13:0x by theirs.
        let mut runs: Vec<_> = ["13:01", "13:02", "13:03"]
            .iter()
            .map(|t| run(t, Outcome::Failed, &format!("2026-01-01T{t}:00Z")))
            .collect();
        let suspended = decide_with(&runs, None, None).status.unwrap();
        let resumed = decide_with(&runs, Some(&suspended), Some("r1"));
        assert!(resumed.resumed && !resumed.suspended(), "undone at once");
        let status = resumed.status.unwrap();
        assert_eq!(status.resumed_after, Some(Time(at("2026-01-01T13:03:00Z"))));
        assert!(!decide_with(&runs, Some(&status), Some("r1")).suspended());
        for t in ["13:04", "13:05", "13:06"] {
            runs.push(run(t, Outcome::Failed, &format!("2026-01-01T{t}:00Z")));
        }
        assert!(
            decide_with(&runs, Some(&status), Some("r1")).suspended(),
            "new failures count"
        );
    }

    /// Runs that finished in the same second as the last one before the resume: the ones seen
    /// then do not count, the ones finishing after do.
    #[test]
    fn the_resume_watermark_separates_runs_of_the_same_second() {
        let mut runs: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| run(n, Outcome::Failed, "2026-01-01T13:00:00Z"))
            .collect();
        let suspended = decide_with(&runs, None, None).status.unwrap();
        let status = decide_with(&runs, Some(&suspended), Some("r1")).status.unwrap();
        assert_eq!(status.resumed_after_runs, ["a", "b", "c"]);
        runs.push(run("d", Outcome::Failed, "2026-01-01T13:00:00Z"));
        runs.push(run("e", Outcome::Failed, "2026-01-01T13:00:01Z"));
        assert!(!decide_with(&runs, Some(&status), Some("r1")).suspended());
        runs.push(run("f", Outcome::Failed, "2026-01-01T13:00:02Z"));
        assert!(decide_with(&runs, Some(&status), Some("r1")).suspended(), "d, e, f");
    }

    /// Issue 18, R4: resumed before any run had finished, the watermark fell back to the
    /// operator's clock; with the runs' clock behind it, failures after the resume did not
    /// count and the schedule was never suspended again.
    #[test]
    fn a_resume_before_any_finish_counts_every_later_failure_whatever_the_clocks() {
        let status = decide_with(&[], None, Some("r1")).status.unwrap();
        assert_eq!(status.resumed_after, Some(Time(Timestamp::UNIX_EPOCH)));
        // The operator's clock says 12:00; the runs' clock is an hour behind.
        let runs: Vec<_> = ["11:01", "11:02", "11:03"]
            .iter()
            .map(|t| run(t, Outcome::Failed, &format!("2026-01-01T{t}:00Z")))
            .collect();
        assert!(decide_with(&runs, Some(&status), Some("r1")).suspended());
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

    /// While suspended, the record is what suspended it: further failures change neither the
    /// runs it names nor its time.
    #[test]
    fn a_suspension_keeps_the_runs_that_caused_it() {
        let mut runs: Vec<_> = ["01", "02", "03"]
            .iter()
            .map(|h| run(h, Outcome::Failed, &format!("2026-01-01T{h}:00:00Z")))
            .collect();
        let mut suspended = decide_with(&runs, None, None).status.unwrap();
        suspended.suspended_at = Some(Time(at("2026-01-01T03:30:00Z")));
        runs.push(run("04", Outcome::Failed, "2026-01-01T04:00:00Z"));
        let later = decide_with(&runs, Some(&suspended), None);
        assert_eq!(later.status, Some(suspended), "unchanged");
    }

    /// Status written before the watermark existed has only `resumedAt`: a run counts when it
    /// finished after it.
    #[test]
    fn a_legacy_resume_counts_the_runs_that_finished_after_it() {
        let resumed = SuspensionStatus {
            last_resume: Some("r1".into()),
            resumed_at: Some(Time(at("2026-01-01T05:00:00Z"))),
            ..Default::default()
        };
        let suspends = |finished: &str| {
            let runs = [run("x", Outcome::Failed, finished)];
            decide(&Input {
                threshold: Some(1),
                runs: &runs,
                current: Some(&resumed),
                resume: Some("r1"),
                now: at("2026-01-01T12:00:00Z"),
            })
            .suspended()
        };
        assert!(!suspends("2026-01-01T04:59:59Z"), "before the resume");
        assert!(!suspends("2026-01-01T05:00:00Z"), "at the resume");
        assert!(suspends("2026-01-01T05:00:01Z"), "after the resume");
    }

    /// What `kubectl get swf` shows while suspended: how many runs, which, and how to resume.
    #[test]
    fn the_suspension_message_names_the_runs_and_the_way_out() {
        let status = SuspensionStatus {
            failed_runs: vec!["n-1".into(), "n-2".into()],
            ..Default::default()
        };
        assert_eq!(
            message(&status, "nightly"),
            "Suspended after 2 runs in a row failed (n-1, n-2); resume with `kubectl swf resume nightly` \
             (a new value of the scheduledworkflows.kubeflow.org/resume annotation)."
        );
    }
}
