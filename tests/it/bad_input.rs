//! The bad-input corpus: ScheduledWorkflows a user, a tool or an older KFP may store. For each,
//! the expected outcome is one of: an `Error` condition naming the field (and at most one
//! Warning event), a documented clamp or reading (it runs, with a warning), or a refusal by
//! the API server itself. Throughout, one operator process watches every namespace, and a good
//! schedule in another namespace keeps firing on time; the operator does not panic and its
//! memory stays bounded.
use jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    api::{DynamicObject, PostParams},
};
use serde_json::{Value, json};

use crate::{
    common::{
        self, TestEnv, eventually, job_resource,
        swf::{WAIT, create, events_for, job_swf, merge},
    },
    corpus::{Expect, corpus, create_raw, strip_nulls},
};

fn bad_swf(name: &str, changes: Value) -> swf_operator::model::crd::ScheduledWorkflow {
    let mut spec = json!({"maxConcurrency": 1, "trigger": {"periodicSchedule": {"intervalSecond": 1}}});
    merge(&mut spec, changes);
    let mut swf = serde_json::to_value(job_swf(name, json!({}))).unwrap();
    merge(&mut swf["spec"], spec);
    // `null` in a change removes the field (as a merge patch does).
    strip_nulls(&mut swf);
    serde_json::from_value(swf).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_stops_nothing_else() {
    let Some(env) = common::private_env("bad-input").await else {
        return;
    };
    common::install_argo_crd(&env.client).await;
    // The good schedule, in a namespace of its own.
    let good_ns = format!("{}-good", env.namespace);
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": good_ns}})).unwrap();
    Api::all(env.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let good_api: Api<swf_operator::model::crd::ScheduledWorkflow> = Api::namespaced(env.client.clone(), &good_ns);
    let good = good_api
        .create(
            &PostParams::default(),
            &job_swf(
                "steady",
                json!({"maxConcurrency": 10,
            "trigger": {"periodicSchedule": {"intervalSecond": 2}}}),
            ),
        )
        .await
        .unwrap();
    let operator = common::OperatorProcess::start_with(&env, "corpus", &["--leader-elect=false"]).await;
    let started = Timestamp::now();

    let cases = corpus();
    assert_eq!(cases.len(), 47, "the corpus the README describes");
    for (name, changes, _) in &cases {
        create_raw(&env, name, changes.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: the API server refused it: {e}"));
    }
    for (name, _, expect) in &cases {
        check_case(&env, name, expect).await;
    }
    // Refused by the API server itself, with the field named (the schema's own checks).
    for (name, changes, field) in [
        (
            "no-api-version",
            json!({"runTemplate": {"apiVersion": null}}),
            "apiVersion",
        ),
        (
            "negative-limit",
            json!({"successfulRunsHistoryLimit": -1}),
            "successfulRunsHistoryLimit",
        ),
        ("enabled-a-string", json!({"enabled": "yes"}), "enabled"),
        (
            "cron-a-number",
            json!({"trigger": {"cronSchedule": {"cron": 5}}}),
            "cron",
        ),
    ] {
        let err = create_raw(&env, name, changes).await.expect_err(name);
        assert!(err.to_string().contains(field), "{name}: {err}");
    }
    // A 253-character name: runs and events still fit.
    let long = "n".repeat(253);
    let long_swf = create(&env, bad_swf(&long, json!({}))).await;
    let runs = crate::common::swf::wait_runs(&env, &long_swf, &job_resource(), 1).await;
    assert!(runs[0].name_any().len() <= 63);

    // Meanwhile (and for a while longer, as the bad ones are retried) the good schedule kept
    // firing on time: no tick lost, none late.
    let good_runs = eventually(WAIT, "a dozen seconds of good ticks", || async {
        let runs = runs_of_ns(&env, &good_ns, &good).await;
        (runs.len() >= 7).then_some(runs)
    })
    .await;
    let mut ticks: Vec<i64> = good_runs
        .iter()
        .map(|r| r.labels()[swf_operator::model::keys::LABEL_EPOCH].parse().unwrap())
        .collect();
    ticks.sort();
    assert!(
        ticks.windows(2).all(|w| w[1] - w[0] == 2),
        "no good tick lost: {ticks:?}"
    );
    for r in &good_runs {
        let tick: i64 = r.labels()[swf_operator::model::keys::LABEL_EPOCH].parse().unwrap();
        if tick > started.as_second() {
            let late = r.creation_timestamp().unwrap().0.as_second() - tick;
            assert!(late <= 5, "a good run {late}s late while bad input was around");
        }
    }
    let peak = operator.peak_rss().expect("the operator is still running (no panic)");
    println!(
        "bad input: {} cases; good schedule: {} runs; operator peak RSS {} MiB",
        cases.len(),
        ticks.len(),
        peak >> 20
    );
    assert!(peak < 200 << 20, "memory stays bounded: {peak} bytes");
    operator.kill(libc::SIGKILL);
}

async fn runs_of_ns(env: &TestEnv, ns: &str, swf: &swf_operator::model::crd::ScheduledWorkflow) -> Vec<DynamicObject> {
    let uid = swf.uid().unwrap();
    common::list_runs(&env.client, ns, &job_resource())
        .await
        .into_iter()
        .filter(|r| r.owner_references().iter().any(|o| o.uid == uid))
        .collect()
}

/// The object, decoded as the operator decodes it (a spec the Rust types cannot hold is
/// reported, not a failure of the read).
async fn stored(env: &TestEnv, name: &str) -> swf_operator::model::stored::SwfObject {
    Api::<swf_operator::model::stored::SwfObject>::namespaced(env.client.clone(), &env.namespace)
        .get(name)
        .await
        .unwrap()
}

async fn check_case(env: &TestEnv, name: &str, expect: &Expect) {
    let uid = stored(env, name).await.metadata.uid.unwrap();
    let runs = || async {
        common::list_runs(&env.client, &env.namespace, &job_resource())
            .await
            .into_iter()
            .chain(common::list_runs(&env.client, &env.namespace, &common::workflow_resource()).await)
            .filter(|r| r.owner_references().iter().any(|o| o.uid == uid))
            .count()
    };
    match expect {
        Expect::Error(want) | Expect::RunRefused(want) => {
            let message = eventually(WAIT, &format!("{name}: an Error condition"), || async {
                let status = stored(env, name).await.status;
                let c = swf_operator::scheduling::status::summary_condition(&status)?;
                (c.type_ == "Error").then(|| c.message.clone().unwrap_or_default())
            })
            .await;
            assert!(message.contains(want), "{name}: {message:?} lacks {want:?}");
            let warnings = events_for(env, name)
                .await
                .into_iter()
                .filter(|(t, _, _)| t == "Warning")
                .count();
            // A create the API server refuses is retried (with backoff, one event each).
            let refused = matches!(expect, Expect::RunRefused(_));
            let most = if refused { 4 } else { 1 };
            assert!(warnings <= most, "{name}: {warnings} Warning events");
            if !refused {
                assert_eq!(runs().await, 0, "{name}: no run");
            }
        }
        Expect::Capped(warning, cap) => {
            // Full: status shows `cap` active runs and a due tick waiting for a slot; a clamp
            // that did not hold would have created that tick in the same pass.
            eventually(
                WAIT,
                &format!("{name}: {cap} runs active and a tick waiting"),
                || async {
                    let status = stored(env, name).await.status;
                    let due =
                        status.trigger.next_triggered_time?.0 < Timestamp::now() - jiff::SignedDuration::from_secs(1);
                    (status.active_runs == Some(*cap as i64) && due).then_some(())
                },
            )
            .await;
            assert_eq!(runs().await, *cap, "{name}: runs beyond maxConcurrency {cap}");
            let events = events_for(env, name).await;
            assert!(
                events
                    .iter()
                    .any(|(t, r, n)| t == "Warning" && r == "SpecWarning" && n.contains(warning)),
                "{name}: {events:?}"
            );
        }
        Expect::Runs(warning) => {
            eventually(WAIT, &format!("{name}: a run"), || async {
                (runs().await > 0).then_some(())
            })
            .await;
            if let Some(want) = warning {
                let events = events_for(env, name).await;
                assert!(
                    events
                        .iter()
                        .any(|(t, r, n)| t == "Warning" && r == "SpecWarning" && n.contains(want)),
                    "{name}: {events:?}"
                );
            }
        }
    }
}
