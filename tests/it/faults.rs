//! Faults on the real control plane: the API server goes away, watches break. Each test
//! prints what it counted.
use std::time::Duration;

use serde_json::json;

use crate::common::{
    self,
    creations::{self, Tally, all_ran_after, created_at, tally, uids_per_tick},
    eventually, job_resource, lease_holder, lease_name, quick_failover_args, start_operator,
    swf::{create, finish_jobs_forever, job_swf, keep_nothing, runs_of},
};

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
        (!uids_per_tick(&env, &swf, "jobs").await.is_empty()).then_some(())
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
        let by_tick = uids_per_tick(&env, &swf, "jobs").await;
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
        "outage {}s: recovered {recovered_in}s after the API server; {t}, ticks of the outage run {in_outage}",
        (up - down).get_seconds(),
    );
    t.assert_every_tick_ran_once(); // every tick up to `until`
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
            // A tick at `last_start + 2` or later: the tally below counts up to there.
            let swfs = schedules.iter().map(|(swf, _, _)| swf);
            all_ran_after(&env, swfs, "jobs", last_start + 1).await.then_some(())
        },
    )
    .await;
    operator.kill(libc::SIGKILL);
    finisher.abort();
    let mut total = Tally::default();
    for (swf, every, no_catchup) in &schedules {
        let mut t = tally(
            &uids_per_tick(&env, swf, "jobs").await,
            created_at(swf),
            *every,
            last_start + 2,
        );
        if !t.lost.is_empty() {
            // Which schedule and where, so a loss seen once in CI can be traced afterwards.
            let name = kube::ResourceExt::name_any(swf);
            println!(
                "crash: {name} (every {every} s, noCatchup {no_catchup}) lost {:?}",
                t.lost
            );
        }
        if *no_catchup {
            t.lost.clear(); // noCatchup drops the ticks of a downtime by design
        }
        total.add(t);
    }
    println!("crash: {} kills, last start {last_start}, {total}", kills());
    total.assert_every_tick_ran_once(); // up to the last restart
    assert!(total.ticks >= 20 * 3, "the schedules ran: {} ticks", total.ticks);
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
    let lease = lease_name(&env);
    let args = quick_failover_args(&lease);
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
    // A leader again, caught up: a run of a tick after the last restart (not a fixed wait: on a
    // loaded machine a failover has taken 29 s).
    eventually(Duration::from_secs(120), "a tick after the last restart", || async {
        all_ran_after(&env, [&swf], "jobs", last_start).await.then_some(())
    })
    .await;
    for r in &replicas {
        r.kill(libc::SIGKILL);
    }
    finisher.abort();
    let t = tally(
        &uids_per_tick(&env, &swf, "jobs").await,
        created_at(&swf),
        1,
        last_start,
    );
    println!("failover: gaps {gaps:?}; {t:?}");
    t.assert_every_tick_ran_once(); // catch-up runs the ticks of each gap
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
        (!uids_per_tick(&env, &swf, "jobs").await.is_empty()).then_some(())
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
        let by_tick = uids_per_tick(&env, &swf, "jobs").await;
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
    t.assert_every_tick_ran_once();
}
