//! Faults on the real control plane: the API server goes away, watches break. Each test
//! prints what it counted.
use std::{collections::BTreeMap, time::Duration};

use kube::ResourceExt;
use serde_json::json;
use swf_operator::model::crd::ScheduledWorkflow;

use crate::common::{
    self, TestEnv,
    creations::{self, created_at, tally},
    eventually, job_resource, start_operator,
    swf::{create, job_swf, runs_of},
};

/// Every run each tick of `swf` ever had (`creations::ever`: deleted runs count too).
pub(crate) async fn uids_per_tick(env: &TestEnv, swf: &ScheduledWorkflow) -> BTreeMap<i64, Vec<String>> {
    creations::uids_per_tick(env, swf, "jobs").await
}

/// Every schedule of these tests keeps no finished run (`successfulRunsHistoryLimit: 0`, the
/// finisher completes every Job): each crash, failover or lost watch then meets prune-then-plan,
/// where only the durable record (not the runs) says a tick has run.
pub(crate) fn keep_nothing(mut spec: serde_json::Value) -> serde_json::Value {
    spec["successfulRunsHistoryLimit"] = json!(0);
    spec
}

#[tokio::test]
async fn an_api_server_outage_is_recovered_from_without_a_restart() {
    let Some(env) = common::private_env("outage").await else {
        return;
    };
    let finisher = finish_jobs_forever(&env);
    let operator = start_operator(&env).await;
    let swf = create(
        &env,
        job_swf(
            "steady",
            keep_nothing(json!({"maxConcurrency": 10,
        "trigger": {"periodicSchedule": {"intervalSecond": 2}}})),
        ),
    )
    .await;
    eventually(Duration::from_secs(60), "a first run", || async {
        (!uids_per_tick(&env, &swf).await.is_empty()).then_some(())
    })
    .await;
    let down = jiff::Timestamp::now();
    env.plane.stop_apiserver();
    // Long enough for the retry backoff of a failing pass to reach 40 s.
    tokio::time::sleep(Duration::from_secs(40)).await;
    env.plane.start_apiserver();
    let up = jiff::Timestamp::now();
    // Catch-up: every tick of the outage runs, once, without restarting the operator, and
    // promptly (a lost watch's relist gives every schedule a pass: no waiting out backoff).
    let by_tick = eventually(Duration::from_secs(120), "the outage's ticks caught up", || async {
        let by_tick = uids_per_tick(&env, &swf).await;
        let after_up = by_tick.keys().filter(|&&t| t > up.as_second() + 2).count();
        (after_up >= 1).then_some(by_tick)
    })
    .await;
    let first_catch_up = creations::created(&env, "jobs")
        .iter()
        .map(|(at, _)| *at)
        .filter(|t| *t >= up - jiff::SignedDuration::from_secs(1))
        .min()
        .unwrap();
    let recovered_in = (first_catch_up - up).get_seconds();
    operator.abort();
    finisher.abort();
    let until = up.as_second() + 2;
    let t = tally(&by_tick, created_at(&swf), 2, until);
    let in_outage = by_tick
        .keys()
        .filter(|&&t| t > down.as_second() && t < up.as_second())
        .count();
    println!(
        "outage {}s: recovered {recovered_in}s after the API server; ticks {}, runs {}, twice {:?}, lost {:?}, ticks of the outage run {in_outage}",
        (up - down).get_seconds(),
        t.ticks,
        t.runs,
        t.twice,
        t.lost,
    );
    assert!(t.twice.is_empty() && t.off_grid.is_empty(), "{t:?}");
    assert!(t.lost.is_empty(), "every tick up to {until} ran: {t:?}");
    assert!(in_outage >= 15, "the ticks of the outage ran after it: {t:?}");
    assert!(
        recovered_in <= 20,
        "recovered {recovered_in}s after the API server came back"
    );
}

#[tokio::test]
async fn users_patching_the_spec_while_the_operator_writes_status_lose_nothing() {
    let Some(env) = common::private_env("conflicts").await else {
        return;
    };
    let operator = common::Operator::start(&env, |_| {}).await;
    let swf = create(
        &env,
        job_swf(
            "contended",
            json!({"maxConcurrency": 10,
        "trigger": {"periodicSchedule": {"intervalSecond": 1}}}),
        ),
    )
    .await;
    // Twenty spec changes, by kubectl, while a run (and a status write) happens every second.
    for i in 0..20 {
        common::kubectl(
            env.plane,
            &[
                "-n",
                &env.namespace,
                "patch",
                "swf",
                "contended",
                "--type=merge",
                "-p",
                &format!(r#"{{"spec":{{"description":"v{i}"}}}}"#),
            ],
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let status = eventually(Duration::from_secs(60), "the last spec seen", || async {
        let s = common::swf::swfs(&env).get("contended").await.ok()?;
        (s.status.as_ref()?.observed_generation == s.metadata.generation).then_some(s)
    })
    .await;
    operator.task.abort();
    assert_eq!(status.spec.description.as_deref(), Some("v19"), "no user change lost");
    let runs = runs_of(&env, &swf, &job_resource()).await.len();
    // The operator never wrote spec: its only field entries are under status.
    let fields = status.metadata.managed_fields.unwrap_or_default();
    let ours: Vec<_> = fields
        .iter()
        .filter(|f| f.manager.as_deref() == Some("swf-operator"))
        .collect();
    assert!(!ours.is_empty(), "{fields:?}");
    for f in ours {
        let owned = f.fields_v1.as_ref().unwrap().0.as_object().unwrap();
        assert!(
            owned.keys().all(|k| k == "f:status"),
            "the operator owns {:?}",
            owned.keys()
        );
    }
    // A status write is conditional on the version the pass planned from: one that meets a
    // spec change in between is refused (409) and the pass plans again from the new spec, so
    // conflicts are expected and none fails a pass for good.
    let metrics = operator.metrics.render();
    let conflicts = env.plane.responses_with_code("scheduledworkflows", 409);
    println!("conflicts: 20 spec patches, {runs} runs, 409 answers on schedules: {conflicts}");
    assert!(!metrics.contains("reason=\"StatusWriteFailed\""), "{metrics}");
}

/// Marks every unfinished Job in the namespace Complete, until aborted, so no schedule is
/// held back by `maxConcurrency` (there is no kubelet to finish them).
pub(crate) fn finish_jobs_forever(env: &TestEnv) -> tokio::task::JoinHandle<()> {
    let (client, ns) = (env.client.clone(), env.namespace.clone());
    let jobs: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(client, &ns, &job_resource());
    tokio::spawn(async move {
        // Errors (the API server is away in some tests) are tried again on the next round.
        let done = serde_json::json!({"status": {"succeeded": 1, "completionTime": jiff::Timestamp::now().to_string(),
            "conditions": [{"type": "Complete", "status": "True"}]}});
        loop {
            for job in jobs
                .list(&Default::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default()
            {
                if job.data["status"].get("conditions").is_none() {
                    let _ = jobs
                        .patch_status(&job.name_any(), &Default::default(), &kube::api::Patch::Merge(&done))
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

/// How many times to kill the operator: `SWF_FAULT_KILLS` (make soak: 100), else a CI-sized 12.
fn kills() -> usize {
    std::env::var("SWF_FAULT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

/// A pseudo-random duration in [lo, hi) ms (no crate needed for test timing).
fn jitter(lo: u64, hi: u64, i: usize) -> Duration {
    let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ std::process::id() as u64;
    Duration::from_millis(lo + x % (hi - lo))
}

#[tokio::test]
async fn sigkill_at_random_moments_never_runs_a_tick_twice_nor_loses_one() {
    let Some(env) = common::private_env("crash").await else {
        return;
    };
    let finisher = finish_jobs_forever(&env);
    let mut schedules = Vec::new();
    for i in 0..20 {
        let every = 1 + (i % 2) as i64;
        let no_catchup = i % 5 == 4;
        let mut spec = json!({"maxConcurrency": 10, "noCatchup": no_catchup,
            "trigger": {"periodicSchedule": {"intervalSecond": every}}});
        if i % 2 == 0 {
            spec = keep_nothing(spec);
        }
        let swf = create(&env, job_swf(&format!("s{i}"), spec)).await;
        schedules.push((swf, every, no_catchup));
    }
    let mut operator = common::OperatorProcess::start(&env, "crashy", &["--leader-elect=false"]).await;
    for i in 0..kills() {
        tokio::time::sleep(jitter(200, 1500, i)).await;
        operator.kill(libc::SIGKILL);
        tokio::time::sleep(jitter(0, 400, i + 1000)).await;
        operator = common::OperatorProcess::start(&env, "crashy", &["--leader-elect=false"]).await;
    }
    let last_start = jiff::Timestamp::now().as_second();
    // The last restart catches up: every schedule reaches a tick after it (however slow the
    // machine), then the operator goes for good.
    eventually(
        Duration::from_secs(120),
        "every schedule past the last restart",
        || async {
            for (swf, _, _) in &schedules {
                let last = uids_per_tick(&env, swf).await.keys().max().copied()?;
                if last < last_start + 2 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    operator.kill(libc::SIGKILL);
    finisher.abort();
    let (mut ticks, mut runs, mut twice, mut lost, mut off_grid) = (0, 0, Vec::new(), Vec::new(), Vec::new());
    for (swf, every, no_catchup) in &schedules {
        let t = tally(&uids_per_tick(&env, swf).await, created_at(swf), *every, last_start + 2);
        ticks += t.ticks;
        runs += t.runs;
        twice.extend(t.twice);
        off_grid.extend(t.off_grid);
        if !no_catchup {
            lost.extend(t.lost); // noCatchup drops the ticks of a downtime by design
        }
    }
    println!(
        "crash: {} kills, ticks {ticks}, runs {runs}, twice {twice:?}, lost {lost:?}",
        kills()
    );
    assert!(
        twice.is_empty() && off_grid.is_empty(),
        "twice {twice:?}, off grid {off_grid:?}"
    );
    assert!(lost.is_empty(), "ticks up to the last restart without a run: {lost:?}");
    assert!(ticks >= 20 * 3, "the schedules ran: {ticks} ticks");
}

/// The holder of the test's Lease.
pub(crate) async fn lease_holder(env: &TestEnv, lease: &str) -> Option<String> {
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(env.client.clone(), "swf-system");
    leases
        .get(lease)
        .await
        .ok()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

#[tokio::test]
async fn failover_between_two_replicas_runs_nothing_twice() {
    let Some(env) = common::private_env("failover").await else {
        return;
    };
    let finisher = finish_jobs_forever(&env);
    let swf = create(
        &env,
        job_swf(
            "ha",
            keep_nothing(json!({"maxConcurrency": 10,
        "trigger": {"periodicSchedule": {"intervalSecond": 1}}})),
        ),
    )
    .await;
    let lease = format!("swf-test-{}", env.namespace);
    let args = [
        "--lease-namespace",
        "swf-system",
        "--lease-name",
        &lease,
        "--lease-duration",
        "4s",
        "--renew-deadline",
        "3s",
        "--retry-period",
        "500ms",
    ];
    let mut replicas = vec![
        common::OperatorProcess::start(&env, "replica-a", &args).await,
        common::OperatorProcess::start(&env, "replica-b", &args).await,
    ];
    let mut gaps = Vec::new();
    let failovers = if kills() > 12 { 10 } else { 4 };
    for i in 0..failovers {
        let holder = eventually(Duration::from_secs(60), "a leader", || lease_holder(&env, &lease)).await;
        let at = replicas.iter().position(|r| r.name == holder).unwrap();
        let (signal, how) = if i % 2 == 0 {
            (libc::SIGKILL, "SIGKILL")
        } else {
            (libc::SIGTERM, "SIGTERM")
        };
        let killed = jiff::Timestamp::now();
        replicas[at].kill(signal);
        // The gap: from the kill to the first run created after it.
        let next = eventually(Duration::from_secs(60), "a run after the failover", || async {
            creations::created(&env, "jobs")
                .iter()
                .map(|(at, _)| *at)
                .filter(|t| *t > killed)
                .min()
        })
        .await;
        gaps.push(format!("{how} {}s", (next - killed).get_seconds()));
        let name = replicas[at].name.clone();
        replicas[at] = common::OperatorProcess::start(&env, &name, &args).await;
    }
    let last_start = jiff::Timestamp::now().as_second();
    tokio::time::sleep(Duration::from_secs(6)).await; // a lease duration, and the catch-up
    for r in &replicas {
        r.kill(libc::SIGKILL);
    }
    finisher.abort();
    let t = tally(&uids_per_tick(&env, &swf).await, created_at(&swf), 1, last_start);
    println!("failover: gaps {gaps:?}; {t:?}");
    assert!(t.twice.is_empty() && t.off_grid.is_empty(), "{t:?}");
    assert!(t.lost.is_empty(), "catch-up runs the ticks of each gap: {t:?}");
}

#[tokio::test]
async fn lost_watches_410_gone_or_hung_are_recovered_without_a_missed_tick() {
    let Some(env) = common::private_env("watch-loss").await else {
        return;
    };
    let finisher = finish_jobs_forever(&env);
    let operator = common::Operator::start(&env, |_| {}).await;
    let swf = create(
        &env,
        job_swf(
            "watched",
            keep_nothing(json!({"maxConcurrency": 10,
        "trigger": {"periodicSchedule": {"intervalSecond": 1}}})),
        ),
    )
    .await;
    eventually(Duration::from_secs(60), "a first run", || async {
        (!uids_per_tick(&env, &swf).await.is_empty()).then_some(())
    })
    .await;
    // 410 Gone: while the API server is away, etcd's history is compacted past every watch's
    // resourceVersion; the watches resume from there and must list again.
    env.plane.stop_apiserver();
    env.plane.compact_etcd().await;
    env.plane.start_apiserver();
    // A hung API server: requests and watches stall, then resume.
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.plane.freeze_apiserver(true);
    tokio::time::sleep(Duration::from_secs(8)).await;
    env.plane.freeze_apiserver(false);
    let thawed = jiff::Timestamp::now();
    let by_tick = eventually(Duration::from_secs(120), "ticks after the thaw", || async {
        let by_tick = uids_per_tick(&env, &swf).await;
        (by_tick.keys().filter(|&&t| t > thawed.as_second() + 2).count() >= 2).then_some(by_tick)
    })
    .await;
    operator.task.abort();
    finisher.abort();
    let metrics = operator.metrics.render();
    let lists = |cache: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("swf_cache_lists_total{{cache=\"{cache}\"}}")))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (runs_lists, swf_lists) = (lists("runs:batch/v1/Job"), lists("scheduledworkflows"));
    let t = tally(&by_tick, created_at(&swf), 1, thawed.as_second() + 2);
    println!("watch loss: lists of runs {runs_lists}, of schedules {swf_lists}; {t:?}");
    assert!(
        runs_lists >= 2.0 && swf_lists >= 2.0,
        "410 Gone made both caches list again"
    );
    assert!(t.twice.is_empty() && t.off_grid.is_empty(), "{t:?}");
    assert!(t.lost.is_empty(), "{t:?}");
}
