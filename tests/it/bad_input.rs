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

use crate::common::{
    self, TestEnv, eventually, job_resource,
    swf::{WAIT, create, events_for, job_swf, merge},
};

/// What a case must lead to.
enum Expect {
    /// An `Error` condition whose message contains this, at most one Warning event, no run.
    Error(&'static str),
    /// It runs (a documented clamp or reading); a Warning event contains this, if given.
    Runs(Option<&'static str>),
}

fn deep(levels: usize) -> Value {
    let mut v = json!("x");
    for _ in 0..levels {
        v = json!([v]);
    }
    v
}

fn deep_text(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

fn cron(expr: &str) -> Value {
    json!({"trigger": {"cronSchedule": {"cron": expr}}})
}

fn workflow_spec(spec: Value) -> Value {
    json!({"runTemplate": null, "workflow": {"spec": spec}})
}

/// The corpus: name, spec changes over a valid Job schedule, expected outcome.
fn corpus() -> Vec<(&'static str, Value, Expect)> {
    use Expect::*;
    let field = "spec.trigger.cronSchedule.cron";
    let bomb = include_str!("../fixtures/bad-input/alias-bomb.yaml");
    let big = format!("{{\"entrypoint\": \"main\", \"pad\": \"{}\"}}", "x".repeat(1 << 20));
    vec![
        // robfig/cron v1's rejection classes
        ("cron-3-fields", cron("* * *"), Error("Expected 5 to 6 fields, found 3")),
        (
            "cron-7-fields",
            cron("0 0 0 * * * *"),
            Error("Expected 5 to 6 fields, found 7"),
        ),
        (
            "cron-above-max",
            cron("0 0 12 * * 7"),
            Error("End of range (7) above maximum (6)"),
        ),
        (
            "cron-below-min",
            cron("0 0 0 0 * *"),
            Error("Beginning of range (0) below minimum (1)"),
        ),
        (
            "cron-reversed",
            cron("0 0 5-1 * * *"),
            Error("Beginning of range (5) beyond end of range (1)"),
        ),
        (
            "cron-zero-step",
            cron("*/0 * * * * *"),
            Error("Step of range should be a positive number"),
        ),
        ("cron-hyphens", cron("1-2-3 * * * * *"), Error("Too many hyphens")),
        ("cron-slashes", cron("1/2/3 * * * * *"), Error("Too many slashes")),
        (
            "cron-not-a-number",
            cron("a * * * * *"),
            Error("Failed to parse int from a"),
        ),
        (
            "cron-negative",
            cron("*/-1 * * * * *"),
            Error("Negative number (-1) not allowed"),
        ),
        (
            "cron-descriptor",
            cron("@fortnightly"),
            Error("Unrecognized descriptor"),
        ),
        (
            "cron-every-bad",
            cron("@every 1x"),
            Error("Failed to parse duration @every 1x"),
        ),
        ("cron-tz-prefix", cron("CRON_TZ=UTC 0 0 * * * *"), Error(field)),
        ("cron-never-fires", cron("0 0 0 30 2 *"), Error("never fires")),
        // time
        (
            "unknown-time-zone",
            json!({"timeZone": "Mars/Olympus"}),
            Error("spec.timeZone: unknown IANA time zone"),
        ),
        (
            "cron-end-before-start",
            json!({"trigger": {"cronSchedule": {"cron": "@hourly",
            "startTime": "2030-01-02T00:00:00Z", "endTime": "2030-01-01T00:00:00Z"}}}),
            Error("endTime 2030-01-01T00:00:00Z is before startTime"),
        ),
        (
            "periodic-end-before-start",
            json!({"trigger": {"periodicSchedule": {"intervalSecond": 60,
            "startTime": "2030-01-02T00:00:00Z", "endTime": "2030-01-01T00:00:00Z"}}}),
            Error("is before startTime"),
        ),
        (
            "interval-huge",
            json!({"trigger": {"periodicSchedule": {"intervalSecond": i64::MAX}}}),
            Error("spec.trigger.periodicSchedule.intervalSecond: 9223372036854775807 is more than"),
        ),
        (
            "both-triggers",
            json!({"trigger": {"cronSchedule": {"cron": "@daily"}, "periodicSchedule": {"intervalSecond": 60}}}),
            Error("spec.trigger: set exactly one of cronSchedule or periodicSchedule"),
        ),
        // numbers the Rust types cannot hold (format: int32 is not enforced for CRDs)
        (
            "int32-overflow",
            json!({"successfulRunsHistoryLimit": 2_147_483_648u64}),
            Error("spec.successfulRunsHistoryLimit: invalid value: integer `2147483648`, expected i32"),
        ),
        (
            "int32-overflow-failed",
            json!({"failedRunsHistoryLimit": 4_294_967_296u64}),
            Error("spec.failedRunsHistoryLimit"),
        ),
        // the workflow spec
        (
            "spec-a-number",
            workflow_spec(json!(42)),
            Error("spec.workflow.spec: must be an Argo WorkflowSpec object"),
        ),
        (
            "spec-a-list",
            workflow_spec(json!([1, 2])),
            Error("spec.workflow.spec: must be an Argo WorkflowSpec object"),
        ),
        (
            "spec-json-string-of-a-string",
            workflow_spec(json!("\"hi\"")),
            Error("spec.workflow.spec: must be an Argo WorkflowSpec object"),
        ),
        (
            "spec-bad-json",
            workflow_spec(json!("{\"entrypoint\": ")),
            Error("spec.workflow.spec: the string is not JSON or YAML: EOF"),
        ),
        (
            "spec-bad-yaml",
            workflow_spec(json!("entrypoint: [unclosed")),
            Error("spec.workflow.spec: the string is not JSON or YAML"),
        ),
        (
            "spec-alias-bomb",
            workflow_spec(json!(bomb)),
            Error("spec.workflow.spec: the string expands to more than 200000 nodes"),
        ),
        (
            "spec-deep-string",
            workflow_spec(json!(deep_text(200))),
            Error("spec.workflow.spec: the string"),
        ),
        (
            "spec-deep-object",
            json!({"runTemplate": {"spec": {"x": deep(140)}}}),
            Error("recursion limit exceeded"),
        ),
        (
            "spec-1mib",
            workflow_spec(json!(big)),
            Error("is 1048609 bytes, more than the 1048576 accepted"),
        ),
        (
            "spec-empty-workflow",
            json!({"runTemplate": null, "workflow": {"parameters": []}, "pipelineId": "p"}),
            Error("need KFP"),
        ),
        // the run template
        (
            "template-unknown-kind",
            json!({"runTemplate": {"apiVersion": "example.com/v1", "kind": "Nonexistent"}}),
            Error("example.com/v1/Nonexistent is not served by this cluster"),
        ),
        (
            "template-blank-api-version",
            json!({"runTemplate": {"apiVersion": " ", "kind": "Job"}}),
            Error("spec.runTemplate: apiVersion and kind are required"),
        ),
        (
            "template-schedules-itself",
            json!({"runTemplate": {"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow"}}),
            Error("spec.runTemplate.kind: a ScheduledWorkflow cannot create ScheduledWorkflows"),
        ),
        (
            "both-sources",
            json!({"workflow": {"spec": {"entrypoint": "main"}}}),
            Error("spec: set exactly one of workflow or runTemplate"),
        ),
        ("no-source", json!({"runTemplate": null}), Error("spec: nothing to run")),
        (
            "service-account-nowhere",
            json!({"serviceAccount": "sa", "runTemplate": {"apiVersion": "v1", "kind": "ConfigMap"}}),
            Error("spec.serviceAccount: cannot be applied to v1/ConfigMap"),
        ),
        (
            "job-the-server-refuses",
            json!({"runTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}),
            Error("cannot create run job-the-server-refuses-"),
        ),
        // documented clamps and readings: these run
        (
            "clamp-concurrency-high",
            json!({"maxConcurrency": 50}),
            Runs(Some("spec.maxConcurrency: 50 is outside 1..10")),
        ),
        (
            "clamp-concurrency-zero",
            json!({"maxConcurrency": 0}),
            Runs(Some("spec.maxConcurrency: 0 is outside 1..10")),
        ),
        (
            "clamp-history",
            json!({"maxHistory": 1000}),
            Runs(Some("spec.maxHistory: 1000 is outside 0..100")),
        ),
        (
            "clamp-interval-zero",
            json!({"trigger": {"periodicSchedule": {"intervalSecond": 0}}}),
            Runs(Some("intervalSecond: 0 is below 1")),
        ),
        (
            "clamp-interval-negative",
            json!({"trigger": {"periodicSchedule": {"intervalSecond": -5}}}),
            Runs(Some("intervalSecond: -5 is below 1")),
        ),
        (
            "start-before-1970",
            json!({"trigger": {"cronSchedule": {"cron": "@yearly", "startTime": "1960-01-01T00:00:00Z"}}}),
            Runs(Some("before 1970")),
        ),
        (
            "five-fields",
            cron("* * * * *"),
            Runs(Some("5-field cron expressions are read as")),
        ),
        (
            "unknown-macro",
            json!({"runTemplate": {"metadata": {"annotations": {"m": "[[Unknown]]"}}}}),
            Runs(None),
        ),
        (
            "older-kfp-object",
            json!({"runTemplate": null, "workflow": {"spec": {"entrypoint": "main", "templates": [{"name": "main"}]},
            "parameters": [{"name": "p", "value": "[[Index]]"}]}}),
            Runs(None),
        ),
    ]
}

fn bad_swf(name: &str, changes: Value) -> swf_operator::crd::ScheduledWorkflow {
    let mut spec = json!({"maxConcurrency": 1, "trigger": {"periodicSchedule": {"intervalSecond": 1}}});
    merge(&mut spec, changes);
    let mut swf = serde_json::to_value(job_swf(name, json!({}))).unwrap();
    merge(&mut swf["spec"], spec);
    // `null` in a change removes the field (as a merge patch does).
    strip_nulls(&mut swf);
    serde_json::from_value(swf).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn strip_nulls(v: &mut Value) {
    if let Value::Object(map) = v {
        map.retain(|_, v| !v.is_null());
        map.values_mut().for_each(strip_nulls);
    }
}

/// Creates the object from raw JSON and does not parse the answer: values the Rust types
/// cannot hold (or nesting serde_json refuses) must reach the server.
async fn create_raw(env: &TestEnv, name: &str, changes: Value) -> Result<(), kube::Error> {
    use kube::Resource;
    let url = swf_operator::crd::ScheduledWorkflow::url_path(&(), Some(&env.namespace));
    let mut obj = json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow", "metadata": {"name": name},
        "spec": {"enabled": true, "maxConcurrency": 1, "trigger": {"periodicSchedule": {"intervalSecond": 1}},
            "runTemplate": {"apiVersion": "batch/v1", "kind": "Job",
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}});
    if changes.get("trigger").is_some() {
        obj["spec"]["trigger"] = json!({}); // a case's trigger replaces the default one
    }
    merge(&mut obj["spec"], changes);
    strip_nulls(&mut obj);
    let request = kube::core::Request::new(url)
        .create(&PostParams::default(), serde_json::to_vec(&obj).unwrap())
        .unwrap();
    env.client.request_text(request).await.map(|_| ())
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
    let good_api: Api<swf_operator::crd::ScheduledWorkflow> = Api::namespaced(env.client.clone(), &good_ns);
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
    assert!(cases.len() >= 40, "{} cases", cases.len());
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
        .map(|r| r.labels()[swf_operator::render::LABEL_EPOCH].parse().unwrap())
        .collect();
    ticks.sort();
    assert!(
        ticks.windows(2).all(|w| w[1] - w[0] == 2),
        "no good tick lost: {ticks:?}"
    );
    for r in &good_runs {
        let tick: i64 = r.labels()[swf_operator::render::LABEL_EPOCH].parse().unwrap();
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

async fn runs_of_ns(env: &TestEnv, ns: &str, swf: &swf_operator::crd::ScheduledWorkflow) -> Vec<DynamicObject> {
    let uid = swf.uid().unwrap();
    common::list_runs(&env.client, ns, &job_resource())
        .await
        .into_iter()
        .filter(|r| r.owner_references().iter().any(|o| o.uid == uid))
        .collect()
}

/// The object, decoded as the operator decodes it (a spec the Rust types cannot hold is
/// reported, not a failure of the read).
async fn stored(env: &TestEnv, name: &str) -> swf_operator::stored::SwfObject {
    Api::<swf_operator::stored::SwfObject>::namespaced(env.client.clone(), &env.namespace)
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
        Expect::Error(want) => {
            let message = eventually(WAIT, &format!("{name}: an Error condition"), || async {
                let c = stored(env, name).await.status.conditions.into_iter().next()?;
                (c.type_ == "Error").then_some(c.message.unwrap_or_default())
            })
            .await;
            assert!(message.contains(want), "{name}: {message:?} lacks {want:?}");
            let warnings = events_for(env, name)
                .await
                .into_iter()
                .filter(|(t, _, _)| t == "Warning")
                .count();
            // A create the API server refuses is retried (with backoff, one event each).
            let most = if name == "job-the-server-refuses" { 4 } else { 1 };
            assert!(warnings <= most, "{name}: {warnings} Warning events");
            if name != "job-the-server-refuses" {
                assert_eq!(runs().await, 0, "{name}: no run");
            }
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
