//! The operator on a real kube-apiserver: scheduling, concurrency, catch-up, enable/disable,
//! run-now, restarts, invalid specs and cascading deletes. Schedules are seconds long;
//! every wait is a generous poll, never a sleep that assumes a fast machine.
use std::time::Duration;

use common::{
    eventually, job_resource, list_runs, start_operator,
    swf::{
        WAIT, argo_swf, condition, create, epochs, events_for, fail_job, finish_job, finish_workflow, job_swf, merge,
        runs_of, swfs, wait_runs,
    },
    workflow_resource,
};
use jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use swf_operator::{
    model::keys::{self},
    scheduling::{render, status::summary_condition},
};

use crate::common;

#[tokio::test]
async fn cron_fires_on_time_and_max_concurrency_holds_under_least_privilege() {
    let env = common::env("cron-concurrency").await;
    common::install_argo_crd(&env.client).await;
    // The operator runs with only the RBAC in deploy/.
    let operator = start_operator(&env).await;
    let swf = create(
        &env,
        argo_swf(
            "every2s",
            json!({"maxConcurrency": 2,
        "trigger": {"cronSchedule": {"cron": "*/2 * * * * *"}},
        "workflow": {"parameters": [{"name": "when", "value": "[[ScheduledTime]]"}]}}),
        ),
    )
    .await;

    let runs = wait_runs(&env, &swf, &workflow_resource(), 2).await;
    let first = &runs[0];
    let labels = first.labels();
    let epoch: i64 = labels[keys::LABEL_EPOCH].parse().unwrap();
    assert_eq!(epoch % 2, 0, "on the */2 grid");
    assert_eq!(
        first.name_any(),
        render::run_name("every2s", Timestamp::from_second(epoch).unwrap())
    );
    assert_eq!(labels[keys::LABEL_SWF_NAME], "every2s");
    assert_eq!(labels[keys::LABEL_OWNED], "true");
    assert!(labels.contains_key(keys::LABEL_RUN_ID));
    let owner = &first.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("ScheduledWorkflow", Some(true))
    );
    // On time: not before its tick, and at most 5 s after it (generous for a loaded 2-core
    // machine; creationTimestamp has 1 s resolution). Both runs found a free slot.
    for run in &runs[..2] {
        let tick: i64 = run.labels()[keys::LABEL_EPOCH].parse().unwrap();
        let late = run.creation_timestamp().unwrap().0.as_second() - tick;
        assert!(
            (0..=5).contains(&late),
            "{} created {late}s after its tick",
            run.name_any()
        );
    }
    assert_eq!(
        first.data["spec"]["arguments"]["parameters"][0]["value"],
        Timestamp::from_second(epoch)
            .unwrap()
            .strftime("%Y%m%d%H%M%S")
            .to_string()
    );

    // Two active runs: the limit holds while they stay active (several ticks go by).
    let status = eventually(WAIT, "status shows 2 active", || async {
        let s = swfs(&env).get("every2s").await.ok()?.status?;
        (s.workflow_history.active.len() == 2 && s.trigger.last_workflow_index == Some(2)).then_some(s)
    })
    .await;
    assert_eq!(summary_condition(&status).unwrap().type_, "Enabled");
    assert!(status.trigger.next_triggered_time.is_some());
    tokio::time::sleep(Duration::from_secs(5)).await; // two+ ticks pass; nothing may be created
    assert_eq!(
        runs_of(&env, &swf, &workflow_resource()).await.len(),
        2,
        "maxConcurrency 2 holds"
    );

    // Finishing one frees a slot: the waiting tick runs with its own (past) scheduled time.
    let waiting_since = swfs(&env)
        .get("every2s")
        .await
        .unwrap()
        .status
        .unwrap()
        .trigger
        .next_triggered_time
        .unwrap()
        .0;
    finish_workflow(&env.client, &env.namespace, &runs[0].name_any(), "Succeeded").await;
    let runs = wait_runs(&env, &swf, &workflow_resource(), 3).await;
    let third = *epochs(&runs).last().unwrap();
    assert_eq!(
        third,
        waiting_since.as_second(),
        "the waiting tick keeps its scheduled time"
    );
    let status = eventually(WAIT, "completed run in history", || async {
        let s = swfs(&env).get("every2s").await.ok()?.status?;
        (s.workflow_history.completed.len() == 1).then_some(s)
    })
    .await;
    assert_eq!(status.workflow_history.completed[0].phase, "Succeeded");
    assert_eq!(status.workflow_history.completed[0].index, 1);
    let events = events_for(&env, "every2s").await;
    assert!(
        events.iter().any(|(t, r, _)| t == "Normal" && r == "RunCreated"),
        "{events:?}"
    );
    operator.abort();
}

#[tokio::test]
async fn periodic_jobs_respect_start_and_end_window() {
    let env = common::env("periodic-window").await;
    let operator = start_operator(&env).await;
    let start = Timestamp::now() + jiff::SignedDuration::from_secs(2);
    let end = start + jiff::SignedDuration::from_secs(7);
    let swf = create(&env, job_swf("window", json!({"maxConcurrency": 10,
        "trigger": {"periodicSchedule": {"intervalSecond": 2, "startTime": start.to_string(), "endTime": end.to_string()}}}))).await;
    // Ticks: start+2, +4, +6 (start+8 is after end).
    let status = eventually(WAIT, "schedule ended", || async {
        let s = swfs(&env).get("window").await.ok()?.status?;
        (s.trigger.last_workflow_index == Some(3) && s.trigger.next_triggered_time.is_none()).then_some(s)
    })
    .await;
    let runs = runs_of(&env, &swf, &job_resource()).await;
    let want: Vec<i64> = [2, 4, 6].iter().map(|k| start.as_second() + k).collect();
    assert_eq!(epochs(&runs), want);
    assert_eq!(summary_condition(&status).unwrap().type_, "Enabled");
    assert_eq!(status.workflow_history.active.len(), 3);
    // A Job completing moves it to history.
    finish_job(&env.client, &env.namespace, &runs[0].name_any()).await;
    eventually(WAIT, "job in completed history", || async {
        let s = swfs(&env).get("window").await.ok()?.status?;
        (s.workflow_history.completed.len() == 1 && s.active_runs == Some(2)).then_some(())
    })
    .await;
    operator.abort();
}

#[tokio::test]
async fn catch_up_and_no_catchup_after_the_operator_was_down() {
    let env = common::env("downtime").await;
    let mut operator = start_operator(&env).await;
    let spec = |no_catchup: bool| json!({"maxConcurrency": 10, "noCatchup": no_catchup, "trigger": {"periodicSchedule": {"intervalSecond": 2}}});
    let catchup = create(&env, job_swf("catchup", spec(false))).await;
    let nocatchup = create(&env, job_swf("nocatchup", spec(true))).await;
    wait_runs(&env, &catchup, &job_resource(), 1).await;
    wait_runs(&env, &nocatchup, &job_resource(), 1).await;
    operator.abort();
    let _ = (&mut operator).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_c = runs_of(&env, &catchup, &job_resource()).await.len();
    let before_n = runs_of(&env, &nocatchup, &job_resource()).await.len();
    let down_at = Timestamp::now();
    tokio::time::sleep(Duration::from_secs(9)).await; // at least 4 ticks missed
    let operator = start_operator(&env).await;
    let up_at = Timestamp::now();

    // Catch-up: every missed tick runs, with its own scheduled time, on the 2 s grid.
    let runs = wait_runs(&env, &catchup, &job_resource(), before_c + 4).await;
    let e = epochs(&runs);
    assert!(e.windows(2).all(|w| w[1] - w[0] == 2), "no tick lost or doubled: {e:?}");
    let missed = e
        .iter()
        .filter(|&&t| t > down_at.as_second() && t < up_at.as_second())
        .count();
    assert!(missed >= 4, "missed ticks were run: {e:?}");

    // noCatchup: only the latest missed tick ran for the downtime, then back on the grid.
    // Decided once status shows a tick at or after the restart: the downtime was handled.
    eventually(WAIT, "noCatchup past the restart", || async {
        let s = swfs(&env).get("nocatchup").await.ok()?.status?;
        (s.trigger.last_triggered_time?.0 >= up_at).then_some(())
    })
    .await;
    let e = epochs(&runs_of(&env, &nocatchup, &job_resource()).await);
    assert!(e.len() > before_n);
    let in_gap = e
        .iter()
        .filter(|&&t| t > down_at.as_second() + 1 && t < up_at.as_second() - 1)
        .count();
    assert!(
        in_gap <= 1,
        "at most the latest missed tick runs: {e:?} (down {down_at}, up {up_at})"
    );
    assert!(e.windows(2).all(|w| (w[1] - w[0]) % 2 == 0), "still on the grid: {e:?}");
    operator.abort();
}

#[tokio::test]
async fn kubectl_patch_disables_and_reenable_does_not_backfill() {
    let env = common::env("enable-disable").await;
    let operator = start_operator(&env).await;
    let swf = create(
        &env,
        job_swf(
            "toggle",
            json!({"maxConcurrency": 10, "trigger": {"periodicSchedule": {"intervalSecond": 2}}}),
        ),
    )
    .await;
    wait_runs(&env, &swf, &job_resource(), 1).await;
    let set_enabled = |enabled: bool| {
        let patch = format!(r#"{{"spec":{{"enabled":{enabled}}}}}"#);
        let args = [
            "-n",
            &env.namespace,
            "patch",
            "swf",
            "toggle",
            "--type=merge",
            "-p",
            &patch,
        ];
        common::kubectl(env.plane, &args);
    };
    set_enabled(false);
    eventually(WAIT, "Disabled condition", || async {
        (condition(&env, "toggle").await?.0 == "Disabled").then_some(())
    })
    .await;
    let count = runs_of(&env, &swf, &job_resource()).await.len();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        runs_of(&env, &swf, &job_resource()).await.len(),
        count,
        "no runs while disabled"
    );

    let enabled_at = Timestamp::now();
    set_enabled(true);
    let runs = wait_runs(&env, &swf, &job_resource(), count + 1).await;
    let e = epochs(&runs);
    let new: Vec<i64> = e[count..].to_vec();
    assert!(
        new.iter().all(|&t| t > enabled_at.as_second() - 1),
        "ticks of the pause not backfilled: {e:?}, enabled at {enabled_at}"
    );
    assert_eq!(condition(&env, "toggle").await.unwrap().0, "Enabled");
    // The spec was never rewritten by the operator (GitOps): generation changed only by us.
    let obj = swfs(&env).get("toggle").await.unwrap();
    assert_eq!(obj.metadata.generation, Some(3));
    operator.abort();
}

#[tokio::test]
async fn run_now_annotation_creates_one_run_per_new_value() {
    let env = common::env("run-now").await;
    let operator = start_operator(&env).await;
    let swf = create(
        &env,
        job_swf(
            "manual",
            json!({"maxConcurrency": 5, "trigger": {"cronSchedule": {"cron": "@yearly"}}}),
        ),
    )
    .await;
    eventually(WAIT, "Enabled", || async {
        (condition(&env, "manual").await?.0 == "Enabled").then_some(())
    })
    .await;
    let annotate = |v: &str| {
        common::kubectl(
            env.plane,
            &[
                "-n",
                &env.namespace,
                "annotate",
                "--overwrite",
                "swf",
                "manual",
                &format!("scheduledworkflows.kubeflow.org/run-now={v}"),
            ],
        );
    };
    annotate("first");
    let runs = wait_runs(&env, &swf, &job_resource(), 1).await;
    assert_eq!(runs[0].name_any(), render::run_now_name("manual", "first"));
    eventually(WAIT, "request recorded", || async {
        let s = swfs(&env).get("manual").await.ok()?.status?;
        (s.trigger.last_run_now.as_deref() == Some("first")).then_some(())
    })
    .await;
    // A pass that sees the same value again (woken here by a spec change) runs nothing.
    swfs(&env)
        .patch(
            "manual",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"description": "woken"}})),
        )
        .await
        .unwrap();
    let status = eventually(WAIT, "the spec change seen", || async {
        let s = swfs(&env).get("manual").await.ok()?.status?;
        (s.observed_generation == Some(2)).then_some(s)
    })
    .await;
    assert_eq!(status.trigger.last_workflow_index, Some(1));
    assert_eq!(runs_of(&env, &swf, &job_resource()).await.len(), 1);
    // Nothing changes, so nothing is written (no heartbeat, KFP #8757).
    let before = swfs(&env).get("manual").await.unwrap().resource_version();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(swfs(&env).get("manual").await.unwrap().resource_version(), before);
    // A new value runs again.
    annotate("second");
    wait_runs(&env, &swf, &job_resource(), 2).await;
    let s = eventually(WAIT, "second request recorded", || async {
        let s = swfs(&env).get("manual").await.ok()?.status?;
        (s.trigger.last_run_now.as_deref() == Some("second")).then_some(s)
    })
    .await;
    assert_eq!(s.trigger.last_workflow_index, Some(2));
    assert_eq!(
        s.trigger.last_triggered_time, None,
        "manual runs do not move the schedule"
    );
    operator.abort();
}

#[tokio::test]
async fn restarts_and_two_racing_operators_create_no_duplicates() {
    let env = common::env("no-dupes").await;
    let swf = create(
        &env,
        job_swf(
            "racy",
            json!({"maxConcurrency": 10, "trigger": {"periodicSchedule": {"intervalSecond": 1}}}),
        ),
    )
    .await;
    // A crash between creating a run and writing status: the run for the first tick exists,
    // status does not know it. It must be adopted, not duplicated.
    let first_tick = swf.creation_timestamp().unwrap().0 + jiff::SignedDuration::from_secs(1);
    let jobs: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &job_resource());
    let orphan_name = render::run_name("racy", first_tick);
    let mut orphan: DynamicObject = serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": orphan_name, "labels": {keys::LABEL_SWF_NAME: "racy", keys::LABEL_EPOCH: first_tick.as_second().to_string(), keys::LABEL_INDEX: "1"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})).unwrap();
    orphan.metadata.owner_references = Some(vec![swf.controller_owner_ref(&()).unwrap()]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    jobs.create(&PostParams::default(), &orphan).await.unwrap();

    // Two operators at once (a failover overlap), then each restarted.
    let a = start_operator(&env).await;
    let b = start_operator(&env).await;
    wait_runs(&env, &swf, &job_resource(), 5).await;
    a.abort();
    let c = start_operator(&env).await;
    wait_runs(&env, &swf, &job_resource(), 8).await;
    b.abort();
    // Disabled, so the runs stop, and c has written the status of the last one: then stopped.
    let off = json!({"spec": {"enabled": false}});
    swfs(&env)
        .patch("racy", &PatchParams::default(), &Patch::Merge(&off))
        .await
        .unwrap();
    let status = eventually(WAIT, "the disabled status", || async {
        let obj = swfs(&env).get("racy").await.ok()?;
        let s = obj.status?;
        (s.observed_generation == obj.metadata.generation).then_some(s)
    })
    .await;
    c.abort();
    let _ = c.await;
    let mut runs = runs_of(&env, &swf, &job_resource()).await;
    runs.sort_by_key(|r| r.labels()[keys::LABEL_EPOCH].parse::<i64>().unwrap());
    let e = epochs(&runs);
    // Counted by every run there ever was (the API server's audit log and a list), not by what
    // survived: with a deterministic name a second create fails while the first run exists.
    let ever = common::creations::uids_per_tick(&env, &swf, "jobs").await;
    let twice = common::creations::twice(&ever);
    assert!(twice.is_empty(), "ticks run twice: {twice:?}");
    assert_eq!(
        ever.keys().copied().collect::<Vec<_>>(),
        e,
        "one run per tick, all kept"
    );
    assert!(e.windows(2).all(|w| w[1] - w[0] == 1), "no tick lost: {e:?}");
    assert_eq!(
        runs[0].name_any(),
        orphan_name,
        "the orphan was adopted as the first tick"
    );
    // Indexes are 1..n in tick order, whatever operator created each run, and status agrees.
    let indexes: Vec<i64> = runs
        .iter()
        .map(|r| r.labels()[keys::LABEL_INDEX].parse().unwrap())
        .collect();
    assert_eq!(indexes, (1..=runs.len() as i64).collect::<Vec<_>>());
    assert_eq!(status.trigger.last_workflow_index, Some(runs.len() as i64));
}

#[tokio::test]
async fn invalid_specs_get_error_conditions_and_warning_events() {
    let env = common::env("invalid").await;
    let operator = start_operator(&env).await;
    let cases = [
        (
            "bad-cron",
            json!({"trigger": {"cronSchedule": {"cron": "0 0 12 * * 7"}}}),
            "End of range (7) above maximum (6)",
        ),
        (
            "bad-tz",
            json!({"timeZone": "Mars/Base", "trigger": {"cronSchedule": {"cron": "@daily"}}}),
            "spec.timeZone",
        ),
        (
            "feb-30",
            json!({"trigger": {"cronSchedule": {"cron": "0 0 0 30 2 *"}}}),
            "never fires",
        ),
        (
            "window",
            json!({"trigger": {"periodicSchedule": {"intervalSecond": 5, "startTime": "2030-01-02T00:00:00Z", "endTime": "2030-01-01T00:00:00Z"}}}),
            "before startTime",
        ),
    ];
    for (name, spec, _) in &cases {
        create(&env, job_swf(name, spec.clone())).await;
    }
    for (name, _, want) in &cases {
        let (type_, message) = eventually(WAIT, &format!("Error condition on {name}"), || async {
            condition(&env, name).await.filter(|(t, _)| t == "Error")
        })
        .await;
        assert_eq!(type_, "Error");
        assert!(message.contains(want), "{name}: {message}");
        let events = eventually(WAIT, &format!("warning event on {name}"), || async {
            let ev = events_for(&env, name).await;
            (!ev.is_empty()).then_some(ev)
        })
        .await;
        assert!(
            events
                .iter()
                .any(|(t, r, n)| t == "Warning" && r == "InvalidSpec" && n.contains(want)),
            "{events:?}"
        );
    }
    assert!(
        list_runs(&env.client, &env.namespace, &job_resource()).await.is_empty(),
        "no runs for invalid specs"
    );
    // Fixing the spec clears the error.
    swfs(&env)
        .patch(
            "bad-cron",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"trigger": {"cronSchedule": {"cron": "0 0 12 * * 6"}}}})),
        )
        .await
        .unwrap();
    eventually(WAIT, "Enabled after fix", || async {
        (condition(&env, "bad-cron").await?.0 == "Enabled").then_some(())
    })
    .await;
    operator.abort();
}

#[tokio::test]
async fn deleting_a_schedule_deletes_its_runs() {
    let env = common::env("cascade").await;
    env.plane.ensure_garbage_collector();
    let operator = start_operator(&env).await;
    let swf = create(
        &env,
        job_swf(
            "doomed",
            json!({"maxConcurrency": 3, "trigger": {"periodicSchedule": {"intervalSecond": 1}}}),
        ),
    )
    .await;
    wait_runs(&env, &swf, &job_resource(), 2).await;
    operator.abort();
    swfs(&env).delete("doomed", &Default::default()).await.unwrap();
    eventually(Duration::from_secs(120), "runs garbage-collected", || async {
        list_runs(&env.client, &env.namespace, &job_resource())
            .await
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn concurrency_policies_and_history_limits() {
    let env = common::env("policies").await;
    let operator = start_operator(&env).await;
    let every = |policy: &str, extra: Value| {
        let mut spec = json!({"maxConcurrency": 1, "concurrencyPolicy": policy, "trigger": {"periodicSchedule": {"intervalSecond": 1}}});
        merge(&mut spec, extra);
        spec
    };
    let replace = create(&env, job_swf("replace", every("Replace", json!({})))).await;
    let skip = create(&env, job_swf("skip", every("Skip", json!({})))).await;
    let limited = create(
        &env,
        job_swf("limited", every("Wait", json!({"successfulRunsHistoryLimit": 1}))),
    )
    .await;

    // Replace: each new tick deletes the active run, so exactly one run exists and it moves on.
    let first = wait_runs(&env, &replace, &job_resource(), 1).await;
    let first_epoch = epochs(&first)[0];
    let moved = eventually(WAIT, "Replace moved to a newer run", || async {
        let runs = runs_of(&env, &replace, &job_resource()).await;
        (runs.len() == 1 && epochs(&runs)[0] >= first_epoch + 2).then_some(runs)
    })
    .await;
    assert!(
        !moved.iter().any(|r| epochs(std::slice::from_ref(r))[0] == first_epoch),
        "the first run was deleted"
    );

    // Skip: while the run is active, due ticks are dropped (with an event), not queued.
    let runs = wait_runs(&env, &skip, &job_resource(), 1).await;
    eventually(WAIT, "TickSkipped event", || async {
        events_for(&env, "skip")
            .await
            .iter()
            .any(|(_, r, _)| r == "TickSkipped")
            .then_some(())
    })
    .await;
    let skipped_through = eventually(WAIT, "skipThrough recorded", || async {
        swfs(&env)
            .get("skip")
            .await
            .ok()?
            .status?
            .trigger
            .skip_through
            .map(|t| t.0.as_second())
    })
    .await;
    finish_job(&env.client, &env.namespace, &runs[0].name_any()).await;
    let after = epochs(&wait_runs(&env, &skip, &job_resource(), 2).await);
    assert!(
        after[1] > skipped_through,
        "skipped ticks were not run late: {after:?}, skipped through {skipped_through}"
    );

    // History limit: only the newest succeeded run is kept.
    for n in 1..=3 {
        let runs = wait_runs(&env, &limited, &job_resource(), 1).await;
        let active = runs
            .iter()
            .find(|r| r.data["status"].get("conditions").is_none())
            .cloned();
        if let Some(active) = active {
            finish_job(&env.client, &env.namespace, &active.name_any()).await;
        }
        eventually(WAIT, &format!("run {n} finished and a new one started"), || async {
            let runs = runs_of(&env, &limited, &job_resource()).await;
            runs.iter()
                .any(|r| r.data["status"].get("conditions").is_none())
                .then_some(())
        })
        .await;
    }
    let kept = eventually(WAIT, "one succeeded run kept", || async {
        let runs = runs_of(&env, &limited, &job_resource()).await;
        let done: Vec<_> = runs
            .into_iter()
            .filter(|r| r.data["status"].get("conditions").is_some())
            .collect();
        (done.len() == 1).then_some(done)
    })
    .await;
    let status = swfs(&env).get("limited").await.unwrap().status.unwrap();
    assert_eq!(status.workflow_history.completed.len(), 1);
    assert_eq!(status.workflow_history.completed[0].name, kept[0].name_any());
    assert!(status.trigger.last_workflow_index.unwrap() >= 4);
    operator.abort();
}

#[tokio::test]
async fn an_unknown_run_kind_is_an_error_and_creates_nothing() {
    let env = common::env("unknown-kind").await;
    let operator = common::Operator::start(&env, |_| {}).await;
    create(
        &env,
        job_swf(
            "nokind",
            json!({"trigger": {"periodicSchedule": {"intervalSecond": 1}},
        "runTemplate": {"apiVersion": "example.com/v1", "kind": "Nonexistent", "spec": {}}}),
        ),
    )
    .await;
    let (_, message) = eventually(WAIT, "an Error condition", || async {
        condition(&env, "nokind").await.filter(|(t, _)| t == "Error")
    })
    .await;
    assert!(
        message.contains("example.com/v1/Nonexistent is not served by this cluster"),
        "{message}"
    );
    // The event is published in the background: wait for it, then for another pass and an
    // empty queue, and count again.
    eventually(WAIT, "the UnknownRunKind event", || async {
        let events = events_for(&env, "nokind").await;
        events.iter().any(|(_, r, _)| r == "UnknownRunKind").then_some(())
    })
    .await;
    operator.settle(&env, "nokind").await;
    let events = events_for(&env, "nokind").await;
    assert_eq!(
        events.iter().filter(|(_, r, _)| r == "UnknownRunKind").count(),
        1,
        "one event for the problem: {events:?}"
    );
    assert!(
        common::creations::ever(&env, "jobs").await.is_empty(),
        "nothing created"
    );
    operator.task.abort();
}

#[tokio::test]
async fn a_kind_not_watched_at_start_is_watched_on_first_use() {
    let env = common::env("lazy-watch").await;
    // Nothing is watched at start-up: the Job cache starts when the schedule needs it.
    let operator = common::Operator::start(&env, |s| s.watch_kinds.clear()).await;
    let swf = create(
        &env,
        job_swf(
            "lazy",
            json!({"maxConcurrency": 1,
        "trigger": {"periodicSchedule": {"intervalSecond": 2}}}),
        ),
    )
    .await;
    let first = wait_runs(&env, &swf, &job_resource(), 1).await;
    eventually(WAIT, "the first run active in status", || async {
        (swfs(&env).get("lazy").await.ok()?.status?.active_runs == Some(1)).then_some(())
    })
    .await;
    // Finishing the run frees the slot: the watch of Jobs wakes the schedule.
    finish_job(&env.client, &env.namespace, &first[0].name_any()).await;
    let runs = wait_runs(&env, &swf, &job_resource(), 2).await;
    assert_eq!(runs.len(), 2);
    operator.task.abort();
}

#[tokio::test]
async fn failed_runs_history_limit_and_a_one_off_schedules_conditions() {
    let env = common::env("failed-limit").await;
    let operator = start_operator(&env).await;
    let swf = create(
        &env,
        job_swf(
            "flaky",
            json!({"maxConcurrency": 1, "failedRunsHistoryLimit": 1,
        "trigger": {"periodicSchedule": {"intervalSecond": 1}}}),
        ),
    )
    .await;
    for n in 1..=3 {
        let runs = wait_runs(&env, &swf, &job_resource(), 1).await;
        if let Some(active) = runs.iter().find(|r| r.data["status"].get("conditions").is_none()) {
            fail_job(&env.client, &env.namespace, &active.name_any()).await;
        }
        eventually(WAIT, &format!("failure {n} recorded"), || async {
            let s = swfs(&env).get("flaky").await.ok()?.status?;
            (s.trigger.last_workflow_index >= Some(n + 1)).then_some(())
        })
        .await;
    }
    let failed = eventually(WAIT, "one failed run kept", || async {
        let runs = runs_of(&env, &swf, &job_resource()).await;
        let failed: Vec<_> = runs
            .into_iter()
            .filter(|r| r.data["status"].get("conditions").is_some())
            .collect();
        (failed.len() == 1).then_some(failed)
    })
    .await;
    assert_eq!(failed.len(), 1);

    // A one-off schedule: Running while its run is active, Succeeded once it finished.
    let once = create(&env, job_swf("once", json!({}))).await;
    let run = wait_runs(&env, &once, &job_resource(), 1).await.remove(0);
    eventually(WAIT, "Running", || async {
        (condition(&env, "once").await?.0 == "Running").then_some(())
    })
    .await;
    finish_job(&env.client, &env.namespace, &run.name_any()).await;
    eventually(WAIT, "Succeeded", || async {
        (condition(&env, "once").await?.0 == "Succeeded").then_some(())
    })
    .await;
    assert_eq!(runs_of(&env, &once, &job_resource()).await.len(), 1);
    operator.abort();
}

#[tokio::test]
async fn time_zones_from_the_spec_and_from_the_operator() {
    let env = common::env("time-zones").await;
    let operator = common::Operator::start(&env, |s| s.rules.default_time_zone = "America/New_York".into()).await;
    let daily = |tz: Option<&str>| {
        let mut spec = json!({"trigger": {"cronSchedule": {"cron": "0 0 9 * * *"}}});
        if let Some(tz) = tz {
            spec["timeZone"] = json!(tz);
        }
        spec
    };
    create(&env, job_swf("tokyo", daily(Some("Asia/Tokyo")))).await;
    create(&env, job_swf("default-zone", daily(None))).await;
    let next = |name: &'static str| {
        let env = &env;
        async move {
            eventually(WAIT, &format!("{name} scheduled"), || async {
                swfs(env)
                    .get(name)
                    .await
                    .ok()?
                    .status?
                    .trigger
                    .next_triggered_time
                    .map(|t| t.0)
            })
            .await
        }
    };
    for (name, zone) in [("tokyo", "Asia/Tokyo"), ("default-zone", "America/New_York")] {
        let t = next(name).await;
        let local = t.to_zoned(jiff::tz::TimeZone::get(zone).unwrap());
        assert_eq!(
            (local.hour(), local.minute(), local.second()),
            (9, 0, 0),
            "{name}: {t} is 09:00 in {zone}"
        );
        let s = swfs(&env).get(name).await.unwrap().status.unwrap();
        assert_eq!(s.schedule.as_deref(), Some(format!("0 0 9 * * * ({zone})").as_str()));
    }
    operator.task.abort();
}

#[tokio::test]
async fn ready_only_once_every_watched_cache_has_listed() {
    let env = common::env("readyz").await;
    // The operator's RBAC has no list/watch on ConfigMaps: that cache never lists.
    let blocked = common::Operator::start(&env, |s| {
        s.watch_kinds
            .push(swf_operator::model::runkind::RunKind::parse("v1", "ConfigMap"))
    })
    .await;
    let ok = common::Operator::start(&env, |_| {}).await;
    let app = |health: swf_operator::serve::Health| swf_operator::serve::router(Default::default(), health);
    let status = |health: swf_operator::serve::Health| async move {
        use tower::ServiceExt;
        let request = http::Request::get("/readyz").body(axum::body::Body::empty()).unwrap();
        app(health).oneshot(request).await.unwrap().status().as_u16()
    };
    eventually(WAIT, "the healthy operator ready", || async {
        (status(ok.health.clone()).await == 200).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        status(blocked.health.clone()).await,
        503,
        "a cache that cannot list keeps it unready"
    );
    blocked.task.abort();
    ok.task.abort();
}
