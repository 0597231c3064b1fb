//! Start-up at scale (issue 21 §3): N idle daily schedules, each with one active run (a Job
//! from an earlier tick), then swf-operator started on them. Measures the seconds until every
//! schedule shows a correct status (as a watch of the schedules sees it), the operator's memory
//! once settled and at its peak, and the API requests it made meanwhile (no LIST per schedule).

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use kube::{
    Api,
    api::{DynamicObject, PostParams},
    runtime::watcher,
};
use serde::Serialize;
use serde_json::json;
use swf_operator::{
    model::crd::ScheduledWorkflow,
    scheduling::{
        render::{self, Origin, Owner, RunRequest},
        validate,
    },
};

use crate::{
    cluster::{self, Cluster},
    scenario::{self, Binaries, Controller},
};

const NAMESPACE: &str = "bench-swf";
/// How long the operator has to get every status right before the phase gives up.
const DEADLINE: Duration = Duration::from_secs(180);

/// The schedules fire daily at this hour's start (UTC), 12 hours from now: no tick falls in
/// the measurement, and the last one was 12 hours ago (the active runs' tick).
fn daily() -> (String, Timestamp) {
    let hour = Timestamp::now().as_second() / 3600 * 3600;
    let next = Timestamp::from_second(hour + 12 * 3600).unwrap();
    let cron = format!("0 0 {} * * *", next.as_second() / 3600 % 24);
    (cron, next)
}

#[derive(Clone, Debug, Serialize)]
pub struct Startup {
    pub schedules: usize,
    pub active_runs: usize,
    /// From the operator's start until every schedule's status was correct (`None`: not within
    /// the deadline).
    pub all_correct_seconds: Option<f64>,
    pub correct_at_deadline: usize,
    /// From the operator's start until the first schedule's status was correct.
    pub first_correct_seconds: Option<f64>,
    /// The API server's CPU from the operator's start until every status was correct.
    pub apiserver_cpu_seconds: f64,
    /// The operator's resident memory 10 s after every status was correct, and its peak.
    pub settled_rss_mib: f64,
    pub peak_rss_mib: f64,
    pub operator_cpu_seconds: f64,
    /// API requests from start until every status was correct, by "VERB resource".
    pub requests: BTreeMap<String, f64>,
    /// The operator restarted on the same schedules (every status already right): seconds
    /// until its metrics count every schedule (each has had a pass), and what it did.
    pub restart: Option<Restart>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Restart {
    pub all_planned_seconds: Option<f64>,
    /// API requests from the restart until 10 s after every schedule was planned.
    pub requests: BTreeMap<String, f64>,
    pub settled_rss_mib: f64,
    pub peak_rss_mib: f64,
    /// Schedules whose status was correct at the end (all of them, unless the restart broke
    /// one).
    pub correct_after: usize,
}

pub async fn run(assets: &Path, bins: &Binaries, schedules: usize) -> Startup {
    eprintln!("bench: start-up with {schedules} daily schedules and an active run each ...");
    let mut cluster = Cluster::start(assets);
    scenario::install_crd(&cluster);
    let client = cluster.client().await;
    let setup = Instant::now();
    let (cron, next) = daily();
    let owners = create_schedules(&client, &cron, schedules).await;
    let active_runs = create_active_runs(&client, &owners, next - jiff::SignedDuration::from_hours(24)).await;
    eprintln!(
        "bench:   created {schedules} schedules and {active_runs} runs in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let expected = Expected {
        next,
        with_run: active_runs > 0,
    };
    let (correct_tx, mut correct_rx) = tokio::sync::watch::channel(0usize);
    let watching = tokio::spawn(count_correct(client.clone(), expected, correct_tx));
    // The watch has listed every schedule (none correct yet) before the operator starts.
    tokio::time::timeout(Duration::from_secs(120), correct_rx.changed())
        .await
        .expect("the schedules' watch never listed")
        .unwrap();

    let requests_before = cluster::apiserver_requests(&client).await;
    let api_pid = cluster.pid("kube-apiserver");
    let api_cpu_before = cluster::cpu_seconds(api_pid);
    let started = Instant::now();
    let processes = scenario::start_controller(&mut cluster, bins, Controller::Swf { shards: 1 });
    let pid = cluster.pid(&processes[0].0);
    let within = |n: usize| {
        let mut rx = correct_rx.clone();
        async move {
            let remaining = DEADLINE.saturating_sub(started.elapsed());
            let reached = tokio::time::timeout(remaining, rx.wait_for(|c| *c >= n)).await;
            matches!(reached, Ok(Ok(_))).then(|| started.elapsed().as_secs_f64())
        }
    };
    let first_correct = within(1).await;
    let all_correct = within(schedules).await;
    let apiserver_cpu_seconds = cluster::cpu_seconds(api_pid) - api_cpu_before;
    let correct_at_deadline = *correct_rx.borrow();
    if all_correct.is_none() {
        print_a_wrong_status(&client, &expected).await;
    }
    let requests_after = cluster::apiserver_requests(&client).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let result = Startup {
        schedules,
        active_runs,
        all_correct_seconds: all_correct,
        correct_at_deadline,
        first_correct_seconds: first_correct,
        apiserver_cpu_seconds,
        settled_rss_mib: mib(cluster::rss(pid)),
        peak_rss_mib: mib(cluster::peak_rss(pid)),
        operator_cpu_seconds: cluster::cpu_seconds(pid),
        requests: operator_requests(&requests_before, &requests_after),
        restart: None,
    };
    cluster.stop(&processes[0].0);
    let restart = match all_correct {
        Some(_) => Some(restart(&mut cluster, bins, &client, schedules, &correct_rx).await),
        None => None,
    };
    watching.abort();
    Startup { restart, ..result }
}

/// Starts the operator again on schedules whose statuses are all right.
async fn restart(
    cluster: &mut Cluster,
    bins: &Binaries,
    client: &kube::Client,
    schedules: usize,
    correct: &tokio::sync::watch::Receiver<usize>,
) -> Restart {
    let requests_before = cluster::apiserver_requests(client).await;
    let started = Instant::now();
    let processes = scenario::start_controller(cluster, bins, Controller::Swf { shards: 1 });
    let (name, port) = (processes[0].0.clone(), processes[0].1.unwrap_or_default());
    let pid = cluster.pid(&name);
    let mut all_planned = None;
    while started.elapsed() < DEADLINE {
        if scenario::scheduled(&[port]).await >= schedules {
            all_planned = Some(started.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let requests = operator_requests(&requests_before, &cluster::apiserver_requests(client).await);
    let restart = Restart {
        all_planned_seconds: all_planned,
        requests,
        settled_rss_mib: mib(cluster::rss(pid)),
        peak_rss_mib: mib(cluster::peak_rss(pid)),
        correct_after: *correct.borrow(),
    };
    cluster.stop(&name);
    restart
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn schedule_object(name: &str, cron: &str) -> DynamicObject {
    serde_json::from_value(
        json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
        "metadata": {"name": name}, "spec": {"enabled": true, "maxConcurrency": 1, "noCatchup": true,
        "trigger": {"cronSchedule": {"cron": cron}},
        "runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
    )
    .unwrap()
}

/// Creates the schedules; returns each as the owner of its runs, with its spec.
async fn create_schedules(client: &kube::Client, cron: &str, n: usize) -> Vec<(Owner, ScheduledWorkflow)> {
    scenario::create_namespace(client, NAMESPACE).await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &swf_resource());
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let created = api
                    .create(&PostParams::default(), &schedule_object(&format!("s-{i:05}"), cron))
                    .await?;
                let swf: ScheduledWorkflow = serde_json::from_value(serde_json::to_value(&created).unwrap()).unwrap();
                let owner = Owner {
                    name: swf.metadata.name.clone().unwrap_or_default(),
                    namespace: NAMESPACE.to_string(),
                    uid: swf.metadata.uid.clone().unwrap_or_default(),
                };
                Ok::<_, kube::Error>((owner, swf))
            }
        })
        .buffer_unordered(32)
        .try_collect()
        .await
        .unwrap()
}

/// One active run per schedule, of its last tick, rendered as swf-operator renders it.
async fn create_active_runs(client: &kube::Client, owners: &[(Owner, ScheduledWorkflow)], tick: Timestamp) -> usize {
    let path = format!("/apis/batch/v1/namespaces/{NAMESPACE}/jobs");
    futures::stream::iter(owners)
        .map(|(owner, swf)| {
            let (client, path) = (client.clone(), path.clone());
            async move {
                let validated = validate::validate(&swf.spec, "UTC").unwrap();
                let request = RunRequest {
                    name: render::run_name(&owner.name, tick),
                    scheduled: tick,
                    index: 1,
                    run_uuid: uuid::Uuid::new_v4().to_string(),
                    origin: Origin::Scheduled,
                };
                let body = serde_json::to_vec(&render::render(owner, None, &validated, &request, tick)).unwrap();
                let request = kube::core::Request::new(path)
                    .create(&PostParams::default(), body)
                    .unwrap();
                client.request_text(request).await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .len()
}

fn swf_resource() -> kube::api::ApiResource {
    scenario::resource(Controller::Swf { shards: 1 })
}

/// What every schedule's status should say.
#[derive(Clone, Copy)]
struct Expected {
    next: Timestamp,
    /// Each schedule has an active run.
    with_run: bool,
}

/// A correct status for these schedules: computed from the current spec, the next tick, and
/// the active run counted (when each schedule has one).
fn correct(obj: &DynamicObject, expected: &Expected) -> bool {
    let status = &obj.data["status"];
    let next = status["trigger"]["nextTriggeredTime"]
        .as_str()
        .and_then(|t| t.parse::<Timestamp>().ok());
    status["observedGeneration"].as_i64() == obj.metadata.generation
        && next == Some(expected.next)
        && status["activeRuns"].as_i64().unwrap_or(0) == i64::from(expected.with_run)
}

/// For the record when the phase fails: one schedule whose status is not correct.
async fn print_a_wrong_status(client: &kube::Client, expected: &Expected) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &swf_resource());
    let list = api.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
    if let Some(wrong) = list.iter().find(|o| !correct(o, expected)) {
        eprintln!(
            "bench:   a wrong status: {} generation {:?}: {}",
            wrong.metadata.name.as_deref().unwrap_or_default(),
            wrong.metadata.generation,
            wrong.data["status"]
        );
    }
}

/// Publishes how many schedules have a correct status, after the first list and on every
/// change.
async fn count_correct(client: kube::Client, expected: Expected, out: tokio::sync::watch::Sender<usize>) {
    let api: Api<DynamicObject> = Api::namespaced_with(client, NAMESPACE, &swf_resource());
    let mut state: HashMap<String, bool> = HashMap::new();
    let mut listing: HashMap<String, bool> = HashMap::new();
    let mut listed = false;
    let stream = watcher(api, watcher::Config::default());
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let name = |o: &DynamicObject| o.metadata.name.clone().unwrap_or_default();
        match event {
            Ok(watcher::Event::Apply(o)) => {
                state.insert(name(&o), correct(&o, &expected));
            }
            Ok(watcher::Event::Delete(o)) => {
                state.remove(&name(&o));
            }
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(o)) => {
                listing.insert(name(&o), correct(&o, &expected));
            }
            Ok(watcher::Event::InitDone) => {
                state = std::mem::take(&mut listing);
                listed = true;
            }
            Err(e) => {
                eprintln!("bench:   the schedules' watch failed: {e}");
                continue;
            }
        }
        if listed {
            let _ = out.send(state.values().filter(|ok| **ok).count());
        }
    }
}

/// The requests between two reads of the API server's counters, by "VERB resource", for the
/// resources the operator uses.
fn operator_requests(
    before: &BTreeMap<(String, String), f64>,
    after: &BTreeMap<(String, String), f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter(|((_, resource), _)| ["jobs", "scheduledworkflows", "events", "leases"].contains(&resource.as_str()))
        .map(|((verb, resource), n)| {
            let delta = n - before.get(&(verb.clone(), resource.clone())).copied().unwrap_or(0.0);
            (format!("{verb} {resource}"), delta)
        })
        .filter(|(_, n)| *n > 0.0)
        .collect()
}

/// Schedules left without a correct status: at the deadline of the cold start, or after the
/// restart (which must not break one, nor fail to plan one).
pub fn wrong(s: &Startup) -> usize {
    let after_restart = s.restart.as_ref().map_or(s.schedules, |r| {
        if r.all_planned_seconds.is_some() {
            r.correct_after
        } else {
            0
        }
    });
    s.schedules - s.correct_at_deadline.min(after_restart).min(s.schedules)
}

/// The phase's result in one line.
pub fn line(s: &Startup) -> String {
    let when = s.all_correct_seconds.map_or(
        format!(
            "not within {} s ({} correct)",
            DEADLINE.as_secs(),
            s.correct_at_deadline
        ),
        |t| format!("after {t:.1} s"),
    );
    let requests = |r: &BTreeMap<String, f64>| -> String {
        r.iter()
            .map(|(k, n)| format!("{k} {n:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let restart = s.restart.as_ref().map_or(String::new(), |r| {
        format!(
            "\nrestarted on them: every schedule planned {}; RSS {:.0} MiB settled, {:.0} MiB peak; {} of {} statuses correct after; requests until 10 s after: {}",
            r.all_planned_seconds
                .map_or(format!("not within {} s", DEADLINE.as_secs()), |t| format!("after {t:.1} s")),
            r.settled_rss_mib,
            r.peak_rss_mib,
            r.correct_after,
            s.schedules,
            requests(&r.requests)
        )
    });
    format!(
        "\nstart-up ({} daily schedules, {} active runs): first status correct after {:.1} s, every status correct {when} (API server CPU {:.1} s); operator RSS {:.0} MiB settled, {:.0} MiB peak, CPU {:.1} s; requests until then: {}{restart}",
        s.schedules,
        s.active_runs,
        s.first_correct_seconds.unwrap_or(f64::NAN),
        s.apiserver_cpu_seconds,
        s.settled_rss_mib,
        s.peak_rss_mib,
        s.operator_cpu_seconds,
        requests(&s.requests)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(correct: usize, restart: Option<(Option<f64>, usize)>) -> Startup {
        Startup {
            schedules: 10,
            active_runs: 10,
            all_correct_seconds: (correct == 10).then_some(1.0),
            correct_at_deadline: correct,
            first_correct_seconds: Some(0.5),
            apiserver_cpu_seconds: 0.0,
            settled_rss_mib: 0.0,
            peak_rss_mib: 0.0,
            operator_cpu_seconds: 0.0,
            requests: BTreeMap::new(),
            restart: restart.map(|(planned, correct_after)| Restart {
                all_planned_seconds: planned,
                requests: BTreeMap::new(),
                settled_rss_mib: 0.0,
                peak_rss_mib: 0.0,
                correct_after,
            }),
        }
    }

    #[test]
    fn schedules_wrong_at_the_deadline_or_after_the_restart_are_counted() {
        assert_eq!(wrong(&startup(10, Some((Some(1.0), 10)))), 0);
        assert_eq!(wrong(&startup(7, None)), 3, "the cold start gave up");
        assert_eq!(wrong(&startup(10, Some((Some(1.0), 9)))), 1, "the restart broke one");
        assert_eq!(
            wrong(&startup(10, Some((None, 10)))),
            10,
            "the restart never planned them all"
        );
    }
}
