//! The reconciler against an in-process mock of the API server, for what a real server rarely
//! produces on cue: a 409 at the right moment, a 500, a 403 that lasts. The clock is fixed;
//! runs come from a preloaded cache. Everything else is tested on the real control plane.
//!
//! `api_moments`: the API server's answers at the right moment; `seams`: where two features
//! meet (backfill, history limits, pauses, the failure policy, Replace, one-offs); `stages`:
//! what each reconcile stage decides that a user sees (events, status fields, when the next
//! pass comes), one test per decision that mutation testing found unchecked.

mod api_moments;
mod seams;
mod stages;

use std::{sync::Arc, time::Duration};

use http::{Request, Response};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
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
    election::leader::Leader,
    events::{Events, Pending},
    reconcile::{MAX_TICK_ATTEMPTS, error_policy, reconcile},
    runs::{RunCache, RunCaches},
    status_write::StatusWriter,
};
use crate::{
    model::{
        crd::ScheduledWorkflow,
        keys::{LABEL_EPOCH, LABEL_INDEX},
        runkind::RunKind,
        stored::{RunObject, SwfObject},
    },
    scheduling::render::run_name,
    serve::metrics::Metrics,
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
    /// The last status patch a pass sent (`seams::requests_of`).
    last_status: Option<Value>,
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
        status: StatusWriter::default(),
        events,
        backoff: Backoff::default(),
        leader: Leader::always(),
        metrics,
        lanes: Default::default(),
    });
    Harness {
        ctx,
        api,
        events: events_rx,
        last_status: None,
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

/// What the API server returns for a status patch: the object, with `patch` merged in (a
/// merge patch's `null` removes the field).
fn patched(patch: &Value) -> Value {
    fn without_nulls(v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), without_nulls(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
        "metadata": {"name": "nightly", "namespace": NS, "uid": UID}, "spec": {},
        "status": without_nulls(&patch["status"])})
}

fn start(h: &Harness, obj: SwfObject) -> tokio::task::JoinHandle<Result<Action, super::Error>> {
    tokio::spawn(reconcile(Arc::new(obj), h.ctx.clone()))
}

const TICK: &str = "2026-01-01T00:01:00Z";

/// Answers the requests of `pass` until it ends: every request but the status write, as
/// `METHOD name` in the order sent (the status write is kept in `h.last_status`), and how the
/// pass ended.
async fn requests_of(
    h: &mut Harness,
    mut pass: tokio::task::JoinHandle<Result<Action, crate::controller::Error>>,
    answers: &mut dyn FnMut(&str, &str) -> (u16, Value),
) -> (Vec<String>, Result<Action, crate::controller::Error>) {
    let mut seen = Vec::new();
    loop {
        let next = tokio::select! {
            ended = &mut pass => return (seen, ended.expect("the pass does not panic")),
            next = tokio::time::timeout(Duration::from_secs(5), h.api.next_request()) => next,
        };
        let (request, send) = next
            .expect("a request or the end of the pass")
            .expect("the client is alive");
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let sent: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let name = sent["metadata"]["name"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| path.rsplit('/').next().unwrap_or_default().to_string());
        let (status, body) = if path.ends_with("/status") {
            (200, patched(&sent))
        } else {
            answers(&method, &name)
        };
        let body = if status == 201 && body.is_null() {
            let mut obj = sent.clone();
            obj["metadata"]["uid"] = json!(format!("uid-{name}"));
            obj
        } else {
            body
        };
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
        if path.ends_with("/status") {
            h.last_status = Some(sent);
        } else {
            seen.push(format!("{method} {name}"));
        }
    }
}

/// Creates answer 201, deletes 200.
fn plain(method: &str, _: &str) -> (u16, Value) {
    match method {
        "POST" => (201, Value::Null),
        _ => (200, json!({})),
    }
}

fn minute(m: u32) -> String {
    format!("2026-01-01T00:{m:02}:00Z")
}

/// `obj` with status recording `last` as its last tick (and `index`).
fn recorded(mut obj: SwfObject, last: &str, index: i64) -> SwfObject {
    obj.status.trigger.last_triggered_time = Some(Time(at(last)));
    obj.status.trigger.last_workflow_index = Some(index);
    obj
}

/// A finished run with its outcome and finish time.
fn finished(mut r: Value, failed: bool, at_time: &str) -> Value {
    let type_ = if failed { "Failed" } else { "Complete" };
    r["status"] = json!({"conditions": [{"type": type_, "status": "True", "lastTransitionTime": at_time}]});
    if !failed {
        r["status"]["completionTime"] = json!(at_time);
    }
    r
}
