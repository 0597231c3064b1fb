//! Shards on the real control plane (docs/shards.md): two replicas with `--shards 2` split the
//! schedules, one shard each, and both create runs; when one is SIGKILLed the other takes both
//! shards, and every tick still runs exactly once.
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use swf_operator::shards::shard_of;

use crate::{
    common::{
        self, OperatorProcess, TestEnv, eventually,
        swf::{create, job_swf},
    },
    faults::{finish_jobs_forever, lease_holder, tally, uids_per_tick},
};

const SCHEDULES: usize = 20;
const EVERY: i64 = 2;

/// The holders of the two shard leases, once both are held.
async fn holders(env: &TestEnv, lease: &str) -> Option<[String; 2]> {
    let first = lease_holder(env, &format!("{lease}-shard-0")).await?;
    let second = lease_holder(env, &format!("{lease}-shard-1")).await?;
    Some([first, second])
}

/// The schedules of the runs a replica logged as created, in order.
fn created(replica: &OperatorProcess, env: &TestEnv) -> Vec<String> {
    replica
        .log(env)
        .lines()
        .filter(|l| l.contains("created run"))
        .filter_map(|l| l.split(" swf=").nth(1)?.split_whitespace().next().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn two_replicas_split_the_shards_and_the_survivor_takes_both() {
    let Some(env) = common::private_env("shards").await else {
        return;
    };
    let finisher = finish_jobs_forever(&env);
    let mut schedules = Vec::new();
    for i in 0..SCHEDULES {
        let spec = json!({"maxConcurrency": 10, "trigger": {"periodicSchedule": {"intervalSecond": EVERY}}});
        schedules.push(create(&env, job_swf(&format!("s{i}"), spec)).await);
    }
    let names: Vec<String> = (0..SCHEDULES).map(|i| format!("s{i}")).collect();
    let shard_of_name = |name: &str| shard_of(&env.namespace, name, 2) as usize;
    assert!(
        (0..2).all(|s| names.iter().any(|n| shard_of_name(n) == s)),
        "both shards have schedules"
    );
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
        "--shards",
        "2",
    ];
    let replicas = [
        OperatorProcess::start(&env, "replica-a", &args).await,
        OperatorProcess::start(&env, "replica-b", &args).await,
    ];

    // Balance: each replica holds exactly one shard.
    let split = eventually(Duration::from_secs(120), "one shard per replica", || async {
        let h = holders(&env, &lease).await?;
        (h[0] != h[1]).then_some(h)
    })
    .await;
    let owner_of = |shard: usize| replicas.iter().position(|r| r.name == split[shard]).unwrap();
    assert_ne!(owner_of(0), owner_of(1));
    // Both create runs, each only for the schedules of its own shard.
    let before: Vec<usize> = replicas.iter().map(|r| created(r, &env).len()).collect();
    let after = eventually(Duration::from_secs(120), "runs created by both replicas", || async {
        let now: Vec<Vec<String>> = replicas.iter().map(|r| created(r, &env)).collect();
        (0..2).all(|r| now[r].len() > before[r]).then_some(now)
    })
    .await;
    for (r, replica) in replicas.iter().enumerate() {
        let theirs: Vec<&String> = after[r][before[r]..]
            .iter()
            .filter(|n| owner_of(shard_of_name(n)) != r)
            .collect();
        assert!(
            theirs.is_empty(),
            "{} created runs of the other shard: {theirs:?}",
            replica.name
        );
    }
    let still_split = holders(&env, &lease).await;
    assert_eq!(still_split.as_ref(), Some(&split), "no shard moved while both ran");

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
            for swf in &schedules {
                let last = uids_per_tick(&env, swf).await.keys().max().copied()?;
                if last <= took_over.as_second() + EVERY {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    survivor.kill(libc::SIGKILL);
    finisher.abort();

    let (mut ticks, mut runs, mut duplicates, mut lost) = (0, 0, 0, 0);
    for swf in &schedules {
        let (t, r, d, l) = tally(&uids_per_tick(&env, swf).await, EVERY);
        ticks += t;
        runs += r;
        duplicates += d;
        lost += l;
    }
    println!(
        "shards: split {split:?}; takeover {}s after the kill; {SCHEDULES} schedules, ticks {ticks}, runs {runs}, duplicates {duplicates}, lost {lost}",
        (took_over - killed).get_seconds()
    );
    assert_eq!(duplicates, 0, "one run per (schedule, workflowEpoch)");
    assert_eq!(lost, 0, "no tick lost between the first and the last");
    assert!(ticks >= SCHEDULES * 3, "the schedules ran: {ticks} ticks");
}
