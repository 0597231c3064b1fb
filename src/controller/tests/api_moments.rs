//! The API server's answers at the right moment: 409s, 500s, lasting 403s, history deletes.

use std::{sync::Arc, time::Duration};

use http::{Request, Response};
use kube::{Client, client::Body, runtime::controller::Action};
use serde_json::{Value, json};
use tower_test::mock;

use super::*;

#[tokio::test]
async fn a_conflicting_create_of_our_own_run_is_adopted() {
    let mut h = harness(vec![]);
    let pass = start(&h, swf(json!({})));
    let name = run_name("nightly", at(TICK));
    let sent = h
        .answer("POST", "/namespaces/ns/jobs", 409, status_error(409, "AlreadyExists"))
        .await;
    assert_eq!(sent["metadata"]["name"], name);
    h.answer("GET", &format!("/jobs/{name}"), 200, run(&name, TICK, 1, UID, false))
        .await;
    let patch = h
        .answer("PATCH", "/scheduledworkflows/nightly/status", 200, json!({}))
        .await;
    // The mock's reply is not an object: fine for this test, the pass has written.
    let _ = pass.await.unwrap();
    let trigger = &patch["status"]["trigger"];
    assert_eq!(trigger["lastTriggeredTime"], TICK);
    assert_eq!(trigger["lastWorkflowIndex"], 1);
    assert_eq!(patch["status"]["workflowHistory"]["active"][0]["name"], name);
    assert!(h.ctx.metrics.render().contains("outcome=\"adopted\"} 1"));
    assert!(
        h.events().iter().all(|(reason, _)| reason != "RunCreated"),
        "an adopted run is not announced as created"
    );
}

#[tokio::test]
async fn a_foreign_object_holding_the_name_skips_the_tick_so_later_ticks_run() {
    let mut h = harness(vec![]);
    let pass = start(&h, swf(json!({})));
    let name = run_name("nightly", at(TICK));
    h.answer("POST", "/namespaces/ns/jobs", 409, status_error(409, "AlreadyExists"))
        .await;
    h.answer(
        "GET",
        &format!("/jobs/{name}"),
        200,
        run(&name, TICK, 1, "someone-else", false),
    )
    .await;
    let patch = h.answer("PATCH", "/nightly/status", 200, json!({})).await;
    let action = pass.await.unwrap().unwrap();
    assert_eq!(
        patch["status"]["trigger"]["skipThrough"], TICK,
        "the tick is recorded as skipped"
    );
    assert_eq!(
        patch["status"]["trigger"]["lastWorkflowIndex"],
        Value::Null,
        "no run was created"
    );
    assert_eq!(
        action,
        Action::requeue(Duration::from_millis(100)),
        "plans the next tick at once"
    );
    let events = h.events();
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "RunNameConflict" && n.contains(&name) && n.contains("is skipped")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_500_on_create_shows_in_the_condition_and_backs_off() {
    let mut h = harness(vec![]);
    let obj = swf(json!({}));
    let pass = start(&h, obj.clone());
    h.answer("POST", "/namespaces/ns/jobs", 500, status_error(500, "InternalError"))
        .await;
    // A 500 may hide a create that happened: the run's name is read back; it is not there.
    let name = run_name("nightly", at(TICK));
    h.answer("GET", &format!("/jobs/{name}"), 404, status_error(404, "NotFound"))
        .await;
    let patch = h.answer("PATCH", "/nightly/status", 200, json!({})).await;
    let err = pass.await.unwrap().unwrap_err();
    assert_eq!(err.reason(), "RunCreateFailed");
    let conditions = patch["status"]["conditions"].as_array().unwrap();
    let condition = conditions.last().unwrap(); // KFP's summary, where KFP reads it
    assert_eq!(
        (condition["type"].as_str(), condition["reason"].as_str()),
        (Some("Error"), Some("RunCreateFailed"))
    );
    assert_eq!(conditions[1]["type"], "Stalled");
    assert!(condition["message"].as_str().unwrap().contains("InternalError (mock)"));
    assert_eq!(patch["status"]["trigger"]["lastWorkflowIndex"], Value::Null);
    // The controller's error policy: a Warning event, then 5 s, 10 s, ... between retries.
    let first = error_policy(Arc::new(obj.clone()), &err, h.ctx.clone());
    let second = error_policy(Arc::new(obj), &err, h.ctx.clone());
    assert_eq!(first, Action::requeue(Duration::from_secs(5)));
    assert_eq!(second, Action::requeue(Duration::from_secs(10)));
    tokio::task::yield_now().await;
    let events = h.events();
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "RunCreateFailed" && n.contains("retrying in 5s")),
        "{events:?}"
    );
    assert!(
        h.ctx
            .metrics
            .render()
            .contains("swf_reconcile_errors_total{reason=\"RunCreateFailed\"} 2")
    );
}

/// Issue 18, R12: a create answered 500 that did create the run. Read back at once, the run
/// is adopted and holds its slot in this very pass; before, the pass failed and the run held
/// no slot until the cache showed it, so a retry could create the next tick beside it.
#[tokio::test]
async fn a_create_answered_500_that_did_create_is_read_back_and_adopted() {
    let mut h = harness(vec![]);
    let pass = start(&h, swf(json!({})));
    let name = run_name("nightly", at(TICK));
    h.answer("POST", "/namespaces/ns/jobs", 500, status_error(500, "InternalError"))
        .await;
    h.answer("GET", &format!("/jobs/{name}"), 200, run(&name, TICK, 1, UID, false))
        .await;
    let patch = h.answer("PATCH", "/nightly/status", 200, json!({})).await;
    pass.await.unwrap().expect("the pass succeeds: the run exists");
    assert_eq!(patch["status"]["trigger"]["lastTriggeredTime"], TICK);
    assert_eq!(patch["status"]["workflowHistory"]["active"][0]["name"], name);
    let summary = patch["status"]["conditions"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(summary["type"], "Enabled", "no error: {summary}");
    assert!(h.ctx.metrics.render().contains("outcome=\"adopted\"} 1"));
}

/// The same for a create whose answer was lost with its connection: the run's name is read
/// back before the pass goes on.
#[tokio::test]
async fn a_create_whose_answer_was_lost_is_read_back_and_adopted() {
    let mut h = harness(vec![]);
    let pass = start(&h, swf(json!({})));
    let name = run_name("nightly", at(TICK));
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), h.api.next_request())
        .await
        .expect("the create comes")
        .expect("the client is alive");
    assert_eq!(request.method(), "POST");
    send.send_error(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "lost (mock)"));
    h.answer("GET", &format!("/jobs/{name}"), 200, run(&name, TICK, 1, UID, false))
        .await;
    let patch = h.answer("PATCH", "/nightly/status", 200, json!({})).await;
    pass.await.unwrap().expect("the pass succeeds: the run exists");
    assert_eq!(patch["status"]["workflowHistory"]["active"][0]["name"], name);
    assert!(h.ctx.metrics.render().contains("outcome=\"adopted\"} 1"));
}

/// Issue 18, R3: a status write is conditional on the resourceVersion the pass planned from;
/// refused (409: the object changed meanwhile, e.g. another replica wrote a newer floor or a
/// user disabled it), the pass reads the object afresh and plans again from it. Before, the
/// write was unconditional and a stale view could move the floor back.
#[tokio::test]
async fn a_409_on_the_status_write_plans_again_from_the_object_read_afresh() {
    let mut h = harness(vec![]);
    let mut view = swf(json!({"noCatchup": true}));
    view.metadata.resource_version = Some("5".into());
    let pass = start(&h, view);
    let name = run_name("nightly", at("2026-01-01T00:05:00Z"));
    let sent = h.created().await;
    assert_eq!(sent["metadata"]["name"], name, "noCatchup: only the latest due tick");
    let first = h
        .answer("PATCH", "/nightly/status", 409, status_error(409, "Conflict"))
        .await;
    assert_eq!(
        first["metadata"],
        json!({"resourceVersion": "5"}),
        "conditional on the view"
    );
    // Meanwhile a user disabled the schedule: the object read afresh says so.
    let fresh = stored(json!({"enabled": false, "noCatchup": true}), "6");
    h.answer("GET", "/scheduledworkflows/nightly", 200, fresh).await;
    // Planned again from it: the run created stays counted (no second POST), the status is
    // the disabled schedule's, and the write is conditional on the version read.
    let second = h.answer("PATCH", "/nightly/status", 200, patched(&json!({}))).await;
    assert_eq!(second["metadata"], json!({"resourceVersion": "6"}));
    assert_eq!(second["status"]["trigger"]["lastTriggeredTime"], "2026-01-01T00:05:00Z");
    assert_eq!(second["status"]["conditions"][1]["type"], "Disabled", "{second:#}");
    assert_eq!(second["status"]["observedGeneration"], 2, "the spec read afresh");
    assert!(pass.await.unwrap().is_ok());
    assert!(h.ctx.metrics.render().contains("outcome=\"created\"} 1"));
}

/// Issue 18, R10: a pass that had not yet seen a new backfill request pruned a run of a tick
/// the request covers, and the backfill ran the tick again. Pruned runs are now deleted only
/// after the pass's (conditional) status write succeeded: here it conflicts, the pass reads the
/// object afresh, sees the request, and keeps the run.
#[tokio::test]
async fn a_pass_from_a_stale_view_deletes_nothing() {
    let four = run_name("nightly", at("2026-01-01T00:04:00Z"));
    let mut h = harness(vec![run(&four, "2026-01-01T00:04:00Z", 4, UID, true)]);
    let mut view = recorded(swf(json!({"successfulRunsHistoryLimit": 0})), "2026-01-01T00:05:00Z", 5);
    view.metadata.resource_version = Some("5".into());
    let pass = start(&h, view);
    let first = h
        .answer("PATCH", "/nightly/status", 409, status_error(409, "Conflict"))
        .await;
    assert_eq!(first["metadata"], json!({"resourceVersion": "5"}));
    let mut fresh = stored(json!({"successfulRunsHistoryLimit": 0}), "6");
    fresh["metadata"]["annotations"] =
        json!({crate::model::keys::BACKFILL_ANNOTATION: "2026-01-01T00:04:00Z/2026-01-01T00:05:00Z"});
    fresh["status"] = json!({"trigger": {"lastTriggeredTime": "2026-01-01T00:05:00Z", "lastWorkflowIndex": 5}});
    h.answer("GET", "/scheduledworkflows/nightly", 200, fresh).await;
    let second = h.answer_with("PATCH", "/nightly/status", 200, patched).await;
    assert_eq!(second["status"]["backfill"]["phase"], "Finished", "00:04 has its run");
    let ended = tokio::time::timeout(Duration::from_secs(5), pass).await;
    if let Ok(Some((request, _))) = tokio::time::timeout(Duration::from_millis(100), h.api.next_request()).await {
        panic!(
            "the run of 00:04 must stay, but: {} {}",
            request.method(),
            request.uri().path()
        );
    }
    ended.expect("the pass ends").unwrap().unwrap();
}

/// Issue 18 (past-endTime seed 4294967318): a `Replace` pass whose view was behind a new
/// backfill request deleted the running run of a tick the request covers, and the backfill
/// ran that tick again. Before deleting, a Replace pass now confirms its view with a
/// conditional status write: here it conflicts, the pass reads the object afresh, sees the
/// request, and leaves the run (the backfill counts on it; R1).
#[tokio::test]
async fn a_replace_from_a_stale_view_deletes_nothing() {
    let four = run_name("nightly", at("2026-01-01T00:04:00Z"));
    let mut h = harness(vec![run(&four, "2026-01-01T00:04:00Z", 4, UID, false)]);
    let mut view = recorded(swf(json!({"concurrencyPolicy": "Replace"})), "2026-01-01T00:04:00Z", 4);
    view.metadata.resource_version = Some("5".into());
    let pass = start(&h, view);
    let confirm = h
        .answer("PATCH", "/nightly/status", 409, status_error(409, "Conflict"))
        .await;
    assert_eq!(
        confirm["metadata"],
        json!({"resourceVersion": "5"}),
        "conditional on the view"
    );
    let mut fresh = stored(json!({"concurrencyPolicy": "Replace"}), "6");
    fresh["metadata"]["annotations"] =
        json!({crate::model::keys::BACKFILL_ANNOTATION: "2026-01-01T00:03:00Z/2026-01-01T00:05:00Z"});
    fresh["status"] = json!({"trigger": {"lastTriggeredTime": "2026-01-01T00:04:00Z", "lastWorkflowIndex": 4}});
    h.answer("GET", "/scheduledworkflows/nightly", 200, fresh).await;
    // Planned again from the fresh object: the backfill in progress counts on 00:04's run, so
    // 00:05 waits; what follows is status writes and the backfill's own creates, no DELETE.
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert!(
        sent.iter().all(|r| !r.starts_with("DELETE")),
        "the run of 00:04 must stay: {sent:?}"
    );
}

/// Issue 18, R17 (simulation seed 290): a Replace pass deleted the running run and its
/// create failed; the policy was then switched to Wait. The next pass counted the deleted run
/// in its slot until the watch reported the deletion, and the due tick waited for that event.
/// A run whose DELETE was answered now counts as being deleted at once.
#[tokio::test]
async fn a_run_this_process_deleted_frees_its_slot_before_the_watch_says_so() {
    let four = run_name("nightly", at("2026-01-01T00:04:00Z"));
    let five = run_name("nightly", at("2026-01-01T00:05:00Z"));
    let mut h = harness(vec![run(&four, "2026-01-01T00:04:00Z", 4, UID, false)]);
    let replace = recorded(swf(json!({"concurrencyPolicy": "Replace"})), "2026-01-01T00:04:00Z", 4);
    let pass = start(&h, replace);
    let mut refused = |method: &str, _: &str| match method {
        "POST" => (500, status_error(500, "InternalError")),
        "GET" => (404, status_error(404, "NotFound")),
        _ => (200, json!({})),
    };
    let (sent, ended) = requests_of(&mut h, pass, &mut refused).await;
    assert_eq!(ended.unwrap_err().reason(), "RunCreateFailed");
    assert!(sent.contains(&format!("DELETE {four}")), "{sent:?}");

    let mut wait = recorded(swf(json!({"concurrencyPolicy": "Wait"})), "2026-01-01T00:04:00Z", 4);
    wait.metadata.generation = Some(2); // the user's edit, read afresh (newer than our write)
    h.ctx.status.read(wait.clone(), h.ctx.clock.now());
    let pass = start(&h, wait);
    let (sent, ended) = requests_of(&mut h, pass, &mut plain).await;
    ended.unwrap();
    assert_eq!(
        sent,
        [format!("POST {five}")],
        "00:05 runs in the slot 00:04's run left"
    );
}

/// The ScheduledWorkflow as the API server returns it: `swf`'s spec with `extra`.
fn stored(extra: Value, resource_version: &str) -> Value {
    let mut spec = json!({"enabled": true, "trigger": {"cronSchedule": {"cron": "0 * * * * *"}},
        "runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": {}}});
    if let (Some(base), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
        "metadata": {"name": "nightly", "namespace": NS, "uid": UID, "generation": 2,
            "resourceVersion": resource_version, "creationTimestamp": CREATED},
        "spec": spec})
}

/// Conflicting twice (the object keeps changing): the pass fails with its reason and is
/// retried with backoff.
#[tokio::test]
async fn a_second_409_is_an_error_with_its_reason() {
    let mut h = harness(vec![]);
    let pass = start(&h, swf(json!({"noCatchup": true})));
    h.created().await;
    h.answer("PATCH", "/nightly/status", 409, status_error(409, "Conflict"))
        .await;
    let fresh = stored(json!({"noCatchup": true}), "6");
    h.answer("GET", "/scheduledworkflows/nightly", 200, fresh).await;
    h.answer("PATCH", "/nightly/status", 409, status_error(409, "Conflict"))
        .await;
    let err = pass.await.unwrap().unwrap_err();
    assert_eq!(err.reason(), "StatusConflict");
}

#[tokio::test]
async fn a_lasting_failure_gives_up_the_tick_after_its_attempts_once_a_later_one_is_due() {
    let mut h = harness(vec![]);
    let obj = swf(json!({}));
    for attempt in 1..=MAX_TICK_ATTEMPTS {
        let pass = start(&h, obj.clone());
        h.answer("POST", "/namespaces/ns/jobs", 403, status_error(403, "Forbidden"))
            .await;
        let patch = h.answer("PATCH", "/nightly/status", 200, patched(&json!({}))).await;
        let result = pass.await.unwrap();
        if attempt < MAX_TICK_ATTEMPTS {
            assert_eq!(result.unwrap_err().reason(), "RunCreateFailed", "attempt {attempt}");
            assert_eq!(patch["status"]["conditions"][0]["reason"], "RunCreateFailed");
        } else {
            assert_eq!(result.unwrap(), Action::requeue(Duration::from_millis(100)));
            assert_eq!(patch["status"]["trigger"]["skipThrough"], TICK, "given up");
        }
    }
    let events = h.events();
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "TickAbandoned" && n.contains("gave up after 3 attempts")),
        "{events:?}"
    );
}

#[tokio::test]
async fn history_beyond_the_limit_is_deleted_oldest_first() {
    let names: Vec<String> = ["00:01", "00:02", "00:03"]
        .iter()
        .map(|m| run_name("nightly", at(&format!("2026-01-01T{m}:00Z"))))
        .collect();
    let runs = vec![
        run(&names[2], "2026-01-01T00:03:00Z", 3, UID, true),
        run(&names[0], "2026-01-01T00:01:00Z", 1, UID, true),
        run(&names[1], "2026-01-01T00:02:00Z", 2, UID, true),
    ];
    let mut h = harness(runs);
    // Status records the three ticks: only then may their runs be deleted.
    let mut obj = swf(json!({"successfulRunsHistoryLimit": 1, "noCatchup": true}));
    obj.status.trigger.last_triggered_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(
        "2026-01-01T00:03:00Z",
    )));
    obj.status.trigger.last_workflow_index = Some(3);
    let pass = start(&h, obj);
    h.created().await;
    // The status write comes first: runs are deleted only once it has succeeded.
    let patch = h.answer_with("PATCH", "/nightly/status", 200, patched).await;
    h.answer("DELETE", &format!("/jobs/{}", names[0]), 200, json!({})).await;
    h.answer("DELETE", &format!("/jobs/{}", names[1]), 200, json!({})).await;
    pass.await.unwrap().unwrap();
    assert_eq!(patch["status"]["workflowHistory"]["completed"][0]["name"], names[2]);
    assert_eq!(
        patch["status"]["workflowHistory"]["completed"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_run_not_yet_recorded_in_status_is_never_deleted_by_history_limits() {
    let name = run_name("nightly", at(TICK));
    let mut h = harness(vec![run(&name, TICK, 1, UID, true)]);
    let pass = start(&h, swf(json!({"successfulRunsHistoryLimit": 0, "enabled": false})));
    // No DELETE: status does not record the tick yet, so deleting it could let it run again.
    let patch = h.answer("PATCH", "/nightly/status", 200, json!({})).await;
    assert_eq!(pass.await.unwrap().unwrap(), Action::await_change(), "disabled: idle");
    assert_eq!(patch["status"]["trigger"]["lastTriggeredTime"], TICK);
}

/// kube-runtime counts a requeue from when the pass returns. A pass that took 3 s (its status
/// write waited behind a tick's creates) asks for 3 s less, so it wakes at the next tick, not
/// 3 s after it (measured: a tick's runs at N=1,000 started as late as the previous pass took).
#[tokio::test]
async fn the_wake_up_for_the_next_tick_leaves_out_the_time_the_pass_took() {
    let clock = Arc::new(std::sync::Mutex::new(at(NOW)));
    let mut h = harness(vec![]);
    let read = clock.clone();
    Arc::get_mut(&mut h.ctx).unwrap().clock = Clock::from_fn(move || *read.lock().unwrap());
    // Nothing due at NOW (00:05:30): the first tick is the first after startTime, 00:11:00,
    // 330 s on.
    let trigger = json!({"cronSchedule": {"cron": "0 * * * * *", "startTime": "2026-01-01T00:10:00Z"}});
    let pass = start(&h, swf(json!({ "trigger": trigger })));
    h.answer_with("PATCH", "/nightly/status", 200, |_| {
        let mut now = clock.lock().unwrap();
        *now = now.checked_add(jiff::SignedDuration::from_secs(3)).unwrap();
        json!({})
    })
    .await;
    let action = pass.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(327)));
}

/// A pass runs as a task of its own (so passes use every core); the controller dropping it
/// (shutdown, an operator aborted) still stops it: nothing of it is left waiting on the API
/// server, holding the context.
#[tokio::test]
async fn a_pass_the_controller_drops_stops_though_it_runs_as_a_task() {
    let mut h = harness(vec![]);
    let before = Arc::strong_count(&h.ctx);
    let pass = start(&h, swf(json!({})));
    let (create, _reply) = h.api.next_request().await.unwrap();
    assert_eq!(create.method(), "POST", "the pass is creating its run");
    pass.abort();
    let stopped = tokio::time::timeout(Duration::from_secs(5), async {
        while Arc::strong_count(&h.ctx) > before {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        stopped.is_ok(),
        "the pass's task still runs after the controller dropped it"
    );
}

#[tokio::test]
async fn a_replica_that_is_not_the_leader_does_nothing() {
    let (service, mut api) = mock::pair::<Request<Body>, Response<Body>>();
    let mut h = harness(vec![]);
    let ctx = Arc::get_mut(&mut h.ctx).unwrap();
    ctx.client = Client::new(service, NS);
    ctx.leader = crate::controller::election::leader::tests_support::not_leader();
    let action = reconcile(Arc::new(swf(json!({}))), h.ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), api.next_request())
            .await
            .is_err(),
        "no request at all"
    );
}

/// The lease is lost while a create is on its way: the pass writes nothing more (no status
/// write from a replica that no longer owns the schedule) and ends with `NotLeader`.
#[tokio::test]
async fn a_replica_that_loses_its_lease_mid_pass_writes_nothing_more() {
    use crate::controller::election::leader::tests_support::{holding, lose};
    let mut h = harness(vec![]);
    let leader = holding();
    Arc::get_mut(&mut h.ctx).unwrap().leader = leader.clone();
    let pass = start(&h, swf(json!({"noCatchup": true})));
    h.answer_with("POST", "/namespaces/ns/jobs", 201, |sent| {
        lose(&leader);
        let mut obj = sent.clone();
        obj["metadata"]["uid"] = json!("uid-new");
        obj
    })
    .await;
    // A pass that sends a request waits for its answer, so look before awaiting the pass.
    let next = tokio::time::timeout(Duration::from_millis(500), h.api.next_request()).await;
    let sent = next.ok().flatten().map(|(r, _)| format!("{} {}", r.method(), r.uri()));
    assert_eq!(sent, None, "nothing written after the lease was lost");
    let ended = tokio::time::timeout(Duration::from_secs(5), pass).await;
    assert_eq!(ended.unwrap().unwrap().unwrap_err().reason(), "NotLeader");
}

/// The status write names its field manager, so `managedFields` shows the operator as the
/// owner of `status` (and GitOps tools that compare managers leave it alone).
#[tokio::test]
async fn the_status_write_names_the_operators_field_manager() {
    let mut h = harness(vec![]);
    let pass = start(&h, swf(json!({"enabled": false})));
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), h.api.next_request())
        .await
        .expect("the status write comes")
        .expect("the client is alive");
    let uri = request.uri().to_string();
    send.send_response(
        Response::builder()
            .status(200)
            .body(Body::from(serde_json::to_vec(&patched(&json!({}))).unwrap()))
            .unwrap(),
    );
    pass.await.unwrap().unwrap();
    let (path, query) = uri.split_once('?').unwrap_or((&uri, ""));
    assert!(path.ends_with("/nightly/status"), "{uri}");
    assert!(query.split('&').any(|kv| kv == "fieldManager=swf-operator"), "{uri}");
}

#[tokio::test]
async fn runs_created_but_not_yet_in_the_cache_count_against_max_concurrency() {
    // The cache stays empty, as a watch that lags the creates' replies: the second pass must
    // still see the two runs the first one created, and create nothing more.
    let mut h = harness(vec![]);
    let obj = swf(json!({"maxConcurrency": 2}));
    let first = start(&h, obj.clone());
    h.created().await;
    h.created().await;
    h.answer_with("PATCH", "/nightly/status", 200, patched).await;
    first.await.unwrap().unwrap();
    let second = start(&h, obj);
    // A pass that sends a request waits for its answer, so look before awaiting the pass.
    let request = tokio::time::timeout(Duration::from_millis(500), h.api.next_request()).await;
    assert!(
        request.is_err(),
        "the second pass sent {:?}",
        request
            .ok()
            .flatten()
            .map(|(r, _)| format!("{} {}", r.method(), r.uri()))
    );
    // It looks again when its memory of the unseen creates expires (60 s), not at the 300 s
    // safety net: a run deleted before the cache ever showed it must not hold the slot longer.
    let action = second.await.unwrap().unwrap();
    assert_eq!(
        action,
        Action::requeue(Duration::from_millis(60_100)),
        "waits for a slot"
    );
}

/// At a burst (a cold start, a tick of thousands of schedules) up to 1,024 passes are in
/// flight, most of them waiting for a write slot, and each is a task whose whole state machine
/// is allocated when it is spawned. The stages that await are boxed, so a waiting pass holds
/// what its stage needs, not room for its largest stage and for a second pass after a 409:
/// the task's state machine is 6.4 KiB in a debug build, 15 KiB unboxed.
#[tokio::test]
async fn a_pass_in_flight_holds_room_for_its_stage_not_for_its_largest() {
    let h = harness(vec![]);
    let obj = swf(json!({}));
    let pass = crate::controller::reconcile::reconcile_once(&obj, &h.ctx);
    let size = std::mem::size_of_val(&pass);
    assert!(size <= 8 * 1024, "a pass's state machine is {size} bytes");
}
