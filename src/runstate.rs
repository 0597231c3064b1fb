//! Pure reading of run objects: active or finished, per kind, and KFP's `workflowHistory`.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

use crate::{
    crd::{WorkflowHistory, WorkflowStatus},
    render::{LABEL_EPOCH, LABEL_INDEX},
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
}

fn time(v: Option<&Value>) -> Option<Time> {
    v.and_then(Value::as_str)
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map(Time)
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn condition_is(obj: &Value, type_: &str, status: &str) -> bool {
    condition(obj, type_).is_some_and(|c| c["status"] == status)
}

/// Classifies a run by its kind's own notion of done.
pub fn observe(obj: &Value) -> ObservedRun {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
    let meta = &obj["metadata"];
    let label = |key: &str| meta["labels"][key].as_str().map(str::to_string);
    let mut status = WorkflowStatus {
        name: meta["name"].as_str().unwrap_or_default().into(),
        namespace: meta["namespace"].as_str().unwrap_or_default().into(),
        uid: meta["uid"].as_str().unwrap_or_default().into(),
        created_at: time(meta.get("creationTimestamp")),
        index: label(LABEL_INDEX).and_then(|s| s.parse().ok()).unwrap_or(0),
        kind: Some(format!("{api_version}/{kind}")),
        ..Default::default()
    };
    // KFP: the scheduled time comes from the epoch label, else the creation time.
    status.scheduled_at = label(LABEL_EPOCH)
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| Timestamp::from_second(s).ok())
        .map(Time)
        .or_else(|| status.created_at.clone());

    let outcome = match (group, kind) {
        ("argoproj.io", "Workflow") => {
            let phase = obj.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
            status.phase = phase.into();
            status.message = obj
                .pointer("/status/message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into();
            status.started_at = time(obj.pointer("/status/startedAt"));
            status.finished_at = time(obj.pointer("/status/finishedAt"));
            let completed = meta["labels"]["workflows.argoproj.io/completed"] == "true";
            match phase {
                "Succeeded" => Outcome::Succeeded,
                "Failed" | "Error" => Outcome::Failed,
                _ if completed => Outcome::Failed,
                _ => Outcome::Active,
            }
        }
        ("batch", "Job") => {
            status.started_at = time(obj.pointer("/status/startTime"));
            if condition_is(obj, "Complete", "True") {
                status.finished_at = time(obj.pointer("/status/completionTime"))
                    .or_else(|| time(condition(obj, "Complete").and_then(|c| c.get("lastTransitionTime"))));
                Outcome::Succeeded
            } else if condition_is(obj, "Failed", "True") {
                let c = condition(obj, "Failed").unwrap();
                status.finished_at = time(c.get("lastTransitionTime"));
                status.message = c["message"].as_str().unwrap_or_default().into();
                Outcome::Failed
            } else {
                Outcome::Active
            }
        }
        _ => {
            // Tekton runs and anything else with a Succeeded/Complete/Failed condition.
            status.started_at = time(obj.pointer("/status/startTime"));
            let done = |c: &Value| {
                (
                    time(obj.pointer("/status/completionTime")).or_else(|| time(c.get("lastTransitionTime"))),
                    c["message"].as_str().unwrap_or_default().to_string(),
                )
            };
            if let Some(c) = condition(obj, "Succeeded")
                .filter(|c| c["status"] == "True")
                .or_else(|| condition(obj, "Complete").filter(|c| c["status"] == "True"))
            {
                (status.finished_at, status.message) = done(c);
                Outcome::Succeeded
            } else if let Some(c) = condition(obj, "Succeeded")
                .filter(|c| c["status"] == "False")
                .or_else(|| condition(obj, "Failed").filter(|c| c["status"] == "True"))
            {
                (status.finished_at, status.message) = done(c);
                Outcome::Failed
            } else {
                Outcome::Active
            }
        }
    };
    if status.phase.is_empty() {
        status.phase = match outcome {
            Outcome::Active if status.started_at.is_some() => "Running",
            Outcome::Active => "Pending",
            Outcome::Succeeded => "Succeeded",
            Outcome::Failed => "Failed",
        }
        .into();
    }
    ObservedRun { status, outcome }
}

/// KFP's history: all active runs, and finished runs with `index > lastIndex - maxHistory`,
/// newest scheduled first (ties by name, so the order is stable).
pub fn history(runs: &[ObservedRun], last_index: i64, max_history: i64) -> WorkflowHistory {
    let newest_first =
        |a: &WorkflowStatus, b: &WorkflowStatus| b.scheduled_at.cmp(&a.scheduled_at).then_with(|| a.name.cmp(&b.name));
    let mut active: Vec<_> = runs
        .iter()
        .filter(|r| r.outcome == Outcome::Active)
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

/// Finished runs to delete so at most `keep_succeeded` / `keep_failed` remain (oldest first).
pub fn beyond_history_limits(
    runs: &[ObservedRun],
    keep_succeeded: Option<i32>,
    keep_failed: Option<i32>,
) -> Vec<&ObservedRun> {
    let mut doomed = Vec::new();
    for (outcome, keep) in [(Outcome::Succeeded, keep_succeeded), (Outcome::Failed, keep_failed)] {
        let Some(keep) = keep else { continue };
        let mut done: Vec<&ObservedRun> = runs.iter().filter(|r| r.outcome == outcome).collect();
        done.sort_by(|a, b| {
            b.status
                .scheduled_at
                .cmp(&a.status.scheduled_at)
                .then_with(|| a.status.name.cmp(&b.status.name))
        });
        doomed.extend(done.into_iter().skip(keep.max(0) as usize));
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(api: &str, kind: &str, name: &str, index: i64, status: Value) -> Value {
        json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "ns", "uid": name,
            "labels": {LABEL_INDEX: index.to_string(), LABEL_EPOCH: (1000 + index).to_string()}}, "status": status})
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
            (run("v1", "ConfigMap", "j", 1, Value::Null), Outcome::Active),
        ];
        for (obj, want) in cases {
            assert_eq!(observe(&obj).outcome, want, "{obj}");
        }
        let job = observe(&run(
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
                observe(&run(
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
        assert_eq!(doomed, vec!["r3", "r2", "r1"]);
    }
}
