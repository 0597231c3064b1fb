//! Scheduling you can trust, on the real control plane: planning from the runs that exist
//! (switching from KFP's controller runs nothing twice), no freeze on a failing create,
//! `Replace` with a backlog, runs being deleted, and idle schedules that cost nothing.
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::json;
use swf_operator::{
    model::{
        crd::ScheduledWorkflow,
        keys::{self},
    },
    scheduling::{render, status::summary_condition},
};

use crate::common::{
    self, creations, eventually, job_resource, start_operator,
    swf::{WAIT, argo_swf, condition, create, epochs, events_for, finish_workflow, job_swf, runs_of, swfs, wait_runs},
    workflow_resource,
};

/// KFP's run name (`NextResourceName`): `<swf>-<index>-<fnv32a("<swf>-<index>") in decimal>`.
fn kfp_run_name(swf: &str, index: i64) -> String {
    let id = format!("{swf}-{index}");
    let hash = id
        .bytes()
        .fold(0x811c9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("{id}-{hash}")
}

#[test]
fn kfp_names_match_kfp_test_vectors() {
    // From KFP's `TestScheduledWorkflow_NextResourceName`.
    assert_eq!(kfp_run_name("WORKFLOW_NAME", 51), "WORKFLOW_NAME-51-2626342551");
    assert_eq!(kfp_run_name("SCHEDULE1", 1), "SCHEDULE1-1-3321103997");
}

/// An Argo Workflow as KFP's controller creates it for `tick` (its labels, name, owner).
fn kfp_workflow(swf: &ScheduledWorkflow, index: i64, tick: Timestamp, phase: Option<&str>) -> DynamicObject {
    let name = swf.name_any();
    let mut obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": kfp_run_name(&name, index), "labels": {
            keys::LABEL_SWF_NAME: name, keys::LABEL_EPOCH: tick.as_second().to_string(),
            keys::LABEL_INDEX: index.to_string(), keys::LABEL_OWNED: "true",
            keys::LABEL_RUN_ID: format!("kfp-uuid-{index}")}},
        "spec": {"entrypoint": "main", "templates": [{"name": "main"}]}}))
    .unwrap();
    obj.metadata.owner_references = Some(vec![swf.controller_owner_ref(&()).unwrap()]);
    if let Some(phase) = phase {
        obj.data["status"] = json!({"phase": phase, "finishedAt": tick.to_string()});
        obj.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("workflows.argoproj.io/completed".into(), "true".into());
    }
    obj
}

#[tokio::test]
async fn switching_from_kfps_controller_runs_no_tick_twice_and_loses_none() {
    let env = common::env("kfp-switch").await;
    common::install_argo_crd(&env.client).await;
    // KFP has run a 3 s periodic schedule for a while: ticks start+3k.
    let start = Timestamp::now() - SignedDuration::from_secs(30);
    let swf = create(
        &env,
        argo_swf(
            "migrated",
            // Keep no finished run: the takeover prunes KFP's, and must still know their ticks ran.
            json!({"maxConcurrency": 10, "successfulRunsHistoryLimit": 0,
        "trigger": {"periodicSchedule": {"intervalSecond": 3, "startTime": start.to_string()}}}),
        ),
    )
    .await;
    let now = Timestamp::now();
    let current_k = (now - start).get_seconds() / 3;
    let tick = |k: i64| start + SignedDuration::from_secs(3 * k);
    // What KFP's controller leaves behind: finished runs for ticks 1..k-1, an active run for the
    // current tick k, and a status one tick behind (KFP writes trigger status late, §4 of
    // docs/kfp-compatibility.md).
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &workflow_resource());
    for k in 1..current_k {
        api.create(
            &PostParams::default(),
            &kfp_workflow(&swf, k, tick(k), Some("Succeeded")),
        )
        .await
        .unwrap();
    }
    let active = api
        .create(
            &PostParams::default(),
            &kfp_workflow(&swf, current_k, tick(current_k), None),
        )
        .await
        .unwrap();
    let behind = json!({"status": {"conditions": [{"type": "Enabled", "status": "True", "reason": "Enabled",
        "message": "The schedule is enabled."}],
        "trigger": {"lastTriggeredTime": tick(current_k - 1).to_string(), "lastWorkflowIndex": current_k - 1,
            "nextTriggeredTime": tick(current_k).to_string()}}});
    swfs(&env)
        .patch_status("migrated", &PatchParams::default(), &Patch::Merge(&behind))
        .await
        .unwrap();

    // Our operator takes over.
    let operator = start_operator(&env).await;
    let switched_at = Timestamp::now();
    let by_tick = eventually(WAIT, "three ticks after the switch", || async {
        // Every creation, from the API server's audit log (KFP's runs included).
        let by_tick = creations::uids_per_tick(&env, &swf, "workflows").await;
        let after = by_tick.keys().filter(|&&t| t > switched_at.as_second()).count();
        (after >= 3).then_some(by_tick)
    })
    .await;
    operator.abort();
    let duplicates: Vec<_> = by_tick.iter().filter(|(_, uids)| uids.len() > 1).collect();
    assert!(duplicates.is_empty(), "ticks run twice: {duplicates:?}");
    let last = *by_tick.keys().last().unwrap();
    let lost: Vec<i64> = (1..)
        .map(|k| tick(k).as_second())
        .take_while(|&t| t <= last)
        .filter(|t| !by_tick.contains_key(t))
        .collect();
    assert!(lost.is_empty(), "ticks never run: {lost:?}");
    assert_eq!(
        by_tick[&tick(current_k).as_second()],
        vec![active.uid().unwrap()],
        "the current tick's run is KFP's, not a second one"
    );
    // Indexes continue from KFP's: the runs after the switch are k+1, k+2, ...
    let mut after_switch: Vec<i64> = runs_of(&env, &swf, &workflow_resource())
        .await
        .iter()
        .filter(|r| r.labels()[keys::LABEL_EPOCH].parse::<i64>().unwrap() > tick(current_k).as_second())
        .map(|r| r.labels()[keys::LABEL_INDEX].parse().unwrap())
        .collect();
    after_switch.sort();
    let expected: Vec<i64> = (current_k + 1..).take(after_switch.len()).collect();
    assert_eq!(after_switch, expected);
}

#[tokio::test]
async fn a_kfp_one_off_whose_run_is_active_does_not_run_again() {
    let env = common::env("kfp-one-off").await;
    common::install_argo_crd(&env.client).await;
    let swf = create(&env, argo_swf("once", json!({}))).await;
    let created = swf.creation_timestamp().unwrap().0;
    // KFP's run, and KFP's status that never recorded it (its trigger write came late).
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &workflow_resource());
    let run = api
        .create(&PostParams::default(), &kfp_workflow(&swf, 1, created, None))
        .await
        .unwrap();
    let operator = common::Operator::start(&env, |_| {}).await;
    eventually(WAIT, "Running", || async {
        (condition(&env, "once").await?.0 == "Running").then_some(())
    })
    .await;
    // Finishing KFP's run: the one-off has run, so it must not run again.
    finish_workflow(&env.client, &env.namespace, &run.name_any(), "Succeeded").await;
    let status = eventually(WAIT, "Succeeded", || async {
        let s = swfs(&env).get("once").await.ok()?.status?;
        (summary_condition(&s)?.type_ == "Succeeded").then_some(s)
    })
    .await;
    operator.one_more_pass(&env, "once").await;
    let created = creations::uids_per_tick(&env, &swf, "workflows").await;
    assert_eq!(
        created.values().map(Vec::len).sum::<usize>(),
        1,
        "no second run: {created:?}"
    );
    assert_eq!(status.trigger.last_workflow_index, Some(1), "KFP's index is adopted");
    assert_eq!(status.workflow_history.completed[0].name, run.name_any());
    operator.task.abort();
}

#[tokio::test]
async fn a_tick_whose_run_cannot_be_created_is_reported_and_does_not_freeze_the_schedule() {
    let env = common::env("create-fails").await;
    let operator = start_operator(&env).await;
    // A Job without containers: the API server refuses it (422) every time.
    let swf = create(
        &env,
        job_swf(
            "refused",
            json!({"maxConcurrency": 5,
        "trigger": {"periodicSchedule": {"intervalSecond": 2}},
        "runTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}}}}),
        ),
    )
    .await;
    let (type_, message) = eventually(WAIT, "an Error condition", || async {
        condition(&env, "refused").await.filter(|(t, _)| t == "Error")
    })
    .await;
    assert_eq!(type_, "Error");
    assert!(
        message.contains("cannot create run refused-") && message.contains("containers"),
        "{message}"
    );
    // Retries back off; after its attempts the tick is given up and the next ones are tried.
    let events = eventually(Duration::from_secs(90), "a TickAbandoned event", || async {
        let ev = events_for(&env, "refused").await;
        ev.iter().any(|(_, r, _)| r == "TickAbandoned").then_some(ev)
    })
    .await;
    let failures = events
        .iter()
        .filter(|(t, r, _)| t == "Warning" && r == "RunCreateFailed")
        .count();
    assert!(
        (1..=4).contains(&failures),
        "backed off, not a hot loop: {failures} failures in {events:?}"
    );
    let skipped = swfs(&env)
        .get("refused")
        .await
        .unwrap()
        .status
        .unwrap()
        .trigger
        .skip_through;
    assert!(skipped.is_some(), "the abandoned tick is recorded as skipped");
    assert!(runs_of(&env, &swf, &job_resource()).await.is_empty());
    operator.abort();
}

/// Someone else's Job already holds the name of the first tick's run (it even carries the
/// schedule's name label): it is neither adopted nor modified, that tick is skipped (a
/// RunNameConflict warning naming the run, skipThrough past it, the schedule still Enabled),
/// no object of ours ever holds that tick, and the next ticks run.
#[tokio::test]
async fn a_foreign_object_on_a_ticks_name_is_not_adopted_and_only_that_tick_is_skipped() {
    let env = common::env("foreign-name").await;
    let swf = create(
        &env,
        job_swf(
            "clash",
            json!({"maxConcurrency": 5,
        "trigger": {"periodicSchedule": {"intervalSecond": 2}}}),
        ),
    )
    .await;
    let first_tick = swf.creation_timestamp().unwrap().0 + SignedDuration::from_secs(2);
    let name = render::run_name("clash", first_tick);
    let jobs: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &job_resource());
    let foreign: DynamicObject = serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {keys::LABEL_SWF_NAME: "clash"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap();
    let foreign = jobs.create(&PostParams::default(), &foreign).await.unwrap();
    let operator = start_operator(&env).await;

    // The clash is reported, naming the run.
    let events = eventually(WAIT, "RunNameConflict warning", || async {
        let ev = events_for(&env, "clash").await;
        ev.iter()
            .any(|(t, r, _)| t == "Warning" && r == "RunNameConflict")
            .then_some(ev)
    })
    .await;
    assert!(events.iter().any(|(_, _, n)| n.contains(&name)), "{events:?}");

    // The next ticks run; the clashed one is recorded as skipped and the schedule stays Enabled.
    let runs = wait_runs(&env, &swf, &job_resource(), 2).await;
    let e = epochs(&runs);
    assert!(e.iter().all(|&t| t > first_tick.as_second()), "{e:?}");
    let status = swfs(&env).get("clash").await.unwrap().status.unwrap();
    assert!(status.trigger.skip_through.as_ref().is_some_and(|t| t.0 >= first_tick));
    assert_eq!(summary_condition(&status).unwrap().type_, "Enabled");
    // No object of ours ever held the clashed tick (from the audit log: deleted ones count).
    let ours = creations::uids_per_tick(&env, &swf, "jobs").await;
    assert!(
        !ours.contains_key(&first_tick.as_second()),
        "no object of ours for the clashed tick: {ours:?}"
    );

    // The foreign Job is as its owner left it: not taken over, not written at all.
    let after = jobs.get(&name).await.unwrap();
    assert!(after.owner_references().is_empty(), "not taken over");
    assert_eq!(
        after.metadata.resource_version, foreign.metadata.resource_version,
        "not modified: {after:?}"
    );
    operator.abort();
}

#[tokio::test]
async fn replace_with_a_backlog_creates_one_run_not_one_per_missed_tick() {
    let env = common::env("replace-backlog").await;
    // An hour of missed per-second ticks (3,600) with catch-up and Replace.
    let start = Timestamp::now() - SignedDuration::from_secs(3600);
    let swf = create(
        &env,
        job_swf(
            "latest",
            json!({"concurrencyPolicy": "Replace",
        "trigger": {"periodicSchedule": {"intervalSecond": 1, "startTime": start.to_string()}}}),
        ),
    )
    .await;
    let operator = start_operator(&env).await;
    let first = wait_runs(&env, &swf, &job_resource(), 1).await;
    let first_tick = epochs(&first)[0];
    assert!(
        first_tick >= Timestamp::now().as_second() - 60,
        "the latest due tick, not the oldest: {first_tick}"
    );
    // A few seconds on: each new tick replaced the previous run; the index counts real runs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = swfs(&env).get("latest").await.unwrap().status.unwrap();
    let index = status.trigger.last_workflow_index.unwrap();
    assert!(
        index <= 10,
        "one run per tick since the start, not per missed tick: index {index}"
    );
    assert!(runs_of(&env, &swf, &job_resource()).await.len() <= 2);
    operator.abort();
}

#[tokio::test]
async fn a_run_being_deleted_is_not_active() {
    let env = common::env("deleting-run").await;
    let operator = start_operator(&env).await;
    let swf = create(
        &env,
        job_swf(
            "stuck",
            json!({"maxConcurrency": 1,
        "trigger": {"periodicSchedule": {"intervalSecond": 2}}}),
        ),
    )
    .await;
    let first = wait_runs(&env, &swf, &job_resource(), 1).await.remove(0);
    // A finalizer keeps it in "deleting" (Argo's and Kueue's finalizers do the same).
    let jobs: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &job_resource());
    let hold = json!({"metadata": {"finalizers": ["swf-operator-test/hold"]}});
    jobs.patch(&first.name_any(), &PatchParams::default(), &Patch::Merge(&hold))
        .await
        .unwrap();
    jobs.delete(&first.name_any(), &DeleteParams::default()).await.unwrap();
    // With maxConcurrency 1, the next tick runs only if the deleting run does not count.
    let runs = wait_runs(&env, &swf, &job_resource(), 2).await;
    assert_eq!(runs.len(), 2);
    let status = eventually(WAIT, "history without the deleting run", || async {
        let s = swfs(&env).get("stuck").await.ok()?.status?;
        (!s.workflow_history.active.is_empty()).then_some(s)
    })
    .await;
    assert!(
        status
            .workflow_history
            .active
            .iter()
            .all(|r| r.name != first.name_any())
    );
    let release = json!({"metadata": {"finalizers": null}});
    jobs.patch(&first.name_any(), &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    operator.abort();
}

#[tokio::test]
async fn ticks_before_1970_are_not_run_and_do_not_stop_the_schedule() {
    let env = common::env("before-1970").await;
    let operator = start_operator(&env).await;
    let swf = create(
        &env,
        job_swf(
            "ancient",
            json!({"maxConcurrency": 3,
        "trigger": {"cronSchedule": {"cron": "@yearly", "startTime": "1960-06-01T00:00:00Z"}}}),
        ),
    )
    .await;
    let runs = wait_runs(&env, &swf, &job_resource(), 3).await;
    assert_eq!(
        epochs(&runs),
        vec![0, 31_536_000, 63_072_000],
        "1970, 1971, 1972: none before"
    );
    let (type_, _) = condition(&env, "ancient").await.unwrap();
    assert_eq!(type_, "Enabled");
    let events = events_for(&env, "ancient").await;
    assert!(
        events
            .iter()
            .any(|(_, r, n)| r == "SpecWarning" && n.contains("before 1970")),
        "{events:?}"
    );
    operator.abort();
}

/// A disabled one-off, a disabled and an ended schedule: after their first pass, the operator
/// makes no request for them at all (the API server's own counter says so); and a running
/// schedule creates its runs without listing runs.
#[tokio::test]
async fn idle_schedules_cost_nothing_and_no_pass_lists_runs() {
    let Some(env) = common::private_env("idle").await else {
        return;
    };
    let long_ago = Timestamp::now() - SignedDuration::from_secs(7200);
    for (name, spec) in [
        ("disabled-once", json!({"enabled": false})),
        (
            "disabled-cron",
            json!({"enabled": false, "trigger": {"cronSchedule": {"cron": "* * * * * *"}}}),
        ),
        (
            "ended",
            json!({"trigger": {"periodicSchedule": {"intervalSecond": 1, "startTime": long_ago.to_string(),
            "endTime": (long_ago + SignedDuration::from_secs(1)).to_string()}}}),
        ),
    ] {
        create(&env, job_swf(name, spec)).await;
    }
    let operator = start_operator(&env).await;
    // Each idle schedule gets one status write, for its spec's generation; once a GET shows it,
    // that PATCH has been counted, and nothing else is due.
    for name in ["disabled-once", "disabled-cron", "ended"] {
        eventually(WAIT, &format!("status of {name}"), || async {
            let obj = swfs(&env).get(name).await.ok()?;
            let status = obj.status?;
            (status.observed_generation == obj.metadata.generation && !status.conditions.is_empty()).then_some(())
        })
        .await;
    }
    let before = env.plane.request_counts();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = env.plane.request_counts();
    let delta = |verb: &str, resource: &str| {
        let k = (verb.to_string(), resource.to_string());
        after.get(&k).copied().unwrap_or(0.0) - before.get(&k).copied().unwrap_or(0.0)
    };
    for verb in ["GET", "LIST", "PATCH", "PUT", "POST", "DELETE"] {
        for resource in ["scheduledworkflows", "jobs"] {
            assert_eq!(delta(verb, resource), 0.0, "{verb} {resource} while idle");
        }
    }

    // A schedule that runs: one create per run, one status write per change, no LIST.
    let busy = create(
        &env,
        job_swf(
            "busy",
            json!({"maxConcurrency": 10,
        "trigger": {"periodicSchedule": {"intervalSecond": 1}}}),
        ),
    )
    .await;
    let before = env.plane.request_counts();
    // Waits on status (GETs of the schedule), not on the runs: a LIST here would count.
    eventually(WAIT, "five runs", || async {
        let s = swfs(&env).get("busy").await.ok()?.status?;
        (s.trigger.last_workflow_index >= Some(5)).then_some(())
    })
    .await;
    let after = env.plane.request_counts();
    let delta = |verb: &str, resource: &str| {
        let k = (verb.to_string(), resource.to_string());
        after.get(&k).copied().unwrap_or(0.0) - before.get(&k).copied().unwrap_or(0.0)
    };
    assert_eq!(delta("LIST", "jobs"), 0.0, "runs come from the watch cache");
    let runs = runs_of(&env, &busy, &job_resource()).await.len() as f64;
    assert!(delta("POST", "jobs") <= runs, "one create per run");
    assert!(
        delta("PATCH", "scheduledworkflows") <= runs + 2.0,
        "one status write per change: {} for {runs} runs",
        delta("PATCH", "scheduledworkflows")
    );
    operator.abort();
}

#[tokio::test]
async fn migrate_check_says_what_changes_and_exits_1_when_something_needs_attention() {
    let env = common::env("migrate-check").await;
    common::install_argo_crd(&env.client).await;
    let kfp = create(
        &env,
        argo_swf(
            "kfp-made",
            json!({"trigger": {"periodicSchedule": {"intervalSecond": 60}}}),
        ),
    )
    .await;
    let tick = kfp.creation_timestamp().unwrap().0 + SignedDuration::from_secs(60);
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &workflow_resource());
    api.create(&PostParams::default(), &kfp_workflow(&kfp, 1, tick, None))
        .await
        .unwrap();
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_swf-operator"))
            .args(["migrate-check", "-n", &env.namespace])
            .args(extra)
            .env("KUBECONFIG", &env.plane.kubeconfig)
            .env_remove("CRON_SCHEDULE_TIMEZONE")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let (code, out) = run(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("/kfp-made: OK") && out.contains("adopts 1 run(s), 1 active; the next index is 2"),
        "{out}"
    );
    create(
        &env,
        argo_swf(
            "five-fields",
            json!({"trigger": {"cronSchedule": {"cron": "0 0 * * *"}}}),
        ),
    )
    .await;
    let (code, out) = run(&["--block-v1-pipelines=true"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("/five-fields: ATTENTION") && out.contains("5-field"),
        "{out}"
    );
    assert!(out.contains("not allowed to run v1 pipelines"), "{out}");
    assert!(out.ends_with("2 schedule(s), 2 need(s) attention\n"), "{out}");
}
