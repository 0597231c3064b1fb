//! Helpers for tests about ScheduledWorkflows: manifests, waits on runs and status, events.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use swf_operator::model::{
    crd::ScheduledWorkflow,
    keys::{self},
};

use super::{TestEnv, eventually, job_resource, list_runs, workflow_resource};

pub const WAIT: Duration = Duration::from_secs(60);

pub fn argo_swf(name: &str, spec: Value) -> ScheduledWorkflow {
    let mut full = json!({"enabled": true, "workflow": {"spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]}}});
    merge(&mut full, spec);
    serde_json::from_value(json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow", "metadata": {"name": name}, "spec": full})).unwrap()
}

pub fn job_swf(name: &str, spec: Value) -> ScheduledWorkflow {
    let mut full = json!({"enabled": true, "runTemplate": {"apiVersion": "batch/v1", "kind": "Job",
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}});
    merge(&mut full, spec);
    serde_json::from_value(json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow", "metadata": {"name": name}, "spec": full})).unwrap()
}

pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

pub fn swfs(env: &TestEnv) -> Api<ScheduledWorkflow> {
    Api::namespaced(env.client.clone(), &env.namespace)
}

pub async fn create(env: &TestEnv, swf: ScheduledWorkflow) -> ScheduledWorkflow {
    swfs(env).create(&PostParams::default(), &swf).await.unwrap()
}

pub fn epochs(runs: &[DynamicObject]) -> Vec<i64> {
    let mut e: Vec<i64> = runs
        .iter()
        .map(|r| r.labels()[keys::LABEL_EPOCH].parse().unwrap())
        .collect();
    e.sort();
    e
}

pub fn owned(runs: &[DynamicObject], swf: &ScheduledWorkflow) -> Vec<DynamicObject> {
    let uid = swf.uid().unwrap();
    runs.iter()
        .filter(|r| r.owner_references().iter().any(|o| o.uid == uid))
        .cloned()
        .collect()
}

pub async fn runs_of(env: &TestEnv, swf: &ScheduledWorkflow, ar: &kube::api::ApiResource) -> Vec<DynamicObject> {
    owned(&list_runs(&env.client, &env.namespace, ar).await, swf)
}

/// Waits until `swf` owns at least `n` runs of `ar`; returns them.
pub async fn wait_runs(
    env: &TestEnv,
    swf: &ScheduledWorkflow,
    ar: &kube::api::ApiResource,
    n: usize,
) -> Vec<DynamicObject> {
    eventually(WAIT, &format!("{} runs of {}", n, swf.name_any()), || async {
        let runs = runs_of(env, swf, ar).await;
        (runs.len() >= n).then_some(runs)
    })
    .await
}

pub async fn finish_workflow(client: &Client, ns: &str, name: &str, phase: &str) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &workflow_resource());
    let patch = json!({"status": {"phase": phase, "finishedAt": Timestamp::now().to_string()}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

pub async fn finish_job(client: &Client, ns: &str, name: &str) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &job_resource());
    let now = Timestamp::now().to_string();
    let patch = json!({"status": {"startTime": now, "completionTime": now, "succeeded": 1,
        "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

pub async fn condition(env: &TestEnv, name: &str) -> Option<(String, String)> {
    let swf = swfs(env).get(name).await.ok()?;
    let status = swf.status?;
    let c = swf_operator::scheduling::status::summary_condition(&status)?;
    Some((c.type_.clone(), c.message.clone().unwrap_or_default()))
}

pub async fn events_for(env: &TestEnv, name: &str) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::namespaced(env.client.clone(), &env.namespace);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

pub async fn fail_job(client: &Client, ns: &str, name: &str) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &job_resource());
    let now = Timestamp::now().to_string();
    let patch = json!({"status": {"startTime": now, "failed": 1,
        "conditions": [{"type": "Failed", "status": "True", "lastProbeTime": now, "lastTransitionTime": now, "message": "boom"}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// `spec` keeping no finished run (`successfulRunsHistoryLimit: 0`; with `finish_jobs_forever`
/// every Job finishes): the fault, failover and shard tests use it so that each crash, failover
/// or lost watch meets prune-then-plan, where only the durable record (not the runs) says a tick
/// has run.
pub fn keep_nothing(mut spec: Value) -> Value {
    spec["successfulRunsHistoryLimit"] = json!(0);
    spec
}

/// Marks every unfinished Job in the namespace Complete, until aborted, so no schedule is
/// held back by `maxConcurrency` (there is no kubelet to finish them).
pub fn finish_jobs_forever(env: &TestEnv) -> tokio::task::JoinHandle<()> {
    let jobs: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &job_resource());
    tokio::spawn(async move {
        // Errors (the API server is away in some tests) are tried again on the next round.
        let done = json!({"status": {"succeeded": 1, "completionTime": Timestamp::now().to_string(),
            "conditions": [{"type": "Complete", "status": "True"}]}});
        loop {
            for job in jobs
                .list(&Default::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default()
            {
                if job.data["status"].get("conditions").is_none() {
                    let _ = jobs
                        .patch_status(&job.name_any(), &Default::default(), &Patch::Merge(&done))
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}
