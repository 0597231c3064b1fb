//! The bad-input corpus: ScheduledWorkflows a user, a tool or an older KFP may store, each with
//! what it must lead to. The reconciler's test (bad_input.rs) stores them all and checks the
//! condition each gets; the admission test (admission.rs) checks the webhook refuses the same.
use kube::api::PostParams;
use serde_json::{Value, json};

use crate::common::{TestEnv, swf::merge};

/// What a case must lead to.
pub enum Expect {
    /// An `Error` condition whose message contains this, at most one Warning event, no run.
    Error(&'static str),
    /// Valid as a schedule, but the API server refuses its runs: an `Error` condition whose
    /// message contains this (one Warning event per retried create).
    RunRefused(&'static str),
    /// It runs (a documented clamp or reading); a Warning event contains this, if given.
    Runs(Option<&'static str>),
    /// It runs with `maxConcurrency` clamped to this many active runs (its runs never finish:
    /// there is no kubelet), and a Warning event contains the text.
    Capped(&'static str, usize),
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

pub fn cron(expr: &str) -> Value {
    json!({"trigger": {"cronSchedule": {"cron": expr}}})
}

fn workflow_spec(spec: Value) -> Value {
    json!({"runTemplate": null, "workflow": {"spec": spec}})
}

/// The corpus: name, spec changes over a valid Job schedule, expected outcome.
pub fn corpus() -> Vec<(&'static str, Value, Expect)> {
    use Expect::*;
    let field = "spec.trigger.cronSchedule.cron";
    let bomb = include_str!("../fixtures/bad-input/alias-bomb.yaml");
    let big = format!("{{\"entrypoint\": \"main\", \"pad\": \"{}\"}}", "x".repeat(1 << 20));
    // What the operator must say about it, from the data itself (a leak: one string per run).
    let too_big: &'static str = Box::leak(
        format!(
            "is {} bytes, more than the {} accepted",
            big.len(),
            swf_operator::model::manifest::MAX_MANIFEST_BYTES
        )
        .into_boxed_str(),
    );
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
        ("spec-1mib", workflow_spec(json!(big)), Error(too_big)),
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
            RunRefused("cannot create run job-the-server-refuses-"),
        ),
        // documented clamps and readings: these run
        (
            "clamp-concurrency-high",
            json!({"maxConcurrency": 50, "trigger": {"periodicSchedule": {"intervalSecond": 1}}}),
            Capped("spec.maxConcurrency: 50 is outside 1..10", 10),
        ),
        (
            "clamp-concurrency-zero",
            json!({"maxConcurrency": 0, "trigger": {"periodicSchedule": {"intervalSecond": 1}}}),
            Capped("spec.maxConcurrency: 0 is outside 1..10", 1),
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

/// The manifest of case `name`: a valid Job schedule (every second) with `changes` merged in
/// (`null` removes a field; a case's trigger replaces the default one).
pub fn manifest(name: &str, changes: Value) -> Value {
    let mut obj = json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow", "metadata": {"name": name},
        "spec": {"enabled": true, "maxConcurrency": 1, "trigger": {"periodicSchedule": {"intervalSecond": 1}},
            "runTemplate": {"apiVersion": "batch/v1", "kind": "Job",
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}});
    if changes.get("trigger").is_some() {
        obj["spec"]["trigger"] = json!({}); // a case's trigger replaces the default one
    }
    merge(&mut obj["spec"], changes);
    strip_nulls(&mut obj);
    obj
}

pub fn strip_nulls(v: &mut Value) {
    if let Value::Object(map) = v {
        map.retain(|_, v| !v.is_null());
        map.values_mut().for_each(strip_nulls);
    }
}

/// Creates the object from raw JSON and does not parse the answer: values the Rust types
/// cannot hold (or nesting serde_json refuses) must reach the server.
pub async fn create_raw(env: &TestEnv, name: &str, changes: Value) -> Result<(), kube::Error> {
    use kube::Resource;
    let url = swf_operator::model::crd::ScheduledWorkflow::url_path(&(), Some(&env.namespace));
    let obj = manifest(name, changes);
    let request = kube::core::Request::new(url)
        .create(&PostParams::default(), serde_json::to_vec(&obj).unwrap())
        .unwrap();
    env.client.request_text(request).await.map(|_| ())
}
