//! Shards on the real control plane (docs/shards.md): two replicas with `--shards 2` split the
//! schedules, one shard each, and both create runs; when one is SIGKILLed the other takes both
//! shards, and every tick still runs exactly once.
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use swf_operator::controller::election::shards::shard_of;

use crate::{
    common::{
        self, OperatorProcess, TestEnv,
        creations::{created_at, tally},
        eventually,
        swf::{create, job_swf},
    },
    faults::{finish_jobs_forever, keep_nothing, lease_holder, uids_per_tick},
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

    let (mut ticks, mut runs, mut twice, mut lost, mut off_grid) = (0, 0, Vec::new(), Vec::new(), Vec::new());
    for swf in &schedules {
        let t = tally(
            &uids_per_tick(&env, swf).await,
            created_at(swf),
            EVERY,
            took_over.as_second(),
        );
        ticks += t.ticks;
        runs += t.runs;
        twice.extend(t.twice);
        lost.extend(t.lost);
        off_grid.extend(t.off_grid);
    }
    println!(
        "shards: split {split:?}; takeover {}s after the kill; {SCHEDULES} schedules, ticks {ticks}, runs {runs}, twice {twice:?}, lost {lost:?}",
        (took_over - killed).get_seconds()
    );
    assert!(
        twice.is_empty() && off_grid.is_empty(),
        "one creation per (schedule, tick): {twice:?} {off_grid:?}"
    );
    assert!(lost.is_empty(), "every tick up to the takeover ran: {lost:?}");
    assert!(ticks >= SCHEDULES * 3, "the schedules ran: {ticks} ticks");
}
