//! A long-lived local control plane for `make run` and manual testing, built from the same
//! definition as the test harness (the `swf-test-plane` crate, crates/test-plane/).
//!
//!   cargo run --example local-plane -- up       start it (idempotent); prints the kubeconfig
//!   cargo run --example local-plane -- down     stop it and delete its files
//!   cargo run --example local-plane -- status
//!
//! State lives in `$SWF_CLUSTER_DIR` (default `.cluster/` in the repository): pid files, logs,
//! certificates, etcd's data and `kubeconfig` (an admin token made at first start). Ports:
//! `$SWF_CLUSTER_API_PORT` (16443), `$SWF_CLUSTER_ETCD_PORT` (12379), `$SWF_CLUSTER_ETCD_PEER_PORT`
//! (12380). There is no kubelet or scheduler: pods never start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use swf_test_plane as plane;

fn env_port(name: &str, default: u16) -> u16 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn layout() -> plane::Layout {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    plane::Layout {
        dir: std::env::var_os("SWF_CLUSTER_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".cluster")),
        etcd_port: env_port("SWF_CLUSTER_ETCD_PORT", 12379),
        etcd_peer_port: env_port("SWF_CLUSTER_ETCD_PEER_PORT", 12380),
        api_port: env_port("SWF_CLUSTER_API_PORT", 16443),
    }
}

fn pid_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.pid"))
}

fn running(dir: &Path, name: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(dir, name)).ok()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// Starts `program` in its own session (it outlives this command and the terminal).
// The child is meant to outlive this command, which exits right after: nobody waits on it.
#[allow(clippy::zombie_processes)]
fn start(dir: &Path, name: &str, program: &Path, args: &[String]) {
    if let Some(pid) = running(dir, name) {
        eprintln!("cluster: {name} already running (pid {pid})");
        return;
    }
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new("setsid")
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    std::fs::write(pid_file(dir, name), child.id().to_string()).unwrap();
    eprintln!(
        "cluster: started {name} (pid {}, log {}/{name}.log)",
        child.id(),
        dir.display()
    );
}

fn up() {
    let layout = layout();
    let assets = plane::find_assets(Path::new(env!("CARGO_MANIFEST_DIR")));
    std::fs::create_dir_all(&layout.dir).unwrap();
    if !layout.kubeconfig().exists() {
        let token = uuid_like();
        plane::write_pki(&layout, &token, &[]);
    }
    let dir = &layout.dir;
    start(dir, "etcd", &assets.join("etcd"), &plane::etcd_args(&layout));
    start(
        dir,
        "kube-apiserver",
        &assets.join("kube-apiserver"),
        &plane::apiserver_args(&layout),
    );
    plane::wait_ready(&layout, Duration::from_secs(120));
    // Garbage collector: deleting a ScheduledWorkflow deletes its runs (owner references).
    let controllers = plane::controller_manager_args(&layout, "garbagecollector,namespace");
    start(
        dir,
        "kube-controller-manager",
        &assets.join("kube-controller-manager"),
        &controllers,
    );
    eprintln!("cluster: ready: export KUBECONFIG={}", layout.kubeconfig().display());
    println!("{}", layout.kubeconfig().display());
}

/// A random admin token (no crate needed: the kernel's UUID source).
fn uuid_like() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().replace('-', ""))
        .unwrap_or_else(|e| panic!("no random source: {e}"))
}

fn down() {
    let layout = layout();
    for name in ["kube-controller-manager", "kube-apiserver", "etcd"] {
        if let Some(pid) = running(&layout.dir, name) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            eprintln!("cluster: stopped {name}");
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let _ = std::fs::remove_dir_all(&layout.dir);
    eprintln!("cluster: removed {}", layout.dir.display());
    // kubectl falls back to localhost:8080 when its kubeconfig is gone: say why instead.
    if std::env::var_os("KUBECONFIG").is_some_and(|k| Path::new(&k) == layout.kubeconfig()) {
        eprintln!("cluster: this shell's KUBECONFIG names the removed plane: `unset KUBECONFIG` or `make cluster-up`");
    }
}

fn status() {
    let layout = layout();
    for name in ["etcd", "kube-apiserver", "kube-controller-manager"] {
        match running(&layout.dir, name) {
            Some(pid) => println!("{name}: running (pid {pid})"),
            None => println!("{name}: stopped"),
        }
    }
    println!("kubeconfig: {}", layout.kubeconfig().display());
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("up") => up(),
        Some("down") => down(),
        Some("status") => status(),
        _ => {
            eprintln!("usage: local-plane up|down|status");
            std::process::exit(2);
        }
    }
}
