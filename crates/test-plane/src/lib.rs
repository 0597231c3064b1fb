//! The one definition of the local control plane (etcd + kube-apiserver, and
//! kube-controller-manager's garbage collector and namespace controller): certificates,
//! tokens, flags, kubeconfig, readiness. Used by the integration tests (tests/it/common, which
//! start one plane per test binary), by `make cluster-up` (examples/local-plane.rs, a
//! long-lived plane in `.cluster/`) and by `make bench` (examples/bench/, a fresh plane per
//! scenario). How the processes are started and stopped is up to each.

use std::{
    collections::{BTreeMap, BTreeSet},
    hash::{BuildHasher, Hasher},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

/// Where the plane's files go and how it is reached.
#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
    pub etcd_port: u16,
    pub etcd_peer_port: u16,
    pub api_port: u16,
}

impl Layout {
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
    /// Where `audit_args` has the API server write its audit log.
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }
    fn file(&self, name: &str) -> String {
        self.dir.join("pki").join(name).display().to_string()
    }
}

/// A free loopback port, below the kernel's ephemeral range. A port from `bind(:0)` is
/// ephemeral: between our check and the server's bind, any outgoing connection on the machine
/// may take it as its local port (CI saw kube-apiserver fail with "address already in use").
/// Ports below the range are never picked for outgoing connections; the ones handed out here
/// are remembered, so one process never hands out the same port twice.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_001));
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    // Random start, so separate processes (a test binary, a benchmark) rarely try the same port.
    let start = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let span = u64::from(high - low);
    for i in 0..span {
        let port = low + ((start + i) % span) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// The directory holding `etcd`, `kube-apiserver` and `kube-controller-manager`, from
/// `hack/kube-assets.sh` (which honours `$KUBEBUILDER_ASSETS`, else builds or reuses a cache).
pub fn find_assets(repo_root: &Path) -> PathBuf {
    let out = Command::new("bash")
        .arg(repo_root.join("hack/kube-assets.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run hack/kube-assets.sh: {e}"));
    assert!(
        out.status.success(),
        "hack/kube-assets.sh failed; see its message above"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
}

/// Writes the CA, serving certificate, service-account keys and the token file (`admin_token`
/// in `system:masters`; each of `users` with no group) under `<dir>/pki`, and the admin
/// kubeconfig. Returns the CA certificate (PEM).
pub fn write_pki(layout: &Layout, admin_token: &str, users: &[(&str, &str)]) -> String {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let pki = layout.dir.join("pki");
    std::fs::create_dir_all(&pki).unwrap_or_else(|e| panic!("create {}: {e}", pki.display()));
    let fail = |what: &str, e: rcgen::Error| -> ! { panic!("{what}: {e}") };
    let ca_key = KeyPair::generate().unwrap_or_else(|e| fail("CA key", e));
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail("CA params", e));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "swf-operator-local-ca");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap_or_else(|e| fail("CA cert", e));
    let issuer = Issuer::new(ca_params, ca_key);
    let serving_key = KeyPair::generate().unwrap_or_else(|e| fail("serving key", e));
    let serving = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .and_then(|p| p.signed_by(&serving_key, &issuer))
        .unwrap_or_else(|e| fail("serving cert", e));
    let sa_key = KeyPair::generate().unwrap_or_else(|e| fail("service account key", e));
    let mut tokens = format!("{admin_token},swf-admin,swf-admin,\"system:masters\"\n");
    for (user, token) in users {
        tokens.push_str(&format!("{token},{user},{user}\n"));
    }
    let files = [
        ("ca.crt", ca_cert.pem()),
        ("serving.crt", serving.pem()),
        ("serving.key", serving_key.serialize_pem()),
        ("sa.key", sa_key.serialize_pem()),
        ("sa.pub", sa_key.public_key_pem()),
        ("tokens.csv", tokens),
    ];
    for (name, content) in files {
        std::fs::write(pki.join(name), content).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
    write_kubeconfig(&layout.kubeconfig(), &layout.server(), &ca_cert.pem(), admin_token);
    ca_cert.pem()
}

pub fn write_kubeconfig(path: &Path, server: &str, ca_pem: &str, token: &str) {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: swf-local\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: swf-admin\n  user:\n    token: {token}\ncontexts:\n- name: swf-local\n  context:\n    cluster: swf-local\n    user: swf-admin\ncurrent-context: swf-local\n"
    );
    std::fs::write(path, yaml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

pub fn etcd_args(layout: &Layout) -> Vec<String> {
    let (client, peer) = (layout.etcd_port, layout.etcd_peer_port);
    vec![
        "--name=swf-local".into(),
        format!("--data-dir={}", layout.dir.join("etcd").display()),
        format!("--listen-client-urls=http://127.0.0.1:{client}"),
        format!("--advertise-client-urls=http://127.0.0.1:{client}"),
        format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-cluster=swf-local=http://127.0.0.1:{peer}"),
        "--log-level=warn".into(),
    ]
}

pub fn apiserver_args(layout: &Layout) -> Vec<String> {
    vec![
        format!("--etcd-servers=http://127.0.0.1:{}", layout.etcd_port),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={}", layout.api_port),
        "--insecure-port=0".into(),
        format!("--cert-dir={}", layout.dir.join("certs").display()),
        format!("--tls-cert-file={}", layout.file("serving.crt")),
        format!("--tls-private-key-file={}", layout.file("serving.key")),
        format!("--client-ca-file={}", layout.file("ca.crt")),
        format!("--token-auth-file={}", layout.file("tokens.csv")),
        format!("--service-account-key-file={}", layout.file("sa.pub")),
        format!("--service-account-signing-key-file={}", layout.file("sa.key")),
        "--service-account-issuer=https://kubernetes.default.svc".into(),
        "--authorization-mode=RBAC".into(),
        "--service-cluster-ip-range=10.96.0.0/24".into(),
        "--disable-admission-plugins=ServiceAccount".into(),
        "--allow-privileged=true".into(),
        "--v=1".into(),
    ]
}

/// The API server's audit log of every write to runs (with the objects, so their uids and
/// labels), one JSON event per line: tests count runs from it, so a run created and deleted
/// before anyone looked still counts (`tests/it/common/creations.rs`). Writes to the status
/// subresource are logged too: a create answered 500 to a client that was SIGKILLed can still
/// be stored, and when its delete is answered 500 as well, a test marking the run finished
/// is the only write that shows its uid (a tick counted as lost, seen in the crash test). Writes
/// the policy into the plane's directory and returns the flags.
pub fn audit_args(layout: &Layout) -> Vec<String> {
    let policy = layout.dir.join("audit-policy.yaml");
    let rules = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: RequestResponse
    verbs: [create, delete, patch, update]
    resources:
      - group: batch
        resources: [jobs, jobs/status]
      - group: argoproj.io
        resources: [workflows, workflows/status]
  - level: None
"#;
    std::fs::write(&policy, rules).unwrap_or_else(|e| panic!("write {}: {e}", policy.display()));
    vec![
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", layout.audit_log().display()),
        "--audit-log-format=json".into(),
        "--audit-log-mode=blocking".into(),
    ]
}

/// `controllers` e.g. `garbagecollector,namespace`.
pub fn controller_manager_args(layout: &Layout, controllers: &str) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", layout.kubeconfig().display()),
        format!("--controllers={controllers}"),
        "--leader-elect=false".into(),
        "--port=0".into(),
        "--secure-port=0".into(),
        "--use-service-account-credentials=false".into(),
    ]
}

/// Waits until `/readyz` answers OK (through kubectl, with the admin kubeconfig), or panics
/// after `timeout` with the end of the API server's log.
pub fn wait_ready(layout: &Layout, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let out = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", layout.kubeconfig().display()))
            .args(["get", "--raw=/readyz"])
            .output();
        if out.is_ok_and(|o| o.status.success()) {
            return;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(layout.dir.join("kube-apiserver.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "kube-apiserver at {} not ready after {timeout:?}; last log lines (newest first):\n{}",
                layout.server(),
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The API server's request counter (`apiserver_request_total`) summed by (verb, resource),
/// from the text of its `/metrics`.
pub fn request_counts(metrics: &str) -> BTreeMap<(String, String), f64> {
    let mut counts = BTreeMap::new();
    for line in metrics.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_counts_sum_over_the_other_labels() {
        let metrics = r#"# HELP apiserver_request_total Counter of apiserver requests
apiserver_request_total{code="200",component="apiserver",resource="jobs",verb="LIST"} 3
apiserver_request_total{code="500",component="apiserver",resource="jobs",verb="LIST"} 2
apiserver_request_total{code="201",component="apiserver",resource="jobs",verb="POST"} 1
apiserver_request_duration_seconds_count{resource="jobs",verb="LIST"} 99
"#;
        let counts = request_counts(metrics);
        let key = |verb: &str| (verb.to_string(), "jobs".to_string());
        assert_eq!(counts.len(), 2, "{counts:?}");
        assert_eq!(counts[&key("LIST")], 5.0);
        assert_eq!(counts[&key("POST")], 1.0);
    }
}
