//! spec.failurePolicy (docs/failure-policy.md) on the real control plane: a schedule whose
//! Jobs fail three times in a row suspends itself, says so everywhere a user looks (condition,
//! one Warning event, kstatus, Argo CD's health, the JobService's status), and resumes on the
//! documented action.
use std::time::Duration;

use kube::{
    ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;
use swf_operator::{
    api::convert::status_string,
    model::keys::RESUME_ANNOTATION,
    scheduling::{
        failure_policy::SUSPENDED_REASON,
        status::{READY, STALLED, summary_condition},
    },
};

use crate::common::{
    self, eventually, job_resource,
    swf::{WAIT, create, events_for, fail_job, job_swf, runs_of, swfs},
};

#[tokio::test]
async fn three_failed_runs_in_a_row_suspend_the_schedule_until_it_is_resumed() {
    let env = common::env("failure-policy").await;
    let operator = common::Operator::start(&env, |_| {}).await;
    // Every 2 s, one run at a time; keep a single failed run, which the policy overrides.
    let spec = json!({"trigger": {"periodicSchedule": {"intervalSecond": 2}},
        "failedRunsHistoryLimit": 1, "failurePolicy": {"suspendAfterConsecutiveFailures": 3}});
    let swf = create(&env, job_swf("flaky", spec)).await;

    // Fail each run as it comes, until the schedule stops.
    let suspended = eventually(WAIT * 2, "the schedule suspended", || async {
        for job in runs_of(&env, &swf, &job_resource()).await {
            let failed = job.data["status"]["failed"].as_i64().unwrap_or(0) > 0;
            if !failed {
                fail_job(&env.client, &env.namespace, &job.name_any()).await;
            }
        }
        let obj = swfs(&env).get("flaky").await.ok()?;
        let status = obj.status?;
        status.suspension.as_ref()?.suspended_at.as_ref()?;
        Some(status)
    })
    .await;
    let summary = summary_condition(&suspended).unwrap();
    assert_eq!(
        (summary.type_.as_str(), summary.reason.as_deref()),
        ("Disabled", Some(SUSPENDED_REASON))
    );
    let failed = &suspended.suspension.as_ref().unwrap().failed_runs;
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(
        summary.message.as_deref().unwrap().contains(&failed.join(", ")),
        "{summary:?}"
    );
    let kstatus = |t: &str| {
        suspended
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.status.clone())
    };
    assert_eq!(
        (kstatus(READY), kstatus(STALLED)),
        (Some("False".into()), Some("True".into()))
    );
    assert_eq!(status_string(&suspended), "DISABLED", "the JobService's status");
    let json = serde_json::to_value(swfs(&env).get("flaky").await.unwrap()).unwrap();
    let (health, message) = crate::gitops::argocd_health(&json);
    assert_eq!(health, "Degraded");
    assert!(message.starts_with(SUSPENDED_REASON), "{message}");

    // No run is created while suspended, and the failed runs it names are kept despite
    // failedRunsHistoryLimit: 1.
    let count = common::creations::ever(&env, "jobs").await.len();
    tokio::time::sleep(Duration::from_secs(6)).await; // three ticks fall while suspended
    operator.settle(&env, "flaky").await;
    let ever = common::creations::ever(&env, "jobs").await;
    assert_eq!(ever.len(), count, "runs created while suspended: {ever:?}");
    let runs = runs_of(&env, &swf, &job_resource()).await;
    let names: Vec<String> = runs.iter().map(|r| r.name_any()).collect();
    assert!(
        failed.iter().all(|f| names.contains(f)),
        "{failed:?} not all kept in {names:?}"
    );
    // Published once: counted after a later pass and with the event queue empty (settle).
    let warnings: Vec<_> = events_for(&env, "flaky")
        .await
        .into_iter()
        .filter(|e| e.1 == SUSPENDED_REASON)
        .collect();
    assert_eq!(warnings.len(), 1, "one Warning event: {warnings:?}");

    // Resume (what `kubectl swf resume flaky` does): runs again, and the count restarts.
    let resumed_at = jiff::Timestamp::now().as_second();
    let patch = json!({"metadata": {"annotations": {RESUME_ANNOTATION: "1"}}});
    swfs(&env)
        .patch("flaky", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let before = common::creations::uids_per_tick(&env, &swf, "jobs").await;
    let after_resume = eventually(WAIT, "a run after the resume", || async {
        let ever = common::creations::uids_per_tick(&env, &swf, "jobs").await;
        let new: Vec<i64> = ever.keys().filter(|t| !before.contains_key(t)).copied().collect();
        (!new.is_empty()).then_some(new)
    })
    .await;
    let status = eventually(WAIT, "the Enabled status", || async {
        let status = swfs(&env).get("flaky").await.ok()?.status?;
        (summary_condition(&status)?.type_ == "Enabled").then_some(status)
    })
    .await;
    assert!(status.suspension.unwrap().suspended_at.is_none());
    // Ticks that fell while suspended were not run: every run since is for a tick after it.
    assert!(
        after_resume.iter().all(|t| *t >= resumed_at - 1),
        "a tick from the suspension ran: {after_resume:?} before {resumed_at}"
    );
}
