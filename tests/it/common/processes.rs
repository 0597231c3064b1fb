//! The processes a test starts, and what stops them: every child (etcd, kube-apiserver, the
//! operator binary) is spawned with `PR_SET_PDEATHSIG` from a thread that lives as long as the
//! test process, and an `atexit` hook kills them and removes the planes' directories, so a
//! panicking test cannot leak a control plane. Also the operator binary as a process
//! (`OperatorProcess`) and outside clients run under a deadline (`output_within`).

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::Duration,
};

use super::{TestEnv, operator_token, plane, repo_root};

static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());
static TEMP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

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

/// Removes `dir` (a plane's directory) when the test process exits, after its children are
/// stopped; `SWF_TEST_KEEP=1` keeps it.
pub(super) fn remove_at_exit(dir: PathBuf) {
    let mut dirs = TEMP_DIRS.lock().unwrap();
    if dirs.is_empty() {
        unsafe {
            atexit(cleanup_at_exit);
        }
    }
    dirs.push(dir);
}

type SpawnRequest = (Command, PathBuf, std::sync::mpsc::Sender<u32>);

/// Children are spawned by one thread that lives as long as the process: PR_SET_PDEATHSIG
/// fires when the *spawning thread* ends, and test threads end early.
static SPAWNER: OnceLock<Mutex<std::sync::mpsc::Sender<SpawnRequest>>> = OnceLock::new();

/// Starts `cmd` with its output appended to `log`; it dies with the test process.
pub(super) fn spawn_child(cmd: Command, log: &Path) -> u32 {
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
        let layout = env.plane.local_layout();
        let kubeconfig = layout.dir.join(format!("{name}.kubeconfig"));
        let ca = std::fs::read_to_string(layout.dir.join("pki/ca.crt")).unwrap();
        plane::write_kubeconfig(&kubeconfig, &layout.server(), &ca, token);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_swf-operator"));
        cmd.args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAME", name)
            .env("RUST_LOG", "info,kube=warn");
        let pid = spawn_child(cmd, &layout.dir.join(format!("{name}.log")));
        OperatorProcess {
            pid,
            name: name.to_string(),
        }
    }

    /// What it has logged so far (`<plane dir>/<name>.log`), without terminal colour codes.
    pub fn log(&self, env: &TestEnv) -> String {
        let log = env.plane.local_layout().dir.join(format!("{}.log", self.name));
        let text = std::fs::read_to_string(log).unwrap_or_default();
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

    /// Resets its peak resident memory (VmHWM) to what it uses now, so `peak_rss` reports the
    /// peak of what follows (Linux' `clear_refs`, value 5).
    pub fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").unwrap();
    }
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
