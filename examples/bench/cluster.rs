//! A fresh control plane per scenario (the test harness's definition, crates/test-plane/),
//! the processes started on it, and what `/proc` and the API server's `/metrics` say about them.

use std::{
    collections::BTreeMap,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use swf_test_plane as plane;

const TOKEN: &str = "bench-admin-token";

pub struct Cluster {
    pub layout: plane::Layout,
    pub assets: PathBuf,
    children: Vec<(String, Child)>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// etcd and kube-apiserver on free loopback ports, in a temporary directory.
    pub fn start(assets: &Path) -> Cluster {
        let dir = tempfile::Builder::new().prefix("swf-bench-").tempdir().unwrap();
        let layout = plane::Layout {
            dir: dir.path().to_path_buf(),
            etcd_port: plane::free_port(),
            etcd_peer_port: plane::free_port(),
            api_port: plane::free_port(),
        };
        plane::write_pki(&layout, TOKEN, &[]);
        let mut cluster = Cluster {
            layout,
            assets: assets.to_path_buf(),
            children: Vec::new(),
            _dir: dir,
        };
        let etcd = cluster.assets.join("etcd");
        cluster.spawn("etcd", &etcd, &plane::etcd_args(&cluster.layout), &[]);
        let apiserver = cluster.assets.join("kube-apiserver");
        let args = plane::apiserver_args(&cluster.layout);
        cluster.spawn("kube-apiserver", &apiserver, &args, &[]);
        plane::wait_ready(&cluster.layout, Duration::from_secs(120));
        cluster
    }

    pub fn token(&self) -> &'static str {
        TOKEN
    }

    /// Starts `program`; its output goes to `<dir>/<name>.log`. Killed with this process.
    pub fn spawn(&mut self, name: &str, program: &Path, args: &[String], env: &[(&str, String)]) -> u32 {
        let log = std::fs::File::create(self.layout.dir.join(format!("{name}.log"))).unwrap();
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("KUBECONFIG", self.layout.kubeconfig())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // SAFETY: prctl is async-signal-safe; the parent (this process's main thread, which
        // lives until the end) dying kills the child.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let pid = child.id();
        self.children.push((name.to_string(), child));
        pid
    }

    pub fn pid(&self, name: &str) -> u32 {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.id())
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// Stops a process (SIGTERM, then SIGKILL after 5 s) and forgets it.
    pub fn stop(&mut self, name: &str) {
        let Some(at) = self.children.iter().position(|(n, _)| n == name) else {
            return;
        };
        let (_, mut child) = self.children.remove(at);
        stop_child(&mut child);
    }

    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.layout.kubeconfig()).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        // Creating thousands of objects: the default 295 s is fine, but fail fast if stuck.
        config.read_timeout = Some(Duration::from_secs(60));
        kube::Client::try_from(config).unwrap()
    }
}

fn stop_child(child: &mut Child) {
    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    for _ in 0..50 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The API server before etcd, so it does not spin on a lost backend.
        for (_, child) in self.children.iter_mut().rev() {
            stop_child(child);
        }
    }
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / hz
}

/// Peak resident memory (VmHWM) of a process, in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    status_bytes(pid, "VmHWM:")
}

/// Resident memory (VmRSS) of a process now, in bytes.
pub fn rss(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS:")
}

fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `apiserver_request_total`, summed by (verb, resource), from the API server's `/metrics`.
pub async fn apiserver_requests(client: &kube::Client) -> BTreeMap<(String, String), f64> {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    plane::request_counts(&client.request_text(request).await.unwrap_or_default())
}
