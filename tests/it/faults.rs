//! Faults on the real control plane: the API server goes away, watches break. Each test
//! prints what it counted.
use std::{collections::BTreeMap, time::Duration};

use kube::ResourceExt;
use serde_json::json;
use swf_operator::render;

use crate::common::{
    self, TestEnv, eventually, job_resource, start_operator,
    swf::{create, job_swf, runs_of},
};

/// Distinct run uids per tick (a delete-and-recreate shows as two uids, which names alone
/// cannot show).
async fn uids_per_tick(env: &TestEnv, swf: &swf_operator::crd::ScheduledWorkflow) -> BTreeMap<i64, Vec<String>> {
    let mut by_tick: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in runs_of(env, swf, &job_resource()).await {
        let tick = r.labels()[render::LABEL_EPOCH].parse().unwrap();
        by_tick.entry(tick).or_default().push(r.uid().unwrap());
    }
    by_tick
}

#[tokio::test]
async fn an_api_server_outage_is_recovered_from_without_a_restart() {
    let Some(env) = common::private_env("outage").await else {
        return;
    };
    let operator = start_operator(&env).await;
    let swf = create(
        &env,
        job_swf(
            "steady",
            json!({"maxConcurrency": 10,
        "trigger": {"periodicSchedule": {"intervalSecond": 2}}}),
        ),
    )
    .await;
    eventually(Duration::from_secs(60), "a first run", || async {
        (!uids_per_tick(&env, &swf).await.is_empty()).then_some(())
    })
    .await;
    let down = jiff::Timestamp::now();
    env.plane.stop_apiserver();
    tokio::time::sleep(Duration::from_secs(12)).await;
    env.plane.start_apiserver();
    let up = jiff::Timestamp::now();
    // Catch-up: every tick of the outage runs, once, without restarting the operator.
    let by_tick = eventually(Duration::from_secs(120), "the outage's ticks caught up", || async {
        let by_tick = uids_per_tick(&env, &swf).await;
        let after_up = by_tick.keys().filter(|&&t| t > up.as_second() + 2).count();
        (after_up >= 1).then_some(by_tick)
    })
    .await;
    operator.abort();
    let ticks: Vec<i64> = by_tick.keys().copied().collect();
    let duplicates = by_tick.values().filter(|u| u.len() > 1).count();
    let lost = ticks.windows(2).map(|w| (w[1] - w[0]) / 2 - 1).sum::<i64>();
    let in_outage = ticks
        .iter()
        .filter(|&&t| t > down.as_second() && t < up.as_second())
        .count();
    println!(
        "outage {}s: ticks {}, runs {}, duplicates {duplicates}, lost {lost}, ticks of the outage run {in_outage}",
        (up - down).get_seconds(),
        ticks.len(),
        by_tick.values().map(Vec::len).sum::<usize>()
    );
    assert_eq!(duplicates, 0, "{by_tick:?}");
    assert_eq!(lost, 0, "{ticks:?}");
    assert!(in_outage >= 4, "the ticks of the outage ran after it: {ticks:?}");
}

#[tokio::test]
async fn users_patching_the_spec_while_the_operator_writes_status_lose_nothing() {
    let Some(env) = common::private_env("conflicts").await else {
        return;
    };
    let operator = common::Operator::start(common::operator_client(&env).await, &env.namespace, |_| {});
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
    let metrics = operator.metrics.render();
    let conflicts = env.plane.responses_with_code("scheduledworkflows", 409);
    println!("conflicts: 20 spec patches, {runs} runs, 409 answers on schedules: {conflicts}");
    assert_eq!(conflicts, 0.0, "status writes never conflict with spec changes");
    assert!(!metrics.contains("reason=\"StatusWriteFailed\""), "{metrics}");
}
