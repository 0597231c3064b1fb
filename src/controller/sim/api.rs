//! The simulated API server: a `tower::Service` that `kube::Client::new` takes, answering each
//! request inline from the `World` (no network, no other task). It serves what a pass sends:
//! `POST`/`GET`/`DELETE` of Jobs in `ns` and the status `PATCH` of `ns/nightly`, with real
//! `Status` bodies for errors (409 `AlreadyExists`, 404 `NotFound`, 500 `InternalError`), and
//! injects the seed's faults while they are on: a POST refused, a POST that creates but
//! answers 500 (a "slow create"), a GET, status PATCH or DELETE refused. A status PATCH whose
//! `metadata.resourceVersion` is not the object's gets 409 `Conflict`, as from the API server;
//! the ScheduledWorkflow itself can be read (`GET`).

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
};

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

use super::{
    records::{Cause, Detail, Origin},
    world::{NAME, World},
};

const JOBS: &str = "/apis/batch/v1/namespaces/ns/jobs";
const STATUS: &str = "/apis/kubeflow.org/v1beta1/namespaces/ns/scheduledworkflows/nightly/status";
const SWF: &str = "/apis/kubeflow.org/v1beta1/namespaces/ns/scheduledworkflows/nightly";

/// The world behind a lock: the server and the driver take turns on one thread.
#[derive(Clone)]
pub struct Shared(pub Arc<Mutex<World>>);

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl tower::Service<Request<Body>> for Shared {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let world = self.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let sent: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let (code, reply) = serve(&mut world.lock(), &parts.method, parts.uri.path(), &sent);
            let body = Body::from(serde_json::to_vec(&reply).unwrap_or_default());
            Ok(Response::builder()
                .status(code)
                .body(body)
                .unwrap_or_else(|_| Response::new(Body::empty())))
        })
    }
}

/// A `Status` body as the API server sends it.
fn status(code: u16, reason: &str, message: String) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code})
}

fn internal_error(what: &str) -> (u16, Value) {
    (500, status(500, "InternalError", format!("{what}: simulated fault")))
}

/// Where the ScheduledWorkflows of `ns` are.
const SWFS: &str = "/apis/kubeflow.org/v1beta1/namespaces/ns/scheduledworkflows";

/// A write of the ScheduledWorkflow other than its status (I11): any write to the object
/// itself, or a status PATCH that carries more than `status`.
fn spec_write(method: &Method, path: &str, sent: &Value) -> Option<String> {
    if !path.starts_with(SWFS) || *method == Method::GET {
        return None;
    }
    if path == STATUS && *method == Method::PATCH {
        // `metadata.resourceVersion` is the write's precondition, not a change.
        let precondition_only = |k: &String, v: &Value| {
            k == "metadata" && v.as_object().is_some_and(|m| m.keys().all(|k| k == "resourceVersion"))
        };
        let object = sent.as_object()?;
        let extra: Vec<&String> = object
            .iter()
            .filter(|(k, v)| *k != "status" && !precondition_only(k, v))
            .map(|(k, _)| k)
            .collect();
        return (!extra.is_empty()).then(|| format!("a status PATCH also sets {extra:?}"));
    }
    Some(format!("{method} {path}"))
}

fn serve(w: &mut World, method: &Method, path: &str, sent: &Value) -> (u16, Value) {
    if let Some(write) = spec_write(method, path, sent) {
        w.spec_writes.push(write);
    }
    let job = path.strip_prefix(JOBS).and_then(|rest| rest.strip_prefix('/'));
    match (method.as_str(), path, job) {
        ("POST", JOBS, _) => create(w, sent),
        ("GET", _, Some(name)) => get(w, name),
        ("DELETE", _, Some(name)) => delete(w, name),
        ("PATCH", STATUS, _) => patch_status(w, sent),
        ("GET", SWF, _) => get_swf(w),
        _ => {
            w.record("?", path, 404, None, Detail::Unknown);
            w.unexpected.push(format!("{method} {path}"));
            (
                404,
                status(404, "NotFound", format!("{path} is not served by the simulation")),
            )
        }
    }
}

fn create(w: &mut World, sent: &Value) -> (u16, Value) {
    let name = sent["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let tick = sent["metadata"]["labels"][crate::model::keys::LABEL_EPOCH]
        .as_str()
        .and_then(|s| s.parse().ok())
        .and_then(|s| jiff::Timestamp::from_second(s).ok());
    let detail = || Detail::Create {
        tick,
        origin: Origin::of(sent),
    };
    let faults = w.faults;
    if faults.on && w.dice.chance(faults.post_fail) {
        w.record("POST", &name, 500, Some("refused"), detail());
        return internal_error("create");
    }
    let slow = faults.on && w.dice.chance(faults.post_slow);
    match w.create_job(sent.clone()) {
        Ok(_) if slow => {
            w.record("POST", &name, 500, Some("slow create"), detail());
            internal_error("create (the Job was created)")
        }
        Ok(obj) => {
            w.record("POST", &name, 201, None, detail());
            (201, obj)
        }
        Err(name) => {
            w.record("POST", &name, 409, None, detail());
            let message = format!("jobs.batch \"{name}\" already exists");
            (409, status(409, "AlreadyExists", message))
        }
    }
}

fn get(w: &mut World, name: &str) -> (u16, Value) {
    if w.faults.on && w.dice.chance(w.faults.get_fail) {
        w.record("GET", name, 500, Some("refused"), Detail::Get { found: None });
        return internal_error("get");
    }
    match w.get_job(name).map(|j| (j.obj.clone(), j.run)) {
        Some((obj, run)) => {
            let found = Some((Origin::of(&obj), w.runs[run].finished.is_some()));
            w.record("GET", name, 200, None, Detail::Get { found });
            (200, obj)
        }
        None => {
            w.record("GET", name, 404, None, Detail::Get { found: None });
            (404, status(404, "NotFound", format!("jobs.batch \"{name}\" not found")))
        }
    }
}

fn delete(w: &mut World, name: &str) -> (u16, Value) {
    let inactive = Detail::Delete { was_active: false };
    if w.faults.on && w.dice.chance(w.faults.delete_fail) {
        w.record("DELETE", name, 500, Some("refused"), inactive);
        return internal_error("delete");
    }
    let by = w.writer();
    match w.delete_job(name, by) {
        Some((obj, was_active)) => {
            w.record("DELETE", name, 200, None, Detail::Delete { was_active });
            (200, obj)
        }
        None => {
            w.record("DELETE", name, 404, None, inactive);
            (404, status(404, "NotFound", format!("jobs.batch \"{name}\" not found")))
        }
    }
}

fn patch_status(w: &mut World, sent: &Value) -> (u16, Value) {
    if w.faults.on && w.dice.chance(w.faults.patch_fail) {
        w.record("PATCH", NAME, 500, Some("refused"), Detail::Status);
        return internal_error("status patch");
    }
    let current = w.swf.resource_version.to_string();
    match sent["metadata"]["resourceVersion"].as_str() {
        Some(rv) if rv != current => {
            w.record("PATCH", NAME, 409, Some("stale resourceVersion"), Detail::Status);
            let message = format!(
                "Operation cannot be fulfilled on scheduledworkflows.kubeflow.org \"{NAME}\": the object has been modified; please apply your changes to the latest version and try again"
            );
            (409, status(409, "Conflict", message))
        }
        _ => {
            let obj = w.patch_status(sent);
            w.record("PATCH", NAME, 200, None, Detail::Status);
            (200, obj)
        }
    }
}

/// `GET` of the ScheduledWorkflow (a pass reads it afresh after a status write conflicted).
fn get_swf(w: &mut World) -> (u16, Value) {
    if w.faults.on && w.dice.chance(w.faults.get_fail) {
        w.record("GET", NAME, 500, Some("refused"), Detail::Status);
        return internal_error("get");
    }
    w.record("GET", NAME, 200, None, Detail::Status);
    let (seq, fresh) = (w.seq(), w.swf_object());
    if let Some(pass) = w.pass.as_mut() {
        pass.reread = Some((seq, fresh));
    }
    (200, w.swf_json())
}

/// Who deleted, for trace lines.
pub fn cause_name(c: Cause) -> String {
    match c {
        Cause::User => "user".into(),
        Cause::Cluster => "cluster".into(),
        Cause::Operator(i) => format!("operator#{}", i.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_status_only_patch_of_the_status_is_not_a_spec_write() {
        let patch = Method::PATCH;
        assert_eq!(spec_write(&patch, STATUS, &json!({"status": {}})), None);
        let precondition = json!({"metadata": {"resourceVersion": "7"}, "status": {}});
        assert_eq!(spec_write(&patch, STATUS, &precondition), None);
        let labels = json!({"metadata": {"resourceVersion": "7", "labels": {}}, "status": {}});
        assert!(spec_write(&patch, STATUS, &labels).is_some());
        assert_eq!(spec_write(&Method::GET, &format!("{SWFS}/nightly"), &Value::Null), None);
        assert_eq!(spec_write(&Method::POST, JOBS, &json!({})), None);
        assert!(spec_write(&patch, STATUS, &json!({"status": {}, "spec": {}})).is_some());
        assert!(spec_write(&patch, &format!("{SWFS}/nightly"), &json!({"spec": {}})).is_some());
        assert!(spec_write(&Method::PUT, &format!("{SWFS}/nightly"), &json!({})).is_some());
    }
}
