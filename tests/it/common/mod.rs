//! Test harness: one real control plane (etcd + kube-apiserver) per test binary.
//!
//! - Assets come from `hack/kube-assets.sh` (honours `KUBEBUILDER_ASSETS`, else a cache).
//! - `USE_EXISTING_CLUSTER=true` uses the current kubeconfig instead of starting anything.
//! - Every test gets its own namespace and a fresh `kube::Client` (clients are bound to the
//!   test's tokio runtime, so they are never shared between tests).
//! - Child processes die with the test process (`PR_SET_PDEATHSIG` from a thread that lives as
//!   long as the process) and an `atexit` hook stops them and removes the temp dir, so a
//!   panicking test cannot leak a control plane.

pub mod browser;
pub mod creations;
pub use swf_test_plane as plane;
pub mod swf;

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::Namespace, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::{await_condition, conditions},
};

/// Static users in the token file. `ADMIN` is in `system:masters`; the others have no RBAC
/// until a test grants it.
pub const ADMIN_TOKEN: &str = "swf-admin-token";
pub const USERS: &[&str] = &["alice", "bob", "carol"];

/// The static token of a local-plane user (see `user_token` for a portable one).
pub fn token_for(user: &str) -> String {
    format!("{user}-token")
}

/// Namespace of the ServiceAccounts that stand in for users on an existing cluster.
const TEST_USERS_NAMESPACE: &str = "swf-operator-test-users";

/// The name RBAC knows `user` by: the static user on a local plane, a ServiceAccount's user
/// name on an existing cluster (which has no token file of ours).
pub fn user_name(user: &str) -> String {
    if use_existing_cluster() {
        format!("system:serviceaccount:{TEST_USERS_NAMESPACE}:{user}")
    } else {
        user.to_string()
    }
}

/// A bearer token with cluster-admin rights on either kind of control plane (on an existing
/// cluster: a ServiceAccount bound to `cluster-admin`, since its kubeconfig may hold no token).
pub async fn admin_token(env: &TestEnv) -> String {
    if !use_existing_cluster() {
        return ADMIN_TOKEN.to_string();
    }
    let token = user_token(env, "swf-test-admin").await;
    let binding: k8s_openapi::api::rbac::v1::ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "swf-operator-test-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "swf-test-admin", "namespace": TEST_USERS_NAMESPACE}]
    }))
    .unwrap();
    let _ = Api::all(env.client.clone())
        .create(&PostParams::default(), &binding)
        .await;
    token
}

/// A bearer token for `user`, with no RBAC of its own, on either kind of control plane.
pub async fn user_token(env: &TestEnv, user: &str) -> String {
    if !use_existing_cluster() {
        return token_for(user);
    }
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": TEST_USERS_NAMESPACE}})).unwrap();
    let _ = Api::<Namespace>::all(env.client.clone())
        .create(&PostParams::default(), &ns)
        .await;
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), TEST_USERS_NAMESPACE);
    let sa: ServiceAccount = serde_json::from_value(serde_json::json!({"metadata": {"name": user}})).unwrap();
    let _ = sas.create(&PostParams::default(), &sa).await;
    let request: TokenRequest =
        serde_json::from_value(serde_json::json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    sas.create_token_request(user, &PostParams::default(), &request)
        .await
        .expect("token request")
        .status
        .unwrap()
        .token
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A control plane shared by all tests of one binary.
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    /// deploy/base's namespace, ServiceAccounts and RBAC, applied once per plane.
    operator_rbac: tokio::sync::OnceCell<()>,
    api_rbac: tokio::sync::OnceCell<()>,
    /// `None` when `USE_EXISTING_CLUSTER=true`.
    local: Option<LocalPlane>,
}

struct LocalPlane {
    layout: plane::Layout,
    assets: PathBuf,
    apiserver_flags: Vec<String>,
    apiserver: Mutex<Option<u32>>,
    garbage_collector: OnceLock<()>,
}

static PLANE: OnceLock<ControlPlane> = OnceLock::new();
static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());
static TEMP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

pub fn use_existing_cluster() -> bool {
    std::env::var("USE_EXISTING_CLUSTER").is_ok_and(|v| v == "true" || v == "1")
}

/// The control plane of this test binary, started on first use.
pub fn control_plane() -> &'static ControlPlane {
    PLANE.get_or_init(|| {
        if use_existing_cluster() {
            let kubeconfig = std::env::var_os("KUBECONFIG")
                .map(PathBuf::from)
                .unwrap_or_else(|| dirs_home().join(".kube/config"));
            return ControlPlane {
                kubeconfig,
                operator_rbac: Default::default(),
                api_rbac: Default::default(),
                local: None,
            };
        }
        start_local_plane_with(Vec::new())
    })
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

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into())
}

extern "C" fn cleanup_at_exit() {
    if let Ok(mut children) = CHILDREN.lock() {
        for child in children.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    // SWF_TEST_KEEP=1 keeps the planes' directories (logs, audit logs) to look at afterwards.
    if std::env::var_os("SWF_TEST_KEEP").is_some() {
        return;
    }
    if let Ok(dirs) = TEMP_DIRS.lock() {
        for dir in dirs.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

unsafe extern "C" {
    fn atexit(cb: extern "C" fn()) -> i32;
}

type SpawnRequest = (Command, PathBuf, std::sync::mpsc::Sender<u32>);

/// Children are spawned by one thread that lives as long as the process: PR_SET_PDEATHSIG
/// fires when the *spawning thread* ends, and test threads end early.
static SPAWNER: OnceLock<Mutex<std::sync::mpsc::Sender<SpawnRequest>>> = OnceLock::new();

fn spawn_child(cmd: Command, log: &Path) -> u32 {
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("spawner".into())
            .spawn(move || {
                for (cmd, log, reply) in rx {
                    let _ = reply.send(spawn_here(cmd, &log));
                }
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the spawner thread");
        Mutex::new(tx)
    });
    let (reply, pid) = std::sync::mpsc::channel();
    spawner.lock().unwrap().send((cmd, log.to_path_buf(), reply)).unwrap();
    pid.recv().expect("the spawner answers")
}

fn spawn_here(mut cmd: Command, log: &Path) -> u32 {
    // Appended to, so a process restarted under the same name keeps its earlier lines.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log");
    cmd.stdout(log.try_clone().unwrap()).stderr(log).stdin(Stdio::null());
    unsafe {
        cmd.pre_exec(|| {
            // Kill the child if this process dies, however it dies.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id();
    CHILDREN.lock().unwrap().push(child);
    pid
}

/// Sends `signal` to `pid` and waits until it is gone.
pub fn kill_and_wait(pid: u32, signal: i32) {
    let pid = pid as i32;
    unsafe {
        libc::kill(pid, signal);
    }
    let mut children = CHILDREN.lock().unwrap();
    if let Some(child) = children.iter_mut().find(|c| c.id() as i32 == pid) {
        let _ = child.wait();
    }
    children.retain(|c| c.id() as i32 != pid);
}

fn start_local_plane_with(apiserver_flags: Vec<String>) -> ControlPlane {
    let assets = plane::find_assets(&repo_root());
    let dir = tempfile::Builder::new()
        .prefix("swf-operator-test-")
        .tempdir()
        .unwrap()
        .keep();
    let mut dirs = TEMP_DIRS.lock().unwrap();
    if dirs.is_empty() {
        unsafe {
            atexit(cleanup_at_exit);
        }
    }
    dirs.push(dir.clone());
    drop(dirs);
    let layout = plane::Layout {
        dir: dir.clone(),
        etcd_port: plane::free_port(),
        etcd_peer_port: plane::free_port(),
        api_port: plane::free_port(),
    };
    let tokens: Vec<(String, String)> = USERS.iter().map(|u| (u.to_string(), token_for(u))).collect();
    let users: Vec<(&str, &str)> = tokens.iter().map(|(u, t)| (u.as_str(), t.as_str())).collect();
    plane::write_pki(&layout, ADMIN_TOKEN, &users);
    let mut etcd = Command::new(assets.join("etcd"));
    etcd.args(plane::etcd_args(&layout));
    spawn_child(etcd, &dir.join("etcd.log"));
    let local = LocalPlane {
        layout,
        assets,
        apiserver_flags,
        apiserver: Mutex::new(None),
        garbage_collector: OnceLock::new(),
    };
    local.start_apiserver();
    ControlPlane {
        kubeconfig: local.layout.kubeconfig(),
        operator_rbac: Default::default(),
        api_rbac: Default::default(),
        local: Some(local),
    }
}

impl LocalPlane {
    fn start_apiserver(&self) {
        let mut apiserver = Command::new(self.assets.join("kube-apiserver"));
        apiserver
            .args(plane::apiserver_args(&self.layout))
            .args(plane::audit_args(&self.layout))
            .args(&self.apiserver_flags);
        let pid = spawn_child(apiserver, &self.layout.dir.join("kube-apiserver.log"));
        *self.apiserver.lock().unwrap() = Some(pid);
        plane::wait_ready(&self.layout, Duration::from_secs(120));
    }
}

impl ControlPlane {
    /// A client with the kubeconfig's (admin) identity.
    pub async fn admin_client(&self) -> Client {
        let kc = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig");
        Client::try_from(config).expect("client")
    }

    /// A client that authenticates with `token` (a static user's, or a service account's).
    pub async fn client_with_token(&self, token: &str) -> Client {
        let mut config = self.admin_config().await;
        config.auth_info.token = Some(token.to_string().into());
        config.auth_info.token_file = None;
        Client::try_from(config).expect("client")
    }

    pub async fn admin_config(&self) -> Config {
        let kc = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig")
    }

    /// The API server's audit log (`plane::audit_args`); `None` on an existing cluster.
    pub fn audit_log(&self) -> Option<PathBuf> {
        self.local.as_ref().map(|l| l.layout.audit_log())
    }

    /// Starts `kube-controller-manager --controllers=garbagecollector` once (local planes only;
    /// an existing cluster is assumed to run its own).
    pub fn ensure_garbage_collector(&self) {
        let Some(local) = &self.local else { return };
        local.garbage_collector.get_or_init(|| {
            let mut cmd = Command::new(local.assets.join("kube-controller-manager"));
            cmd.args(plane::controller_manager_args(&local.layout, "garbagecollector"));
            spawn_child(cmd, &local.layout.dir.join("kube-controller-manager.log"));
        });
    }

    /// Stops the API server (etcd keeps its data); local planes only.
    pub fn stop_apiserver(&self) {
        let local = self.local.as_ref().expect("a local plane");
        if let Some(pid) = local.apiserver.lock().unwrap().take() {
            kill_and_wait(pid, libc::SIGKILL);
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the API server: its connections hang meanwhile.
    pub fn freeze_apiserver(&self, frozen: bool) {
        let local = self.local.as_ref().expect("a local plane");
        if let Some(pid) = *local.apiserver.lock().unwrap() {
            let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
            unsafe {
                libc::kill(pid as i32, signal);
            }
        }
    }

    /// Writes a key to etcd (so its revision moves past every watch's) and compacts its
    /// history up to there: a watch resuming from an older resourceVersion gets 410 Gone.
    /// Through etcd's HTTP gateway. Returns the revision.
    pub async fn compact_etcd(&self) -> i64 {
        use base64::Engine;
        let local = self.local.as_ref().expect("a local plane");
        let url = format!("http://127.0.0.1:{}", local.layout.etcd_port);
        let http = reqwest::Client::new();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let put: serde_json::Value = http
            .post(format!("{url}/v3/kv/put"))
            .json(&serde_json::json!({"key": b64("/swf-operator-test/bump"), "value": b64("x")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let revision: i64 = put["header"]["revision"].as_str().unwrap().parse().unwrap();
        let done = http
            .post(format!("{url}/v3/kv/compaction"))
            .json(&serde_json::json!({"revision": revision.to_string(), "physical": true}))
            .send()
            .await
            .unwrap();
        assert!(
            done.status().is_success(),
            "etcd compaction: {}",
            done.text().await.unwrap_or_default()
        );
        revision
    }

    /// Starts the API server again on the same etcd and port, and waits until it is ready.
    pub fn start_apiserver(&self) {
        self.local.as_ref().expect("a local plane").start_apiserver();
    }

    /// How many requests on `resource` the API server answered with `code`.
    pub fn responses_with_code(&self, resource: &str, code: u16) -> f64 {
        let text = kubectl(self, &["get", "--raw=/metrics"]);
        text.lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
            .filter(|l| l.contains(&format!("code=\"{code}\"")) && l.contains(&format!("resource=\"{resource}\"")))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .fold(0.0, |a, b| a + b)
    }

    /// The API server's request counter (`apiserver_request_total`) summed by verb and
    /// resource, from its `/metrics`.
    pub fn request_counts(&self) -> std::collections::BTreeMap<(String, String), f64> {
        let text = kubectl(self, &["get", "--raw=/metrics"]);
        let mut counts = std::collections::BTreeMap::new();
        for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
            let label = |name: &str| {
                line.split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_default()
                    .to_string()
            };
            let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            *counts.entry((label("verb"), label("resource"))).or_insert(0.0) += value;
        }
        counts
    }
}

static NS_COUNTER: AtomicU32 = AtomicU32::new(0);

/// What each test gets: an admin client and a namespace of its own.
pub struct TestEnv {
    pub client: Client,
    pub namespace: String,
    pub plane: &'static ControlPlane,
}

/// Starts (or reuses) the control plane, installs the project's CRDs and creates a namespace.
pub async fn env(test_name: &str) -> TestEnv {
    let plane = tokio::task::spawn_blocking(control_plane).await.unwrap();
    env_on(plane, test_name).await
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

fn sanitize(name: &str) -> String {
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

use serde::Deserialize as _;

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

// ---- Operator helpers -------------------------------------------------------------------

use k8s_openapi::api::{authentication::v1::TokenRequest, core::v1::ServiceAccount};
use kube::api::{ApiResource, DynamicObject, ListParams};

/// Runs `kubectl` against the plane with the admin kubeconfig; panics with its output on failure.
pub fn kubectl(plane: &ControlPlane, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", plane.kubeconfig.display()))
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A client that acts as the operator's ServiceAccount with exactly the RBAC in `deploy/base/`
/// (a real token from the TokenRequest API), to prove the operator needs no more.
pub async fn operator_client(env: &TestEnv) -> Client {
    env.plane.client_with_token(&operator_token(env).await).await
}

/// A token of the operator's ServiceAccount (deploy/base/ applied to the plane first).
pub async fn operator_token(env: &TestEnv) -> String {
    let plane = env.plane;
    plane
        .operator_rbac
        .get_or_init(|| async {
            let deploy = repo_root().join("deploy/base");
            for file in ["namespace.yaml", "serviceaccount.yaml", "rbac.yaml", "secrets.yaml"] {
                kubectl(plane, &["apply", "-f", deploy.join(file).to_str().unwrap()]);
            }
        })
        .await;
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), "swf-system");
    let request: TokenRequest =
        serde_json::from_value(serde_json::json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    sas.create_token_request("swf-operator", &PostParams::default(), &request)
        .await
        .expect("token request")
        .status
        .expect("token status")
        .token
}

fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The `swf-operator` binary, run as a process (SIGKILL-able), as the operator's
/// ServiceAccount, on a local plane. Its output goes to `<plane dir>/<name>.log`.
pub struct OperatorProcess {
    pub pid: u32,
    pub name: String,
}

impl OperatorProcess {
    /// Watching only the test's namespace.
    pub async fn start(env: &TestEnv, name: &str, extra: &[&str]) -> OperatorProcess {
        let scope = ["--namespace", env.namespace.as_str()];
        let args: Vec<&str> = scope.iter().chain(extra).copied().collect();
        Self::start_with(env, name, &args).await
    }

    /// With exactly `args` after `run` (no namespace: every namespace).
    pub async fn start_with(env: &TestEnv, name: &str, args: &[&str]) -> OperatorProcess {
        let metrics = format!("--metrics-addr=127.0.0.1:{}", plane::free_port());
        let mut all = vec!["run", metrics.as_str(), "--watch-kinds", "batch/v1/Job"];
        all.extend_from_slice(args);
        Self::spawn(env, name, &operator_token(env).await, &all)
    }

    /// The binary with `args`, as the identity of `token`.
    pub fn spawn(env: &TestEnv, name: &str, token: &str, args: &[&str]) -> OperatorProcess {
        let local = env.plane.local.as_ref().expect("a local plane");
        let kubeconfig = local.layout.dir.join(format!("{name}.kubeconfig"));
        let ca = std::fs::read_to_string(local.layout.dir.join("pki/ca.crt")).unwrap();
        plane::write_kubeconfig(&kubeconfig, &local.layout.server(), &ca, token);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_swf-operator"));
        cmd.args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAME", name)
            .env("RUST_LOG", "info,kube=warn");
        let pid = spawn_child(cmd, &local.layout.dir.join(format!("{name}.log")));
        OperatorProcess {
            pid,
            name: name.to_string(),
        }
    }

    /// What it has logged so far (`<plane dir>/<name>.log`), without terminal colour codes.
    pub fn log(&self, env: &TestEnv) -> String {
        let local = env.plane.local.as_ref().expect("a local plane");
        let text = std::fs::read_to_string(local.layout.dir.join(format!("{}.log", self.name))).unwrap_or_default();
        let mut plain = String::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // An escape sequence runs up to its final letter (`ESC [ 3 m`).
                chars.by_ref().find(|c| c.is_ascii_alphabetic());
            } else {
                plain.push(c);
            }
        }
        plain
    }

    /// Its resident memory now (VmRSS), in bytes.
    pub fn rss(&self) -> Option<u64> {
        proc_status_kb(self.pid, "VmRSS:").map(|kb| kb * 1024)
    }

    pub fn kill(&self, signal: i32) {
        kill_and_wait(self.pid, signal);
    }

    /// Its peak resident memory (VmHWM), in bytes; `None` once it has exited.
    pub fn peak_rss(&self) -> Option<u64> {
        // A zombie has no memory lines: the process has exited.
        proc_status_kb(self.pid, "VmHWM:").map(|kb| kb * 1024)
    }
}

/// Installs the stand-in Argo Workflow CRD (tests/fixtures).
pub async fn install_argo_crd(client: &Client) {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/argo-workflow-crd.yaml")).unwrap();
    apply_crd_yaml(&Api::all(client.clone()), &text).await;
}

pub fn workflow_resource() -> ApiResource {
    ApiResource {
        group: "argoproj.io".into(),
        version: "v1alpha1".into(),
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Workflow".into(),
        plural: "workflows".into(),
    }
}

pub fn job_resource() -> ApiResource {
    ApiResource {
        group: "batch".into(),
        version: "v1".into(),
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        plural: "jobs".into(),
    }
}

/// All objects of `ar` in the namespace, sorted by name.
pub async fn list_runs(client: &Client, ns: &str, ar: &ApiResource) -> Vec<DynamicObject> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    let mut items = api.list(&ListParams::default()).await.unwrap().items;
    items.sort_by_key(|o| o.name_any());
    items
}

/// The operator, in this process, watching only the test's namespace, with the identity and
/// exactly the RBAC of `deploy/base/` (its ServiceAccount's token). Abort the handle to stop it
/// (everything it started stops with it).
pub async fn start_operator(env: &TestEnv) -> tokio::task::JoinHandle<()> {
    start_operator_with(operator_client(env).await, &env.namespace, |_| {})
}

pub fn start_operator_with(
    client: Client,
    namespace: &str,
    tune: impl FnOnce(&mut swf_operator::controller::Settings),
) -> tokio::task::JoinHandle<()> {
    Operator::start(client, namespace, tune).task
}

/// A running operator, with its health and metrics.
pub struct Operator {
    pub task: tokio::task::JoinHandle<()>,
    pub health: swf_operator::serve::Health,
    pub metrics: std::sync::Arc<swf_operator::serve::metrics::Metrics>,
}

impl Operator {
    /// Reconcile passes it has finished so far (`swf_reconciles_total`).
    pub fn passes(&self) -> f64 {
        self.gauge("swf_reconciles_total")
    }

    fn gauge(&self, name: &str) -> f64 {
        self.metrics
            .render()
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }

    /// One more pass of `name` has finished and every event queued so far is published (or
    /// dropped): counting events after this is not a race with the publisher.
    pub async fn settle(&self, env: &TestEnv, name: &str) {
        self.one_more_pass(env, name).await;
        eventually(swf::WAIT, "events published", || async {
            (self.gauge("swf_events_pending") == 0.0).then_some(())
        })
        .await;
    }

    /// Wakes a pass for `name` (a new `spec.description`: the operator passes on spec changes,
    /// and ignores annotations that are not its own) and waits until one more pass has finished:
    /// a negative check ("no second run") made after it is not a guess about time.
    pub async fn one_more_pass(&self, env: &TestEnv, name: &str) {
        let before = self.passes();
        let poke = serde_json::json!({"spec": {"description": format!("poked after {before} passes")}});
        swf::swfs(env)
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&poke),
            )
            .await
            .unwrap();
        eventually(swf::WAIT, "one more pass", || async {
            (self.passes() > before).then_some(())
        })
        .await;
    }

    pub fn start(
        client: Client,
        namespace: &str,
        tune: impl FnOnce(&mut swf_operator::controller::Settings),
    ) -> Operator {
        use swf_operator::{
            controller::{self, Parts, Settings},
            model::runkind::RunKind,
        };
        let mut settings = Settings::new(
            Some(namespace.to_string()),
            "UTC",
            vec![RunKind::argo_workflow(), RunKind::parse("batch/v1", "Job")],
        );
        tune(&mut settings);
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let health = swf_operator::serve::Health::default();
        let metrics = std::sync::Arc::new(swf_operator::serve::metrics::Metrics::default());
        let parts = Parts {
            client,
            settings,
            metrics: metrics.clone(),
            health: health.clone(),
            lease: None,
            identity: "test".into(),
        };
        let task = tokio::spawn(async move {
            if let Err(e) = controller::run(parts, futures::future::pending()).await {
                panic!("operator failed: {e:#}");
            }
        });
        Operator { task, health, metrics }
    }
}

// ---- JobService helpers -----------------------------------------------------------------

/// Starts the JobService (HTTP + gRPC) in this process on free ports; returns their URLs.
pub async fn start_job_api(env: &TestEnv, default_namespace: &str) -> (String, String) {
    let settings = swf_operator::api::service::ApiSettings {
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
            let deploy = repo_root().join("deploy/base");
            for file in ["namespace.yaml", "api-rbac.yaml", "secrets.yaml"] {
                kubectl(plane, &["apply", "-f", deploy.join(file).to_str().unwrap()]);
            }
        })
        .await;
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), "swf-system");
    let request: TokenRequest =
        serde_json::from_value(serde_json::json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    sas.create_token_request("swf-operator-api", &PostParams::default(), &request)
        .await
        .expect("token request")
        .status
        .expect("token status")
        .token
}

/// As `start_job_api`, with `settings`, optionally over TLS (then the URLs are https). The
/// API acts with its own ServiceAccount (`deploy/base/api-rbac.yaml`).
pub async fn start_job_api_with(
    env: &TestEnv,
    settings: swf_operator::api::service::ApiSettings,
    tls: Option<std::sync::Arc<swf_operator::serve::tls::Reloading>>,
) -> (String, String) {
    start_job_api_tuned(env, settings, tls, Default::default()).await
}

/// As `start_job_api_with`, with other bounds (shorter timeouts, a smaller budget).
pub async fn start_job_api_tuned(
    env: &TestEnv,
    settings: swf_operator::api::service::ApiSettings,
    tls: Option<std::sync::Arc<swf_operator::serve::tls::Reloading>>,
    limits: swf_operator::api::Limits,
) -> (String, String) {
    use swf_operator::api;
    // As in a cluster: the API's own ServiceAccount, with exactly deploy/'s RBAC, is what it
    // impersonates users with (multi-user mode), so that RBAC is what the tests exercise.
    let mut base = env.plane.admin_config().await;
    base.auth_info = kube::config::AuthInfo {
        token: Some(api_token(env).await.into()),
        ..Default::default()
    };
    let own = api_client(env).await;
    let job_api = std::sync::Arc::new(api::service::JobApi::new(base, own, settings));
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

/// The Python with KFP's clients: the venv `make test-deps` makes, else the machine's.
pub fn python() -> PathBuf {
    let venv = repo_root().join("target/py/bin/python3");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

/// Runs `command` to its end and returns what it printed, or kills it and panics after `limit`:
/// a client that hangs fails its test instead of hanging the suite.
pub async fn output_within(mut command: Command, limit: Duration) -> std::process::Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let waited = tokio::task::spawn_blocking(move || rx.recv_timeout(limit))
        .await
        .unwrap();
    match waited {
        Ok(output) => output.unwrap_or_else(|e| panic!("{command:?}: {e}")),
        Err(_) => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{command:?} did not finish within {limit:?}");
        }
    }
}

/// Grants `user` full rights on ScheduledWorkflows in `namespace` (a Role + RoleBinding).
pub async fn grant_swf_access(client: &Client, namespace: &str, user: &str) {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let object_name = format!("swf-{}", sanitize(user));
    let role: Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": object_name},
        "rules": [{"apiGroups": ["kubeflow.org"], "resources": ["scheduledworkflows"],
                   "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": object_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": object_name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user_name(user)}]
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
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

impl OperatorProcess {
    /// Resets its peak resident memory (VmHWM) to what it uses now, so `peak_rss` reports the
    /// peak of what follows (Linux' `clear_refs`, value 5).
    pub fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").unwrap();
    }
}
