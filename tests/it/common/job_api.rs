//! KFP's JobService (`src/api`) under test: started in this test process
//! (`start_job_api*`) or as a process of its own (`api_process`), with the identity and exactly
//! the RBAC of `deploy/base/api-rbac.yaml`; and the job bodies KFP's clients send it.

use std::{sync::Arc, time::Duration};

use kube::Client;
use serde_json::{Value, json};
use swf_operator::{
    api::{self, Limits, service::ApiSettings},
    serve::tls::Reloading,
};

use super::{OperatorProcess, TestEnv, admin_token, eventually, plane, service_account_token};

/// An Argo Workflow running busybox, as a KFP client sends it (a job's `workflow_manifest`).
pub fn workflow_manifest() -> String {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "hello-"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]}})
    .to_string()
}

/// A CreateJob body as KFP's clients send it (proto field names, int64 as strings): hourly, at
/// most one run at a time, owned by `namespace` when one is named (else the API's default).
pub fn kfp_job(name: &str, namespace: Option<&str>) -> Value {
    let refs: Vec<Value> = namespace
        .map(|ns| json!({"key": {"type": "NAMESPACE", "id": ns}, "relationship": "OWNER"}))
        .into_iter()
        .collect();
    json!({"name": name, "max_concurrency": "1", "trigger": {"periodic_schedule": {"interval_second": "3600"}},
        "resource_references": refs, "pipeline_spec": {"workflow_manifest": workflow_manifest()}})
}

/// Starts the JobService (HTTP + gRPC) in this process on free ports; returns their URLs.
pub async fn start_job_api(env: &TestEnv, default_namespace: &str) -> (String, String) {
    let settings = ApiSettings {
        default_namespace: Some(default_namespace.to_string()),
        ..Default::default()
    };
    start_job_api_with(env, settings, None).await
}

/// A client with the JobService's own identity and exactly the RBAC of
/// `deploy/base/api-rbac.yaml`.
pub async fn api_client(env: &TestEnv) -> Client {
    env.plane.client_with_token(&api_token(env).await).await
}

/// A token of the JobService's ServiceAccount (its RBAC applied to the plane first).
pub async fn api_token(env: &TestEnv) -> String {
    let plane = env.plane;
    plane
        .api_rbac
        .get_or_init(|| async {
            plane.apply_deploy_base(&["namespace.yaml", "api-rbac.yaml", "secrets.yaml"]);
        })
        .await;
    service_account_token(&env.client, "swf-system", "swf-operator-api").await
}

/// As `start_job_api`, with `settings`, optionally over TLS (then the URLs are https). The
/// API acts with its own ServiceAccount (`deploy/base/api-rbac.yaml`).
pub async fn start_job_api_with(env: &TestEnv, settings: ApiSettings, tls: Option<Arc<Reloading>>) -> (String, String) {
    start_job_api_tuned(env, settings, tls, Default::default()).await
}

/// As `start_job_api_with`, with other bounds (shorter timeouts, a smaller budget).
pub async fn start_job_api_tuned(
    env: &TestEnv,
    settings: ApiSettings,
    tls: Option<Arc<Reloading>>,
    limits: Limits,
) -> (String, String) {
    // As in a cluster: the API's own ServiceAccount, with exactly deploy/'s RBAC, is what it
    // impersonates users with (multi-user mode), so that RBAC is what the tests exercise.
    let mut base = env.plane.admin_config().await;
    base.auth_info = kube::config::AuthInfo {
        token: Some(api_token(env).await.into()),
        ..Default::default()
    };
    let own = api_client(env).await;
    let job_api = Arc::new(api::service::JobApi::new(base, own, settings));
    let (http_port, grpc_port) = (plane::free_port(), plane::free_port());
    let http: std::net::SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let grpc: std::net::SocketAddr = format!("127.0.0.1:{grpc_port}").parse().unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let ready = job_api.clone();
    tokio::spawn(async move {
        if let Err(e) = api::serve_with(job_api, Some(http), Some(grpc), tls, limits).await {
            panic!("JobService failed: {e:#}");
        }
    });
    eventually(
        Duration::from_secs(30),
        "JobService listening and its cache listed",
        || {
            let ready = ready.clone();
            async move {
                let http_up = tokio::net::TcpStream::connect(http).await.is_ok();
                let grpc_up = tokio::net::TcpStream::connect(grpc).await.is_ok();
                (http_up && grpc_up && ready.ready()).then_some(())
            }
        },
    )
    .await;
    (format!("{scheme}://{http}"), format!("{scheme}://{grpc}"))
}

/// The JobService as a process of its own (`swf-operator api`, plain HTTP and gRPC on free
/// loopback ports, serving only the test's namespace), with the API's ServiceAccount and the
/// RBAC of `deploy/base/api-rbac.yaml`; returned with its HTTP and gRPC URLs once its cache
/// has listed. Local planes only (it is SIGKILL-able and its memory can be read).
pub async fn api_process(env: &TestEnv, name: &str, extra: &[&str]) -> (OperatorProcess, String, String) {
    let http = format!("127.0.0.1:{}", plane::free_port());
    let grpc = format!("127.0.0.1:{}", plane::free_port());
    let mut args = vec![
        "api",
        "--api-addr",
        &http,
        "--grpc-addr",
        &grpc,
        "--api-plain-http",
        "--api-namespace",
        &env.namespace,
        "--api-default-namespace",
        &env.namespace,
    ];
    args.extend_from_slice(extra);
    let process = OperatorProcess::spawn(env, name, &api_token(env).await, &args);
    let (http, grpc) = (format!("http://{http}"), format!("http://{grpc}"));
    let admin = admin_token(env).await;
    eventually(Duration::from_secs(60), "the API process answering", || async {
        let resp = reqwest::Client::new()
            .get(format!("{http}/apis/v1beta1/jobs"))
            .bearer_auth(&admin)
            .send()
            .await
            .ok()?;
        resp.status().is_success().then_some(())
    })
    .await;
    (process, http, grpc)
}
