//! Backfill (docs/backfill.md) on the real control plane: the annotation
//! `scheduledworkflows.kubeflow.org/backfill: <from>/<to>` makes the operator create the
//! schedule's runs for a past range, once per tick, within maxConcurrency, across restarts.
use std::collections::{BTreeMap, BTreeSet};

use jiff::{Timestamp, tz::TimeZone};
use kube::{
    ResourceExt,
    api::{DynamicObject, Patch, PatchParams},
};
use serde_json::{Value, json};
use swf_operator::{
    model::{
        crd::BackfillStatus,
        keys::{
            BACKFILL_ANNOTATION, {self},
        },
    },
    scheduling::render,
};

use crate::common::{
    self, TestEnv, eventually, job_resource, start_operator,
    swf::{WAIT, create, events_for, finish_job, job_swf, runs_of, swfs},
};

const FROM: &str = "2026-01-01T00:00:00Z";
const TO: &str = "2026-01-04T00:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

async fn annotate(env: &TestEnv, name: &str, value: Option<&str>) {
    let patch = json!({"metadata": {"annotations": {BACKFILL_ANNOTATION: value}}});
    swfs(env)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn backfill_status(env: &TestEnv, name: &str) -> Option<BackfillStatus> {
    swfs(env).get(name).await.ok()?.status?.backfill
}

fn is_finished(job: &DynamicObject) -> bool {
    job.data["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["status"] == "True"))
}

fn tick_of(job: &DynamicObject) -> Timestamp {
    Timestamp::from_second(job.labels()[keys::LABEL_EPOCH].parse().unwrap()).unwrap()
}

/// Runs whose tick is in [from, to), by tick; panics on a tick with two runs.
fn by_tick(jobs: &[DynamicObject], from: Timestamp, to: Timestamp) -> BTreeMap<Timestamp, DynamicObject> {
    let mut map = BTreeMap::new();
    for job in jobs.iter().filter(|j| (from..to).contains(&tick_of(j))) {
        let previous = map.insert(tick_of(job), job.clone());
        assert!(previous.is_none(), "two runs for the tick {}", tick_of(job));
    }
    map
}

/// Finishes the active backfill Jobs of `swf` (there is no kubelet), checking that no more
/// than `max` ever run at once; returns the runs in the range.
async fn finish_active(
    env: &TestEnv,
    swf: &swf_operator::model::crd::ScheduledWorkflow,
    max: usize,
) -> BTreeMap<Timestamp, DynamicObject> {
    let jobs = runs_of(env, swf, &job_resource()).await;
    let in_range = by_tick(&jobs, at(FROM), at(TO));
    let active: Vec<&DynamicObject> = in_range.values().filter(|j| !is_finished(j)).collect();
    assert!(
        active.len() <= max,
        "{} backfill runs active at once; maxConcurrency is {max}",
        active.len()
    );
    for job in active {
        finish_job(&env.client, &env.namespace, &job.name_any()).await;
    }
    in_range
}

#[tokio::test]
async fn a_three_day_backfill_of_an_hourly_schedule_creates_72_runs_once_each_across_a_restart() {
    let env = common::env("backfill-72").await;
    // Hourly, in UTC; the Job's argument is its scheduled time, so each run can be checked.
    let spec = json!({"maxConcurrency": 10, "trigger": {"cronSchedule": {"cron": "0 0 * * * *"}},
        "runTemplate": {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "busybox", "args": ["[[ScheduledTime]]"]}]}}}}});
    let swf = create(&env, job_swf("hourly", spec)).await;
    let operator = start_operator(&env).await;
    // A tick of the range that already ran (an earlier, one-hour backfill): not run again.
    let ran = at("2026-01-02T05:00:00Z");
    let earlier = "2026-01-02T05:00:00Z/2026-01-02T06:00:00Z";
    annotate(&env, "hourly", Some(earlier)).await;
    eventually(WAIT, "the one-hour backfill", || async {
        backfill_status(&env, "hourly").await.filter(|s| s.phase == "Finished")
    })
    .await;
    let first = finish_active(&env, &swf, 1).await;
    assert_eq!(first.keys().copied().collect::<Vec<_>>(), [ran]);
    let ran_uid = first[&ran].uid();

    annotate(&env, "hourly", Some(&format!("{FROM}/{TO}"))).await;
    // Progress is reported while it runs; the operator is restarted midway.
    let midway = eventually(WAIT, "a third of the backfill", || async {
        let runs = finish_active(&env, &swf, 10).await;
        let status = backfill_status(&env, "hourly").await?;
        (runs.len() >= 25).then_some(status)
    })
    .await;
    operator.abort();
    let _ = operator.await;
    assert_eq!(
        (midway.range.as_str(), midway.total),
        (format!("{FROM}/{TO}").as_str(), 72)
    );
    assert_eq!(midway.phase, "Running", "{midway:?}");
    assert!(midway.done < 72 && midway.next_tick.is_some(), "{midway:?}");
    let _operator = start_operator(&env).await;

    let status = eventually(WAIT * 3, "the backfill to finish", || async {
        finish_active(&env, &swf, 10).await;
        backfill_status(&env, "hourly").await.filter(|s| s.phase == "Finished")
    })
    .await;
    // Listed after status says Finished, so every run it counted exists.
    let runs = finish_active(&env, &swf, 10).await;
    assert_eq!((status.done, status.total), (72, 72), "{status:?}");
    assert_eq!(status.next_tick, None);
    assert_eq!(runs.len(), 72, "one run per hour of the three days");
    let expected: BTreeSet<Timestamp> = (0..72)
        .map(|h| at(FROM) + jiff::SignedDuration::from_hours(h))
        .collect();
    assert_eq!(runs.keys().copied().collect::<BTreeSet<_>>(), expected);
    assert_eq!(runs[&ran].uid(), ran_uid, "the tick that had run was not run again");
    let created = common::creations::uids_per_tick(&env, &swf, "jobs").await;
    assert!(
        common::creations::twice(&created).is_empty(),
        "a tick created twice: {created:?}"
    );
    let backfilled = common::creations::ever(&env, "jobs")
        .await
        .into_iter()
        .filter(|c| c.backfill.is_some())
        .count();
    assert_eq!(backfilled, 72, "72 creations in all (71 and the earlier request's one)");
    let served = &runs[&ran].annotations()[swf_operator::model::keys::BACKFILL_RUN_ANNOTATION];
    assert_eq!(served, earlier, "still the earlier request's run");
    for (tick, job) in runs.iter().filter(|(t, _)| **t != ran) {
        assert_eq!(
            job.name_any(),
            render::run_name("hourly", *tick),
            "the schedule's own run name"
        );
        let args = &job.data["spec"]["template"]["spec"]["containers"][0]["args"][0];
        let want = tick.to_zoned(TimeZone::UTC).strftime("%Y%m%d%H%M%S").to_string();
        assert_eq!(args, &Value::String(want), "[[ScheduledTime]] of {}", job.name_any());
        assert_eq!(
            job.annotations()[swf_operator::model::keys::BACKFILL_RUN_ANNOTATION],
            format!("{FROM}/{TO}")
        );
    }
    // The schedule's own state is untouched: a backfill of the past is not a catch-up point.
    let obj = swfs(&env).get("hourly").await.unwrap();
    let last = obj.status.unwrap().trigger.last_triggered_time.map(|t| t.0);
    assert!(
        last.is_none_or(|t| t > at(TO)),
        "lastTriggeredTime moved into the backfill: {last:?}"
    );
    let reasons: Vec<String> = events_for(&env, "hourly").await.into_iter().map(|e| e.1).collect();
    assert!(
        reasons.contains(&"BackfillStarted".into()) && reasons.contains(&"BackfillFinished".into()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn removing_the_annotation_cancels_and_a_bad_range_is_reported() {
    let env = common::env("backfill-cancel").await;
    let operator = common::Operator::start(&env, |_| {}).await;
    let spec = json!({"maxConcurrency": 2, "trigger": {"cronSchedule": {"cron": "0 0 * * * *"}}});
    let swf = create(&env, job_swf("cancel-me", spec)).await;
    annotate(&env, "cancel-me", Some(&format!("{FROM}/{TO}"))).await;
    eventually(WAIT, "two backfill runs", || async {
        (by_tick(&runs_of(&env, &swf, &job_resource()).await, at(FROM), at(TO)).len() == 2).then_some(())
    })
    .await;
    annotate(&env, "cancel-me", None).await;
    let cancelled = eventually(WAIT, "the backfill cancelled", || async {
        backfill_status(&env, "cancel-me")
            .await
            .filter(|s| s.phase == "Cancelled")
    })
    .await;
    assert_eq!((cancelled.done, cancelled.total), (2, 72), "{cancelled:?}");
    // Freed slots start nothing more: after the runs finish, a pass that sees it.
    finish_active(&env, &swf, 2).await;
    eventually(WAIT, "the finished runs seen", || async {
        let s = swfs(&env).get("cancel-me").await.ok()?.status?;
        s.workflow_history.active.is_empty().then_some(())
    })
    .await;
    operator.one_more_pass(&env, "cancel-me").await;
    let ever: Vec<_> = common::creations::ever(&env, "jobs")
        .await
        .into_iter()
        .filter(|r| r.backfill.is_some()) // the hourly schedule's own ticks may fall meanwhile
        .collect();
    assert_eq!(ever.len(), 2, "a cancelled backfill created more runs: {ever:?}");

    annotate(&env, "cancel-me", Some("2026-01-04/2026-01-01")).await;
    let invalid = eventually(WAIT, "the bad range reported", || async {
        backfill_status(&env, "cancel-me")
            .await
            .filter(|s| s.phase == "Invalid")
    })
    .await;
    assert!(invalid.message.unwrap().contains("the end is not after the start"));
    let invalid_warnings = || async {
        let events = events_for(&env, "cancel-me").await;
        events
            .into_iter()
            .filter(|e| e.1 == "BackfillInvalid")
            .collect::<Vec<_>>()
    };
    eventually(WAIT, "a BackfillInvalid event", || async {
        (!invalid_warnings().await.is_empty()).then_some(())
    })
    .await;
    operator.settle(&env, "cancel-me").await;
    let warnings = invalid_warnings().await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    operator.task.abort();
}

#[tokio::test]
async fn a_backfill_across_a_dst_change_keeps_the_local_time() {
    let env = common::env("backfill-dst").await;
    let _operator = start_operator(&env).await;
    // 08:30 in Berlin, daily; Berlin moved to summer time on 2026-03-29.
    let spec = json!({"maxConcurrency": 10, "timeZone": "Europe/Berlin",
        "trigger": {"cronSchedule": {"cron": "0 30 8 * * *"}}});
    let swf = create(&env, job_swf("berlin", spec)).await;
    // Dates without an offset are read in the schedule's zone.
    annotate(&env, "berlin", Some("2026-03-27/2026-03-31")).await;
    let status = eventually(WAIT, "the DST backfill to finish", || async {
        backfill_status(&env, "berlin").await.filter(|s| s.phase == "Finished")
    })
    .await;
    assert_eq!(status.total, 4);
    let runs = by_tick(
        &runs_of(&env, &swf, &job_resource()).await,
        at("2026-03-26T00:00:00Z"),
        at("2026-03-31T00:00:00Z"),
    );
    let ticks: Vec<String> = runs.keys().map(|t| t.to_string()).collect();
    assert_eq!(
        ticks,
        [
            "2026-03-27T07:30:00Z",
            "2026-03-28T07:30:00Z",
            "2026-03-29T06:30:00Z",
            "2026-03-30T06:30:00Z"
        ]
    );
}
