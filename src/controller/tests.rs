//! The reconciler against an in-process mock of the API server, for what a real server rarely
//! produces on cue: a 409 at the right moment, a 500, a 403 that lasts. The clock is fixed;
//! runs come from a preloaded cache. Everything else is tested on the real control plane.

use std::{sync::Arc, time::Duration};

use http::{Request, Response};
use jiff::Timestamp;
use kube::{
    Client,
    api::{ApiResource, GroupVersionKind},
    client::Body,
    runtime::controller::Action,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_test::mock::{self, Handle};

use super::{
    Clock, Context, Settings,
    backoff::Backoff,
    events::{Events, Pending},
    leader::Leader,
    reconcile::{MAX_TICK_ATTEMPTS, error_policy, reconcile},
    runs::{RunCache, RunCaches},
    status_write::StatusWriter,
};
use crate::{
    crd::ScheduledWorkflow,
    metrics::Metrics,
    render::{LABEL_EPOCH, LABEL_INDEX, run_name},
    runkind::RunKind,
    stored::{RunObject, SwfObject},
};

const NS: &str = "ns";
const UID: &str = "swf-uid";
const CREATED: &str = "2026-01-01T00:00:00Z";
/// Five minutes after creation: the 00:01 .. 00:05 ticks of a per-minute schedule are due.
const NOW: &str = "2026-01-01T00:05:30Z";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn jobs() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("batch", "v1", "Job"), "jobs")
}

fn swf(spec: Value) -> SwfObject {
    let mut full = json!({"enabled": true, "trigger": {"cronSchedule": {"cron": "0 * * * * *"}},
        "runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": {}}});
    if let (Some(base), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    let typed: ScheduledWorkflow = serde_json::from_value(json!({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
        "metadata": {"name": "nightly", "namespace": NS, "uid": UID, "generation": 1, "creationTimestamp": CREATED},
        "spec": full}))
    .unwrap();
    SwfObject::from_typed(typed)
}

fn run(name: &str, tick: &str, index: i64, owner_uid: &str, finished: bool) -> Value {
    let mut status = json!({});
    if finished {
        status = json!({"conditions": [{"type": "Complete", "status": "True"}], "completionTime": tick});
    }
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
            "labels": {LABEL_EPOCH: at(tick).as_second().to_string(), LABEL_INDEX: index.to_string()},
            "ownerReferences": [{"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
                "name": "nightly", "uid": owner_uid, "controller": true}]},
        "status": status})
}

struct Harness {
    ctx: Arc<Context>,
    api: Handle<Request<Body>, Response<Body>>,
    events: mpsc::Receiver<Pending>,
}

fn harness(runs: Vec<Value>) -> Harness {
    let (service, api) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NS);
    let metrics = Arc::new(Metrics::default());
    let (events, events_rx) = Events::channel(metrics.clone());
    let (wake, _) = mpsc::unbounded_channel();
    let caches = RunCaches::new(client.clone(), None, wake, metrics.clone(), Default::default());
    let runs = runs
        .into_iter()
        .map(|r| serde_json::from_value::<RunObject>(r).unwrap());
    caches.insert(RunCache::preloaded(
        RunKind::parse("batch/v1", "Job"),
        jobs(),
        runs.collect(),
    ));
    let ctx = Arc::new(Context {
        client,
        settings: Settings::new(None, "UTC", vec![]),
        clock: Clock::fixed(at(NOW)),
        runs: caches,
        created: Default::default(),
        status: StatusWriter::default(),
        events,
        backoff: Backoff::default(),
        leader: Leader::always(),
        metrics,
    });
    Harness {
        ctx,
        api,
        events: events_rx,
    }
}

impl Harness {
    /// Answers the next request, which must be `method` on a path ending with `path_end`;
    /// returns its JSON body.
    async fn answer(&mut self, method: &str, path_end: &str, status: u16, body: Value) -> Value {
        self.answer_with(method, path_end, status, |_| body).await
    }

    /// Answers a create as the API server does: the object sent, with a uid.
    async fn created(&mut self) -> Value {
        self.answer_with("POST", "/namespaces/ns/jobs", 201, |sent| {
            let mut obj = sent.clone();
            obj["metadata"]["uid"] = json!("uid-new");
            obj
        })
        .await
    }

    async fn answer_with(
        &mut self,
        method: &str,
        path_end: &str,
        status: u16,
        reply: impl FnOnce(&Value) -> Value,
    ) -> Value {
        let (request, send) = tokio::time::timeout(Duration::from_secs(5), self.api.next_request())
            .await
            .unwrap_or_else(|_| panic!("no request came; expected {method} …{path_end}"))
            .expect("the client is alive");
        let path = request.uri().path().to_string();
        assert_eq!(
            (request.method().as_str(), path.ends_with(path_end)),
            (method, true),
            "expected {method} …{path_end}, got {} {path}",
            request.method()
        );
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let sent = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&reply(&sent)).unwrap()))
                .unwrap(),
        );
        sent
    }

    fn events(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push((e.reason, e.note));
        }
        out
    }
}

fn status_error(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": format!("{reason} (mock)"),
        "reason": reason, "code": code})
}

/// What the API server returns for a status patch: the object, with `patch` merged in.
fn patched(patch: &Value) -> Value {
    json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
        "metadata": {"name": "nightly", "namespace": NS, "uid": UID}, "spec": {}, "status": patch["status"]})
}

fn start(h: &Harness, obj: SwfObject) -> tokio::task::JoinHandle<Result<Action, super::Error>> {
    tokio::spawn(reconcile(Arc::new(obj), h.ctx.clone()))
}

const TICK: &str = "2026-01-01T00:01:00Z";

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
    ctx.leader = super::leader::tests_support::not_leader();
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
