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

#[tokio::test]
async fn a_409_on_the_status_write_is_an_error_with_its_reason() {
    let mut h = harness(vec![]);
    let pass = start(&h, swf(json!({"noCatchup": true})));
    let name = run_name("nightly", at("2026-01-01T00:05:00Z"));
    let sent = h.created().await;
    assert_eq!(sent["metadata"]["name"], name, "noCatchup: only the latest due tick");
    h.answer("PATCH", "/nightly/status", 409, status_error(409, "Conflict"))
        .await;
    let err = pass.await.unwrap().unwrap_err();
    assert_eq!(err.reason(), "StatusWriteFailed");
    assert!(h.ctx.metrics.render().contains("outcome=\"created\"} 1"));
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
    h.answer("DELETE", &format!("/jobs/{}", names[0]), 200, json!({})).await;
    h.answer("DELETE", &format!("/jobs/{}", names[1]), 200, json!({})).await;
    h.created().await;
    let patch = h.answer("PATCH", "/nightly/status", 200, json!({})).await;
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

#[tokio::test]
async fn a_replica_that_is_not_the_leader_does_nothing() {
    let (service, mut api) = mock::pair::<Request<Body>, Response<Body>>();
    let mut h = harness(vec![]);
    let ctx = Arc::get_mut(&mut h.ctx).unwrap();
    ctx.client = Client::new(service, NS);
    ctx.leader = crate::controller::leader::tests_support::not_leader();
    let action = reconcile(Arc::new(swf(json!({}))), h.ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), api.next_request())
            .await
            .is_err(),
        "no request at all"
    );
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
    let action = second.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)), "waits for a slot");
}
