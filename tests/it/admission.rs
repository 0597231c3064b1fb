//! The admission webhook on a real kube-apiserver, which calls it over HTTPS on loopback: the
//! configuration is deploy/base/webhook.yaml's (rules, failurePolicy, timeout), reached by URL
//! instead of through the Service. The operator runs as a process with deploy/'s RBAC, makes
//! its certificate and sets the caBundle itself.
use std::{
    io::Write,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    admissionregistration::v1::ValidatingWebhookConfiguration,
    core::v1::Secret,
    rbac::v1::{Role, RoleBinding},
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use swf_operator::crd::ScheduledWorkflow;

use crate::{
    common::{
        self, OperatorProcess, TestEnv, eventually, plane, repo_root,
        swf::{WAIT, argo_swf, job_swf, swfs},
    },
    corpus::{Expect, corpus, create_raw, manifest},
};

const CONFIGURATION: &str = "swf-operator";
const SECRET: &str = "swf-operator-webhook-tls";

/// deploy/base/webhook.yaml's configuration, pointed at `https://127.0.0.1:{port}`.
fn configuration(port: u16) -> ValidatingWebhookConfiguration {
    let text = std::fs::read_to_string(repo_root().join("deploy/base/webhook.yaml")).unwrap();
    let mut config = swf_operator::manifest::parse_yaml_documents(&text)
        .into_iter()
        .map(Result::unwrap)
        .find(|d| d["kind"] == "ValidatingWebhookConfiguration")
        .expect("deploy/base/webhook.yaml has the configuration");
    let path = config["webhooks"][0]["clientConfig"]["service"]["path"].clone();
    config["webhooks"][0]["clientConfig"] =
        json!({"url": format!("https://127.0.0.1:{port}{}", path.as_str().unwrap())});
    assert_eq!(
        config["webhooks"][0]["failurePolicy"], "Fail",
        "the tests hold deploy/'s policy"
    );
    serde_json::from_value(config).unwrap()
}

async fn register(env: &TestEnv, port: u16) {
    Api::<ValidatingWebhookConfiguration>::all(env.client.clone())
        .create(&PostParams::default(), &configuration(port))
        .await
        .unwrap();
}

/// The operator with its webhook on `port` (already registered), once the API server can
/// reach it: a dry-run create of a valid schedule passes.
async fn start_webhook(env: &TestEnv, name: &str, port: u16, extra: &[&str]) -> OperatorProcess {
    let addr = format!("--admission-addr=127.0.0.1:{port}");
    let mut args = vec![
        "--leader-elect=false",
        addr.as_str(),
        "--admission-secret-namespace=swf-system",
    ];
    args.extend_from_slice(extra);
    let operator = OperatorProcess::start(env, name, &args).await;
    webhook_answers(env).await;
    operator
}

async fn webhook_answers(env: &TestEnv) {
    let probe = job_swf("probe", json!({}));
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    eventually(WAIT, "the API server reaches the webhook", || async {
        swfs(env).create(&dry_run, &probe).await.ok().map(|_| ())
    })
    .await;
}

/// `kubectl apply -f -` of `manifest` as the admin: success and what kubectl printed.
fn kubectl_apply(env: &TestEnv, manifest: &Value, extra: &[&str]) -> (bool, String) {
    let mut child = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", env.plane.kubeconfig.display()))
        .args(["apply", "-n", &env.namespace, "-f", "-"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let body = serde_json::to_vec(manifest).unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn kubectl_ok(env: &TestEnv, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", env.plane.kubeconfig.display()))
        .args(["-n", &env.namespace])
        .args(args)
        .output()
        .expect("run kubectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Cases stored before the webhook existed: broken ones, and ones only KFP's clamps accept.
const STORED_BEFORE: &[&str] = &[
    "cron-3-fields",
    "unknown-time-zone",
    "int32-overflow",
    "spec-deep-object",
    "clamp-concurrency-high",
    "older-kfp-object",
];

#[tokio::test]
async fn a_bad_schedule_is_refused_at_kubectl_apply_and_old_objects_keep_updating() {
    let Some(env) = common::private_env("admission").await else {
        return;
    };
    common::install_argo_crd(&env.client).await;
    let cases = corpus();
    for (name, changes, _) in cases.iter().filter(|(n, _, _)| STORED_BEFORE.contains(n)) {
        create_raw(&env, &format!("old-{name}"), changes.clone()).await.unwrap();
    }
    let port = plane::free_port();
    register(&env, port).await;
    let operator = start_webhook(&env, "webhook", port, &[]).await;

    refuses_the_corpus(&env, &cases);
    old_objects_keep_updating(&env);
    restart_keeps_the_certificate(&env, operator, port).await;
}

/// Every case the reconciler reports as an error is refused at apply, naming the field;
/// readings it accepts pass, with kubectl printing the warning.
fn refuses_the_corpus(env: &TestEnv, cases: &[(&'static str, Value, Expect)]) {
    let mut refused = 0;
    for (name, changes, expect) in cases {
        let manifest = manifest(name, changes.clone());
        // A 1 MiB object cannot carry kubectl's last-applied annotation: apply it server-side.
        let big = serde_json::to_vec(&manifest).unwrap().len() > 200_000;
        let extra: &[&str] = if big { &["--server-side"] } else { &[] };
        let (ok, out) = kubectl_apply(env, &manifest, extra);
        match expect {
            Expect::Error(want) => {
                assert!(!ok, "{name}: kubectl apply succeeded: {out}");
                assert!(
                    out.contains("denied the request") && out.contains(want),
                    "{name}: {out:?} lacks {want:?}"
                );
                refused += 1;
            }
            // Valid as a schedule: only creating its runs fails, which admission cannot know.
            Expect::RunRefused(_) | Expect::Runs(None) => assert!(ok, "{name}: {out}"),
            Expect::Runs(Some(warning)) | Expect::Capped(warning, _) => {
                assert!(ok, "{name}: {out}");
                assert!(
                    out.contains("Warning:") && out.contains(warning),
                    "{name}: kubectl printed no warning {warning:?}: {out}"
                );
            }
        }
    }
    println!(
        "admission: {refused} of {} corpus cases refused at kubectl apply",
        cases.len()
    );
    assert_eq!(
        refused, 37,
        "37 of the 47 cases are refused at apply (the other 10 run or fail at create)"
    );
    let (_, out) = kubectl_apply(
        env,
        &manifest(
            "x",
            json!({"trigger": {"cronSchedule": {"cron": "* * *"}}, "timeZone": "Mars/Olympus"}),
        ),
        &[],
    );
    assert!(
        out.contains("spec.timeZone") && out.contains("spec.trigger.cronSchedule.cron"),
        "every problem at once: {out}"
    );
    println!("a bad apply, as kubectl prints it:\n{out}");
}

/// Objects stored before the webhook take metadata patches, `kubectl patch` of `enabled` and
/// status writes; a spec change that breaks something new is refused.
fn old_objects_keep_updating(env: &TestEnv) {
    for name in STORED_BEFORE {
        let obj = format!("swf/old-{name}");
        let (ok, out) = kubectl_ok(env, &["label", &obj, "team=a"]);
        assert!(ok, "{name}: label: {out}");
        let (ok, out) = kubectl_ok(env, &["annotate", &obj, "scheduledworkflows.kubeflow.org/run-now=1"]);
        assert!(ok, "{name}: annotate: {out}");
        let (ok, out) = kubectl_ok(
            env,
            &["patch", &obj, "--type=merge", "-p", r#"{"spec":{"enabled":false}}"#],
        );
        assert!(ok, "{name}: patch enabled: {out}");
    }
    let (ok, out) = kubectl_ok(
        env,
        &[
            "patch",
            "swf/old-unknown-time-zone",
            "--type=merge",
            "-p",
            r#"{"spec":{"trigger":{"periodicSchedule":null,"cronSchedule":{"cron":"* * *"}}}}"#,
        ],
    );
    assert!(!ok, "a new problem is refused: {out}");
    assert!(out.contains("spec.trigger.cronSchedule.cron"), "{out}");
    let (warned, denied) = out.split_once("denied the request").unwrap();
    assert!(
        !denied.contains("spec.timeZone"),
        "the old problem is not held against it: {out}"
    );
    assert!(
        warned.contains("Warning: spec.timeZone") && warned.contains("already so before this update"),
        "but kubectl shows it: {out}"
    );
}

async fn certificate_state(env: &TestEnv) -> (Value, Vec<u8>) {
    let secret = Api::<Secret>::namespaced(env.client.clone(), "swf-system")
        .get(SECRET)
        .await
        .unwrap();
    let config = Api::<ValidatingWebhookConfiguration>::all(env.client.clone())
        .get(CONFIGURATION)
        .await
        .unwrap();
    let ca = config.webhooks.unwrap()[0].client_config.ca_bundle.clone().unwrap().0;
    (serde_json::to_value(secret.data).unwrap(), ca)
}

/// A restart serves the same certificate; applies fail only while no process listens.
async fn restart_keeps_the_certificate(env: &TestEnv, operator: OperatorProcess, port: u16) {
    let before = certificate_state(env).await;
    operator.kill(libc::SIGKILL);
    let stopped = Instant::now();
    let addr = format!("--admission-addr=127.0.0.1:{port}");
    let _again = OperatorProcess::start(
        env,
        "webhook-again",
        &["--leader-elect=false", &addr, "--admission-secret-namespace=swf-system"],
    )
    .await;
    let valid = manifest("after-restart", json!({}));
    let window = eventually(WAIT, "a valid apply passes again", || async {
        kubectl_apply(env, &valid, &[]).0.then(|| stopped.elapsed())
    })
    .await;
    println!("admission: valid applies failed for {window:?} across a restart (one replica)");
    assert!(window < Duration::from_secs(20), "{window:?}");
    assert_eq!(
        certificate_state(env).await,
        before,
        "the certificate and caBundle survive"
    );
}

async fn grant(env: &TestEnv, user: &str, group: &str, resource: &str) {
    let name = format!("{user}-create-{resource}");
    let role: Role = serde_json::from_value(json!({"metadata": {"name": name},
        "rules": [{"apiGroups": [group], "resources": [resource], "verbs": ["create"]}]}))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({"metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": common::user_name(user)}]}))
    .unwrap();
    let pp = PostParams::default();
    Api::<Role>::namespaced(env.client.clone(), &env.namespace)
        .create(&pp, &role)
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(env.client.clone(), &env.namespace)
        .create(&pp, &binding)
        .await
        .unwrap();
}

async fn as_user(env: &TestEnv, user: &str) -> Api<ScheduledWorkflow> {
    let client = env.plane.client_with_token(&common::user_token(env, user).await).await;
    Api::namespaced(client, &env.namespace)
}

fn message(result: Result<ScheduledWorkflow, kube::Error>) -> String {
    match result {
        Ok(_) => String::from("(allowed)"),
        Err(e) => e.to_string(),
    }
}

async fn patch(api: &Api<ScheduledWorkflow>, name: &str, body: Value) -> Result<ScheduledWorkflow, kube::Error> {
    api.patch(name, &PatchParams::default(), &Patch::Merge(body)).await
}

#[tokio::test]
async fn a_schedule_can_create_only_what_its_author_could() {
    let Some(env) = common::private_env("admission-authz").await else {
        return;
    };
    common::install_argo_crd(&env.client).await;
    let port = plane::free_port();
    register(&env, port).await;
    let operator = start_webhook(&env, "webhook-authz", port, &[]).await;
    common::grant_swf_access(&env.client, &env.namespace, "alice").await;
    let alice = as_user(&env, "alice").await;
    let pp = PostParams::default();

    for (swf, group, resource) in [
        (job_swf("alice-job", json!({})), "batch", "jobs"),
        (argo_swf("alice-workflow", json!({})), "argoproj.io", "workflows"),
    ] {
        let refused = message(alice.create(&pp, &swf).await);
        let want = format!("alice may not create {resource}.{group} in namespace");
        assert!(refused.contains(&want), "{refused}");
        grant(&env, "alice", group, resource).await;
        eventually(WAIT, "allowed once alice may create them", || async {
            alice.create(&pp, &swf).await.ok()
        })
        .await;
    }

    // A schedule someone else made: alice may create jobs and workflows now, not pods.
    let shared = swfs(&env)
        .create(
            &pp,
            &job_swf(
                "shared",
                json!({"trigger": {"periodicSchedule": {"intervalSecond": 1}}}),
            ),
        )
        .await
        .unwrap();
    let pod_runs = json!({"spec": {"runTemplate": {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    let refused = message(patch(&alice, "shared", pod_runs).await);
    assert!(refused.contains("alice may not create pods in namespace"), "{refused}");
    common::swf::wait_runs(&env, &shared, &common::job_resource(), 1).await;
    for allowed in [
        json!({"metadata": {"annotations": {"scheduledworkflows.kubeflow.org/run-now": "1"}}}),
        json!({"spec": {"trigger": {"periodicSchedule": {"intervalSecond": 3600}}}}),
        json!({"spec": {"enabled": false}}),
    ] {
        patch(&alice, "shared", allowed.clone())
            .await
            .unwrap_or_else(|e| panic!("{allowed}: {e}"));
    }
    eventually(WAIT, "the operator's status writes pass", || async {
        let c = common::swf::condition(&env, "shared").await?;
        (c.0 == "Disabled").then_some(())
    })
    .await;

    // bob may write schedules and nothing else: not even a service account change.
    common::grant_swf_access(&env.client, &env.namespace, "bob").await;
    let bob = as_user(&env, "bob").await;
    let refused = message(patch(&bob, "shared", json!({"spec": {"serviceAccount": "admin"}})).await);
    assert!(refused.contains("bob may not create jobs.batch"), "{refused}");

    // Turned off, the check lets bob through: the documented trade-off.
    operator.kill(libc::SIGKILL);
    let _off = start_webhook(&env, "webhook-off", port, &["--admission-authorize=false"]).await;
    eventually(WAIT, "with --admission-authorize=false bob's change passes", || async {
        patch(&bob, "shared", json!({"spec": {"serviceAccount": "admin"}}))
            .await
            .ok()
    })
    .await;
}
