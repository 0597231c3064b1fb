//! Smoke test of the test plumbing itself, on the real control plane: CRD install, create,
//! watch, status subresource, RBAC.
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::{
    Api, ResourceExt,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use swf_operator::model::crd::ScheduledWorkflow;

use crate::common;

fn sample(name: &str) -> ScheduledWorkflow {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "ScheduledWorkflow",
        "metadata": {"name": name},
        "spec": {
            "enabled": true,
            "maxConcurrency": 2,
            "trigger": {"cronSchedule": {"cron": "0 0 * * * *"}},
            "workflow": {"spec": {"entrypoint": "main", "templates": [{"name": "main"}]}}
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn crd_create_watch_status_and_rbac() {
    let env = common::env("smoke").await;
    let api: Api<ScheduledWorkflow> = Api::namespaced(env.client.clone(), &env.namespace);

    // The watcher sees the object we create.
    let watch = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    api.create(&PostParams::default(), &sample("hello")).await.unwrap();
    let seen = tokio::time::timeout(
        Duration::from_secs(30),
        watch
            .try_filter(|o| futures::future::ready(o.metadata.name.as_deref() == Some("hello")))
            .next(),
    )
    .await
    .expect("watch event within 30s")
    .unwrap()
    .unwrap();
    assert_eq!(seen.spec.max_concurrency, Some(2));

    // Status goes through the status subresource and leaves spec alone.
    let patch = serde_json::json!({"status": {"trigger": {"lastWorkflowIndex": 7}}});
    api.patch_status("hello", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let got = api.get("hello").await.unwrap();
    assert_eq!(got.status.unwrap().trigger.last_workflow_index, Some(7));
    // ... and a status in a main-resource patch is ignored (status subresource is enabled).
    let sneaky = serde_json::json!({"status": {"trigger": {"lastWorkflowIndex": 99}}});
    api.patch("hello", &PatchParams::default(), &Patch::Merge(&sneaky))
        .await
        .unwrap();
    assert_eq!(
        api.get("hello")
            .await
            .unwrap()
            .status
            .unwrap()
            .trigger
            .last_workflow_index,
        Some(7)
    );

    // Schema: values KFP's controller clamps are accepted (an object KFP ran must not be
    // refused), values of the wrong type are not.
    let mut clamped = sample("clamped");
    clamped.spec.max_concurrency = Some(11);
    clamped.spec.max_history = Some(-1);
    api.create(&PostParams::default(), &clamped).await.unwrap();
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.namespace,
        &kube::api::ApiResource::erase::<ScheduledWorkflow>(&()),
    );
    let mut wrong = serde_json::to_value(sample("wrong")).unwrap();
    wrong["spec"]["maxConcurrency"] = serde_json::json!("eleven");
    let err = raw
        .create(&PostParams::default(), &serde_json::from_value(wrong).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("maxConcurrency"), "{err}");

    // RBAC: a user with no role is forbidden; a bad token is unauthenticated.
    let alice = env
        .plane
        .client_with_token(&common::user_token(&env, "alice").await)
        .await;
    let as_alice: Api<ScheduledWorkflow> = Api::namespaced(alice, &env.namespace);
    match as_alice.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => assert!(status.is_forbidden(), "{status:?}"),
        other => panic!("expected 403 for alice, got {other:?}"),
    }
    let stranger = env.plane.client_with_token("not-a-token").await;
    let as_stranger: Api<ScheduledWorkflow> = Api::namespaced(stranger, &env.namespace);
    match as_stranger.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401, "{status:?}"),
        other => panic!("expected 401 for a bad token, got {other:?}"),
    }
}

/// The install manifests are accepted by a real API server (server-side dry run).
#[tokio::test]
async fn deploy_manifests_and_examples_are_accepted_by_the_api_server() {
    let env = common::env("deploy").await;
    let deploy = common::repo_root().join("deploy");
    // Namespaced objects can only be dry-run into a namespace that exists.
    common::kubectl(
        env.plane,
        &["apply", "-f", deploy.join("base/namespace.yaml").to_str().unwrap()],
    );
    let kubeflow: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "kubeflow"}})).unwrap();
    let _ = Api::all(env.client.clone())
        .create(&PostParams::default(), &kubeflow)
        .await;
    let out = common::kubectl(
        env.plane,
        &["apply", "--dry-run=server", "-k", deploy.to_str().unwrap()],
    );
    for kind in [
        "namespace/swf-system",
        "clusterrole",
        "deployment.apps/swf-operator",
        "service/swf-operator-api",
    ] {
        assert!(out.contains(kind), "{kind} missing from:\n{out}");
    }
    // The KFP overlay: the operator in KFP's namespace, settings from pipeline-install-config.
    let kfp = common::kubectl(
        env.plane,
        &["apply", "--dry-run=server", "-k", deploy.join("kfp").to_str().unwrap()],
    );
    assert!(kfp.contains("deployment.apps/swf-operator"), "{kfp}");
    assert!(!kfp.contains("namespace/swf-system"), "{kfp}");
    let rendered = common::kubectl(env.plane, &["kustomize", deploy.join("kfp").to_str().unwrap()]);
    assert!(rendered.contains("key: cronScheduleTimezone") && rendered.contains("namespace: kubeflow"));
    // Every example is a valid object for the installed CRD's schema.
    for entry in std::fs::read_dir(common::repo_root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            common::kubectl(env.plane, &["apply", "--dry-run=server", "-f", path.to_str().unwrap()]);
        }
    }
}

/// `kubectl explain` shows the CRD's field descriptions (written from the Rust doc comments;
/// a unit test fails on a field without one). Kubernetes 1.20 publishes CRD schemas as OpenAPI
/// v2, which drops what is under a `nullable` field (1.27+ explains from v3, all of it).
#[tokio::test]
async fn kubectl_explain_describes_the_fields() {
    let env = common::env("explain").await;
    let out = common::eventually(Duration::from_secs(60), "the CRD's schema published", || async {
        let out = std::process::Command::new("kubectl")
            .arg(format!("--kubeconfig={}", env.plane.kubeconfig.display()))
            .args(["explain", "scheduledworkflows.spec.trigger"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await;
    assert!(out.contains("When to run. No trigger means one run"), "{out}");
    assert!(out.contains("Runs at the times a cron expression names"), "{out}");
}

/// Runs are counted from the audit log (`common::creations`), and a write to a run's status
/// must be in it with the run's uid: a run whose create and delete were both answered 500 to a
/// SIGKILLed operator is known from that write only (before the policy logged `jobs/status`,
/// the crash test counted such a run's tick as lost).
#[tokio::test]
async fn the_audit_log_shows_a_write_to_a_runs_status_with_its_uid() {
    let env = common::env("audit").await;
    if env.plane.audit_log().is_none() {
        eprintln!("skipped: an existing cluster has no audit log of ours");
        return;
    }
    let jobs: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &common::job_resource());
    let job: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "counted"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}
    }))
    .unwrap();
    let uid = jobs.create(&PostParams::default(), &job).await.unwrap().uid().unwrap();
    let done = serde_json::json!({"status": {"succeeded": 1}});
    jobs.patch_status("counted", &PatchParams::default(), &Patch::Merge(&done))
        .await
        .unwrap();
    // The audit log is written before the answer (blocking mode): no wait.
    let status_writes = common::creations::events(&env, "jobs", "patch");
    assert!(
        status_writes.iter().any(
            |e| e["objectRef"]["subresource"] == "status" && e["responseObject"]["metadata"]["uid"] == uid.as_str()
        ),
        "no status write of {uid} in the audit log: {status_writes:?}"
    );
}
