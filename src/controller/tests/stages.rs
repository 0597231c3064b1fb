//! What each reconcile stage decides that a user sees: the events a pass publishes, the status
//! fields it writes and when the next pass comes. Each test here was written for a mutant of
//! `src/controller/reconcile/` that the other unit and mock-API tests let live
//! (docs/testing.md, "Mutation testing").

use std::time::Duration;

use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::*;
use crate::model::{
    crd::ScheduledWorkflowStatus,
    keys::{RESUME_ANNOTATION, RUN_NOW_REQUEST_ANNOTATION},
};

/// `obj` carrying the `status` a pass sent (a merge patch: as the API server stores it).
fn with_status(mut obj: SwfObject, status: &Value) -> SwfObject {
    let stored = patched(&json!({ "status": status }))["status"].clone();
    obj.status = serde_json::from_value::<ScheduledWorkflowStatus>(stored).unwrap();
    obj
}

/// The reasons of the events of kind `reason` published so far.
fn count(events: &[(String, String)], reason: &str) -> usize {
    events.iter().filter(|(r, _)| r == reason).count()
}

/// The reason of the summary condition (the last one, where KFP reads it).
fn summary_reason(status: &Value) -> String {
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let summary = conditions.last().cloned().unwrap_or_default();
    summary["reason"].as_str().unwrap_or_default().to_string()
}

/// An invalid spec: an `Error` condition in the status and one Warning event; a pass over the
/// same problem publishes nothing more, a different problem is announced again. The schedule
/// is not marked paused (it is enabled), and the pass waits for a change.
#[tokio::test]
async fn an_invalid_spec_is_reported_in_the_status_and_announced_once_per_problem() {
    let mut h = harness(vec![]);
    let bad = json!({"trigger": {"cronSchedule": {"cron": "not a cron"}}});
    let pass = start(&h, swf(bad.clone()));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    assert_eq!(
        ended.unwrap(),
        Action::await_change(),
        "nothing to retry until the spec changes"
    );
    assert!(sent.is_empty(), "no run: {sent:?}");
    let status = h.last_status.take().expect("the problem is written")["status"].clone();
    let summary = status["conditions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(summary["type"], "Error");
    let message = summary["message"].as_str().unwrap().to_string();
    assert!(message.contains("not a cron"), "{message}");
    assert_eq!(
        status["trigger"]["pausedAt"],
        Value::Null,
        "an enabled schedule is not paused"
    );
    let events = h.events();
    assert_eq!(count(&events, summary["reason"].as_str().unwrap()), 1, "{events:?}");

    // The next pass sees its own report: nothing new to say.
    let pass = start(&h, with_status(swf(bad), &status));
    requests_of(&mut h, pass, &mut plain).await.1.unwrap();
    assert_eq!(h.events(), vec![], "the same problem is not announced twice");

    // A different problem is.
    let worse = json!({"trigger": {"cronSchedule": {"cron": "still not a cron"}}});
    let pass = start(&h, with_status(swf(worse), &status));
    requests_of(&mut h, pass, &mut plain).await.1.unwrap();
    let events = h.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].1.contains("still not a cron"), "{events:?}");
}

/// A disabled schedule with an invalid spec is reported as paused too, so re-enabling it after
/// the fix does not run the ticks of the pause (issue 18, bug 2).
#[tokio::test]
async fn an_invalid_disabled_schedule_is_recorded_as_paused() {
    let mut h = harness(vec![]);
    let bad = json!({"enabled": false, "trigger": {"cronSchedule": {"cron": "not a cron"}}});
    let pass = start(&h, swf(bad));
    requests_of(&mut h, pass, &mut plain).await.1.unwrap();
    let status = &h.last_status.as_ref().expect("the problem is written")["status"];
    assert_eq!(status["trigger"]["pausedAt"], NOW);
}

/// A clamped value is a warning: one `SpecWarning` event for the generation that has it, none
/// for a pass over a generation already observed.
#[tokio::test]
async fn spec_warnings_are_published_once_per_generation() {
    let mut h = harness(vec![]);
    let clamped = json!({"enabled": false, "maxConcurrency": 50});
    let pass = start(&h, swf(clamped.clone()));
    requests_of(&mut h, pass, &mut plain).await.1.unwrap();
    let events = h.events();
    assert_eq!(count(&events, "SpecWarning"), 1, "{events:?}");
    assert!(
        events.iter().any(|(_, note)| note.contains("maxConcurrency")),
        "{events:?}"
    );

    let status = h.last_status.take().expect("the status is written")["status"].clone();
    assert_eq!(status["observedGeneration"], 1);
    let pass = start(&h, with_status(swf(clamped), &status));
    requests_of(&mut h, pass, &mut plain).await.1.unwrap();
    assert_eq!(count(&h.events(), "SpecWarning"), 0);
}

/// A run kind the operator may not watch is the user's to fix (RBAC): it is reported as such
/// and retried with a backoff, not failed as if the cache were still starting.
#[tokio::test]
async fn a_run_kind_the_operator_cannot_watch_is_reported_and_retried_later() {
    let mut h = harness(vec![]);
    if let Some(ctx) = Arc::get_mut(&mut h.ctx) {
        ctx.settings.cache_wait = Duration::from_millis(10);
    }
    h.ctx.runs.insert(RunCache::failing(
        RunKind::parse("batch/v1", "Job"),
        jobs(),
        "jobs.batch is forbidden (mock)",
    ));
    let pass = start(&h, swf(json!({})));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    assert!(sent.is_empty(), "{sent:?}");
    assert!(
        matches!(ended, Ok(ref a) if *a != Action::await_change()),
        "retried after a backoff: {ended:?}"
    );
    let status = &h.last_status.as_ref().expect("the problem is written")["status"];
    let summary = status["conditions"].as_array().unwrap().last().unwrap();
    assert_eq!(summary["reason"], "RunKindNotWatchable");
    assert!(
        summary["message"].as_str().unwrap().contains("forbidden (mock)"),
        "{summary}"
    );
}

/// A created scheduled run gets a `RunCreated` event naming its tick, and its trigger lag is
/// measured (the lag of run-now and backfill runs is not a schedule's lag).
#[tokio::test]
async fn a_created_run_is_announced_and_its_lag_measured() {
    let mut h = harness(vec![]);
    let pass = start(&h, swf(json!({})));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    let name = run_name("nightly", at(TICK));
    assert_eq!(sent, [format!("POST {name}")]);
    let events = h.events();
    assert_eq!(
        events,
        [("RunCreated".to_string(), format!("Created Job {name} for {TICK}"))]
    );
    let metrics = h.ctx.metrics.render();
    assert!(metrics.contains("swf_trigger_lag_seconds_count 1\n"), "{metrics}");
    assert!(metrics.contains("swf_trigger_lag_seconds_sum 270.0\n"), "{metrics}");
}

/// The failure policy suspends with one Warning event and a resume is announced with one
/// Normal event; later passes over the same state say nothing more, and a resume value on a
/// schedule that was not suspended is not announced.
#[tokio::test]
async fn a_suspension_and_a_resume_are_each_announced_once() {
    let failed = |m: u32| {
        let tick = minute(m);
        finished(
            run(&run_name("nightly", at(&tick)), &tick, i64::from(m), UID, false),
            true,
            &tick,
        )
    };
    let mut h = harness(vec![failed(1), failed(2), failed(3)]);
    let spec = json!({"failurePolicy": {"suspendAfterConsecutiveFailures": 3}});
    let obj = recorded(swf(spec.clone()), &minute(3), 3);
    let pass = start(&h, obj.clone());
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert!(sent.is_empty(), "a suspended schedule creates nothing: {sent:?}");
    let suspended = h.last_status.take().expect("the suspension is written")["status"].clone();
    assert!(suspended["suspension"]["suspendedAt"].is_string(), "{suspended}");
    assert_eq!(summary_reason(&suspended), "SuspendedAfterFailures");
    assert_eq!(count(&h.events(), "SuspendedAfterFailures"), 1);

    let pass = start(&h, with_status(obj.clone(), &suspended));
    requests_of(&mut h, pass, &mut plain).await.1.unwrap();
    assert_eq!(h.events(), vec![], "still suspended: nothing new to say");

    let mut resume = with_status(obj, &suspended);
    let annotations = resume.metadata.annotations.get_or_insert_default();
    annotations.insert(RESUME_ANNOTATION.into(), "first".into());
    let pass = start(&h, resume.clone());
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert!(
        sent.is_empty(),
        "the ticks of the suspension are not run (docs/failure-policy.md): {sent:?}"
    );
    assert_eq!(count(&h.events(), "Resumed"), 1);
    let resumed = h.last_status.take().expect("the resume is written")["status"].clone();
    assert_eq!(summary_reason(&resumed), "Enabled", "{resumed}");
    assert_eq!(
        resumed["trigger"]["nextTriggeredTime"],
        minute(6),
        "runs are created again"
    );
    let pass = start(&h, with_status(resume, &resumed));
    requests_of(&mut h, pass, &mut plain).await.1.unwrap();
    assert_eq!(count(&h.events(), "Resumed"), 0, "a resume value is served once");

    let mut never_suspended = swf(spec);
    let annotations = never_suspended.metadata.annotations.get_or_insert_default();
    annotations.insert(RESUME_ANNOTATION.into(), "first".into());
    let pass = start(&h, never_suspended);
    requests_of(&mut h, pass, &mut plain).await.1.unwrap();
    assert_eq!(count(&h.events(), "Resumed"), 0, "nothing was suspended");
}

/// While not every planned run exists, `nextTriggeredTime` is the first tick without one:
/// here the first of two due ticks is held by someone else's object (skipped), and the pass
/// stops there to plan again; the status says the second tick is next, not the one after.
#[tokio::test]
async fn next_triggered_time_is_the_first_tick_not_created_while_a_pass_is_cut_short() {
    let mut h = harness(vec![]);
    let first = run_name("nightly", at(&minute(1)));
    let mut foreign = |method: &str, name: &str| match (method, name == first) {
        ("POST", true) => (409, status_error(409, "AlreadyExists")),
        ("GET", true) => (200, run(name, &minute(1), 1, "someone-else", false)),
        _ => plain(method, name),
    };
    let pass = start(&h, swf(json!({"maxConcurrency": 2})));
    let (sent, ended) = requests_of(&mut h, pass, &mut foreign).await;
    assert_eq!(sent, [format!("POST {first}"), format!("GET {first}")]);
    assert_eq!(ended.unwrap(), Action::requeue(Duration::from_millis(100)));
    let status = &h.last_status.as_ref().expect("the skip is written")["status"];
    assert_eq!(status["trigger"]["skipThrough"], minute(1));
    assert_eq!(status["trigger"]["nextTriggeredTime"], minute(2));
}

/// A disabled schedule (its own stage creates nothing) with a backfill of `range`.
fn paused_with_backfill(spec: Value, range: &str) -> SwfObject {
    let mut full = json!({"enabled": false});
    if let (Some(base), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    let mut obj = recorded(swf(full), &minute(0), 1);
    obj.metadata.annotations = Some([(crate::model::keys::BACKFILL_ANNOTATION.to_string(), range.to_string())].into());
    obj
}

/// backfill_stage: the backfill's runs take the next workflow indexes, one each.
#[tokio::test]
async fn backfill_runs_take_the_next_indexes_one_each() {
    let mut h = harness(vec![]);
    let range = "2026-01-01T00:01:00Z/2026-01-01T00:03:00Z";
    let pass = start(&h, paused_with_backfill(json!({"maxConcurrency": 2}), range));
    let index = |o: &Value| o["metadata"]["labels"][crate::model::keys::LABEL_INDEX].clone();
    let (first, second) = (h.created().await, h.created().await);
    assert_eq!((index(&first), index(&second)), (json!("2"), json!("3")));
    h.answer("PATCH", "/nightly/status", 200, json!({})).await;
    pass.await.unwrap().unwrap();
}

/// backfill_stage: a running backfill whose next tick is still to come wakes the pass then,
/// even with the schedule itself paused.
#[tokio::test]
async fn a_backfill_waiting_for_its_next_tick_wakes_the_pass_at_that_tick() {
    let mut h = harness(vec![]);
    let range = "2026-01-01T00:06:00Z/2026-01-01T00:08:00Z";
    let pass = start(&h, paused_with_backfill(json!({}), range));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(
        ended.unwrap(),
        Action::requeue(Duration::from_secs(30)),
        "00:06 is 30 s away"
    );
}

/// backfill_stage: with every backfill slot taken the pass waits for a run to finish; when
/// the run it created turned out to be one of its own, already finished (adopted after a
/// 409), the slot is free and the pass plans again at once (issue 18, bug 4).
#[tokio::test]
async fn a_backfill_plans_again_at_once_only_when_a_slot_is_free() {
    let range = "2026-01-01T00:01:00Z/2026-01-01T00:04:00Z";
    let mut h = harness(vec![]);
    let pass = start(&h, paused_with_backfill(json!({}), range));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    assert_eq!(sent, [format!("POST {}", run_name("nightly", at(&minute(1))))]);
    assert_eq!(
        ended.unwrap(),
        Action::requeue(Duration::from_secs(300)),
        "the slot is taken"
    );

    let mut h = harness(vec![]);
    let pass = start(&h, paused_with_backfill(json!({}), range));
    let one = run_name("nightly", at(&minute(1)));
    h.answer("POST", "/namespaces/ns/jobs", 409, status_error(409, "AlreadyExists"))
        .await;
    let mut done = run(&one, &minute(1), 2, UID, true);
    done["metadata"]["annotations"] = json!({crate::model::keys::BACKFILL_RUN_ANNOTATION: range});
    h.answer("GET", &format!("/jobs/{one}"), 200, done).await;
    let (_, ended) = requests_of(&mut h, pass, &mut plain).await;
    assert_eq!(
        ended.unwrap(),
        Action::requeue(Duration::from_millis(100)),
        "00:02 is due and a slot is free"
    );
}

/// backfill_stage: one event per change of a backfill's range or phase; a pass that changes
/// neither says nothing.
#[tokio::test]
async fn each_change_of_a_backfills_range_or_phase_is_announced_once() {
    let range = "2026-01-01T00:01:00Z/2026-01-01T00:03:00Z";
    let mut h = harness(vec![]);
    let pass_with = async |h: &mut Harness, obj: SwfObject| {
        let pass = start(h, obj);
        requests_of(h, pass, &mut plain).await.1.unwrap();
        let status = h.last_status.as_ref().map(|s| s["status"].clone()).unwrap_or_default();
        let backfill_events: Vec<_> = h
            .events()
            .into_iter()
            .filter(|(r, _)| r.starts_with("Backfill"))
            .collect();
        (backfill_events, status)
    };
    let (events, status) = pass_with(&mut h, paused_with_backfill(json!({}), range)).await;
    assert_eq!(
        events,
        [("BackfillStarted".to_string(), format!("Backfill {range}: 2 ticks"))]
    );
    let running = with_status(paused_with_backfill(json!({}), range), &status);
    let (events, _) = pass_with(&mut h, running.clone()).await;
    assert_eq!(events, [], "still running: nothing new");

    let mut moved = running.clone();
    let other = "2026-01-01T00:02:00Z/2026-01-01T00:03:00Z";
    moved.metadata.annotations =
        Some([(crate::model::keys::BACKFILL_ANNOTATION.to_string(), other.to_string())].into());
    let (events, _) = pass_with(&mut h, moved).await;
    assert_eq!(
        count(&events, "BackfillStarted"),
        1,
        "a new range starts again: {events:?}"
    );

    let mut h = harness(vec![]); // the user's edit, seen by a fresh process
    let mut removed = running;
    removed.metadata.annotations = None;
    let (events, status) = pass_with(&mut h, removed.clone()).await;
    assert_eq!(
        events.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["BackfillCancelled"]
    );
    let (events, _) = pass_with(&mut h, with_status(removed, &status)).await;
    assert_eq!(events, [], "cancelled once");
}

/// backfill_stage: a lasting failure (403) of a backfill create is retried like any other
/// until its attempts run out; the first one does not stop the backfill.
#[tokio::test]
async fn a_backfill_create_refused_once_is_retried_not_given_up() {
    let range = "2026-01-01T00:01:00Z/2026-01-01T00:03:00Z";
    let mut h = harness(vec![]);
    let pass = start(&h, paused_with_backfill(json!({}), range));
    let mut forbidden = |method: &str, _: &str| match method {
        "POST" => (403, status_error(403, "Forbidden")),
        _ => (200, json!({})),
    };
    let (_, ended) = requests_of(&mut h, pass, &mut forbidden).await;
    assert!(ended.is_err(), "retried with backoff");
    assert_eq!(count(&h.events(), "BackfillFailed"), 0);
    let backfill = &h.last_status.as_ref().expect("status written")["status"]["backfill"];
    assert_eq!(backfill["phase"], "Running", "{backfill}");
}

/// Answers creates with a lasting failure (403), everything else with 200.
fn forbidden(method: &str, _: &str) -> (u16, Value) {
    match method {
        "POST" => (403, status_error(403, "Forbidden")),
        _ => (200, json!({})),
    }
}

/// `obj` asking for a run now (the annotation's value `value`).
fn with_run_now(mut obj: SwfObject, value: &str) -> SwfObject {
    obj.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(RUN_NOW_REQUEST_ANNOTATION.to_string(), value.to_string());
    obj
}

fn tick_run(m: u32) -> String {
    run_name("nightly", at(&minute(m)))
}

/// schedule_stage: a tick whose create keeps failing is given up only when a later tick is
/// due. The schedule's only due tick is retried with backoff however often it fails.
#[tokio::test]
async fn the_only_due_tick_is_retried_however_often_its_create_fails() {
    let mut h = harness(vec![]);
    let obj = recorded(swf(json!({})), &minute(4), 4);
    for attempt in 1..=MAX_TICK_ATTEMPTS + 1 {
        let pass = start(&h, obj.clone());
        let (sent, ended) = requests_of(&mut h, pass, &mut forbidden).await;
        assert_eq!(sent, [format!("POST {}", tick_run(5))], "attempt {attempt}");
        let reason = ended.expect_err("retried with backoff").reason();
        assert_eq!(reason, "RunCreateFailed", "attempt {attempt}");
    }
    assert_eq!(count(&h.events(), "TickAbandoned"), 0);
}

/// schedule_stage: a later tick in the same plan (a catch-up) is due, so the first tick is
/// given up after its attempts and the pass plans again at once.
#[tokio::test]
async fn a_tick_that_keeps_failing_is_given_up_when_the_plan_holds_a_later_one() {
    let mut h = harness(vec![]);
    let obj = recorded(swf(json!({"maxConcurrency": 2})), &minute(3), 3);
    for attempt in 1..=MAX_TICK_ATTEMPTS {
        let pass = start(&h, obj.clone());
        let (sent, ended) = requests_of(&mut h, pass, &mut forbidden).await;
        assert_eq!(sent, [format!("POST {}", tick_run(4))], "attempt {attempt}");
        if attempt < MAX_TICK_ATTEMPTS {
            assert_eq!(ended.unwrap_err().reason(), "RunCreateFailed", "attempt {attempt}");
        } else {
            assert_eq!(ended.unwrap(), Action::requeue(Duration::from_millis(100)));
            let status = &h.last_status.as_ref().expect("status written")["status"];
            assert_eq!(status["trigger"]["skipThrough"], minute(4), "given up");
        }
    }
    assert_eq!(count(&h.events(), "TickAbandoned"), 1);
}

/// schedule_stage: a run-now request runs once, with the next index, and status records it
/// as served; a pass that reads it served creates nothing more.
#[tokio::test]
async fn a_run_now_request_runs_once_with_the_next_index() {
    use crate::scheduling::render::run_now_name;
    let mut h = harness(vec![]);
    let obj = with_run_now(recorded(swf(json!({})), &minute(5), 5), "1");
    let pass = start(&h, obj.clone());
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert_eq!(sent, [format!("POST {}", run_now_name("nightly", "1"))]);
    let status = h.last_status.take().expect("status written")["status"].clone();
    assert_eq!(status["trigger"]["lastRunNow"], "1");
    assert_eq!(status["trigger"]["lastWorkflowIndex"], 6);
    assert_eq!(
        status["trigger"]["lastTriggeredTime"],
        minute(5),
        "a run-now run is no tick"
    );

    let mut h = harness(vec![]); // its run is gone (pruned): status alone says it was served
    let pass = start(&h, with_status(obj, &status));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert!(sent.is_empty(), "{sent:?}");
}

/// schedule_stage: a run-now request whose create keeps failing is dropped after its
/// attempts (no later tick needs to be due), with a Warning, and recorded as served.
#[tokio::test]
async fn a_run_now_request_that_keeps_failing_is_dropped_after_its_attempts() {
    let mut h = harness(vec![]);
    let obj = with_run_now(recorded(swf(json!({})), &minute(5), 5), "1");
    for attempt in 1..=MAX_TICK_ATTEMPTS {
        let pass = start(&h, obj.clone());
        let (sent, ended) = requests_of(&mut h, pass, &mut forbidden).await;
        assert_eq!(sent.len(), 1, "attempt {attempt}: {sent:?}");
        if attempt < MAX_TICK_ATTEMPTS {
            assert_eq!(ended.unwrap_err().reason(), "RunCreateFailed", "attempt {attempt}");
        }
    }
    let trigger = &h.last_status.as_ref().expect("status written")["status"]["trigger"];
    assert_eq!(trigger["lastRunNow"], "1", "{trigger}");
    assert_eq!(trigger["skipThrough"], Value::Null, "no tick is skipped: {trigger}");
    let events = h.events();
    let dropped = events.iter().filter(|(r, _)| r == "TickAbandoned").collect::<Vec<_>>();
    assert_eq!(dropped.len(), 1, "{events:?}");
    assert!(
        dropped[0].1.contains("the run-now request \"1\" is dropped"),
        "{dropped:?}"
    );
}

/// schedule_stage: a due tick and a run-now request want the only slot: the tick's run is
/// created and the request waits, without a pass at once (no slot is free).
#[tokio::test]
async fn run_now_waits_behind_the_due_tick_for_the_only_slot() {
    let mut h = harness(vec![]);
    let pass = start(&h, with_run_now(recorded(swf(json!({})), &minute(4), 4), "1"));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    assert_eq!(sent, [format!("POST {}", tick_run(5))]);
    assert_ne!(
        ended.unwrap(),
        Action::requeue(Duration::from_millis(100)),
        "no slot is free"
    );
    let trigger = &h.last_status.as_ref().expect("status written")["status"]["trigger"];
    assert_eq!(trigger["lastRunNow"], Value::Null, "not served yet");
}

/// schedule_stage: the due tick's run was adopted and had already finished, so its slot is
/// free and no run event will follow: the waiting run-now request gets a pass at once.
#[tokio::test]
async fn run_now_gets_a_pass_at_once_when_an_adopted_finished_run_frees_the_slot() {
    let mut h = harness(vec![]);
    let pass = start(&h, with_run_now(recorded(swf(json!({})), &minute(4), 4), "1"));
    let mut adopted = |method: &str, name: &str| match method {
        "POST" => (409, status_error(409, "AlreadyExists")),
        _ => (200, run(name, &minute(5), 5, UID, true)),
    };
    let (sent, ended) = requests_of(&mut h, pass, &mut adopted).await;
    assert_eq!(sent, [format!("POST {}", tick_run(5)), format!("GET {}", tick_run(5))]);
    assert_eq!(ended.unwrap(), Action::requeue(Duration::from_millis(100)));
}

/// schedule_stage: `concurrencyPolicy: Skip` with the only slot taken: one Normal event per
/// skipped tick, naming the last tick the skip reaches when it reaches past the first.
#[tokio::test]
async fn skipped_ticks_are_announced_with_how_far_the_skip_reaches() {
    let skip = || swf(json!({"concurrencyPolicy": "Skip"}));
    let running = |m: u32| run(&tick_run(m), &minute(m), i64::from(m), UID, false);

    let mut h = harness(vec![running(3)]);
    let pass = start(&h, recorded(skip(), &minute(3), 3));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert!(sent.is_empty(), "{sent:?}");
    let notes: Vec<String> = h
        .events()
        .into_iter()
        .filter(|(r, _)| r == "TickSkipped")
        .map(|(_, n)| n)
        .collect();
    let both = format!(
        "Skipped the tick of {} and every tick due after it through {}: no free slot (concurrencyPolicy: Skip)",
        minute(4),
        minute(5)
    );
    assert_eq!(notes, [both]);

    let mut h = harness(vec![running(4)]);
    let pass = start(&h, recorded(skip(), &minute(4), 4));
    let (_, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    let notes: Vec<String> = h
        .events()
        .into_iter()
        .filter(|(r, _)| r == "TickSkipped")
        .map(|(_, n)| n)
        .collect();
    let one = format!(
        "Skipped the tick of {}: no free slot (concurrencyPolicy: Skip)",
        minute(5)
    );
    assert_eq!(notes, [one]);
}

/// schedule_stage: the run `Replace` deleted leaves the pass's view at once: status lists the
/// runs still active and the new one, not the deleted one.
#[tokio::test]
async fn the_run_replace_deleted_is_not_listed_as_active() {
    let running = |m: u32| run(&tick_run(m), &minute(m), i64::from(m), UID, false);
    let mut h = harness(vec![running(3), running(4)]);
    let replace = json!({"concurrencyPolicy": "Replace", "maxConcurrency": 2});
    let pass = start(&h, recorded(swf(replace), &minute(4), 4));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert_eq!(
        sent,
        [format!("DELETE {}", tick_run(3)), format!("POST {}", tick_run(5))]
    );
    let active = &h.last_status.as_ref().expect("status written")["status"]["workflowHistory"]["active"];
    let mut names: Vec<&str> = active
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, [tick_run(4), tick_run(5)], "{active}");
}

/// reconcile: a pass whose scheduled create failed leaves the backfill for the retry (it
/// would otherwise take the schedule's turn): one POST, the tick's.
#[tokio::test]
async fn a_failed_scheduled_create_holds_the_backfill_until_the_retry() {
    let mut h = harness(vec![]);
    let mut obj = recorded(swf(json!({})), &minute(4), 4);
    let range = "2025-12-31T23:50:00Z/2025-12-31T23:52:00Z";
    obj.metadata.annotations = Some([(crate::model::keys::BACKFILL_ANNOTATION.to_string(), range.to_string())].into());
    let mut failing = |method: &str, _: &str| match method {
        "POST" => (500, status_error(500, "InternalError")),
        _ => (404, status_error(404, "NotFound")),
    };
    let pass = start(&h, obj);
    let (sent, ended) = requests_of(&mut h, pass, &mut failing).await;
    assert_eq!(ended.unwrap_err().reason(), "RunCreateFailed");
    let posts: Vec<&String> = sent.iter().filter(|s| s.starts_with("POST")).collect();
    assert_eq!(posts, [&format!("POST {}", tick_run(5))], "{sent:?}");
}

/// reconcile: each pass records the schedule's summary condition, its active runs and its
/// failure streak in the metrics.
#[tokio::test]
async fn a_pass_records_the_schedules_condition_active_runs_and_failure_streak() {
    let failed = finished(run(&tick_run(4), &minute(4), 4, UID, false), true, &minute(4));
    let mut h = harness(vec![failed]);
    let pass = start(&h, recorded(swf(json!({})), &minute(4), 4));
    let (_, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    let text = h.ctx.metrics.render();
    assert!(text.contains("swf_schedules{condition=\"Enabled\"} 1"), "{text}");
    assert!(text.contains("swf_active_runs 1"), "{text}");
    let streak = "swf_schedule_failure_streak{namespace=\"ns\",name=\"nightly\"} 1";
    assert!(text.contains(streak), "{text}");
}
