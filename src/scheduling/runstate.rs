//! Pure reading of run objects: active or finished, per kind (the table in `runkind`), and
//! KFP's `workflowHistory`.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    model::{
        crd::{WorkflowHistory, WorkflowStatus},
        keys::{ARGO_COMPLETED_LABEL, LABEL_EPOCH, LABEL_INDEX},
        runkind::{Completion, RunKind},
        stored::{RunCondition, RunObject},
    },
    scheduling::render::Origin,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Active,
    Succeeded,
    Failed,
}

/// One run as the operator sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedRun {
    pub status: WorkflowStatus,
    pub outcome: Outcome,
    /// The tick it was created for (`workflowEpoch` label), if labelled.
    pub tick: Option<Timestamp>,
    pub origin: Origin,
    /// Being deleted: neither active nor a candidate for deletion.
    pub deleting: bool,
    /// Known only from the schedule's status, not from the run itself (`recorded_active`).
    pub recorded_only: bool,
}

impl ObservedRun {
    /// Counts against `maxConcurrency`.
    pub fn is_active(&self) -> bool {
        self.outcome == Outcome::Active && !self.deleting
    }
}

fn condition<'a>(run: &'a RunObject, type_: &str, status: &str) -> Option<&'a RunCondition> {
    run.status
        .conditions
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_) && c.status.as_deref() == Some(status))
}

/// How the run's kind says it finished: outcome, finish time and message.
fn finished(kind: &RunKind, run: &RunObject) -> (Outcome, Option<Timestamp>, Option<String>) {
    let s = &run.status;
    let done = |outcome, c: &RunCondition| (outcome, s.completion_time.or(c.last_transition_time), c.message.clone());
    match kind.completion() {
        Completion::ArgoPhase => {
            let completed = run
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(ARGO_COMPLETED_LABEL))
                .is_some_and(|v| v == "true");
            let outcome = match s.phase.as_deref() {
                Some("Succeeded") => Outcome::Succeeded,
                Some("Failed" | "Error") => Outcome::Failed,
                _ if completed => Outcome::Failed,
                _ => Outcome::Active,
            };
            (outcome, s.finished_at, s.message.clone())
        }
        Completion::JobConditions => {
            if let Some(c) = condition(run, "Complete", "True") {
                done(Outcome::Succeeded, c)
            } else if let Some(c) = condition(run, "Failed", "True") {
                done(Outcome::Failed, c)
            } else {
                (Outcome::Active, None, None)
            }
        }
        Completion::Conditions => {
            if let Some(c) = condition(run, "Succeeded", "True").or_else(|| condition(run, "Complete", "True")) {
                done(Outcome::Succeeded, c)
            } else if let Some(c) = condition(run, "Succeeded", "False").or_else(|| condition(run, "Failed", "True")) {
                done(Outcome::Failed, c)
            } else {
                (Outcome::Active, None, None)
            }
        }
    }
}

/// Classifies a run of `kind` by its kind's own notion of done.
pub fn observe(kind: &RunKind, run: &RunObject) -> ObservedRun {
    let meta = &run.metadata;
    let label = |key: &str| meta.labels.as_ref().and_then(|l| l.get(key));
    let created_at = meta.creation_timestamp.clone();
    let origin = Origin::of(meta.annotations.as_ref());
    // KFP: the scheduled time comes from the epoch label, else the creation time.
    let tick = label(LABEL_EPOCH)
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| Timestamp::from_second(s).ok());
    let (outcome, finished_at, message) = finished(kind, run);
    let started_at = run.status.started_at.or(run.status.start_time);
    let phase = match (&run.status.phase, kind.completion()) {
        (Some(p), Completion::ArgoPhase) if !p.is_empty() => p.clone(),
        _ => match outcome {
            Outcome::Active if started_at.is_some() => "Running",
            Outcome::Active => "Pending",
            Outcome::Succeeded => "Succeeded",
            Outcome::Failed => "Failed",
        }
        .into(),
    };
    let status = WorkflowStatus {
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        phase,
        message: message.unwrap_or_default(),
        scheduled_at: tick.map(Time).or_else(|| created_at.clone()),
        created_at,
        started_at: started_at.map(Time),
        finished_at: finished_at.map(Time),
        index: label(LABEL_INDEX).and_then(|s| s.parse().ok()).unwrap_or(0),
        kind: Some(kind.to_string()),
        run_now: match &origin {
            Origin::RunNow(value) => Some(value.clone()),
            _ => None,
        },
        backfill: match &origin {
            Origin::Backfill(range) => Some(range.clone()),
            _ => None,
        },
        ..Default::default()
    };
    ObservedRun {
        status,
        outcome,
        tick,
        origin,
        deleting: meta.deletion_timestamp.is_some(),
        recorded_only: false,
    }
}

/// A run the schedule's status lists as active, seen only there: it holds a slot (the
/// backfill's or the schedule's, by the origin the entry records) and its tick is taken.
/// An entry written before origins were recorded is taken for the schedule's own.
/// `Replace` does not delete it (`recorded_only`).
pub fn recorded_active(entry: &WorkflowStatus) -> ObservedRun {
    let origin = match (&entry.run_now, &entry.backfill) {
        (Some(value), _) => Origin::RunNow(value.clone()),
        (None, Some(range)) => Origin::Backfill(range.clone()),
        (None, None) => Origin::Scheduled,
    };
    ObservedRun {
        status: entry.clone(),
        outcome: Outcome::Active,
        tick: entry.scheduled_at.as_ref().map(|t| t.0),
        origin,
        deleting: false,
        recorded_only: true,
    }
}

/// What the runs that exist say about the schedule: they, not status, decide what has run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunsSummary {
    /// The latest tick the schedule itself ran (run-now and backfill runs excluded: a
    /// backfill of the past must not move the schedule's own catch-up point).
    pub latest_tick: Option<Timestamp>,
    /// The highest `workflowIndex` of any run.
    pub highest_index: i64,
    /// The schedule's own runs that count against `maxConcurrency` (backfill runs have
    /// their own `maxConcurrency`: docs/backfill.md).
    pub active: usize,
    /// Active backfill runs.
    pub backfill_active: usize,
}

pub fn summarize(runs: &[ObservedRun]) -> RunsSummary {
    let own = || runs.iter().filter(|r| !r.origin.is_backfill());
    RunsSummary {
        latest_tick: own().filter(|r| r.origin.is_tick()).filter_map(|r| r.tick).max(),
        highest_index: runs.iter().map(|r| r.status.index).max().unwrap_or(0).max(0),
        active: own().filter(|r| r.is_active()).count(),
        backfill_active: runs.iter().filter(|r| r.origin.is_backfill() && r.is_active()).count(),
    }
}

/// The ticks that have a run (scheduled, backfilled or KFP's; run-now runs are not ticks).
pub fn ticks_with_runs(runs: &[ObservedRun]) -> std::collections::BTreeSet<Timestamp> {
    runs.iter()
        .filter(|r| r.origin.is_tick())
        .filter_map(|r| r.tick)
        .collect()
}

/// KFP's history: all active runs, and finished runs with `index > lastIndex - maxHistory`,
/// newest scheduled first (ties by name, so the order is stable).
pub fn history(runs: &[ObservedRun], last_index: i64, max_history: i64) -> WorkflowHistory {
    let newest_first =
        |a: &WorkflowStatus, b: &WorkflowStatus| b.scheduled_at.cmp(&a.scheduled_at).then_with(|| a.name.cmp(&b.name));
    let mut active: Vec<_> = runs
        .iter()
        .filter(|r| r.is_active())
        .map(|r| r.status.clone())
        .collect();
    let mut completed: Vec<_> = runs
        .iter()
        .filter(|r| r.outcome != Outcome::Active && r.status.index > last_index - max_history)
        .map(|r| r.status.clone())
        .collect();
    active.sort_by(newest_first);
    completed.sort_by(newest_first);
    completed.truncate(max_history.max(0) as usize);
    WorkflowHistory { active, completed }
}

/// The run that finished last among those that succeeded (finish order, as `failure_streak`).
pub fn last_success(runs: &[ObservedRun]) -> Option<&ObservedRun> {
    finish_order(runs)
        .into_iter()
        .rev()
        .find(|r| r.outcome == Outcome::Succeeded)
}

/// Finished runs (not being deleted) in the order they finished (ties by scheduled time, then
/// name).
fn finish_order(runs: &[ObservedRun]) -> Vec<&ObservedRun> {
    let mut finished: Vec<&ObservedRun> = runs
        .iter()
        .filter(|r| r.outcome != Outcome::Active && !r.deleting)
        .collect();
    finished.sort_by(|a, b| {
        let key = |r: &ObservedRun| {
            (
                r.status.finished_at.clone().map(|t| t.0),
                r.status.scheduled_at.clone().map(|t| t.0),
            )
        };
        key(a).cmp(&key(b)).then_with(|| a.status.name.cmp(&b.status.name))
    });
    finished
}

/// The runs of the current failure streak: the finished runs, in the order they finished
/// (ties by scheduled time), that failed after the last one that succeeded; oldest first.
/// Active runs do not break a streak: only finished runs are counted.
pub fn failure_streak(runs: &[ObservedRun]) -> Vec<&ObservedRun> {
    let mut finished = finish_order(runs);
    let since_success = finished
        .iter()
        .rposition(|r| r.outcome == Outcome::Succeeded)
        .map_or(0, |i| i + 1);
    finished.split_off(since_success)
}

/// Finished runs to delete so at most `keep_succeeded` / `keep_failed` remain (oldest first).
pub fn beyond_history_limits(
    runs: &[ObservedRun],
    keep_succeeded: Option<i32>,
    keep_failed: Option<i32>,
) -> Vec<&ObservedRun> {
    let mut doomed = Vec::new();
    for (outcome, keep) in [(Outcome::Succeeded, keep_succeeded), (Outcome::Failed, keep_failed)] {
        let Some(keep) = keep else { continue };
        let mut done: Vec<&ObservedRun> = runs.iter().filter(|r| r.outcome == outcome && !r.deleting).collect();
        done.sort_by(|a, b| {
            b.status
                .scheduled_at
                .cmp(&a.status.scheduled_at)
                .then_with(|| a.status.name.cmp(&b.status.name))
        });
        doomed.extend(done.into_iter().skip(usize::try_from(keep).unwrap_or(0)));
    }
    // Oldest first: a pass that stops midway has removed the oldest.
    doomed.sort_by(|a, b| a.status.scheduled_at.cmp(&b.status.scheduled_at));
    doomed
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(api: &str, kind: &str, name: &str, index: i64, status: serde_json::Value) -> (RunKind, RunObject) {
        let obj = json!({"metadata": {"name": name, "namespace": "ns", "uid": name,
            "labels": {LABEL_INDEX: index.to_string(), LABEL_EPOCH: (1000 + index).to_string()}}, "status": status});
        (RunKind::parse(api, kind), serde_json::from_value(obj).unwrap())
    }

    fn observed(r: (RunKind, RunObject)) -> ObservedRun {
        observe(&r.0, &r.1)
    }

    #[test]
    fn kinds_are_classified_by_their_own_status() {
        let cases = [
            (
                run("argoproj.io/v1alpha1", "Workflow", "a", 1, json!({"phase": "Running"})),
                Outcome::Active,
            ),
            (
                run(
                    "argoproj.io/v1alpha1",
                    "Workflow",
                    "b",
                    1,
                    json!({"phase": "Succeeded"}),
                ),
                Outcome::Succeeded,
            ),
            (
                run("argoproj.io/v1alpha1", "Workflow", "c", 1, json!({"phase": "Error"})),
                Outcome::Failed,
            ),
            (
                run("batch/v1", "Job", "d", 1, json!({"startTime": "2026-01-01T00:00:00Z"})),
                Outcome::Active,
            ),
            (
                run(
                    "batch/v1",
                    "Job",
                    "e",
                    1,
                    json!({"conditions": [{"type": "Complete", "status": "True"}], "completionTime": "2026-01-01T00:01:00Z"}),
                ),
                Outcome::Succeeded,
            ),
            (
                run(
                    "batch/v1",
                    "Job",
                    "f",
                    1,
                    json!({"conditions": [{"type": "Failed", "status": "True", "message": "boom"}]}),
                ),
                Outcome::Failed,
            ),
            (
                run(
                    "tekton.dev/v1",
                    "PipelineRun",
                    "g",
                    1,
                    json!({"conditions": [{"type": "Succeeded", "status": "Unknown"}]}),
                ),
                Outcome::Active,
            ),
            (
                run(
                    "tekton.dev/v1",
                    "PipelineRun",
                    "h",
                    1,
                    json!({"conditions": [{"type": "Succeeded", "status": "False"}]}),
                ),
                Outcome::Failed,
            ),
            (
                run(
                    "example.com/v1",
                    "Thing",
                    "i",
                    1,
                    json!({"conditions": [{"type": "Complete", "status": "True"}]}),
                ),
                Outcome::Succeeded,
            ),
            (run("v1", "ConfigMap", "j", 1, serde_json::Value::Null), Outcome::Active),
        ];
        for (obj, want) in cases {
            let name = obj.1.metadata.name.clone();
            assert_eq!(observed(obj).outcome, want, "{name:?}");
        }
        let job = observed(run(
            "batch/v1",
            "Job",
            "e",
            4,
            json!({"conditions": [{"type": "Complete", "status": "True"}], "completionTime": "2026-01-01T00:01:00Z"}),
        ));
        assert_eq!(job.status.phase, "Succeeded");
        assert_eq!(job.status.index, 4);
        assert_eq!(job.status.scheduled_at.unwrap().0.as_second(), 1004);
        assert_eq!(job.status.finished_at.unwrap().0.to_string(), "2026-01-01T00:01:00Z");
    }

    #[test]
    fn history_keeps_recent_finished_runs_newest_first() {
        let runs: Vec<ObservedRun> = (1..=5)
            .map(|i| {
                observed(run(
                    "batch/v1",
                    "Job",
                    &format!("r{i}"),
                    i,
                    if i == 5 {
                        json!({})
                    } else {
                        json!({"conditions": [{"type": "Complete", "status": "True"}]})
                    },
                ))
            })
            .collect();
        let h = history(&runs, 5, 2);
        assert_eq!(h.active.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["r5"]);
        assert_eq!(
            h.completed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            vec!["r4"]
        );
        let h = history(&runs, 5, 10);
        assert_eq!(
            h.completed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            vec!["r4", "r3", "r2", "r1"]
        );
        let doomed: Vec<_> = beyond_history_limits(&runs, Some(1), None)
            .iter()
            .map(|r| r.status.name.clone())
            .collect();
        assert_eq!(doomed, vec!["r1", "r2", "r3"]);
    }

    /// Every field of KFP's history entry comes from the run (what `kubectl get swf -o yaml`
    /// and the JobService show).
    #[test]
    fn a_run_becomes_its_history_entry_field_by_field() {
        let (kind, mut job) = run(
            "batch/v1",
            "Job",
            "nightly-1",
            7,
            json!({"startTime": "2026-01-01T00:00:05Z", "completionTime": "2026-01-01T00:01:00Z",
                "conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}),
        );
        job.metadata.uid = Some("uid-7".into());
        job.metadata.creation_timestamp = Some(Time("2026-01-01T00:00:01Z".parse().unwrap()));
        let entry = observed((kind, job)).status;
        let time = |s: &str| Some(Time(s.parse().unwrap()));
        assert_eq!(
            entry,
            WorkflowStatus {
                name: "nightly-1".into(),
                namespace: "ns".into(),
                uid: "uid-7".into(),
                phase: "Failed".into(),
                message: "BackoffLimitExceeded".into(),
                created_at: time("2026-01-01T00:00:01Z"),
                started_at: time("2026-01-01T00:00:05Z"),
                finished_at: time("2026-01-01T00:01:00Z"),
                scheduled_at: Timestamp::from_second(1007).ok().map(Time),
                index: 7,
                kind: Some("batch/v1/Job".into()),
                ..Default::default()
            }
        );
        let phase =
            |api: &str, kind: &str, status: serde_json::Value| observed(run(api, kind, "r", 1, status)).status.phase;
        assert_eq!(
            phase("batch/v1", "Job", json!({"startTime": "2026-01-01T00:00:05Z"})),
            "Running"
        );
        assert_eq!(phase("batch/v1", "Job", json!({})), "Pending");
        let argo = "argoproj.io/v1alpha1";
        assert_eq!(
            phase(argo, "Workflow", json!({"phase": "Running"})),
            "Running",
            "Argo's own phase"
        );
    }

    /// Argo marks a workflow done with a label; without a phase it reads as failed (Argo's
    /// own "completed" without "Succeeded"). An empty phase is no phase.
    #[test]
    fn an_argo_workflow_labelled_completed_has_ended() {
        let with_label = |value: &str, status: serde_json::Value| {
            let (kind, mut obj) = run("argoproj.io/v1alpha1", "Workflow", "w", 1, status);
            obj.metadata
                .labels
                .get_or_insert_default()
                .insert(ARGO_COMPLETED_LABEL.into(), value.into());
            observed((kind, obj))
        };
        assert_eq!(with_label("true", json!({})).outcome, Outcome::Failed);
        assert_eq!(with_label("false", json!({})).outcome, Outcome::Active);
        let unphased = observed(run("argoproj.io/v1alpha1", "Workflow", "w", 1, json!({"phase": ""})));
        assert_eq!(
            (unphased.outcome, unphased.status.phase.as_str()),
            (Outcome::Active, "Pending")
        );
    }

    /// Issue 18, R12: what a new owner reads back from the status's active list is the run
    /// its watch would show: a backfill's run in the backfill's slot, a run-now run holding a
    /// slot but no tick (so it does not move the schedule's catch-up point).
    #[test]
    fn a_listed_active_run_keeps_its_origin() {
        let with = |key: &str, value: &str| {
            let (kind, mut obj) = run("batch/v1", "Job", key, 2, json!({}));
            obj.metadata.annotations = Some([(key.to_string(), value.to_string())].into());
            observed((kind, obj))
        };
        let runs = [
            with(crate::model::keys::BACKFILL_RUN_ANNOTATION, "a/b"),
            with(crate::model::keys::SERVED_RUN_NOW_ANNOTATION, "now-1"),
            observed(run("batch/v1", "Job", "own", 1, json!({}))),
        ];
        let listed: Vec<ObservedRun> = history(&runs, 2, 0).active.iter().map(recorded_active).collect();
        let origin_of =
            |rs: &[ObservedRun], name: &str| rs.iter().find(|r| r.status.name == name).map(|r| r.origin.clone());
        for name in [
            crate::model::keys::BACKFILL_RUN_ANNOTATION,
            crate::model::keys::SERVED_RUN_NOW_ANNOTATION,
            "own",
        ] {
            assert_eq!(origin_of(&listed, name), origin_of(&runs, name), "{name}");
        }
        let summary = summarize(&listed);
        assert_eq!((summary.active, summary.backfill_active), (2, 1));
        assert_eq!(
            summary.latest_tick,
            Timestamp::from_second(1001).ok(),
            "the run-now run is no tick"
        );
    }

    #[test]
    fn a_failure_streak_is_counted_in_finish_order_since_the_last_success() {
        let job = |name: &str, index: i64, outcome: &str, finished: &str| {
            let status = match outcome {
                "ok" => json!({"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": finished}]}),
                "fail" => json!({"conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": finished}]}),
                _ => json!({}),
            };
            observed(run("batch/v1", "Job", name, index, status))
        };
        let runs = vec![
            job("r1", 1, "fail", "2026-01-01T00:01:00Z"),
            job("r2", 2, "ok", "2026-01-01T00:05:00Z"),
            job("r3", 3, "fail", "2026-01-01T00:03:00Z"), // finished before r2 succeeded
            job("r4", 4, "fail", "2026-01-01T00:06:00Z"),
            job("r5", 5, "active", ""),
            job("r6", 6, "fail", "2026-01-01T00:07:00Z"),
        ];
        let names = |v: Vec<&ObservedRun>| v.iter().map(|r| r.status.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(failure_streak(&runs)),
            ["r4", "r6"],
            "an active run does not break it"
        );
        assert!(failure_streak(&runs[..2]).is_empty(), "a success ends it");
        // The streak starts after the last success, not the first: fail, ok, fail, ok, fail.
        let alternating = vec![
            job("a", 1, "fail", "2026-01-01T00:01:00Z"),
            job("b", 2, "ok", "2026-01-01T00:02:00Z"),
            job("c", 3, "fail", "2026-01-01T00:03:00Z"),
            job("d", 4, "ok", "2026-01-01T00:04:00Z"),
            job("e", 5, "fail", "2026-01-01T00:05:00Z"),
        ];
        assert_eq!(names(failure_streak(&alternating)), ["e"]);
        assert_eq!(last_success(&alternating).map(|r| r.status.name.as_str()), Some("d"));
        assert_eq!(names(failure_streak(&runs[..1])), ["r1"]);
        // A failed run being deleted (a user's "forget it") is out of the streak.
        let mut deleted = job("x", 7, "fail", "2026-01-01T00:08:00Z");
        deleted.deleting = true;
        let with_deleted = [runs.clone(), vec![deleted]].concat();
        assert_eq!(names(failure_streak(&with_deleted)), ["r4", "r6"]);
    }
}
