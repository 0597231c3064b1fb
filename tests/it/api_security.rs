//! The JobService is safe to expose: callers are authenticated before any work, reads cost no
//! request and reveal nothing of other tenants, writes act as the caller, and one request
//! cannot load the API server. On the real control plane.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use swf_operator::api::service::ApiSettings;

use crate::common::{self, TestEnv, eventually, kfp_job};

async fn call(
    url: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method, format!("{url}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// CreateJob over HTTP as `token`.
async fn create(url: &str, token: Option<&str>, job: Value) -> (StatusCode, Value) {
    call(url, reqwest::Method::POST, "/apis/v1beta1/jobs", token, Some(job)).await
}

async fn start(env: &TestEnv, settings: ApiSettings) -> String {
    common::start_job_api_with(env, settings, None).await.0
}

fn delta(
    before: &std::collections::BTreeMap<(String, String), f64>,
    after: &std::collections::BTreeMap<(String, String), f64>,
    verb: &str,
    resource: &str,
) -> f64 {
    let k = (verb.to_string(), resource.to_string());
    after.get(&k).copied().unwrap_or(0.0) - before.get(&k).copied().unwrap_or(0.0)
}

/// 500 concurrent requests with junk tokens for unknown ids: all 401, no LIST at the API
/// server, one TokenReview per distinct token, and the API's memory does not grow with the
/// number of requests.
///
/// Memory: one burst's peak depends on how many requests the runtime happens to hold at once,
/// so a single burst after warm-up moved RSS by 4 MiB on a loaded CI machine, and 2,000
/// requests once moved it by 9.5 MiB there (4,000 moved it by 3.1 MiB with nothing else
/// running). The check is over 4,000 requests with ids and tokens never seen before: a leak
/// of 4 KiB per request (a kept request, a cached token or id) grows RSS by 16 MiB and fails
/// it, with 12 MiB allowed for the bursts' high-water mark.
#[tokio::test]
async fn junk_tokens_cost_one_token_review_and_no_list() {
    let Some(env) = common::private_env("api-junk").await else {
        return;
    };
    let port = common::plane::free_port();
    let addr = format!("127.0.0.1:{port}");
    let api = common::OperatorProcess::spawn(
        &env,
        "api",
        &common::api_token(&env).await,
        &["api", "--api-addr", &addr, "--api-plain-http"],
    );
    let url = format!("http://{addr}");
    eventually(Duration::from_secs(60), "the API listening", || async {
        reqwest::get(format!("{url}/healthz")).await.ok().map(|_| ())
    })
    .await;
    let tokens = ["junk-a", "junk-b", "junk-c", "junk-d", "junk-e"];
    let burst = |round: usize| {
        let url = url.clone();
        futures::future::join_all((0..500).map(move |i| {
            let url = url.clone();
            async move {
                let token = format!("{}-{round}", tokens[i % tokens.len()]);
                let path = format!("/apis/v1beta1/jobs/no-such-id-{round}-{i}");
                call(&url, reqwest::Method::GET, &path, Some(&token), None).await.0
            }
        }))
    };
    for round in 0..3 {
        burst(round).await; // warm up: connections, caches, allocator arenas
    }
    let before = env.plane.request_counts();
    let statuses = burst(3).await;
    let after = env.plane.request_counts();
    let unauthorized = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let (lists, reviews) = (
        delta(&before, &after, "LIST", "scheduledworkflows"),
        delta(&before, &after, "POST", "tokenreviews"),
    );
    let rss_before = api.rss().unwrap();
    for round in 4..12 {
        burst(round).await;
    }
    let rss_after = api.rss().unwrap();
    println!(
        "junk tokens: 500 requests, {unauthorized} answered 401, {lists} LISTs, {reviews} TokenReviews; \
         RSS over 4,000 more: {} -> {} KiB",
        rss_before >> 10,
        rss_after >> 10
    );
    assert_eq!(unauthorized, 500);
    assert_eq!(lists, 0.0, "no LIST for an unknown id");
    assert!(
        reviews <= tokens.len() as f64,
        "one review per distinct token: {reviews}"
    );
    assert!(
        rss_after < rss_before + (12 << 20),
        "memory stays flat over 4,000 requests: {rss_before} -> {rss_after}"
    );
    api.kill(libc::SIGKILL);
}

#[tokio::test]
async fn another_tenants_job_is_a_404_and_reveals_nothing() {
    let env = common::env("api-tenants").await;
    let other = common::env("api-tenants-other").await;
    let url = start(&env, ApiSettings::default()).await;
    common::grant_swf_access(&env.client, &env.namespace, &common::user_name("alice")).await;
    common::grant_swf_access(&env.client, &other.namespace, &common::user_name("bob")).await;
    let alice = common::user_token(&env, "alice").await;
    let bob = common::user_token(&env, "bob").await;
    let (status, created) = create(&url, Some(&alice), kfp_job("secret", Some(&env.namespace))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, body) = call(
        &url,
        reqwest::Method::GET,
        &format!("/apis/v1beta1/jobs/{id}"),
        Some(&bob),
        None,
    )
    .await;
    let (unknown_status, unknown) = call(
        &url,
        reqwest::Method::GET,
        "/apis/v1beta1/jobs/00000000-0000-0000-0000-000000000000",
        Some(&bob),
        None,
    )
    .await;
    assert_eq!((status, unknown_status), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    let text = body.to_string();
    assert!(!text.contains(&env.namespace) && !text.contains("secret"), "{text}");
    assert_eq!(
        body["message"].as_str().unwrap().replace(id, "X"),
        unknown["message"]
            .as_str()
            .unwrap()
            .replace("00000000-0000-0000-0000-000000000000", "X")
    );
    for path in [
        format!("/apis/v1beta1/jobs/{id}/disable"),
        format!("/apis/v1beta1/jobs/{id}"),
    ] {
        let method = if path.ends_with("disable") {
            reqwest::Method::POST
        } else {
            reqwest::Method::DELETE
        };
        assert_eq!(
            call(&url, method, &path, Some(&bob), None).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // Alice lists her namespace; bob may not list it.
    let list = format!(
        "/apis/v1beta1/jobs?resource_reference_key.type=NAMESPACE&resource_reference_key.id={}",
        env.namespace
    );
    let (status, page) = call(&url, reqwest::Method::GET, &list, Some(&alice), None).await;
    assert_eq!((status, page["total_size"].as_i64()), (StatusCode::OK, Some(1)));
    assert_eq!(
        call(&url, reqwest::Method::GET, &list, Some(&bob), None).await.0,
        StatusCode::FORBIDDEN
    );
    // KFP's error shape: details carry an api.Error.
    assert_eq!(unknown["details"][0]["@type"], "type.googleapis.com/api.Error");
}

/// An API whose own namespace is the test's, where jobs may not run as `swf-operator`.
fn guarding_its_own_namespace(env: &TestEnv) -> ApiSettings {
    ApiSettings {
        own_namespace: Some(env.namespace.clone()),
        refused_service_accounts: vec!["swf-operator".into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn no_namespace_and_no_default_is_a_400_and_the_operators_account_is_refused() {
    let env = common::env("api-defaults").await;
    let url = start(&env, guarding_its_own_namespace(&env)).await;
    let admin = common::admin_token(&env).await;
    let (status, body) = create(&url, Some(&admin), kfp_job("x", None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("NAMESPACE"), "{body}");
    let mut as_operator = kfp_job("x", Some(&env.namespace));
    as_operator["service_account"] = json!("swf-operator");
    let (status, body) = create(&url, Some(&admin), as_operator).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("operator's own service account"),
        "{body}"
    );
    let (status, _) = call(&url, reqwest::Method::GET, "/apis/v1beta1/jobs", Some(&admin), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "ListJobs without a namespace either");
}

#[tokio::test]
async fn enable_and_delete_never_touch_a_recreated_object_of_the_same_name() {
    let env = common::env("api-uid").await;
    let url = start(&env, ApiSettings::default()).await;
    let admin = common::admin_token(&env).await;
    let (_, created) = create(&url, Some(&admin), kfp_job("again", Some(&env.namespace))).await;
    let id = created["id"].as_str().unwrap().to_string();
    let swfs: kube::Api<swf_operator::model::crd::ScheduledWorkflow> =
        kube::Api::namespaced(env.client.clone(), &env.namespace);
    let name = swfs.list(&Default::default()).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    // Replaced behind the API's back: same name, new uid, disabled.
    let mut fresh = swfs.get(&name).await.unwrap();
    swfs.delete(&name, &Default::default()).await.unwrap();
    eventually(Duration::from_secs(30), "deleted", || async {
        swfs.get_opt(&name).await.ok()?.is_none().then_some(())
    })
    .await;
    fresh.metadata = kube::api::ObjectMeta {
        name: Some(name.clone()),
        ..Default::default()
    };
    fresh.spec.enabled = false;
    fresh.status = None;
    swfs.create(&Default::default(), &fresh).await.unwrap();
    let (status, _) = call(
        &url,
        reqwest::Method::POST,
        &format!("/apis/v1beta1/jobs/{id}/enable"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        !swfs.get(&name).await.unwrap().spec.enabled,
        "the new object is untouched"
    );
    let (status, _) = call(
        &url,
        reqwest::Method::DELETE,
        &format!("/apis/v1beta1/jobs/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(swfs.get_opt(&name).await.unwrap().is_some(), "and not deleted");
}

#[tokio::test]
async fn a_namespaced_api_serves_by_id_without_cluster_rights_and_lists_from_its_cache() {
    let Some(env) = common::private_env("api-scope").await else {
        return;
    };
    let settings = ApiSettings {
        scope: Some(env.namespace.clone()),
        default_namespace: Some(env.namespace.clone()),
        ..Default::default()
    };
    let url = start(&env, settings).await;
    let admin = common::admin_token(&env).await;
    let (_, created) = create(&url, Some(&admin), kfp_job("scoped", None)).await;
    let id = created["id"].as_str().unwrap();
    let before = env.plane.request_counts();
    for _ in 0..20 {
        assert_eq!(
            call(
                &url,
                reqwest::Method::GET,
                &format!("/apis/v1beta1/jobs/{id}"),
                Some(&admin),
                None
            )
            .await
            .0,
            StatusCode::OK
        );
        assert_eq!(
            call(&url, reqwest::Method::GET, "/apis/v1beta1/jobs", Some(&admin), None)
                .await
                .0,
            StatusCode::OK
        );
    }
    let after = env.plane.request_counts();
    assert_eq!(
        delta(&before, &after, "LIST", "scheduledworkflows"),
        0.0,
        "reads come from the cache"
    );
    assert_eq!(delta(&before, &after, "GET", "scheduledworkflows"), 0.0);
    let (status, _) = create(&url, Some(&admin), kfp_job("elsewhere", Some("default"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "outside the API's namespace");
}

#[tokio::test]
async fn stored_objects_the_types_cannot_hold_still_list() {
    let env = common::env("api-odd-objects").await;
    let url = start(
        &env,
        ApiSettings {
            default_namespace: Some(env.namespace.clone()),
            ..Default::default()
        },
    )
    .await;
    let admin = common::admin_token(&env).await;
    // Made with kubectl: a start time before 1970 with a fraction, and an int32 overflow.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("odd.yaml");
    std::fs::write(&file, format!(
        "apiVersion: kubeflow.org/v1beta1\nkind: ScheduledWorkflow\nmetadata: {{name: old, namespace: {ns}}}\nspec:\n  enabled: true\n  trigger: {{periodicSchedule: {{intervalSecond: 60, startTime: '1969-12-31T23:59:59.500000Z'}}}}\n  runTemplate: {{apiVersion: batch/v1, kind: Job}}\n---\napiVersion: kubeflow.org/v1beta1\nkind: ScheduledWorkflow\nmetadata: {{name: huge, namespace: {ns}}}\nspec:\n  successfulRunsHistoryLimit: 2147483648\n  runTemplate: {{apiVersion: batch/v1, kind: Job}}\n",
        ns = env.namespace
    ))
    .unwrap();
    common::kubectl(env.plane, &["apply", "-f", file.to_str().unwrap()]);
    let page = eventually(Duration::from_secs(30), "both listed", || async {
        let (status, page) = call(
            &url,
            reqwest::Method::GET,
            "/apis/v1beta1/jobs?sort_by=name",
            Some(&admin),
            None,
        )
        .await;
        (status == StatusCode::OK && page["total_size"] == 2).then_some(page)
    })
    .await;
    let jobs = page["jobs"].as_array().unwrap();
    assert_eq!(
        jobs[1]["trigger"]["periodic_schedule"]["start_time"],
        "1969-12-31T23:59:59.500Z"
    );
    assert!(
        jobs[0]["error"]
            .as_str()
            .unwrap()
            .contains("successfulRunsHistoryLimit"),
        "{}",
        jobs[0]
    );
    assert!(
        jobs[0]["created_at"].as_str().unwrap().ends_with('Z'),
        "timestamps with Z"
    );
}

#[tokio::test]
async fn grpc_reflection_lists_the_job_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let env = common::env("api-reflection").await;
    let (_, grpc) = common::start_job_api_with(&env, ApiSettings::default(), None).await;
    let channel = tonic::transport::Channel::from_shared(grpc)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("{answer:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"api.JobService".to_string()), "{names:?}");
}

/// The trusted proxy in these tests: Istio's sidecar forwards from 127.0.0.6.
const PROXY: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 6));

/// A client whose connections come from the trusted proxy's address.
fn from_proxy() -> reqwest::Client {
    reqwest::Client::builder().local_address(PROXY).build().unwrap()
}

/// Multi-user mode as deploy/multi-user sets it: KFP's header and prefix, believed from 127.0.0.6.
fn multi_user_settings() -> ApiSettings {
    ApiSettings {
        multi_user: Some(swf_operator::api::identity::MultiUser {
            trusted_proxies: vec!["127.0.0.6/32".parse().unwrap()],
            ..swf_operator::api::identity::MultiUser::new("kubeflow-userid", "accounts.google.com:")
        }),
        ..Default::default()
    }
}

/// deploy/multi-user's RBAC for the API (impersonation of users; of service accounts, a
/// ClusterRole to bind per namespace).
fn apply_multi_user_rbac(env: &TestEnv) {
    for file in ["impersonation.yaml", "serviceaccount-impersonation.yaml"] {
        let path = common::repo_root().join("deploy/multi-user").join(file);
        common::kubectl(env.plane, &["apply", "-f", path.to_str().unwrap()]);
    }
}

/// A notebook's token for KFP's audience (what kfp.Client sends): ServiceAccount `notebook`
/// of the test's namespace, allowed to use ScheduledWorkflows there, in a namespace that lets
/// the API act as its service accounts (serviceaccount-impersonation.yaml).
async fn notebook_token(env: &TestEnv) -> String {
    use k8s_openapi::api::{authentication::v1::TokenRequest, core::v1::ServiceAccount};
    let sas: kube::Api<ServiceAccount> = kube::Api::namespaced(env.client.clone(), &env.namespace);
    sas.create(
        &Default::default(),
        &serde_json::from_value(json!({"metadata": {"name": "notebook"}})).unwrap(),
    )
    .await
    .unwrap();
    let user = format!("system:serviceaccount:{}:notebook", env.namespace);
    common::grant_swf_access(&env.client, &env.namespace, &user).await;
    common::kubectl(
        env.plane,
        &[
            "-n",
            &env.namespace,
            "create",
            "rolebinding",
            "swf-operator-api-impersonation",
            "--clusterrole=swf-operator-api-impersonate-serviceaccounts",
            "--serviceaccount=swf-system:swf-operator-api",
        ],
    );
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": ["pipelines.kubeflow.org"], "expirationSeconds": 3600}}))
            .unwrap();
    sas.create_token_request("notebook", &Default::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
}

/// Kubeflow's multi-user mode: identity from the trusted proxy's header, or from a token for
/// KFP's audience; the API acts for the user by impersonation (deploy/multi-user).
#[tokio::test]
async fn multi_user_mode_acts_for_the_header_or_kfp_audience_user() {
    let env = common::env("api-multi-user").await;
    apply_multi_user_rbac(&env);
    let url = start(&env, multi_user_settings()).await;
    common::grant_swf_access(&env.client, &env.namespace, "alice@example.com").await;
    let as_header = |user: &'static str, method: reqwest::Method, path: String, body: Option<Value>| {
        let url = url.clone();
        async move {
            let mut req = from_proxy()
                .request(method, format!("{url}{path}"))
                .header("kubeflow-userid", format!("accounts.google.com:{user}"));
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, created) = as_header(
        "alice@example.com",
        reqwest::Method::POST,
        "/apis/v1beta1/jobs".into(),
        Some(kfp_job("hers", Some(&env.namespace))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    // Made by impersonation: the audit trail (managedFields' manager aside) is alice's; RBAC
    // decided for her, and someone else is refused.
    let (status, _) = as_header(
        "mallory@example.com",
        reqwest::Method::GET,
        format!("/apis/v1beta1/jobs/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = as_header(
        "mallory@example.com",
        reqwest::Method::POST,
        "/apis/v1beta1/jobs".into(),
        Some(kfp_job("not-hers", Some(&env.namespace))),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // A token for KFP's audience (what kfp.Client sends from a notebook).
    let token = notebook_token(&env).await;
    let (status, body) = create(&url, Some(&token), kfp_job("from-a-notebook", Some(&env.namespace))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, page) = call(
        &url,
        reqwest::Method::GET,
        &format!(
            "/apis/v1beta1/jobs?resource_reference_key.type=NAMESPACE&resource_reference_key.id={}",
            env.namespace
        ),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (status, page["total_size"].as_i64()),
        (StatusCode::OK, Some(2)),
        "{page}"
    );
}

/// Without a certificate of its own, the API generates one into a Secret, once for every
/// replica (`--api-tls-secret`, the default in deploy/), with only the RBAC in api-rbac.yaml.
#[tokio::test]
async fn replicas_share_one_generated_certificate() {
    let Some(env) = common::private_env("api-tls-secret").await else {
        return;
    };
    let own = common::api_client(&env).await;
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let replicas = (0..2).map(|_| {
        swf_operator::serve::tls::from_secret_or_generate(own.clone(), "swf-system", "swf-operator-api-tls", &names)
    });
    let pems: Vec<_> = futures::future::join_all(replicas)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(pems[0].cert, pems[1].cert, "both replicas serve the same certificate");
    let again = swf_operator::serve::tls::from_secret_or_generate(own, "swf-system", "swf-operator-api-tls", &names)
        .await
        .unwrap();
    assert_eq!(again.ca, pems[0].ca, "a restart keeps it");
    let tls = swf_operator::serve::tls::Reloading::new(&pems[0].cert, &pems[0].key).unwrap();
    let settings = ApiSettings {
        default_namespace: Some(env.namespace.clone()),
        ..Default::default()
    };
    let (url, _) = common::start_job_api_with(&env, settings, Some(tls)).await;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pems[0].ca).unwrap())
        .build()
        .unwrap();
    let resp = client
        .get(format!("{url}/apis/v1beta1/jobs"))
        .bearer_auth(common::admin_token(&env).await)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "a client trusting the Secret's CA connects"
    );
}

/// A self-signed serving certificate for `localhost`, and its CA.
fn localhost_tls() -> (
    swf_operator::serve::tls::Pem,
    std::sync::Arc<swf_operator::serve::tls::Reloading>,
) {
    let pem = swf_operator::serve::tls::generate(&["localhost".into()]).unwrap();
    let tls = swf_operator::serve::tls::Reloading::new(&pem.cert, &pem.key).unwrap();
    (pem, tls)
}

/// Reads until the server closes the connection (end of stream or reset); how long that took,
/// or `None` when it was still open after `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => continue, // e.g. the server's HTTP/2 SETTINGS
            }
        }
    })
    .await
    .ok()
}

/// Three TCP connections that never start their TLS handshake delay nobody: each handshake
/// runs on its own, under its own timeout (10 s), so a gRPC call made meanwhile is answered
/// while all three are still waiting.
#[tokio::test]
async fn silent_tls_connections_do_not_delay_other_callers() {
    use swf_operator::api::proto::{GetJobRequest, job_service_client::JobServiceClient};
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
    let env = common::env("api-handshakes").await;
    let (pem, tls) = localhost_tls();
    let settings = ApiSettings {
        default_namespace: Some(env.namespace.clone()),
        ..Default::default()
    };
    let (_, grpc) = common::start_job_api_with(&env, settings, Some(tls)).await;
    let addr = grpc.trim_start_matches("https://").to_string();
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let port = addr.rsplit(':').next().unwrap();
    let channel = Endpoint::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&pem.ca))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect_timeout(Duration::from_secs(60));
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(90), async {
        let mut client = JobServiceClient::new(channel.connect().await.unwrap());
        let mut request = tonic::Request::new(GetJobRequest {
            id: "no-such-job".into(),
        });
        let bearer = format!("Bearer {}", common::admin_token(&env).await);
        request.metadata_mut().insert("authorization", bearer.parse().unwrap());
        client.get_job(request).await
    })
    .await
    .expect("answered within 90 s");
    let took = started.elapsed();
    println!("gRPC call over TLS with 3 silent connections open: {took:?}");
    assert_eq!(answer.unwrap_err().code(), tonic::Code::NotFound);
    for (i, stream) in silent.iter().enumerate() {
        let mut buf = [0u8; 1];
        match stream.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!(
                "silent connection {i} was already closed ({other:?}): the call waited for its handshake to time out"
            ),
        }
    }
}

/// Connections that send nothing are closed after the idle timeout (2 s here): a TCP
/// connection that never sends a byte (HTTP and gRPC ports), an HTTP/1.1 keep-alive
/// connection after its request, an HTTP/2 connection with no stream.
#[tokio::test]
async fn connections_that_send_nothing_are_closed() {
    use tokio::io::AsyncWriteExt;
    let env = common::env("api-idle").await;
    let mut limits = swf_operator::api::Limits::default();
    limits.connections.idle_timeout = Duration::from_secs(2);
    let settings = ApiSettings {
        default_namespace: Some(env.namespace.clone()),
        ..Default::default()
    };
    let (http, grpc) = common::start_job_api_tuned(&env, settings, None, limits).await;
    let (http, grpc) = (
        http.trim_start_matches("http://").to_string(),
        grpc.trim_start_matches("http://").to_string(),
    );
    let connect = |addr: String| async move { tokio::net::TcpStream::connect(addr).await.unwrap() };
    let mut cases = Vec::new();
    cases.push(("HTTP port, nothing sent", connect(http.clone()).await));
    cases.push(("gRPC port, nothing sent", connect(grpc.clone()).await));
    let mut keep_alive = connect(http.clone()).await;
    keep_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    cases.push(("HTTP/1.1 keep-alive after a request", keep_alive));
    for (what, addr) in [
        ("HTTP/2 without a stream, HTTP port", &http),
        ("HTTP/2 without a stream, gRPC port", &grpc),
    ] {
        let mut h2 = connect(addr.clone()).await;
        h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        cases.push((what, h2));
    }
    let closed = futures::future::join_all(
        cases
            .iter_mut()
            .map(|(_, stream)| closed_within(stream, Duration::from_secs(8))),
    )
    .await;
    for ((what, _), closed) in cases.iter().zip(&closed) {
        println!("{what}: closed after {closed:?}");
    }
    let open: Vec<&str> = cases
        .iter()
        .zip(&closed)
        .filter(|(_, c)| c.is_none())
        .map(|((what, _), _)| *what)
        .collect();
    assert!(open.is_empty(), "still open after 8 s: {open:?}");
}

/// How many max-size requests the memory test sends at once, per kind:
/// `SWF_MEMORY_LOAD` (make soak: 64), else a CI-sized 8.
fn memory_load() -> usize {
    std::env::var("SWF_MEMORY_LOAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// `{"resource_references":[{},{},...]}` of about `bytes` bytes: small as text, about eighty
/// bytes per `{}` once decoded into a Job.
fn empty_references_json(bytes: usize) -> Vec<u8> {
    let mut body = br#"{"resource_references":["#.to_vec();
    while body.len() + 6 < bytes {
        body.extend_from_slice(b"{},");
    }
    body.extend_from_slice(b"{}]}");
    body
}

/// A CreateJob of about `bytes` bytes on the wire made of empty references (two bytes each).
fn empty_references_grpc(bytes: usize) -> swf_operator::api::proto::CreateJobRequest {
    use swf_operator::api::proto::{CreateJobRequest, Job, ResourceReference};
    CreateJobRequest {
        job: Some(Job {
            resource_references: vec![ResourceReference::default(); bytes / 2 - 8],
            ..Default::default()
        }),
    }
}

/// A job as valid as it gets in shape, and as dense (a workflow manifest of 200,000 nodes,
/// the most a manifest may hold, in 400 KB) that is refused only after decoding it, for its
/// cron.
fn densest_valid_job(namespace: &str) -> Vec<u8> {
    let zeros = vec![0; swf_operator::model::manifest::MAX_NODES - 50];
    let manifest = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}],
                 "x": zeros}});
    let mut job = kfp_job("dense", Some(namespace));
    job["pipeline_spec"]["workflow_manifest"] = json!(manifest.to_string());
    job["trigger"] = json!({"cron_schedule": {"cron": "not a cron"}});
    serde_json::to_vec(&job).unwrap()
}

/// What an attacker can make the API hold: N concurrent max-size bodies without a token cost
/// nothing (the gate answers 401 on the headers and reads no body); with a token, bodies that
/// no valid job has (too many values) are refused before decoding, and the densest valid jobs
/// are decoded within the large-body budget. Peak RSS of the API process per phase.
#[tokio::test]
async fn bodies_cost_memory_only_after_authentication_and_within_the_budget() {
    use swf_operator::api::proto::job_service_client::JobServiceClient;
    if common::use_existing_cluster() {
        return; // it reads the API process's memory
    }
    let env = common::env("api-memory").await;
    let (api, http, grpc) = common::api_process(&env, "api-memory", &[]).await;
    let admin = common::admin_token(&env).await;
    let limits = swf_operator::api::Limits::default();
    let size = limits.max_create_bytes - 4096;
    let n = memory_load();
    let http_body = empty_references_json(size);
    let grpc_request = empty_references_grpc(size);
    let dense = densest_valid_job(&env.namespace);
    assert!(dense.len() <= limits.max_create_bytes, "{}", dense.len());
    let post = |body: Vec<u8>, token: Option<String>| {
        let url = format!("{http}/apis/v1beta1/jobs");
        async move {
            let mut req = reqwest::Client::new().post(url).body(body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            match req.send().await {
                Ok(resp) => resp.status().as_u16(),
                Err(_) => 0, // the connection closed before the answer was read
            }
        }
    };
    let grpc_create = |token: &'static str| {
        let (grpc, request) = (grpc.clone(), grpc_request.clone());
        async move {
            let mut client = JobServiceClient::connect(grpc).await.unwrap();
            let mut request = tonic::Request::new(request);
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            client.create_job(request).await.map(|_| ()).unwrap_err().code()
        }
    };
    // Warm up: connections, caches, allocator arenas.
    post(b"{}".to_vec(), Some(admin.clone())).await;
    grpc_create("junk").await;

    let measure = |what: &'static str| {
        api.reset_peak_rss();
        let base = api.rss().unwrap();
        move |api: &common::OperatorProcess| {
            let grew = api.peak_rss().unwrap().saturating_sub(base);
            println!(
                "memory: {what}: {n} at once: peak RSS {} MiB above {} MiB",
                grew >> 20,
                base >> 20
            );
            grew
        }
    };
    let done = measure("unauthenticated max-size bodies, HTTP and gRPC");
    let (http_statuses, grpc_codes) = futures::future::join(
        futures::future::join_all((0..n).map(|_| post(http_body.clone(), None))),
        futures::future::join_all((0..n).map(|_| grpc_create("junk"))),
    )
    .await;
    let unauthenticated = done(&api);
    assert!(http_statuses.iter().all(|s| *s == 401 || *s == 0), "{http_statuses:?}");
    assert!(http_statuses.contains(&401), "{http_statuses:?}");
    // Unknown: the stream was reset (the answer came before the client had sent its body).
    assert!(
        grpc_codes
            .iter()
            .all(|c| matches!(c, tonic::Code::Unauthenticated | tonic::Code::Unknown)),
        "{grpc_codes:?}"
    );
    assert!(grpc_codes.contains(&tonic::Code::Unauthenticated), "{grpc_codes:?}");

    let done = measure("authenticated bodies with more values than a job has");
    let statuses = futures::future::join_all((0..n).map(|_| post(http_body.clone(), Some(admin.clone())))).await;
    let too_many = done(&api);
    assert!(statuses.iter().all(|s| *s == 400), "{statuses:?}");

    let done = measure("authenticated densest valid jobs (manifests of 200,000 nodes)");
    let statuses = futures::future::join_all((0..n).map(|_| post(dense.clone(), Some(admin.clone())))).await;
    let densest = done(&api);
    assert!(statuses.iter().all(|s| *s == 400), "{statuses:?}");

    assert!(
        unauthenticated < 16 << 20,
        "unauthenticated bodies grew the API by {} MiB",
        unauthenticated >> 20
    );
    assert!(too_many < 48 << 20, "{} MiB", too_many >> 20);
    assert!(densest < 96 << 20, "{} MiB", densest >> 20);
    api.kill(libc::SIGKILL);
}

/// One connection sending a body a byte a second: reads the first status code the server
/// answers with (`None` when it closes without one). `ready` is told once the head is sent.
async fn slow_body(addr: String, token: Option<String>, ready: tokio::sync::mpsc::Sender<()>) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&addr).await.ok()?;
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /apis/v1beta1/jobs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n{auth}\r\n"
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    let _ = ready.send(()).await;
    let mut buf = [0u8; 1024];
    for _ in 0..40 {
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                let text = String::from_utf8_lossy(&buf[..n]);
                return text.split(' ').nth(1)?.parse().ok();
            }
            Ok(_) => return None,
            Err(_) => {
                let _ = stream.write_all(b" ").await;
            }
        }
    }
    None
}

/// 70 connections that send their body a byte a second hold nothing the API needs: those
/// without a token get their 401 before any body is read; those with one wait for no slot and
/// fail at the body deadline (3 s here). Meanwhile /healthz and other callers are answered.
#[tokio::test]
async fn slow_bodies_do_not_hold_the_api() {
    let env = common::env("api-slow-bodies").await;
    let limits = swf_operator::api::Limits {
        body_timeout: Duration::from_secs(3),
        ..Default::default()
    };
    let settings = ApiSettings {
        default_namespace: Some(env.namespace.clone()),
        ..Default::default()
    };
    let (http, _) = common::start_job_api_tuned(&env, settings, None, limits).await;
    let admin = common::admin_token(&env).await;
    let addr = http.trim_start_matches("http://").to_string();
    let (ready, mut started) = tokio::sync::mpsc::channel(70);
    let slow: Vec<_> = (0..70)
        .map(|i| {
            let token = (i % 2 == 1).then(|| admin.clone());
            tokio::spawn(slow_body(addr.clone(), token, ready.clone()))
        })
        .collect();
    for _ in 0..70 {
        started.recv().await.unwrap();
    }
    let timed = |path: &'static str| {
        let (url, admin) = (http.clone(), admin.clone());
        async move {
            let began = std::time::Instant::now();
            let resp = tokio::time::timeout(
                Duration::from_secs(5),
                reqwest::Client::new()
                    .get(format!("{url}{path}"))
                    .bearer_auth(admin)
                    .send(),
            )
            .await;
            (resp.ok().and_then(Result::ok).map(|r| r.status()), began.elapsed())
        }
    };
    let health = timed("/healthz").await;
    let list = timed("/apis/v1beta1/jobs").await;
    println!("with 70 slow bodies: /healthz {health:?}, ListJobs {list:?}");
    assert_eq!(health.0, Some(StatusCode::OK), "/healthz answered within 5 s");
    assert_eq!(list.0, Some(StatusCode::OK), "ListJobs answered within 5 s");
    let answers: Vec<Option<u16>> = futures::future::join_all(slow)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let count = |code| answers.iter().filter(|a| **a == Some(code)).count();
    println!(
        "slow bodies: {} answered 401, {} answered 408, {} other",
        count(401),
        count(408),
        70 - count(401) - count(408)
    );
    assert_eq!((count(401), count(408)), (35, 35), "{answers:?}");
}

/// Multi-user mode believes the kubeflow-userid header only from the trusted proxy, and only
/// a plain user: a forged header is a 401 whoever sends it and whatever token comes with it,
/// and the API's own account may impersonate users, not groups, not service accounts.
#[tokio::test]
async fn a_forged_userid_header_is_refused_and_no_group_can_be_impersonated() {
    use k8s_openapi::api::authorization::v1::SubjectAccessReview;
    let env = common::env("api-forged-header").await;
    apply_multi_user_rbac(&env);
    let url = start(&env, multi_user_settings()).await;
    common::grant_swf_access(&env.client, &env.namespace, "alice@example.com").await;
    common::grant_swf_access(&env.client, &env.namespace, "bob").await;
    let bob = common::user_token(&env, "bob").await;
    let list = format!(
        "{url}/apis/v1beta1/jobs?resource_reference_key.type=NAMESPACE&resource_reference_key.id={}",
        env.namespace
    );
    let send = |client: reqwest::Client, values: Vec<&'static str>, token: Option<String>| {
        let list = list.clone();
        async move {
            let mut req = client.get(&list);
            for v in values {
                req = req.header("kubeflow-userid", v);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let alice = "accounts.google.com:alice@example.com";
    let cases: Vec<(&str, reqwest::Client, Vec<&'static str>, Option<String>)> = vec![
        ("forged, from anyone", reqwest::Client::new(), vec![alice], None),
        (
            "forged, with bob's valid token",
            reqwest::Client::new(),
            vec![alice],
            Some(bob.clone()),
        ),
        ("no prefix", from_proxy(), vec!["alice@example.com"], None),
        (
            "a controller's service account",
            from_proxy(),
            vec!["accounts.google.com:system:serviceaccount:kube-system:generic-garbage-collector"],
            None,
        ),
        (
            "a control-plane component",
            from_proxy(),
            vec!["accounts.google.com:system:kube-controller-manager"],
            None,
        ),
        (
            "a forged copy before the proxy's",
            from_proxy(),
            vec!["accounts.google.com:mallory@example.com", alice],
            None,
        ),
    ];
    for (what, client, values, token) in cases {
        let (status, body) = send(client, values, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        println!("{what}: 401 {}", body["message"]);
    }
    let (status, page) = send(from_proxy(), vec![alice], None).await;
    assert_eq!(status, StatusCode::OK, "the proxy's header: {page}");
    let (status, _) = send(reqwest::Client::new(), vec![], Some(bob)).await;
    assert_eq!(status, StatusCode::OK, "a token without the header");

    // What the API's account may impersonate (kubectl auth can-i impersonate ... --as it).
    let api_user = "system:serviceaccount:swf-system:swf-operator-api";
    let can = |resource: &'static str, name: &'static str, namespace: Option<&'static str>| {
        let client = env.client.clone();
        async move {
            let review: SubjectAccessReview = serde_json::from_value(json!({"spec": {"user": api_user,
                "resourceAttributes": {"verb": "impersonate", "resource": resource, "name": name,
                    "namespace": namespace}}}))
            .unwrap();
            kube::Api::<SubjectAccessReview>::all(client)
                .create(&Default::default(), &review)
                .await
                .unwrap()
                .status
                .is_some_and(|s| s.allowed)
        }
    };
    assert!(can("users", "alice@example.com", None).await, "users: yes");
    assert!(!can("groups", "system:masters", None).await, "groups: no");
    assert!(
        !can("serviceaccounts", "generic-garbage-collector", Some("kube-system")).await,
        "service accounts: not cluster-wide"
    );
}

/// deploy/multi-user installs its policies: the sidecar, mTLS, the header only from the
/// gateway, a NetworkPolicy, and the API told to believe the header only from the sidecar.
#[tokio::test]
async fn the_multi_user_overlay_installs_its_policies() {
    let env = common::env("api-overlay").await;
    let overlay = common::repo_root().join("deploy/multi-user");
    let rendered = common::kubectl(env.plane, &["kustomize", overlay.to_str().unwrap()]);
    let docs: Vec<Value> = swf_operator::model::manifest::parse_yaml_documents(&rendered)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} missing"))
            .clone()
    };
    let policy = find("AuthorizationPolicy", "swf-operator-api");
    assert_eq!(
        policy["spec"]["rules"][1]["when"][0],
        json!({"key": "request.headers[kubeflow-userid]", "notValues": ["*"]})
    );
    assert_eq!(
        find("PeerAuthentication", "swf-operator-api")["spec"]["mtls"]["mode"],
        "STRICT"
    );
    let api = find("Deployment", "swf-operator-api");
    let args = &api["spec"]["template"]["spec"]["containers"][0]["args"];
    for arg in [
        "--api-multi-user",
        "--api-userid-trusted-proxies=127.0.0.6/32",
        "--api-plain-http",
    ] {
        assert!(args.as_array().unwrap().contains(&json!(arg)), "{arg}: {args}");
    }
    assert_eq!(
        api["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"],
        "true"
    );
    let rules = &find("ClusterRole", "swf-operator-api-impersonation")["rules"];
    assert_eq!(
        rules,
        &json!([{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]}])
    );
    // The NetworkPolicy is one the API server accepts (Istio's kinds need Istio's CRDs).
    let netpol = find("NetworkPolicy", "swf-operator-api");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&netpol).unwrap()).unwrap();
    let ns = find("Namespace", "swf-system");
    let ns_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ns_file.path(), serde_json::to_vec(&ns).unwrap()).unwrap();
    common::kubectl(env.plane, &["apply", "-f", ns_file.path().to_str().unwrap()]);
    common::kubectl(
        env.plane,
        &["apply", "--dry-run=server", "-f", file.path().to_str().unwrap()],
    );
}

/// Names are checked before anything is spent on them: a ListJobs for a namespace that cannot
/// exist (60 KB long, or not a DNS label), over HTTP or gRPC, is a 400 that costs no
/// SubjectAccessReview (and so no cache entry); a create naming one is a 400; a token longer
/// than any real one is a 401 without a TokenReview.
#[tokio::test]
async fn invalid_names_and_tokens_cost_no_review() {
    use swf_operator::api::proto::{ListJobsRequest, ResourceKey, job_service_client::JobServiceClient};
    let Some(env) = common::private_env("api-names").await else {
        return;
    };
    let (url, grpc) = common::start_job_api_with(&env, ApiSettings::default(), None).await;
    let carol = common::user_token(&env, "carol").await;
    let list = |namespace: String| {
        format!("/apis/v1beta1/jobs?resource_reference_key.type=NAMESPACE&resource_reference_key.id={namespace}")
    };
    // Warm up carol's token (one TokenReview, cached).
    call(&url, reqwest::Method::GET, &list("default".into()), Some(&carol), None).await;
    let before = env.plane.request_counts();
    let mut statuses = Vec::new();
    for i in 0..20 {
        let huge = format!("{i}{}", "x".repeat(60_000));
        let (status, body) = call(&url, reqwest::Method::GET, &list(huge), Some(&carol), None).await;
        let echoed = body["message"].as_str().unwrap_or_default().len();
        assert!(echoed < 300, "the answer repeats the name: {echoed} bytes");
        statuses.push(status);
    }
    let (status, body) = call(&url, reqwest::Method::GET, &list("Team_A".into()), Some(&carol), None).await;
    assert!(
        body["message"].as_str().unwrap().contains("not a valid namespace name"),
        "{body}"
    );
    statuses.push(status);
    let (status, _) = create(&url, Some(&carol), kfp_job("x", Some("Team_A"))).await;
    statuses.push(status);
    let mut client = JobServiceClient::connect(grpc).await.unwrap();
    let mut request = tonic::Request::new(ListJobsRequest {
        resource_reference_key: Some(ResourceKey {
            r#type: 1,
            id: "y".repeat(60_000),
        }),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {carol}").parse().unwrap());
    let code = client.list_jobs(request).await.unwrap_err().code();
    let after = env.plane.request_counts();
    let (long_token, _) = call(
        &url,
        reqwest::Method::GET,
        &list("default".into()),
        Some(&"t".repeat(20_000)),
        None,
    )
    .await;
    let last = env.plane.request_counts();
    let (reviews, tokens) = (
        delta(&before, &after, "POST", "subjectaccessreviews"),
        delta(&after, &last, "POST", "tokenreviews"),
    );
    println!(
        "invalid names: statuses {statuses:?}, gRPC {code:?}, long token {long_token}; {reviews} SubjectAccessReviews, {tokens} TokenReviews"
    );
    assert!(statuses.iter().all(|s| *s == StatusCode::BAD_REQUEST), "{statuses:?}");
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert_eq!(long_token, StatusCode::UNAUTHORIZED);
    assert_eq!(reviews, 0.0, "no access reviewed for a name that cannot exist");
    assert_eq!(tokens, 0.0, "no TokenReview for the over-long token");
}

/// Writes ask again who is calling: a notebook's token for KFP's audience (the API acts by
/// impersonation, so the API server never sees the token) stops creating and changing jobs
/// as soon as the API server stops vouching for it once its ServiceAccount is deleted, not
/// when a review cached by the API expires. Reads may use an answer up to `AUTHN_TTL` old.
#[tokio::test]
async fn writes_do_not_outlive_a_deleted_service_account_by_a_cached_review() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let env = common::env("api-fresh-writes").await;
    apply_multi_user_rbac(&env);
    let url = start(&env, multi_user_settings()).await;
    let token = notebook_token(&env).await;
    let sas: kube::Api<ServiceAccount> = kube::Api::namespaced(env.client.clone(), &env.namespace);
    let list = format!(
        "/apis/v1beta1/jobs?resource_reference_key.type=NAMESPACE&resource_reference_key.id={}",
        env.namespace
    );
    let (status, created) = create(&url, Some(&token), kfp_job("before", Some(&env.namespace))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        call(&url, reqwest::Method::GET, &list, Some(&token), None).await.0,
        StatusCode::OK
    );

    sas.delete("notebook", &Default::default()).await.unwrap();
    let deleted = std::time::Instant::now();
    let mut created = 0;
    let writes_for = eventually(Duration::from_secs(60), "writes refused", || {
        created += 1;
        let (url, token, ns) = (url.clone(), token.clone(), env.namespace.clone());
        async move {
            let body = kfp_job(&format!("after-{created}"), Some(&ns));
            let (status, body) = create(&url, Some(&token), body).await;
            match status {
                StatusCode::UNAUTHORIZED => Some(deleted.elapsed()),
                StatusCode::OK => None,
                other => panic!("{other}: {body}"),
            }
        }
    })
    .await;
    let (disable, _) = call(
        &url,
        reqwest::Method::POST,
        &format!("/apis/v1beta1/jobs/{id}/disable"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(disable, StatusCode::UNAUTHORIZED);
    let reads_for = eventually(Duration::from_secs(60), "reads refused too", || async {
        let (status, _) = call(&url, reqwest::Method::GET, &list, Some(&token), None).await;
        (status == StatusCode::UNAUTHORIZED).then(|| deleted.elapsed())
    })
    .await;
    println!("a deleted ServiceAccount's token: writes refused after {writes_for:?}, reads after {reads_for:?}");
    // The API server itself keeps authenticating such a token for 10 s (its token cache):
    // writes add nothing to that; reads add at most AUTHN_TTL.
    let api_server_cache = Duration::from_secs(10);
    let slack = Duration::from_secs(4);
    assert!(writes_for <= api_server_cache + slack, "{writes_for:?}");
    assert!(
        reads_for <= api_server_cache + swf_operator::api::auth::AUTHN_TTL + slack,
        "{reads_for:?}"
    );
}

/// A job may not run as the operator's own service accounts in their namespace, wherever the
/// run names the account: a Job's pod (either field), an Argo template, its executor, a pod
/// spec patch; and there, a name that is an expression is refused (it cannot be checked).
#[tokio::test]
async fn the_operators_account_is_refused_wherever_a_run_names_it() {
    let env = common::env("api-own-account").await;
    let url = start(&env, guarding_its_own_namespace(&env)).await;
    let admin = common::admin_token(&env).await;
    let with_manifest = |name: &str, manifest: Value| {
        let mut j = kfp_job(name, Some(&env.namespace));
        j["pipeline_spec"]["workflow_manifest"] = json!(manifest.to_string());
        j
    };
    let argo = |spec: Value| {
        let mut wf = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]}});
        for (k, v) in spec.as_object().unwrap() {
            wf["spec"][k] = v.clone();
        }
        wf
    };
    let job_pod = |pod: Value| json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": pod}}});
    let busybox = json!([{"name": "c", "image": "busybox"}]);
    let refused = [
        (
            "a Job's pod",
            job_pod(json!({"serviceAccountName": "swf-operator", "containers": busybox})),
        ),
        (
            "a Job's pod, old field",
            job_pod(json!({"serviceAccount": "swf-operator", "containers": busybox})),
        ),
        (
            "an Argo template",
            argo(
                json!({"templates": [{"name": "main", "serviceAccountName": "swf-operator", "container": {"image": "busybox"}}]}),
            ),
        ),
        (
            "Argo's executor",
            argo(json!({"executor": {"serviceAccountName": "swf-operator"}})),
        ),
        (
            "a pod spec patch",
            argo(json!({"podSpecPatch": "{\"serviceAccountName\": \"swf-operator\"}"})),
        ),
        (
            "an expression",
            argo(json!({"serviceAccountName": "{{workflow.parameters.account}}"})),
        ),
    ];
    for (what, manifest) in refused {
        let (status, body) = create(&url, Some(&admin), with_manifest("own", manifest)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        println!("{what}: {}", body["message"]);
    }
    let fine = job_pod(json!({"serviceAccountName": "runner", "containers": busybox}));
    let (status, body) = create(&url, Some(&admin), with_manifest("theirs", fine)).await;
    assert_eq!(status, StatusCode::OK, "another account: {body}");
}

/// ListJobs' filters are bounded (every predicate is evaluated against every job in scope):
/// more predicates, more values or longer values than a filter needs are a 400, over HTTP and
/// gRPC; a filter within the bounds is served.
#[tokio::test]
async fn list_filters_are_bounded() {
    use swf_operator::api::{
        list::{MAX_FILTER_VALUE_BYTES, MAX_FILTER_VALUES, MAX_PREDICATES},
        proto::{ListJobsRequest, job_service_client::JobServiceClient},
    };
    let env = common::env("api-filter-bounds").await;
    let (url, grpc) = common::start_job_api(&env, &env.namespace).await;
    let admin = common::admin_token(&env).await;
    let predicate = json!({"op": "EQUALS", "key": "name", "string_value": "x"});
    let predicates = |n: usize| json!({"predicates": vec![predicate.clone(); n]}).to_string();
    let http = |filter: String| {
        let (url, admin) = (url.clone(), admin.clone());
        async move {
            let resp = reqwest::Client::new()
                .get(format!("{url}/apis/v1beta1/jobs"))
                .query(&[("filter", filter)])
                .bearer_auth(admin)
                .send()
                .await
                .unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let values: Vec<String> = (0..=MAX_FILTER_VALUES).map(|i| i.to_string()).collect();
    let cases = [
        ("too many predicates", predicates(MAX_PREDICATES + 1)),
        (
            "too many values",
            json!({"predicates": [{"op": "IN", "key": "name", "string_values": {"values": values}}]}).to_string(),
        ),
        (
            "a value too long",
            json!({"predicates": [{"op": "IS_SUBSTRING", "key": "name", "string_value": "x".repeat(MAX_FILTER_VALUE_BYTES + 1)}]})
                .to_string(),
        ),
    ];
    for (what, filter) in cases {
        let (status, body) = http(filter).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        println!("{what}: {}", body["message"]);
    }
    let (status, body) = http(predicates(MAX_PREDICATES)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The review's case, over gRPC: a thousand predicates in one request.
    let mut client = JobServiceClient::connect(grpc).await.unwrap();
    let mut request = tonic::Request::new(ListJobsRequest {
        filter: predicates(1000),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {admin}").parse().unwrap());
    let status = client.list_jobs(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
}

/// No account of deploy/ may mint a token: neither the API's nor the operator's may create a
/// Secret (a `kubernetes.io/service-account-token` Secret would be filled with another
/// account's token); each may get and update its one certificate Secret, which deploy/ ships
/// empty and the first replica fills. A Secret of another type under that name is refused.
#[tokio::test]
async fn no_account_can_mint_a_service_account_token() {
    use k8s_openapi::api::{authorization::v1::SubjectAccessReview, core::v1::Secret};
    let env = common::env("api-secrets").await;
    let (api, operator) = (common::api_token(&env).await, common::operator_token(&env).await);
    let may = |user: &'static str, verb: &'static str, name: Option<&'static str>| {
        let client = env.client.clone();
        async move {
            let review: SubjectAccessReview = serde_json::from_value(json!({"spec": {"user": user,
                "resourceAttributes": {"verb": verb, "resource": "secrets", "namespace": "swf-system", "name": name}}}))
            .unwrap();
            kube::Api::<SubjectAccessReview>::all(client)
                .create(&Default::default(), &review)
                .await
                .unwrap()
                .status
                .is_some_and(|s| s.allowed)
        }
    };
    for (account, own) in [
        (
            "system:serviceaccount:swf-system:swf-operator-api",
            "swf-operator-api-tls",
        ),
        (
            "system:serviceaccount:swf-system:swf-operator",
            "swf-operator-webhook-tls",
        ),
    ] {
        assert!(!may(account, "create", None).await, "{account} may create Secrets");
        assert!(
            may(account, "get", Some(own)).await && may(account, "update", Some(own)).await,
            "{account}: {own}"
        );
        assert!(
            !may(account, "get", Some("someone-elses")).await,
            "{account} reads other Secrets"
        );
    }
    // What the review's attack would do, with the accounts' real tokens.
    let mint: Secret = serde_json::from_value(json!({"type": "kubernetes.io/service-account-token",
        "metadata": {"name": "minted", "annotations": {"kubernetes.io/service-account.name": "swf-operator"}}}))
    .unwrap();
    for token in [&api, &operator] {
        let client = env.plane.client_with_token(token).await;
        let err = kube::Api::<Secret>::namespaced(client, "swf-system")
            .create(&Default::default(), &mint)
            .await
            .unwrap_err();
        assert!(matches!(&err, kube::Error::Api(s) if s.code == 403), "{err}");
    }
    // A Secret of another type under the certificate's name is neither used nor changed.
    let secrets: kube::Api<Secret> = kube::Api::namespaced(env.client.clone(), &env.namespace);
    let planted: Secret =
        serde_json::from_value(json!({"metadata": {"name": "planted"}, "type": "Opaque", "data": {}})).unwrap();
    secrets.create(&Default::default(), &planted).await.unwrap();
    let err = swf_operator::serve::tls::from_secret_or_generate(
        env.client.clone(),
        &env.namespace,
        "planted",
        &["localhost".into()],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not kubernetes.io/tls"), "{err}");
    assert!(
        secrets
            .get("planted")
            .await
            .unwrap()
            .data
            .unwrap_or_default()
            .is_empty(),
        "unchanged"
    );
}

/// deploy/'s metrics: /metrics only over HTTPS on its own port, only to callers allowed to get
/// it (a TokenReview and a SubjectAccessReview, as controller-runtime's secure metrics): no
/// token is a 401, a token without the right a 403, one bound to swf-operator-metrics-reader
/// reads them. The plain port keeps /healthz and /readyz and no longer serves /metrics.
#[tokio::test]
async fn metrics_are_served_only_to_callers_allowed_to_read_them() {
    if common::use_existing_cluster() {
        return; // it runs the operator as a process
    }
    let env = common::env("metrics-auth").await;
    let (plain, secure) = (common::plane::free_port(), common::plane::free_port());
    let plain_flag = format!("--metrics-addr=127.0.0.1:{plain}");
    let secure_flag = format!("--metrics-secure-addr=127.0.0.1:{secure}");
    let args = [
        "run",
        "--namespace",
        &env.namespace,
        "--watch-kinds",
        "batch/v1/Job",
        "--leader-elect=false",
        &plain_flag,
        &secure_flag,
    ];
    let operator = common::OperatorProcess::spawn(&env, "metrics-auth", &common::operator_token(&env).await, &args);
    let https = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let get = |token: Option<String>| {
        let https = https.clone();
        async move {
            let mut req = https.get(format!("https://127.0.0.1:{secure}/metrics"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.ok()?;
            Some((resp.status(), resp.text().await.unwrap_or_default()))
        }
    };
    let (status, _) = eventually(Duration::from_secs(60), "the secure metrics port", || get(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no token");
    let alice = common::user_token(&env, "alice").await;
    let (status, body) = get(Some(alice.clone())).await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(get(Some("junk".into())).await.unwrap().0, StatusCode::UNAUTHORIZED);
    let binding: k8s_openapi::api::rbac::v1::ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "alice-reads-swf-metrics"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "swf-operator-metrics-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": common::user_name("alice")}]}))
    .unwrap();
    kube::Api::all(env.client.clone())
        .create(&Default::default(), &binding)
        .await
        .unwrap();
    let body = eventually(Duration::from_secs(60), "alice reads the metrics", || async {
        let (status, body) = get(Some(alice.clone())).await?;
        (status == StatusCode::OK).then_some(body)
    })
    .await;
    assert!(body.contains("swf_reconciles_total"), "{body}");
    let plain_get = |path: &'static str| async move {
        reqwest::get(format!("http://127.0.0.1:{plain}{path}"))
            .await
            .unwrap()
            .status()
    };
    assert_eq!(plain_get("/metrics").await, StatusCode::NOT_FOUND);
    assert_eq!(plain_get("/healthz").await, StatusCode::OK);
    operator.kill(libc::SIGKILL);
}

/// A caller who is not authenticated yet learns nothing of the API server: when the
/// TokenReview cannot be made (here the API server is stopped), the answer is a 503 that says
/// to retry, without the API server's address or error.
#[tokio::test]
async fn an_unauthenticated_caller_gets_no_api_server_text() {
    let Some(env) = common::private_env("api-no-server-text").await else {
        return;
    };
    let (url, _) = common::start_job_api(&env, &env.namespace).await;
    env.plane.stop_apiserver();
    let (status, body) = call(
        &url,
        reqwest::Method::GET,
        "/apis/v1beta1/jobs",
        Some("never-seen-token"),
        None,
    )
    .await;
    env.plane.start_apiserver();
    println!("TokenReview impossible: {status} {body}");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let text = body.to_string().to_lowercase();
    for leak in ["127.0.0.1", "connect", "client error", "tokenreview", "https://"] {
        assert!(!text.contains(leak), "{leak:?} in {text}");
    }
    assert_eq!(body["message"], "cannot authenticate the request now; try again later");
}

/// A job as large as the API accepts is read: a 1 MiB manifest of CJK text, sent as KFP's
/// Python client sends JSON (non-ASCII escaped, six bytes a character), makes a body of
/// 2.1 MB, over axum's default limit (2 MB) and within CreateJob's (2 MiB + 64 KiB).
#[tokio::test]
async fn a_create_as_large_as_the_limit_is_read() {
    let env = common::env("api-largest-create").await;
    let url = start(&env, ApiSettings::default()).await;
    let text = "\u{4e2d}".repeat(349_000);
    let manifest = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nspec:\n  entrypoint: main\n  templates:\n  - name: main\n    container: {{image: busybox}}\n  note: {text}\n"
    );
    assert!(
        manifest.len() <= swf_operator::model::manifest::MAX_MANIFEST_BYTES,
        "{}",
        manifest.len()
    );
    let mut body = kfp_job("large", Some(&env.namespace));
    body["pipeline_spec"]["workflow_manifest"] = json!(manifest);
    body["description"] = json!("d".repeat(20_000));
    let ascii = serde_json::to_string(&body).unwrap().replace('\u{4e2d}', "\\u4e2d");
    let limits = swf_operator::api::Limits::default();
    assert!(
        ascii.len() > 2_097_152 && ascii.len() <= limits.max_create_bytes,
        "{} bytes",
        ascii.len()
    );
    let resp = reqwest::Client::new()
        .post(format!("{url}/apis/v1beta1/jobs"))
        .bearer_auth(common::admin_token(&env).await)
        .header("content-type", "application/json")
        .body(ascii)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let created: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        created.to_string().chars().take(300).collect::<String>()
    );
}
