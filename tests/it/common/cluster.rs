//! The cluster the tests run on: a throw-away local control plane (etcd + kube-apiserver from
//! the `swf-test-plane` crate) started once per test binary, one of a test's own
//! (`private_env`), or the current kubeconfig's cluster with `USE_EXISTING_CLUSTER=true`.
//! Assets come from `hack/kube-assets.sh` (honours `KUBEBUILDER_ASSETS`, else a cache).

use std::{
    path::PathBuf,
    process::Command,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use super::{
    ADMIN_TOKEN, USERS, kill_and_wait, plane,
    processes::{remove_at_exit, spawn_child},
    repo_root, token_for,
};

/// A control plane shared by all tests of one binary.
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    /// deploy/base's namespace, ServiceAccounts and RBAC, applied once per plane.
    pub(super) operator_rbac: tokio::sync::OnceCell<()>,
    pub(super) api_rbac: tokio::sync::OnceCell<()>,
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

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into())
}

pub(super) fn start_local_plane_with(apiserver_flags: Vec<String>) -> ControlPlane {
    let assets = plane::find_assets(&repo_root());
    let dir = tempfile::Builder::new()
        .prefix("swf-operator-test-")
        .tempdir()
        .unwrap()
        .keep();
    remove_at_exit(dir.clone());
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
    /// The local plane's files and ports; panics on an existing cluster (local planes only).
    pub(super) fn local_layout(&self) -> &plane::Layout {
        &self.local().layout
    }

    fn local(&self) -> &LocalPlane {
        self.local.as_ref().expect("a local plane")
    }

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

    /// Applies `files` of `deploy/base/` with kubectl (the operator's or the JobService's
    /// ServiceAccount and RBAC, exactly as deployed).
    pub(super) fn apply_deploy_base(&self, files: &[&str]) {
        let deploy = repo_root().join("deploy/base");
        for file in files {
            kubectl(self, &["apply", "-f", deploy.join(file).to_str().unwrap()]);
        }
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
        let local = self.local();
        if let Some(pid) = local.apiserver.lock().unwrap().take() {
            kill_and_wait(pid, libc::SIGKILL);
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the API server: its connections hang meanwhile.
    pub fn freeze_apiserver(&self, frozen: bool) {
        let local = self.local();
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
        let local = self.local();
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
        self.local().start_apiserver();
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
        plane::request_counts(&kubectl(self, &["get", "--raw=/metrics"]))
    }
}

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
