//! One scenario: a fresh control plane, N schedules per contender (swf-operator or the CronJob
//! controller, each in its own namespace), one watcher, the controllers started ~25 s before a
//! minute, and a window of `ticks` whole minutes measured from just before the first tick.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
};
use serde_json::json;

use crate::{
    accounting::{self, Expected, Tally},
    cluster::{self, Cluster},
    watch,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Controller {
    /// swf-operator with this many shards (one replica per shard; 1 = no sharding).
    Swf {
        shards: usize,
    },
    CronJob,
    /// The CronJob controller with its client rate limits raised so they do not bind.
    CronJobTuned,
    /// The ideal client (`floor`): swf-operator's Jobs, created at the tick, nothing else.
    Floor,
}

/// `--kube-api-qps` and `--kube-api-burst` of the tuned CronJob controller: far above what
/// 5,000 schedules a minute ask (about 3 requests per run).
const TUNED_QPS: u32 = 5_000;
const TUNED_BURST: u32 = 10_000;

impl Controller {
    pub fn label(&self) -> String {
        match self {
            Controller::Swf { shards: 1 } => "swf-operator".into(),
            Controller::Swf { shards } => format!("swf-operator ×{shards} shards"),
            Controller::CronJob => "CronJob v2".into(),
            Controller::CronJobTuned => format!("CronJob v2, QPS {TUNED_QPS}"),
            Controller::Floor => "floor (ideal client)".into(),
        }
    }
    /// swf-operator, judged by `--check`; the CronJob controller is the peer.
    fn ours(&self) -> bool {
        matches!(self, Controller::Swf { .. })
    }
    fn namespace(&self) -> String {
        match self {
            Controller::Swf { .. } => "bench-swf".into(),
            Controller::CronJob => "bench-cronjob".into(),
            Controller::CronJobTuned => "bench-cronjob-tuned".into(),
            Controller::Floor => "bench-floor".into(),
        }
    }
}

pub struct Binaries {
    pub operator: PathBuf,
    pub bench: PathBuf,
}

/// What one contender did in the window.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    pub controller: String,
    pub ours: bool,
    pub n: usize,
    pub ticks: usize,
    /// Seconds from each tick to its run being observed, for every run of the window.
    pub lags: Vec<f64>,
    /// What `accounting::Tally` says: missed pairs, extra runs by uid, runs before their tick.
    pub missed: usize,
    pub duplicates: usize,
    pub early: usize,
    /// The contender's watcher listing again after its first list (it may have missed a
    /// run created and deleted in between).
    pub relists: usize,
    pub cpu_seconds: f64,
    pub peak_rss_bytes: u64,
    /// swf-operator: process start until every schedule has a next tick (its metrics).
    pub all_scheduled_seconds: Option<f64>,
    /// The first tick after start: its slowest run.
    pub first_tick_max_lag: Option<f64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub outcomes: Vec<Outcome>,
    pub apiserver_cpu_seconds: f64,
    pub etcd_cpu_seconds: f64,
    /// Requests the API server answered in the window, by verb, for the resources the
    /// controllers use (jobs, cronjobs, scheduledworkflows, events, leases).
    pub requests: BTreeMap<String, f64>,
    pub window_seconds: f64,
}

const JOB_SPEC: &str =
    r#"{"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}"#;

fn schedule_object(controller: Controller, name: &str) -> DynamicObject {
    let job: serde_json::Value = serde_json::from_str(JOB_SPEC).unwrap();
    let value = match controller {
        // Jobs never finish here (no kubelet), so up to 10 may be active: the window's ticks
        // all run. noCatchup: like CronJob, only the latest missed tick runs at start-up.
        Controller::Swf { .. } | Controller::Floor => {
            json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
            "metadata": {"name": name}, "spec": {"enabled": true, "maxConcurrency": 10, "noCatchup": true,
            "trigger": {"cronSchedule": {"cron": "0 * * * * *"}},
            "runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": job}}})
        }
        Controller::CronJob | Controller::CronJobTuned => json!({"apiVersion": "batch/v1beta1", "kind": "CronJob",
            "metadata": {"name": name}, "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Allow",
            "jobTemplate": {"spec": job}}}),
    };
    serde_json::from_value(value).unwrap()
}

pub fn resource(controller: Controller) -> ApiResource {
    match controller {
        Controller::Swf { .. } | Controller::Floor => {
            ApiResource::from_gvk(&GroupVersionKind::gvk("kubeflow.org", "v1beta1", "ScheduledWorkflow"))
        }
        Controller::CronJob | Controller::CronJobTuned => {
            ApiResource::from_gvk(&GroupVersionKind::gvk("batch", "v1beta1", "CronJob"))
        }
    }
}

fn schedule_name(i: usize) -> String {
    format!("s-{i:05}")
}

pub async fn create_namespace(client: &kube::Client, name: &str) {
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
}

async fn create_schedules(client: &kube::Client, controller: Controller, n: usize) {
    let ns = controller.namespace();
    create_namespace(client, &ns).await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource(controller));
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let obj = schedule_object(controller, &schedule_name(i));
                api.create(&PostParams::default(), &obj).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}

/// Applies crds/ and waits until the API server serves the resource: creates right after the
/// apply can meet a 404 ("page not found") while the CRD is not yet established.
pub fn install_crd(cluster: &Cluster) {
    let crd = crate::repo_root().join("crds");
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .arg(format!("--kubeconfig={}", cluster.layout.kubeconfig().display()))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    kubectl(&["apply", "-f", &crd.display().to_string()]);
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/scheduledworkflows.kubeflow.org",
        "--timeout=120s",
    ]);
}

fn unix_now() -> f64 {
    jiff::Timestamp::now().as_microsecond() as f64 / 1e6
}

/// Sleeps until the wall clock is `second` seconds into a minute (the next such instant).
async fn until_second_of_minute(second: f64) {
    let now = unix_now();
    let into = now.rem_euclid(60.0);
    let wait = if into < second {
        second - into
    } else {
        60.0 - into + second
    };
    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
}

/// The processes of one contender, started now; returns their names and metrics ports.
pub fn start_controller(cluster: &mut Cluster, bins: &Binaries, controller: Controller) -> Vec<(String, Option<u16>)> {
    match controller {
        Controller::CronJob | Controller::CronJobTuned => {
            let mut args = swf_test_plane::controller_manager_args(&cluster.layout, "cronjob");
            args.push("--feature-gates=CronJobControllerV2=true".into());
            if controller == Controller::CronJobTuned {
                args.push(format!("--kube-api-qps={TUNED_QPS}"));
                args.push(format!("--kube-api-burst={TUNED_BURST}"));
            }
            let program = cluster.assets.join("kube-controller-manager");
            cluster.spawn("cronjob-controller", &program, &args, &[]);
            vec![("cronjob-controller".into(), None)]
        }
        Controller::Floor => {
            let args = vec!["floor".to_string(), controller.namespace()];
            cluster.spawn("floor", &bins.bench, &args, &[("RUST_LOG", "warn".into())]);
            vec![("floor".into(), None)]
        }
        Controller::Swf { shards } => (0..shards)
            .map(|i| {
                let port = swf_test_plane::free_port();
                let name = format!("swf-operator-{i}");
                let mut args: Vec<String> = [
                    "run",
                    "--namespace=bench-swf",
                    "--watch-kinds=batch/v1/Job",
                    "--log-format=json",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                args.push(format!("--metrics-addr=127.0.0.1:{port}"));
                if shards == 1 {
                    args.push("--leader-elect=false".into());
                } else {
                    args.push(format!("--shards={shards}"));
                    args.push("--lease-namespace=default".into());
                }
                let env = [("POD_NAME", name.clone()), ("RUST_LOG", "info,kube=warn".to_string())];
                cluster.spawn(&name, &bins.operator, &args, &env);
                (name, Some(port))
            })
            .collect(),
    }
}

/// `swf_schedules` summed over conditions other than Error, from each replica's /metrics.
pub async fn scheduled(ports: &[u16]) -> usize {
    let mut total = 0.0;
    for port in ports {
        let Ok(resp) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
            return 0;
        };
        let text = resp.text().await.unwrap_or_default();
        total += text
            .lines()
            .filter(|l| l.starts_with("swf_schedules{") && !l.contains("Error"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    total as usize
}

/// A contender's controller, its N, and its processes (name, metrics port).
type Started = (Controller, usize, Vec<(String, Option<u16>)>);

pub struct Plan {
    pub name: String,
    pub contenders: Vec<(Controller, usize)>,
    pub ticks: usize,
    /// Costs are counted until this many seconds after the last tick (or until the last run
    /// arrived, when later): the same window for every contender.
    pub settle_seconds: u64,
}

pub async fn run(assets: &Path, bins: &Binaries, plan: &Plan) -> ScenarioResult {
    eprintln!("bench: {} ...", plan.name);
    let mut cluster = Cluster::start(assets);
    install_crd(&cluster);
    let client = cluster.client().await;
    let setup = Instant::now();
    for &(controller, n) in &plan.contenders {
        create_schedules(&client, controller, n).await;
    }
    eprintln!(
        "bench:   created the schedules in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let mut watch_files = HashMap::new();
    for &(controller, _) in &plan.contenders {
        let file = start_watcher(&mut cluster, bins, controller);
        wait_for_file(&file.with_extension("ready")).await;
        watch_files.insert(controller, file);
    }

    // Start 25 s before a minute: time to list and plan, and the first tick is the window's.
    until_second_of_minute(35.0).await;
    let started_at = unix_now();
    let mut processes: Vec<Started> = Vec::new();
    for &(controller, n) in &plan.contenders {
        processes.push((controller, n, start_controller(&mut cluster, bins, controller)));
    }
    let first_tick = (started_at / 60.0).ceil() * 60.0;
    let all_scheduled = all_scheduled_times(&processes, started_at).await;

    tokio::time::sleep(Duration::from_secs_f64((first_tick - 2.0 - unix_now()).max(0.0))).await;
    let pids: Vec<(String, u32)> = processes
        .iter()
        .flat_map(|(_, _, ps)| ps.iter().map(|(name, _)| (name.clone(), cluster.pid(name))))
        .collect();
    let cpu_before: HashMap<String, f64> = pids
        .iter()
        .map(|(n, p)| (n.clone(), cluster::cpu_seconds(*p)))
        .collect();
    let (api_pid, etcd_pid) = (cluster.pid("kube-apiserver"), cluster.pid("etcd"));
    let (api_before, etcd_before) = (cluster::cpu_seconds(api_pid), cluster::cpu_seconds(etcd_pid));
    let requests_before = cluster::apiserver_requests(&client).await;
    let window_start = unix_now();

    let last_tick = first_tick + 60.0 * (plan.ticks as f64 - 1.0);
    let expected = |n: usize| Expected {
        schedules: (0..n).map(schedule_name).collect(),
        first_tick: first_tick as i64,
        last_tick: last_tick as i64,
        period: 60,
    };
    let contenders: Vec<(&Path, Expected)> = plan
        .contenders
        .iter()
        .map(|(controller, n)| (watch_files[controller].as_path(), expected(*n)))
        .collect();
    wait_for_runs(&contenders, last_tick).await;
    let settled = last_tick + plan.settle_seconds as f64;
    tokio::time::sleep(Duration::from_secs_f64((settled - unix_now()).max(0.0))).await;

    let window = unix_now() - window_start;
    let cpu_after: HashMap<String, f64> = pids
        .iter()
        .map(|(n, p)| (n.clone(), cluster::cpu_seconds(*p)))
        .collect();
    let rss: HashMap<String, u64> = pids.iter().map(|(n, p)| (n.clone(), cluster::peak_rss(*p))).collect();
    let api_cpu = cluster::cpu_seconds(api_pid) - api_before;
    let etcd_cpu = cluster::cpu_seconds(etcd_pid) - etcd_before;
    let requests = request_delta(&requests_before, &cluster::apiserver_requests(&client).await);
    let outcomes = processes
        .iter()
        .map(|(controller, n, ps)| {
            let names: Vec<&String> = ps.iter().map(|(name, _)| name).collect();
            let log = watch::read(&watch_files[controller]);
            if log.errors > 0 {
                eprintln!(
                    "bench:   {}: the watcher's watch failed {} times",
                    controller.label(),
                    log.errors
                );
            }
            let tally = accounting::tally(&expected(*n), &log.runs);
            report_wrong_runs(controller, &tally);
            let mut o = outcome(*controller, *n, plan.ticks, tally, log.relists);
            o.cpu_seconds = names.iter().map(|n| cpu_after[*n] - cpu_before[*n]).sum();
            o.peak_rss_bytes = names.iter().map(|n| rss[*n]).max().unwrap_or(0);
            o.all_scheduled_seconds = all_scheduled.get(&controller.label()).copied().flatten();
            o
        })
        .collect();
    for (_, _, ps) in &processes {
        for (name, _) in ps {
            cluster.stop(name);
        }
    }
    ScenarioResult {
        name: plan.name.clone(),
        outcomes,
        apiserver_cpu_seconds: api_cpu,
        etcd_cpu_seconds: etcd_cpu,
        requests,
        window_seconds: window,
    }
}

async fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// For swf-operator contenders: seconds from start until their metrics count every schedule.
async fn all_scheduled_times(processes: &[Started], started_at: f64) -> HashMap<String, Option<f64>> {
    let mut times = HashMap::new();
    for (controller, n, ps) in processes {
        let ports: Vec<u16> = ps.iter().filter_map(|(_, p)| *p).collect();
        if ports.is_empty() {
            times.insert(controller.label(), None);
            continue;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut at = None;
        while Instant::now() < deadline {
            if scheduled(&ports).await >= *n {
                at = Some(unix_now() - started_at);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        times.insert(controller.label(), at);
    }
    times
}

/// Until every (schedule, tick) of the window has a run, or 50 s after its last tick (the
/// next tick would then mix in).
async fn wait_for_runs(contenders: &[(&Path, Expected)], last_tick: f64) {
    let give_up = last_tick + 50.0;
    loop {
        let now = unix_now();
        if now > last_tick {
            let all_arrived = contenders
                .iter()
                .all(|(file, expected)| accounting::tally(expected, &watch::read(file).runs).missed.is_empty());
            if all_arrived || now > give_up {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn request_delta(
    before: &BTreeMap<(String, String), f64>,
    after: &BTreeMap<(String, String), f64>,
) -> BTreeMap<String, f64> {
    const RESOURCES: &[&str] = &["jobs", "cronjobs", "scheduledworkflows", "events", "leases"];
    let mut by_verb = BTreeMap::new();
    for ((verb, resource), v) in after {
        if RESOURCES.contains(&resource.as_str()) {
            let d = v - before.get(&(verb.clone(), resource.clone())).copied().unwrap_or(0.0);
            if d > 0.0 {
                *by_verb.entry(verb.clone()).or_insert(0.0) += d;
            }
        }
    }
    by_verb
}

/// A watcher process for the contender's namespace; returns the file it writes.
fn start_watcher(cluster: &mut Cluster, bins: &Binaries, controller: Controller) -> PathBuf {
    let ns = controller.namespace();
    let file = cluster.layout.dir.join(format!("jobs-{ns}.tsv"));
    let args = vec!["watch".to_string(), ns.clone(), file.display().to_string()];
    cluster.spawn(&format!("watcher-{ns}"), &bins.bench, &args, &[]);
    file
}

/// The first few wrong runs on stderr, to start from when a count is not 0.
fn report_wrong_runs(controller: &Controller, tally: &Tally) {
    const SHOWN: usize = 5;
    let label = controller.label();
    for (schedule, tick) in tally.missed.iter().take(SHOWN) {
        eprintln!("bench:   {label}: missed {schedule} at {tick}");
    }
    for ((schedule, tick), runs) in tally.duplicated.iter().take(SHOWN) {
        let uids: Vec<&str> = runs.iter().map(|r| r.uid.as_str()).collect();
        eprintln!("bench:   {label}: {schedule} at {tick} has runs {uids:?}");
    }
    for ((schedule, tick), run) in tally.early.iter().take(SHOWN) {
        eprintln!(
            "bench:   {label}: {schedule} at {tick}: run {} created at {:?}, seen at {} µs: before its tick",
            run.name, run.created, run.first_seen_micros
        );
    }
}

/// One contender's outcome, from its tally; CPU, memory and start-up are filled in after.
fn outcome(controller: Controller, n: usize, ticks: usize, tally: Tally, relists: usize) -> Outcome {
    Outcome {
        controller: controller.label(),
        ours: controller.ours(),
        n,
        ticks,
        missed: tally.missed.len(),
        duplicates: tally.duplicate_runs(),
        early: tally.early.len(),
        relists,
        lags: tally.lags,
        cpu_seconds: 0.0,
        peak_rss_bytes: 0,
        all_scheduled_seconds: None,
        first_tick_max_lag: tally.first_tick_max_lag,
    }
}
