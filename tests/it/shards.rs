//! Shards on the real control plane (docs/shards.md): two replicas with `--shards 2` split the
//! schedules, one shard each, and both create runs; when one is SIGKILLed the other takes both
//! shards, and every tick still runs exactly once.
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use swf_operator::controller::election::shards::shard_of;

use crate::common::{
    self, OperatorProcess, TestEnv,
    creations::{Tally, all_ran_after, created_at, tally, uids_per_tick},
    eventually, lease_holder, lease_name, quick_failover_args,
    swf::{create, finish_jobs_forever, job_swf, keep_nothing},
};

const SCHEDULES: usize = 20;
const EVERY: i64 = 2;

/// The holders of the two shard leases, once both are held.
async fn holders(env: &TestEnv, lease: &str) -> Option<[String; 2]> {
    let first = lease_holder(env, &format!("{lease}-shard-0")).await?;
    let second = lease_holder(env, &format!("{lease}-shard-1")).await?;
    Some([first, second])
}

/// The runs a replica logged as created, in order: (schedule, tick).
fn created(replica: &OperatorProcess, env: &TestEnv) -> Vec<(String, Timestamp)> {
    let field = |l: &str, key: &str| {
        Some(
            l.split(&format!(" {key}="))
                .nth(1)?
                .split_whitespace()
                .next()?
                .to_string(),
        )
    };
    replica
        .log(env)
        .lines()
        .filter(|l| l.contains("created run"))
        .filter_map(|l| Some((field(l, "swf")?, field(l, "scheduled")?.parse().ok()?)))
        .collect()
}

/// Waits for a split of the shards (one each) that holds, unchanged, while both replicas
/// create runs of ticks after it began (and after the tick in flight then); returns it and the
/// schedules each replica created runs for in that window.
async fn stable_window(env: &TestEnv, lease: &str, replicas: &[OperatorProcess; 2]) -> ([String; 2], Vec<Vec<String>>) {
    let deadline = Timestamp::now() + jiff::SignedDuration::from_secs(240);
    while Timestamp::now() < deadline {
        let Some(split) = holders(env, lease).await.filter(|h| h[0] != h[1]) else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let settled = Timestamp::now() + jiff::SignedDuration::from_secs(EVERY);
        let since = |runs: Vec<(String, Timestamp)>| -> Vec<String> {
            runs.into_iter()
                .filter(|(_, tick)| *tick > settled)
                .map(|(n, _)| n)
                .collect()
        };
        let window_ends = Timestamp::now() + jiff::SignedDuration::from_secs(30);
        while Timestamp::now() < window_ends && holders(env, lease).await.as_ref() == Some(&split) {
            let now: Vec<Vec<String>> = replicas.iter().map(|r| since(created(r, env))).collect();
            if now.iter().all(|runs| !runs.is_empty()) && holders(env, lease).await.as_ref() == Some(&split) {
                return (split, now);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    panic!("no stable split of the shards in which both replicas ran");
}

#[tokio::test]
async fn two_replicas_split_the_shards_and_the_survivor_takes_both() {
    let Some(env) = common::private_env("shards").await else {
        return;
    };
    let finisher = finish_jobs_forever(&env);
    let mut schedules = Vec::new();
    for i in 0..SCHEDULES {
        let mut spec = json!({"maxConcurrency": 10, "trigger": {"periodicSchedule": {"intervalSecond": EVERY}}});
        if i % 2 == 0 {
            spec = keep_nothing(spec); // a shard move meets prune-then-plan
        }
        schedules.push(create(&env, job_swf(&format!("s{i}"), spec)).await);
    }
    let names: Vec<String> = (0..SCHEDULES).map(|i| format!("s{i}")).collect();
    let shard_of_name = |name: &str| shard_of(&env.namespace, name, 2) as usize;
    assert!(
        (0..2).all(|s| names.iter().any(|n| shard_of_name(n) == s)),
        "both shards have schedules"
    );
    let lease = lease_name(&env);
    let mut args = quick_failover_args(&lease);
    args.extend(["--shards", "2"]);
    let replicas = [
        OperatorProcess::start(&env, "replica-a", &args).await,
        OperatorProcess::start(&env, "replica-b", &args).await,
    ];

    // Balance: each replica holds exactly one shard, and keeps it for a window in which both
    // create runs: then each created only its own shard's. (On a starved machine a replica may
    // miss its renew deadline and the shard fails over: that window is not counted, a later
    // one is.)
    let (split, after) = stable_window(&env, &lease, &replicas).await;
    let owner_of = |shard: usize| replicas.iter().position(|r| r.name == split[shard]).unwrap();
    assert_ne!(owner_of(0), owner_of(1));
    for (r, replica) in replicas.iter().enumerate() {
        let theirs: Vec<&String> = after[r].iter().filter(|n| owner_of(shard_of_name(n)) != r).collect();
        assert!(
            theirs.is_empty(),
            "{} created runs of the other shard: {theirs:?}",
            replica.name
        );
    }

    // SIGKILL one: the survivor takes both shards, and every schedule runs again.
    let (victim, survivor) = (&replicas[1], &replicas[0]);
    victim.kill(libc::SIGKILL);
    let killed = Timestamp::now();
    eventually(Duration::from_secs(120), "the survivor holds both shards", || async {
        let h = holders(&env, &lease).await?;
        h.iter().all(|holder| *holder == survivor.name).then_some(())
    })
    .await;
    let took_over = Timestamp::now();
    eventually(
        Duration::from_secs(120),
        "every schedule ran after the takeover",
        || async {
            all_ran_after(&env, &schedules, "jobs", took_over.as_second() + EVERY)
                .await
                .then_some(())
        },
    )
    .await;
    survivor.kill(libc::SIGKILL);
    finisher.abort();

    let mut total = Tally::default();
    for swf in &schedules {
        let by_tick = uids_per_tick(&env, swf, "jobs").await;
        total.add(tally(&by_tick, created_at(swf), EVERY, took_over.as_second()));
    }
    println!(
        "shards: split {split:?}; takeover {}s after the kill; {SCHEDULES} schedules, {total}",
        (took_over - killed).get_seconds()
    );
    total.assert_every_tick_ran_once(); // one creation per (schedule, tick) up to the takeover
    assert!(total.ticks >= SCHEDULES * 3, "the schedules ran: {} ticks", total.ticks);
}
