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
use swf_operator::model::crd::ScheduledWorkflow;

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
    let mut config = swf_operator::model::manifest::parse_yaml_documents(&text)
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
    large_objects_keep_updating(&env).await;
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
    let mut unset = manifest("enabled-unset", json!({}));
    unset["spec"].as_object_mut().unwrap().remove("enabled");
    let (ok, out) = kubectl_apply(env, &unset, &[]);
    assert!(
        ok && out.contains("Warning: spec.enabled: not set, so this schedule will not run"),
        "{out}"
    );
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

/// An update of a schedule near etcd's size limit: the review carries the object and the old
/// object (2.4 MiB here, more than axum's default body limit of 2 MB) and is judged.
async fn large_objects_keep_updating(env: &TestEnv) {
    let pad = "x".repeat(1_200_000);
    let large = manifest("large", json!({"runTemplate": {"spec": {"pad": pad}}}));
    let obj: ScheduledWorkflow = serde_json::from_value(large).unwrap();
    swfs(env).create(&PostParams::default(), &obj).await.unwrap();
    let disabled = patch_spec(env, "large", json!({"enabled": false})).await;
    assert!(disabled.is_ok(), "{disabled:?}");
}

async fn patch_spec(env: &TestEnv, name: &str, spec: Value) -> Result<ScheduledWorkflow, kube::Error> {
    swfs(env)
        .patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": spec})))
        .await
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

/// The CA of the webhook's generated certificate (what the API server trusts).
async fn webhook_ca(env: &TestEnv) -> Vec<u8> {
    let secret = Api::<Secret>::namespaced(env.client.clone(), "swf-system")
        .get(SECRET)
        .await
        .unwrap();
    secret.data.unwrap()["ca.crt"].0.clone()
}

/// A TLS connection to the webhook on `port` that trusts `ca`, with `client` as its client
/// certificate and key (PEM) when given.
async fn tls_to_webhook(
    port: u16,
    ca: &[u8],
    client: Option<(&[u8], &[u8])>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert).map(Result::unwrap).collect(),
                PrivateKeyDer::from_pem_slice(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
}

/// Sends one HTTP/1.1 request over `stream` and reads the status code of the answer
/// (`None`: the connection failed or closed without one). The body is sent at `pace` bytes a
/// second when given, else at once; `ready` is told once the head is sent.
async fn post_review<S>(
    mut stream: S,
    body: &[u8],
    pace: Option<usize>,
    ready: Option<tokio::sync::mpsc::Sender<()>>,
) -> Option<u16>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!(
        "POST /validate-scheduledworkflows HTTP/1.1\r\nhost: webhook\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    stream.flush().await.ok()?;
    if let Some(ready) = ready {
        let _ = ready.send(()).await;
    }
    let mut answer = [0u8; 256];
    match pace {
        None => {
            stream.write_all(body).await.ok()?;
            stream.flush().await.ok()?;
        }
        Some(per_second) => {
            for chunk in body.chunks(per_second) {
                match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut answer)).await {
                    Ok(Ok(n)) if n > 0 => return status_of(&answer[..n]),
                    Ok(_) => return None,
                    Err(_) => stream.write_all(chunk).await.ok()?,
                }
                stream.flush().await.ok()?;
            }
        }
    }
    let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut answer))
        .await
        .ok()?
        .ok()?;
    status_of(&answer[..n])
}

fn status_of(answer: &[u8]) -> Option<u16> {
    String::from_utf8_lossy(answer).split(' ').nth(1)?.parse().ok()
}

/// An AdmissionReview as anyone could forge one: a create of `object` by `user`.
fn forged_review(user: &str, namespace: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "forged", "name": "x", "namespace": namespace, "operation": "CREATE",
        "kind": {"group": "kubeflow.org", "version": "v1beta1", "kind": "ScheduledWorkflow"},
        "resource": {"group": "kubeflow.org", "version": "v1beta1", "resource": "scheduledworkflows"},
        "userInfo": {"username": user}, "object": object}}),
    )
    .unwrap()
}

/// Without client certificates (deploy/'s default), anyone who reaches the webhook can send it
/// reviews. What that costs: 70 connections sending their review a byte a second hold no slot
/// and give up at the body deadline (3 s), so the API server's own reviews are answered and a
/// valid create passes meanwhile; N concurrent forged reviews of the largest size with more
/// structure than two objects can have are refused before decoding, and N of the largest
/// that can be decoded stay within the webhook's budget (peak RSS printed).
#[tokio::test]
async fn forged_and_slow_reviews_do_not_hold_the_webhook() {
    let Some(env) = common::private_env("admission-attacks").await else {
        return;
    };
    let port = plane::free_port();
    register(&env, port).await;
    let operator = start_webhook(&env, "webhook-attacks", port, &[]).await;
    let ca = webhook_ca(&env).await;

    // Slow bodies.
    let slow_review = forged_review("mallory", &env.namespace, manifest("slow", json!({})));
    let (ready, mut started) = tokio::sync::mpsc::channel(70);
    let slow: Vec<_> = (0..70)
        .map(|_| {
            let (ca, body, ready) = (ca.clone(), slow_review.clone(), ready.clone());
            tokio::spawn(async move {
                let stream = tls_to_webhook(port, &ca, None).await.ok()?;
                post_review(stream, &body, Some(1), Some(ready)).await
            })
        })
        .collect();
    for _ in 0..70 {
        started.recv().await.unwrap();
    }
    let probe = manifest("probe-under-attack", json!({}));
    let (ok, out) = kubectl_apply(&env, &probe, &["--dry-run=server"]);
    println!("a valid apply while 70 reviews trickle in: ok={ok}: {out}");
    assert!(ok, "{out}");
    let answers: Vec<Option<u16>> = futures::future::join_all(slow)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let timed_out = answers.iter().filter(|a| **a == Some(408)).count();
    println!("slow reviews: {timed_out} of 70 answered 408");
    assert_eq!(timed_out, 70, "{answers:?}");

    // Forged reviews, all at once: more structure than any review has, and the largest
    // decodable ones.
    let n = 8;
    let mut bomb = forged_review(
        "mallory",
        &env.namespace,
        manifest(
            "bomb",
            json!({"runTemplate": {
        "apiVersion": "batch/v1", "kind": "Job", "spec": {"x": []}}}),
        ),
    );
    let at = bomb.windows(6).position(|w| w == b"\"x\":[]").unwrap() + 5;
    let filler: Vec<u8> = b"{},".repeat((4 << 20) / 3 - bomb.len() / 3 - 10);
    bomb.splice(at..at, filler[..filler.len() - 1].iter().copied());
    let decodable = forged_review(
        "mallory",
        &env.namespace,
        manifest(
            "dense",
            json!({"runTemplate": {
        "apiVersion": "batch/v1", "kind": "Job", "spec": {"x": vec![0; 390_000]}}}),
        ),
    );
    for (what, body, want) in [
        ("forged reviews with more structure than a review has", bomb, 400),
        ("forged reviews of 390,000 values", decodable, 200),
    ] {
        operator.reset_peak_rss();
        let base = operator.rss().unwrap();
        let statuses = futures::future::join_all((0..n).map(|_| {
            let (ca, body) = (ca.clone(), body.clone());
            async move {
                let stream = tls_to_webhook(port, &ca, None).await.ok()?;
                post_review(stream, &body, None, None).await
            }
        }))
        .await;
        let grew = operator.peak_rss().unwrap().saturating_sub(base);
        println!(
            "memory: {what} ({} KiB each), {n} at once: peak RSS {} MiB above {} MiB; answers {statuses:?}",
            body.len() >> 10,
            grew >> 20,
            base >> 20
        );
        assert!(statuses.iter().all(|s| *s == Some(want)), "{what}: {statuses:?}");
        assert!(grew < 96 << 20, "{what}: {} MiB", grew >> 20);
    }
}

/// A CA for the webhook's clients, and a client certificate it signed: (CA, cert, key), PEM.
fn client_ca(common_name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "webhook clients");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// With `--admission-client-ca`, only the API server (given a client certificate for the
/// webhook in its admission configuration) gets past the TLS handshake: forged reviews, with
/// no certificate or one of another CA, get no answer at all, while kubectl's requests are
/// judged as before. Also: a cluster-scoped run kind is refused by name, and a kind the
/// cluster does not serve costs one API discovery request however often it is named (the
/// API server's audit log counts them).
#[tokio::test]
async fn reviews_are_accepted_only_from_the_api_server() {
    use base64::Engine;
    if common::use_existing_cluster() {
        return; // it configures the API server
    }
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let port = plane::free_port();
    let (ca, cert, key) = client_ca("kube-apiserver");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kubeconfig = file(
        "webhook-clients.kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: \"127.0.0.1:{port}\"\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&cert),
            b64(&key)
        ),
    );
    let admission = file(
        "admission.yaml",
        &format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: ValidatingAdmissionWebhook\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: WebhookAdmissionConfiguration\n    kubeConfigFile: {kubeconfig}\n"
        ),
    );
    let policy = file(
        "audit-policy.yaml",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  nonResourceURLs: [\"/apis/gadgets.example.com*\"]\n- level: None\n",
    );
    let audit_log = dir.path().join("audit.log");
    let flags = [
        format!("--admission-control-config-file={admission}"),
        format!("--audit-policy-file={policy}"),
        format!("--audit-log-path={}", audit_log.display()),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let env = common::private_env_with("admission-client-cert", &flags).await.unwrap();
    register(&env, port).await;
    let ca_file = file("clients-ca.pem", &ca);
    let client_ca_flag = format!("--admission-client-ca={ca_file}");
    let _operator = start_webhook(&env, "webhook-client-cert", port, &[&client_ca_flag]).await;

    // The API server gets through: bad schedules are refused with the webhook's words.
    let (ok, out) = kubectl_apply(&env, &manifest("bad", json!({"timeZone": "Mars/Olympus"})), &[]);
    assert!(!ok && out.contains("spec.timeZone"), "{out}");
    // Anyone else gets no answer, with no certificate or with another CA's.
    let serving_ca = webhook_ca(&env).await;
    let review = forged_review("mallory", &env.namespace, manifest("forged", json!({})));
    let (_, other_cert, other_key) = client_ca("kube-apiserver");
    for (what, client) in [
        ("no certificate", None),
        (
            "another CA's certificate",
            Some((other_cert.as_bytes(), other_key.as_bytes())),
        ),
    ] {
        let answer = match tls_to_webhook(port, &serving_ca, client).await {
            Ok(stream) => post_review(stream, &review, None, None).await,
            Err(_) => None,
        };
        assert_eq!(answer, None, "{what}: answered");
    }
    // With the API server's own certificate, a forged review would be answered: the check is
    // the certificate, not the address.
    let stream = tls_to_webhook(port, &serving_ca, Some((cert.as_bytes(), key.as_bytes())))
        .await
        .unwrap();
    assert_eq!(post_review(stream, &review, None, None).await, Some(200));

    // Run kinds: cluster-scoped ones refused by name; a missing one looked up once.
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let namespaces = json!({"runTemplate": {"apiVersion": "v1", "kind": "Namespace", "spec": {}}});
    let refused = message(
        swfs(&env)
            .create(&dry_run, &job_swf("cluster-scoped", namespaces))
            .await,
    );
    assert!(refused.contains("run kind v1/Namespace is cluster-scoped"), "{refused}");
    for i in 0..10 {
        let gadget = json!({"runTemplate": {"apiVersion": "gadgets.example.com/v1", "kind": "Gadget", "spec": {}}});
        let refused = message(
            swfs(&env)
                .create(&dry_run, &job_swf(&format!("gadget-{i}"), gadget))
                .await,
        );
        assert!(refused.contains("is not served by this cluster"), "{refused}");
    }
    let lookups = || {
        std::fs::read_to_string(&audit_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"requestURI\":\"/apis/gadgets.example.com/v1\""))
            .count()
    };
    eventually(WAIT, "the lookup in the audit log", || async {
        (lookups() > 0).then_some(())
    })
    .await;
    println!(
        "a missing run kind named 10 times: {} API discovery request(s)",
        lookups()
    );
    assert_eq!(lookups(), 1);
}
