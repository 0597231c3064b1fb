//! Where two features meet: backfill and history limits, a pause and an error, the failure
//! policy and pruning, Replace and backfill, adoption and waiting slots (issue 18's list).
//! Each test sets up the moment the seam opens and checks what a user would notice.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::*;
use crate::model::{keys::BACKFILL_RUN_ANNOTATION, stored::SwfObject};

/// A run of ours for `tick` that a backfill of `range` created.
fn backfill_run(tick: &str, index: i64, range: &str, finished: bool) -> Value {
    let mut r = run(&run_name("nightly", at(tick)), tick, index, UID, finished);
    r["metadata"]["annotations"] = json!({ BACKFILL_RUN_ANNOTATION: range });
    r
}

/// Bug 1: a history limit deleted a backfill run ahead of the schedule's catch-up point, and
/// the schedule then created the same tick again.
#[tokio::test]
async fn a_backfill_run_ahead_of_the_schedule_is_kept_and_its_tick_never_runs_twice() {
    let range = "2026-01-01T00:03:00Z/2026-01-01T00:04:00Z";
    let ahead = backfill_run(&minute(3), 2, range, true);
    let mut h = harness(vec![ahead.clone()]);
    let spec = json!({"successfulRunsHistoryLimit": 0});
    let obj = recorded(swf(spec.clone()), &minute(1), 1);
    let pass = start(&h, obj);
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert_eq!(
        sent,
        [format!("POST {}", run_name("nightly", at(&minute(2))))],
        "the 00:03 run is kept"
    );
    // 00:02's run finished; the schedule passes 00:03 (it has a run) and runs 00:04.
    let done = run(&run_name("nightly", at(&minute(2))), &minute(2), 3, UID, true);
    let mut h = harness(vec![ahead, done]);
    let pass = start(&h, recorded(swf(spec), &minute(2), 3));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    let (two, four) = (run_name("nightly", at(&minute(2))), run_name("nightly", at(&minute(4))));
    assert_eq!(sent, [format!("POST {four}"), format!("DELETE {two}")]);
    let trigger = &h.last_status.unwrap()["status"]["trigger"];
    assert_eq!(
        trigger["skipThrough"],
        minute(3),
        "the schedule passed the backfilled tick"
    );
}

/// Bug 1, the other half: a backfill leaves the schedule's own backlog to it, so the two can
/// never both create one tick.
#[tokio::test]
async fn a_backfill_leaves_the_schedules_own_backlog_to_it() {
    let active = run(&run_name("nightly", at(&minute(1))), &minute(1), 1, UID, false);
    let mut h = harness(vec![active]);
    let mut obj = recorded(swf(json!({})), &minute(1), 1);
    let range = "2026-01-01T00:02:00Z/2026-01-01T00:06:00Z";
    obj.metadata.annotations = Some([(crate::model::keys::BACKFILL_ANNOTATION.to_string(), range.to_string())].into());
    let pass = start(&h, obj);
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    assert_eq!(ended.unwrap(), Action::requeue(Duration::from_secs(300)));
    assert!(
        sent.is_empty(),
        "no run created: the slot is taken and 00:02.. are the schedule's: {sent:?}"
    );
    let backfill = &h.last_status.unwrap()["status"]["backfill"];
    assert_eq!(
        (backfill["phase"].as_str(), backfill["nextTick"].as_str()),
        (Some("Running"), Some(minute(2).as_str()))
    );
    assert!(
        backfill["message"].as_str().unwrap().contains("the schedule's own"),
        "{backfill}"
    );
}

/// Bug 3: pruning by scheduled time deleted the failed backfill runs (old ticks) that made
/// the streak, so the schedule never suspended.
#[tokio::test]
async fn pruning_keeps_the_runs_the_failure_policy_counts() {
    let range = "2025-12-31T23:00:00Z/2026-01-01T00:00:00Z";
    let scheduled = |m: u32, index: i64| run(&run_name("nightly", at(&minute(m))), &minute(m), index, UID, false);
    let backfilled = |tick: &str, index: i64| backfill_run(tick, index, range, false);
    let runs = vec![
        finished(scheduled(1, 1), true, "2026-01-01T00:01:30Z"),
        finished(scheduled(2, 2), true, "2026-01-01T00:02:30Z"),
        finished(scheduled(3, 3), true, "2026-01-01T00:03:30Z"),
        finished(scheduled(4, 4), false, "2026-01-01T00:04:30Z"),
        finished(backfilled("2025-12-31T23:57:00Z", 5), true, "2026-01-01T00:04:40Z"),
        finished(backfilled("2025-12-31T23:58:00Z", 6), true, "2026-01-01T00:04:50Z"),
        finished(backfilled("2025-12-31T23:59:00Z", 7), true, "2026-01-01T00:05:00Z"),
        scheduled(5, 8),
    ];
    let mut h = harness(runs);
    let spec = json!({"failedRunsHistoryLimit": 0, "successfulRunsHistoryLimit": 1,
        "failurePolicy": {"suspendAfterConsecutiveFailures": 3}});
    let pass = start(&h, recorded(swf(spec), &minute(5), 8));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    // The failed limit reads as 3 (the newest by tick, 00:01..00:03); the streak's runs, older
    // ticks that failed last, are kept too.
    assert!(sent.is_empty(), "{sent:?}");
    let suspension = &h.last_status.unwrap()["status"]["suspension"];
    assert!(suspension["suspendedAt"].is_string(), "{suspension}");
    let names = |t: &str| run_name("nightly", at(t));
    assert_eq!(
        suspension["failedRuns"],
        json!([
            names("2025-12-31T23:57:00Z"),
            names("2025-12-31T23:58:00Z"),
            names("2025-12-31T23:59:00Z")
        ])
    );
}

/// Bug 4: adopting a run that had already finished freed its slot, but the pass waited 300 s
/// for a run event that never came.
#[tokio::test]
async fn adopting_a_finished_run_frees_its_slot_at_once() {
    let mut h = harness(vec![]);
    let pass = start(&h, swf(json!({})));
    let one = run_name("nightly", at(&minute(1)));
    let mut answers = |method: &str, name: &str| match method {
        "POST" => (409, status_error(409, "AlreadyExists")),
        _ => (200, run(name, &minute(1), 1, UID, true)),
    };
    let (sent, ended) = requests_of(&mut h, pass, &mut answers).await;
    assert_eq!(sent, [format!("POST {one}"), format!("GET {one}")]);
    assert_eq!(ended.unwrap(), Action::requeue(Duration::from_millis(100)));
}

/// Issue 18, R1 (found by the simulation, seed 48): Replace deleted a running scheduled run
/// whose tick the backfill in progress had not reached yet; the backfill then found that tick
/// without a run and ran it again. Replace now leaves such a run alone: the due tick waits.
#[tokio::test]
async fn replace_leaves_a_run_the_backfill_in_progress_still_counts_on() {
    let mut h = harness(vec![run(
        &run_name("nightly", at(&minute(4))),
        &minute(4),
        4,
        UID,
        false,
    )]);
    let mut obj = recorded(swf(json!({"concurrencyPolicy": "Replace"})), &minute(4), 4);
    let range = "2026-01-01T00:02:00Z/2026-01-01T00:06:00Z";
    obj.metadata.annotations = Some([(crate::model::keys::BACKFILL_ANNOTATION.to_string(), range.to_string())].into());
    let pass = start(&h, obj);
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    let backfill_first = format!("POST {}", run_name("nightly", at(&minute(2))));
    assert_eq!(
        sent,
        [backfill_first],
        "no DELETE of 00:04's run, no run of 00:05 beside it"
    );
    let trigger = &h.last_status.unwrap()["status"]["trigger"];
    assert_eq!(
        trigger["lastTriggeredTime"],
        minute(4),
        "00:05 waits for a slot: {trigger}"
    );
}

/// Found by the simulation (seed 2467, of the thousands): a pass whose status write met a 409
/// planned again on the object read afresh, now `Replace`, deleted the run it had just created
/// for a tick status did not record yet; its second write failed too, and the next owner ran
/// that tick a second time. Replace now leaves a run whose tick status does not record: the
/// pass's status write records it, and the pass plans again at once and replaces then.
#[tokio::test]
async fn replace_leaves_a_run_whose_tick_status_does_not_record_yet() {
    let (four, five) = (run_name("nightly", at(&minute(4))), run_name("nightly", at(&minute(5))));
    let replace = || swf(json!({"concurrencyPolicy": "Replace"}));
    // 00:04's run is running; status records 00:03 (the write after 00:04's create failed).
    let mut h = harness(vec![run(&four, &minute(4), 4, UID, false)]);
    let pass = start(&h, recorded(replace(), &minute(3), 3));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    assert!(
        sent.is_empty(),
        "00:04's run is not deleted while only it says 00:04 ran: {sent:?}"
    );
    assert_eq!(
        ended.unwrap(),
        Action::requeue(Duration::from_millis(100)),
        "plans again at once"
    );
    let trigger = &h.last_status.unwrap()["status"]["trigger"];
    assert_eq!(
        trigger["lastTriggeredTime"],
        minute(4),
        "status records 00:04: {trigger}"
    );
    // From that status, the next pass replaces it.
    let mut h = harness(vec![run(&four, &minute(4), 4, UID, false)]);
    let pass = start(&h, recorded(replace(), &minute(4), 4));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert_eq!(sent, [format!("DELETE {four}"), format!("POST {five}")]);
}

/// Bug 5: Replace deleted the running scheduled run for a tick the backfill had already run.
#[tokio::test]
async fn replace_does_not_delete_for_a_tick_that_already_has_a_run() {
    let range = "2026-01-01T00:05:00Z/2026-01-01T00:06:00Z";
    let runs = vec![
        run(&run_name("nightly", at(&minute(4))), &minute(4), 4, UID, false),
        backfill_run(&minute(5), 5, range, false),
    ];
    let mut h = harness(runs);
    let pass = start(
        &h,
        recorded(swf(json!({"concurrencyPolicy": "Replace"})), &minute(4), 5),
    );
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert!(sent.is_empty(), "nothing deleted, nothing created: {sent:?}");
    assert_eq!(h.last_status.unwrap()["status"]["trigger"]["skipThrough"], minute(5));
}

/// Bug 7: after the interval changed, a backfill used the grid through startTime while the
/// schedule ran on the grid through its last tick.
#[tokio::test]
async fn a_backfill_runs_on_the_schedules_own_grid() {
    let mut h = harness(vec![]);
    let spec = json!({"enabled": false, "trigger": {"periodicSchedule": {"intervalSecond": 60,
        "startTime": "2026-01-01T00:00:30Z"}}});
    let mut obj = recorded(swf(spec), &minute(4), 4); // on the :00 grid: the interval changed
    let range = "2026-01-01T00:01:00Z/2026-01-01T00:03:00Z";
    obj.metadata.annotations = Some([(crate::model::keys::BACKFILL_ANNOTATION.to_string(), range.to_string())].into());
    let pass = start(&h, obj);
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert_eq!(
        sent,
        [format!("POST {}", run_name("nightly", at(&minute(1))))],
        "one slot; :00, not :30"
    );
}

/// Suspected in the issue, confirmed: with `Skip`, a pass whose create failed announced ticks
/// as skipped that the retry may still run. Skips are decided only by a pass whose creates
/// all succeeded.
#[tokio::test]
async fn skips_are_announced_only_by_a_pass_whose_creates_succeeded() {
    let active = run(&run_name("nightly", at(&minute(1))), &minute(1), 1, UID, false);
    let mut h = harness(vec![active]);
    let spec = json!({"concurrencyPolicy": "Skip", "maxConcurrency": 2});
    let pass = start(&h, recorded(swf(spec), &minute(1), 1));
    let mut failing = |_: &str, _: &str| (500, status_error(500, "InternalError"));
    let (sent, ended) = requests_of(&mut h, pass, &mut failing).await;
    let tick = run_name("nightly", at(&minute(2)));
    assert_eq!(
        sent,
        [format!("POST {tick}"), format!("GET {tick}")],
        "a 500 is read back"
    );
    assert!(ended.is_err());
    let events = h.events();
    assert!(events.iter().all(|(reason, _)| reason != "TickSkipped"), "{events:?}");
    assert_eq!(h.last_status.unwrap()["status"]["trigger"]["skipThrough"], Value::Null);
}

/// Suspected in the issue, confirmed and documented (docs/architecture.md, "Has this tick
/// run?"): after `runTemplate` changes kind, runs of the old kind are not seen (one cache per
/// kind), so an active old-kind run does not hold a slot. What does hold is the floor: the
/// ticks the schedule ran as Jobs are never run again as the new kind.
#[tokio::test]
async fn after_a_run_kind_change_the_floor_holds_though_old_runs_are_not_counted() {
    let active_job = run(&run_name("nightly", at(&minute(3))), &minute(3), 3, UID, false);
    let mut h = harness(vec![active_job]);
    let things = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("example.com", "v1", "Thing"),
        "things",
    );
    let kind = crate::model::runkind::RunKind::parse("example.com/v1", "Thing");
    h.ctx
        .runs
        .insert(crate::controller::runs::RunCache::preloaded(kind, things, vec![]));
    let spec = json!({"runTemplate": {"apiVersion": "example.com/v1", "kind": "Thing", "spec": {}}});
    let pass = start(&h, recorded(swf(spec), &minute(3), 3));
    let mut answers = |_: &str, _: &str| (201, Value::Null);
    let (sent, ended) = requests_of(&mut h, pass, &mut answers).await;
    ended.unwrap();
    assert_eq!(sent, [format!("POST {}", run_name("nightly", at(&minute(4))))]);
}

/// Backfill runs hold their own slots: an active backfill run does not stop a due tick.
#[tokio::test]
async fn an_active_backfill_run_does_not_take_the_schedules_slot() {
    let range = "2025-12-31T00:00:00Z/2025-12-31T01:00:00Z";
    let mut h = harness(vec![backfill_run("2025-12-31T00:00:00Z", 1, range, false)]);
    let pass = start(&h, recorded(swf(json!({"noCatchup": true})), &minute(4), 1));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert_eq!(sent, [format!("POST {}", run_name("nightly", at(&minute(5))))]);
}

/// An AlreadyExists for our own run that is being deleted: not adopted, the tick waits.
#[tokio::test]
async fn our_run_being_deleted_is_not_adopted() {
    let mut h = harness(vec![]);
    let pass = start(&h, recorded(swf(json!({})), &minute(4), 4));
    let five = run_name("nightly", at(&minute(5)));
    let mut answers = |method: &str, name: &str| match method {
        "POST" => (409, status_error(409, "AlreadyExists")),
        _ => {
            let mut r = run(name, &minute(5), 5, UID, false);
            r["metadata"]["deletionTimestamp"] = json!(minute(5));
            (200, r)
        }
    };
    let (sent, ended) = requests_of(&mut h, pass, &mut answers).await;
    assert_eq!(sent, [format!("POST {five}"), format!("GET {five}")]);
    let err = ended.unwrap_err();
    assert_eq!(err.reason(), "RunBeingDeleted");
    let trigger = &h.last_status.unwrap()["status"]["trigger"];
    assert_eq!(
        trigger["lastTriggeredTime"],
        minute(4),
        "the tick is not counted as run"
    );
}

/// Replace deletes the oldest active runs, not the newest (maxConcurrency 2: order matters).
#[tokio::test]
async fn replace_deletes_the_oldest_active_run() {
    let runs = vec![
        run(&run_name("nightly", at(&minute(3))), &minute(3), 3, UID, false),
        run(&run_name("nightly", at(&minute(2))), &minute(2), 2, UID, false),
    ];
    let mut h = harness(runs);
    let spec = json!({"concurrencyPolicy": "Replace", "maxConcurrency": 2});
    let pass = start(&h, recorded(swf(spec), &minute(3), 3));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    let name = |m: u32| run_name("nightly", at(&minute(m)));
    assert_eq!(sent, [format!("DELETE {}", name(2)), format!("POST {}", name(5))]);
}

/// R9: `Replace` replaces the schedule's own runs, not a run a person asked for: with a
/// run-now run and a scheduled run active, the scheduled one is deleted even though the
/// run-now run is older; with only the run-now run, the due tick waits for its slot.
#[tokio::test]
async fn replace_never_deletes_a_run_now_run() {
    use crate::{model::keys::SERVED_RUN_NOW_ANNOTATION, scheduling::render::run_now_name};
    let mut by_hand = run(&run_now_name("nightly", "1"), &minute(1), 4, UID, false);
    by_hand["metadata"]["annotations"] = json!({ SERVED_RUN_NOW_ANNOTATION: "1" });
    let scheduled = run(&run_name("nightly", at(&minute(3))), &minute(3), 3, UID, false);
    let spec = json!({"concurrencyPolicy": "Replace", "maxConcurrency": 2});
    let mut h = harness(vec![by_hand.clone(), scheduled]);
    let pass = start(&h, recorded(swf(spec), &minute(3), 4));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    let name = |m: u32| run_name("nightly", at(&minute(m)));
    assert_eq!(sent, [format!("DELETE {}", name(3)), format!("POST {}", name(5))]);

    let mut h = harness(vec![by_hand]);
    let spec = json!({"concurrencyPolicy": "Replace"});
    let pass = start(&h, recorded(swf(spec), &minute(3), 4));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert!(sent.is_empty(), "{sent:?}");
    let status = &h.last_status.as_ref().expect("status written")["status"];
    assert_eq!(
        status["trigger"]["nextTriggeredTime"],
        minute(5),
        "00:05 waits for the slot"
    );
}

/// A run-now request waits while every slot is taken (active == maxConcurrency).
#[tokio::test]
async fn run_now_waits_for_a_free_slot() {
    let active = run(&run_name("nightly", at(&minute(5))), &minute(5), 5, UID, false);
    let mut h = harness(vec![active]);
    let mut obj = recorded(swf(json!({})), &minute(5), 5);
    obj.metadata.annotations = Some(
        [(
            crate::model::keys::RUN_NOW_REQUEST_ANNOTATION.to_string(),
            "1".to_string(),
        )]
        .into(),
    );
    let pass = start(&h, obj);
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(
        h.last_status.unwrap()["status"]["trigger"]["lastRunNow"],
        Value::Null,
        "not served yet"
    );
}

/// A finished run-now run is kept by a history limit of 0 until status records its request as
/// served (deleting it before would let the same request run again), and pruned after.
#[tokio::test]
async fn a_run_now_run_is_pruned_only_once_its_request_is_recorded() {
    use crate::{model::keys::SERVED_RUN_NOW_ANNOTATION, scheduling::render::run_now_name};
    let name = run_now_name("nightly", "1");
    let mut done = run(&name, &minute(5), 6, UID, true);
    done["metadata"]["annotations"] = json!({ SERVED_RUN_NOW_ANNOTATION: "1" });
    let requested = |mut obj: SwfObject| {
        obj.metadata.annotations = Some(
            [(
                crate::model::keys::RUN_NOW_REQUEST_ANNOTATION.to_string(),
                "1".to_string(),
            )]
            .into(),
        );
        obj
    };
    let spec = json!({"successfulRunsHistoryLimit": 0});

    let mut h = harness(vec![done.clone()]);
    let pass = start(&h, requested(recorded(swf(spec.clone()), &minute(5), 5)));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert!(sent.is_empty(), "kept, and not run again: {sent:?}");
    assert_eq!(h.last_status.unwrap()["status"]["trigger"]["lastRunNow"], json!("1"));

    let mut h = harness(vec![done]);
    let mut served = requested(recorded(swf(spec), &minute(5), 6));
    served.status.trigger.last_run_now = Some("1".into());
    let pass = start(&h, served);
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert_eq!(sent, [format!("DELETE {name}")], "recorded: the limit applies");
}

/// A disabled schedule's finished backfill run, with no backfill pending, under a history limit
/// of 0: kept while the schedule could still create that tick (it has never run, so on
/// re-enable it catches up from its start), pruned once it could not (it has run: re-enabled,
/// it skips what fell while disabled).
#[tokio::test]
async fn a_paused_schedule_keeps_only_the_runs_it_could_still_create() {
    let disabled = |last: Option<(&str, i64)>| {
        let mut obj = swf(json!({"enabled": false, "successfulRunsHistoryLimit": 0}));
        if let Some((tick, index)) = last {
            obj = recorded(obj, tick, index);
        }
        obj.status.trigger.paused_at = Some(Time(at(&minute(1))));
        obj
    };
    let range = "2026-01-01T00:00:00Z/2026-01-01T00:05:00Z";

    let never_ran = backfill_run(&minute(2), 1, range, true);
    let mut h = harness(vec![never_ran]);
    let pass = start(&h, disabled(None));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert!(
        sent.is_empty(),
        "never ran: 00:02 may still be created on re-enable: {sent:?}"
    );

    let ran = backfill_run(&minute(3), 6, range, true);
    let mut h = harness(vec![ran]);
    let pass = start(&h, disabled(Some((&minute(1), 5))));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert_eq!(
        sent,
        [format!("DELETE {}", run_name("nightly", at(&minute(3))))],
        "ran: 00:03 is skipped on re-enable"
    );
}

/// Pruning a run that is already gone (404) is done; any other failure fails the pass.
#[tokio::test]
async fn pruning_a_run_already_gone_is_done_and_other_failures_are_reported() {
    let old = run(&run_name("nightly", at(&minute(4))), &minute(4), 4, UID, true);
    let obj = || recorded(swf(json!({"successfulRunsHistoryLimit": 0})), &minute(5), 5);
    for (code, fails) in [(404, false), (500, true)] {
        let mut h = harness(vec![old.clone()]);
        let pass = start(&h, obj());
        let mut answers = |method: &str, _: &str| match method {
            "DELETE" => (code, status_error(code, "Gone")),
            _ => (200, json!({})),
        };
        let (sent, ended) = requests_of(&mut h, pass, &mut answers).await;
        assert_eq!(sent, [format!("DELETE {}", run_name("nightly", at(&minute(4))))]);
        assert_eq!(ended.is_err(), fails, "a 404 on delete is done, a 500 fails the pass");
    }
}

/// A run adopted after a 409 (another replica, or a pass before a crash, created it) holds its
/// slot until the cache shows it, as a run this pass created does: the next pass does not
/// start another over maxConcurrency (found by the simulation: a new shard owner did).
#[tokio::test]
async fn an_adopted_run_holds_its_slot_before_the_cache_shows_it() {
    let mut h = harness(vec![]);
    let four = run_name("nightly", at(&minute(4)));
    let pass = start(&h, recorded(swf(json!({})), &minute(3), 3));
    let mut answers = |method: &str, name: &str| match method {
        "POST" => (409, status_error(409, "AlreadyExists")),
        _ => (200, run(name, &minute(4), 4, UID, false)),
    };
    let (sent, ended) = requests_of(&mut h, pass, &mut answers).await;
    ended.unwrap();
    assert_eq!(
        sent,
        [format!("POST {four}"), format!("GET {four}")],
        "adopted; 00:05 waits"
    );

    // Nothing to do and nothing new to report: the pass sends no request at all (one it sent
    // would stay unanswered, so the pass would not end).
    let pass = start(&h, recorded(swf(json!({})), &minute(4), 4));
    let ended = tokio::time::timeout(Duration::from_secs(5), pass).await;
    if let Ok(Some((request, _))) = tokio::time::timeout(Duration::from_millis(100), h.api.next_request()).await {
        panic!(
            "00:05 must wait for the adopted run, but: {} {}",
            request.method(),
            request.uri().path()
        );
    }
    // It looks again when the adopted run stops counting, 60 s after it was remembered, not
    // after the 300 s safety net: no event may ever come for a run deleted while the watch was
    // down (found by the simulation, seeds 1734 and 2896 of the thousands).
    assert_eq!(
        ended.expect("the pass ends").unwrap().unwrap(),
        Action::requeue(Duration::from_millis(60_100))
    );
}

/// Found by the simulation (past-endTime family): a history limit pruned a backfill run of a
/// tick after endTime (the schedule would never create it), then endTime was lifted and the
/// schedule ran that tick again. Pruning now leaves endTime aside.
#[tokio::test]
async fn a_backfill_run_past_end_time_is_kept_while_lifting_end_time_could_reach_its_tick() {
    let range = "2026-01-01T00:04:00Z/2026-01-01T00:05:00Z";
    let past_end = backfill_run(&minute(4), 3, range, true);
    let trigger = json!({"cronSchedule": {"cron": "0 * * * * *", "endTime": minute(2)}});
    let spec = json!({"trigger": trigger, "successfulRunsHistoryLimit": 0});
    let mut h = harness(vec![past_end.clone()]);
    let pass = start(&h, recorded(swf(spec), &minute(2), 2));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert!(sent.is_empty(), "00:04's run is kept: {sent:?}");

    // endTime lifted: the schedule runs 00:03 and passes 00:04, which has its run.
    let mut h = harness(vec![past_end]);
    let spec = json!({"maxConcurrency": 3, "successfulRunsHistoryLimit": 0});
    let pass = start(&h, recorded(swf(spec), &minute(2), 2));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    let name = |m| run_name("nightly", at(&minute(m)));
    assert_eq!(sent, [format!("POST {}", name(3)), format!("POST {}", name(5))]);
}

/// Issue 18, R12: after a handover, the new owner's watch may not yet show the run the old
/// owner created just before; the status it plans from lists that run as active. It holds its
/// slot (no second run over `maxConcurrency`), until the cache shows it, is seen deleted, or
/// `RECENT_TTL` after its creation.
#[tokio::test]
async fn a_new_owner_counts_the_active_runs_the_status_lists_before_its_cache_shows_them() {
    let listed_with = |spec: Value, created: &str| {
        let mut obj = recorded(swf(spec), &minute(4), 4);
        obj.status.workflow_history.active = vec![crate::model::crd::WorkflowStatus {
            name: run_name("nightly", at(&minute(4))),
            uid: "uid-old-owners-run".into(),
            created_at: Some(Time(at(created))),
            scheduled_at: Some(Time(at(&minute(4)))),
            index: 4,
            ..Default::default()
        }];
        obj
    };
    let listed = |created: &str| listed_with(json!({}), created);
    // Created 30 s ago by the old owner: it holds the only slot; 00:05 waits.
    let mut h = harness(vec![]);
    let pass = start(&h, listed("2026-01-01T00:05:00Z"));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert!(sent.is_empty(), "no run beside the old owner's: {sent:?}");
    let status = &h.last_status.as_ref().expect("status written")["status"];
    assert_eq!(
        status["trigger"]["nextTriggeredTime"],
        minute(5),
        "00:05 waits for the slot"
    );
    assert_eq!(
        status["workflowHistory"]["active"][0]["name"],
        run_name("nightly", at(&minute(4)))
    );

    // Replace does not delete it: whether it is a backfill's run the status does not say.
    let mut h = harness(vec![]);
    let pass = start(
        &h,
        listed_with(json!({"concurrencyPolicy": "Replace"}), "2026-01-01T00:05:00Z"),
    );
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert!(sent.is_empty(), "{sent:?}");

    // Listed but created 90 s ago: the cache would show it by now, so it is gone.
    let mut h = harness(vec![]);
    let pass = start(&h, listed("2026-01-01T00:04:00Z"));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert_eq!(sent, [format!("POST {}", run_name("nightly", at(&minute(5))))]);

    // Seen deleted by this replica's watch: it holds nothing.
    let mut h = harness(vec![]);
    let cache = h.ctx.runs.get(&RunKind::parse("batch/v1", "Job")).await.unwrap();
    let deleted = run(&run_name("nightly", at(&minute(4))), &minute(4), 4, UID, false);
    let mut deleted: RunObject = serde_json::from_value(deleted).unwrap();
    deleted.metadata.uid = Some("uid-old-owners-run".into());
    cache.delete(&deleted);
    let pass = start(&h, listed("2026-01-01T00:05:00Z"));
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert_eq!(sent, [format!("POST {}", run_name("nightly", at(&minute(5))))]);
}

/// Issue 18, R12's backfill half: the status records each active run's origin, so after a
/// handover the new owner counts the old owner's backfill run in the backfill's slot (no
/// second backfill run beside it) and not in the schedule's (00:05 runs on time).
#[tokio::test]
async fn a_new_owner_counts_a_listed_backfill_run_in_the_backfills_slot() {
    let range = "2025-12-31T23:50:00Z/2025-12-31T23:55:00Z";
    let mut obj = recorded(swf(json!({})), &minute(4), 4);
    obj.metadata.annotations = Some([(crate::model::keys::BACKFILL_ANNOTATION.to_string(), range.to_string())].into());
    obj.status.workflow_history.active = vec![crate::model::crd::WorkflowStatus {
        name: run_name("nightly", at("2025-12-31T23:50:00Z")),
        uid: "uid-old-owners-backfill-run".into(),
        created_at: Some(Time(at("2026-01-01T00:05:00Z"))),
        scheduled_at: Some(Time(at("2025-12-31T23:50:00Z"))),
        index: 5,
        backfill: Some(range.into()),
        ..Default::default()
    }];
    let mut h = harness(vec![]);
    let pass = start(&h, obj);
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert_eq!(
        sent,
        [format!("POST {}", run_name("nightly", at(&minute(5))))],
        "the schedule's 00:05 runs; the backfill's next tick waits for its slot"
    );
    let status = &h.last_status.as_ref().expect("status written")["status"];
    assert_eq!(status["backfill"]["nextTick"], "2025-12-31T23:51:00Z", "{status}");
}
