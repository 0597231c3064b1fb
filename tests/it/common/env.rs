//! What each test gets (`TestEnv`): an admin client and a namespace of its own on the cluster,
//! with the project's CRDs installed; and `eventually`, the one way tests wait for a condition.
//! Every test gets a fresh `kube::Client` (clients are bound to the test's tokio runtime, so they
//! are never shared between tests).

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::Namespace, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::wait::{await_condition, conditions},
};
use serde::Deserialize as _;

use super::{ControlPlane, control_plane, start_local_plane_with, use_existing_cluster};

/// The repository's root (crds/, deploy/, tests/fixtures/ are read from there).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

static NS_COUNTER: AtomicU32 = AtomicU32::new(0);

/// What each test gets: an admin client and a namespace of its own.
pub struct TestEnv {
    pub client: Client,
    pub namespace: String,
    pub plane: &'static ControlPlane,
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // On a throw-away control plane the whole etcd goes away; on a real cluster clean up.
        if !use_existing_cluster() {
            return;
        }
        // A client of its own: `self.client` lives on the test's runtime, which is blocked here.
        let plane = self.plane;
        let ns = self.namespace.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = plane.admin_client().await;
                let _ = Api::<Namespace>::all(client).delete(&ns, &Default::default()).await;
            });
        })
        .join();
    }
}

/// Starts (or reuses) the control plane, installs the project's CRDs and creates a namespace.
pub async fn env(test_name: &str) -> TestEnv {
    let plane = tokio::task::spawn_blocking(control_plane).await.unwrap();
    env_on(plane, test_name).await
}

/// A control plane of this test's own, for tests that stop its API server or count its
/// requests (`None` with `USE_EXISTING_CLUSTER`: such tests need a plane they can control).
pub async fn private_env(test_name: &str) -> Option<TestEnv> {
    private_env_with(test_name, &[]).await
}

/// As `private_env`, with extra kube-apiserver flags.
pub async fn private_env_with(test_name: &str, apiserver_flags: &[&str]) -> Option<TestEnv> {
    if use_existing_cluster() {
        eprintln!("{test_name}: skipped on an existing cluster (it needs a control plane of its own)");
        return None;
    }
    let flags: Vec<String> = apiserver_flags.iter().map(|f| f.to_string()).collect();
    let plane = tokio::task::spawn_blocking(move || start_local_plane_with(flags))
        .await
        .unwrap();
    let plane: &'static ControlPlane = Box::leak(Box::new(plane));
    Some(env_on(plane, test_name).await)
}

async fn env_on(plane: &'static ControlPlane, test_name: &str) -> TestEnv {
    let client = plane.admin_client().await;
    install_crds(&client).await;
    let namespace = format!(
        "{}-{}-{}",
        sanitize(test_name),
        std::process::id() % 100_000,
        NS_COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": namespace, "labels": {"swf-operator-test": "true"}}
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    TestEnv {
        client,
        namespace,
        plane,
    }
}

/// `name` as a Kubernetes name part: lower case, alphanumerics and `-`, at most 40 characters.
pub(super) fn sanitize(name: &str) -> String {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.trim_matches('-').chars().take(40).collect()
}

/// Server-side applies every CRD in `crds/` (idempotent) and waits until each is established.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut paths: Vec<_> = std::fs::read_dir(repo_root().join("crds"))
        .expect("crds/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        apply_crd_yaml(&crds, &text).await;
    }
}

pub async fn apply_crd_yaml(crds: &Api<CustomResourceDefinition>, text: &str) {
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
        if value.is_null() {
            continue;
        }
        let crd: CustomResourceDefinition = serde_json::from_value(value).unwrap();
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply("swf-operator-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not established in 60s"))
        .unwrap();
    }
}

/// Installs the stand-in Argo Workflow CRD (tests/fixtures).
pub async fn install_argo_crd(client: &Client) {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/argo-workflow-crd.yaml")).unwrap();
    apply_crd_yaml(&Api::all(client.clone()), &text).await;
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
