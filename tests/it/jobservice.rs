//! KFP's v1beta1 JobService, through real HTTP and gRPC clients, on the real control plane.
use std::{collections::HashSet, time::Duration};

use common::{
    eventually, list_runs,
    swf::{WAIT, merge, swfs},
    workflow_manifest,
};
use kube::{Api, ResourceExt, api::PostParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use swf_operator::{
    api::proto::{self, job_service_client::JobServiceClient},
    model::crd::ScheduledWorkflow,
};

use crate::common;

struct Http {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl Http {
    fn new(base: &str, token: Option<&str>) -> Http {
        Http {
            base: base.to_string(),
            token: token.map(str::to_string),
            client: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    /// A GET that may fail to connect (e.g. a TLS handshake with an untrusted certificate).
    async fn try_get(&self, path: &str) -> Option<(StatusCode, String)> {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.ok()?;
        Some((resp.status(), resp.text().await.ok()?))
    }
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

/// The job these tests create: `kfp_job` in `ns`, with a description, two runs at a time,
/// enabled, and a parameter that KFP fills with the tick's time.
fn job(name: &str, ns: &str) -> Value {
    let mut job = common::kfp_job(name, Some(ns));
    merge(
        &mut job,
        json!({"description": "made over HTTP", "max_concurrency": "2", "enabled": true,
            "pipeline_spec": {"parameters": [{"name": "when", "value": "[[ScheduledTime]]"}]}}),
    );
    job
}

#[tokio::test]
async fn http_endpoints_json_shape_and_kubectl_round_trip() {
    let env = common::env("api-crud").await;
    let (url, _) = common::start_job_api(&env, "default").await;
    let api = Http::new(&url, Some(&common::admin_token(&env).await));

    let (status, created) = api.post("/apis/v1beta1/jobs", job("Nightly ETL", &env.namespace)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    // Wire format: proto names, int64 as strings, enums by name, zero fields omitted.
    assert_eq!(created["max_concurrency"], "2");
    assert_eq!(created["trigger"]["periodic_schedule"]["interval_second"], "3600");
    assert_eq!(created["resource_references"][0]["key"]["type"], "NAMESPACE");
    assert_eq!(created["resource_references"][0]["relationship"], "OWNER");
    assert_eq!(created["name"], "Nightly ETL");
    assert_eq!(created["enabled"], true);
    assert!(
        created.get("mode").is_none() && created.get("no_catchup").is_none() && created.get("error").is_none(),
        "{created}"
    );
    assert!(
        created["created_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );

    // It is a ScheduledWorkflow that kubectl sees.
    let swf = swfs(&env)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|s| s.uid().as_deref() == Some(id.as_str()))
        .unwrap();
    assert!(swf.name_any().starts_with("nightlyetl-"));
    assert_eq!(swf.spec.max_concurrency, Some(2));
    let listed = common::kubectl(
        env.plane,
        &["-n", &env.namespace, "get", "swf", &swf.name_any(), "-o", "name"],
    );
    assert!(listed.contains("scheduledworkflow"));

    let (status, got) = api.get(&format!("/apis/v1beta1/jobs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    // The manifest as given, with KFP's create-time change (Istio's sidecar off).
    let mut expected: Value = serde_json::from_str(&workflow_manifest()).unwrap();
    expected["spec"]["templates"][0]["metadata"] = json!({"annotations": {"sidecar.istio.io/inject": "false"}});
    let stored: Value = serde_json::from_str(got["pipeline_spec"]["workflow_manifest"].as_str().unwrap()).unwrap();
    assert_eq!(stored, expected);
    assert_eq!(got["pipeline_spec"]["parameters"][0]["value"], "[[ScheduledTime]]");

    // Disable / enable change the resource's spec.enabled.
    let (status, body) = api.post(&format!("/apis/v1beta1/jobs/{id}/disable"), json!({})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert!(!swfs(&env).get(&swf.name_any()).await.unwrap().spec.enabled);
    assert!(
        api.get(&format!("/apis/v1beta1/jobs/{id}"))
            .await
            .1
            .get("enabled")
            .is_none(),
        "false is omitted"
    );
    api.post(&format!("/apis/v1beta1/jobs/{id}/enable"), json!({})).await;
    assert!(swfs(&env).get(&swf.name_any()).await.unwrap().spec.enabled);

    // kubectl → API: a resource applied directly is a job too.
    let applied: ScheduledWorkflow = serde_json::from_value(json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
        "metadata": {"name": "from-kubectl"}, "spec": {"enabled": false, "trigger": {"cronSchedule": {"cron": "0 0 * * * *"}},
        "workflow": {"spec": {"entrypoint": "main"}}}})).unwrap();
    swfs(&env).create(&PostParams::default(), &applied).await.unwrap();
    let q = format!(
        "/apis/v1beta1/jobs?resource_reference_key.type=NAMESPACE&resource_reference_key.id={}&sort_by=name",
        env.namespace
    );
    let (status, list) = api.get(&q).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total_size"], 2);
    let names: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Nightly ETL", "from-kubectl"]);
    assert_eq!(list["jobs"][1]["trigger"]["cron_schedule"]["cron"], "0 0 * * * *");

    // Delete; then 404 with KFP's error body.
    let (status, _) = api.delete(&format!("/apis/v1beta1/jobs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = api.get(&format!("/apis/v1beta1/jobs/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert_eq!(err["code"], 5);
    assert!(
        err["error"].as_str().unwrap().contains(&id) && err["message"] == err["error"] && err["details"].is_array()
    );
    let (status, swagger) = api.get("/apis/v1beta1/swagger.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(swagger["paths"]["/apis/v1beta1/jobs/{id}/enable"].is_object());
}

#[tokio::test]
async fn validation_and_authentication_errors() {
    let env = common::env("api-errors").await;
    let (url, _) = common::start_job_api(&env, &env.namespace).await;
    let api = Http::new(&url, Some(&common::admin_token(&env).await));
    let bad = |patch: Value| {
        let mut j = job("x", &env.namespace);
        for (k, v) in patch.as_object().unwrap() {
            j[k] = v.clone();
        }
        j
    };
    for (body, want) in [
        (bad(json!({"name": ""})), "name is empty"),
        (bad(json!({"max_concurrency": "0"})), "at least 1 and at most 10"),
        (bad(json!({"max_concurrency": "11"})), "at least 1 and at most 10"),
        (
            bad(json!({"trigger": {"cron_schedule": {"cron": "0 0 * * * 7"}}})),
            "Schedule cron is not a supported format",
        ),
        (
            bad(json!({"trigger": {"periodic_schedule": {"interval_second": "0"}}})),
            "interval_second must be at least 1",
        ),
        (
            bad(
                json!({"trigger": {"periodic_schedule": {"interval_second": "5", "start_time": "2030-02-01T00:00:00Z", "end_time": "2030-01-01T00:00:00Z"}}}),
            ),
            "before startTime",
        ),
        (
            bad(json!({"pipeline_spec": {"pipeline_id": "abc"}})),
            "cannot be resolved without KFP's pipeline store",
        ),
        (bad(json!({"surprise": true})), "Invalid job"),
        (bad(json!({"max_concurrency": 2})), ""),
    ] {
        let (status, err) = api.post("/apis/v1beta1/jobs", body).await;
        if want.is_empty() {
            // int64 also accepted as a JSON number (protojson).
            assert_eq!(status, StatusCode::OK, "{err}");
            continue;
        }
        assert_eq!(status, StatusCode::BAD_REQUEST, "{want}: {err}");
        assert_eq!(err["code"], 3);
        assert!(err["error"].as_str().unwrap().contains(want), "{want}: {err}");
    }
    for (query, want) in [
        ("page_size=-1", "Invalid page size"),
        ("sort_by=colour", "Invalid sorting field"),
        ("page_token=forged", "Invalid page token"),
        ("filter=%7Bbad", "Invalid filter"),
    ] {
        let (status, err) = api.get(&format!("/apis/v1beta1/jobs?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {err}");
        assert!(err["error"].as_str().unwrap().contains(want), "{query}: {err}");
    }
    let (status, err) = Http::new(&url, None).get("/apis/v1beta1/jobs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{err}");
    assert_eq!(err["code"], 16);
    let (status, _) = Http::new(&url, Some("wrong-token")).get("/apis/v1beta1/jobs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api.get("/apis/v1beta1/jobs/no-such-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn paging_450_jobs_in_several_orders_with_concurrent_deletes() {
    let env = common::env("api-paging").await;
    let (url, _) = common::start_job_api(&env, &env.namespace).await;
    let api = Http::new(&url, Some(&common::admin_token(&env).await));
    // 450 resources, created concurrently; names and descriptions make the orders differ.
    let creations = (0..450).map(|i| {
        let swfs = swfs(&env);
        async move {
            let s: ScheduledWorkflow = serde_json::from_value(json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
                "metadata": {"name": format!("job-{:03}", (i * 7) % 450)},
                "spec": {"description": format!("d{}", i % 13), "trigger": {"periodicSchedule": {"intervalSecond": 3600}},
                         "workflow": {"spec": {"entrypoint": "main"}}}})).unwrap();
            swfs.create(&PostParams::default(), &s).await.unwrap();
        }
    });
    futures::stream::iter(creations)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;

    use futures::StreamExt;
    let mut deleted: HashSet<String> = HashSet::new();
    for (round, sort) in ["", "name", "name desc", "created_at desc", "id", "description desc"]
        .iter()
        .enumerate()
    {
        let mut seen: Vec<String> = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let mut q = format!("/apis/v1beta1/jobs?page_size=37&sort_by={}", sort.replace(' ', "%20"));
            if !token.is_empty() {
                q = format!("/apis/v1beta1/jobs?page_size=37&page_token={token}");
            }
            let (status, page) = api.get(&q).await;
            assert_eq!(status, StatusCode::OK, "{sort}: {page}");
            let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
            assert!(jobs.len() <= 37);
            let current: Vec<ScheduledWorkflow> = swfs(&env).list(&Default::default()).await.unwrap().items;
            assert_eq!(
                page["total_size"].as_u64().unwrap() as usize,
                current.len(),
                "total_size counts all pages"
            );
            seen.extend(jobs.iter().map(|j| j["name"].as_str().unwrap().to_string()));
            // Between page requests: delete two jobs, one already seen and one not yet seen.
            let unseen: Vec<&ScheduledWorkflow> = current.iter().filter(|s| !seen.contains(&s.name_any())).collect();
            for victim in [
                seen.get(seen.len() / 2).cloned(),
                unseen.get(unseen.len() / 2).map(|s| s.name_any()),
            ]
            .into_iter()
            .flatten()
            {
                if deleted.insert(victim.clone()) {
                    swfs(&env).delete(&victim, &Default::default()).await.unwrap();
                }
            }
            // The API answers from its watch cache: let it see the deletes before the next page
            // (so total_size can be compared with the live count).
            let live = swfs(&env).list(&Default::default()).await.unwrap().items.len() as u64;
            eventually(Duration::from_secs(30), "the API's cache caught up", || async {
                let (_, page) = api.get("/apis/v1beta1/jobs?page_size=1").await;
                (page["total_size"].as_u64() == Some(live)).then_some(())
            })
            .await;
            pages += 1;
            token = page["next_page_token"].as_str().unwrap_or("").to_string();
            if token.is_empty() {
                break;
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: no duplicates");
        let survivors: Vec<String> = swfs(&env)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|s| s.name_any())
            .collect();
        for s in &survivors {
            assert!(unique.contains(s), "{sort}: survivor {s} skipped");
        }
        assert!(pages >= 2, "round {round}: paged");
        // The order asked for.
        if *sort == "name" {
            let kept: Vec<&String> = seen.iter().filter(|n| survivors.contains(n)).collect();
            let mut sorted = kept.clone();
            sorted.sort();
            assert_eq!(kept, sorted);
        }
    }
}

#[tokio::test]
async fn filters_over_http() {
    let env = common::env("api-filter").await;
    let (url, _) = common::start_job_api(&env, &env.namespace).await;
    let api = Http::new(&url, Some(&common::admin_token(&env).await));
    for (name, exp) in [("alpha", "e1"), ("beta", "e1"), ("gamma", "e2")] {
        let mut j = job(name, &env.namespace);
        j["resource_references"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": {"type": "EXPERIMENT", "id": exp}, "relationship": "OWNER"}));
        assert_eq!(api.post("/apis/v1beta1/jobs", j).await.0, StatusCode::OK);
    }
    let names = |v: &Value| -> Vec<String> {
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["name"].as_str().unwrap().to_string())
            .collect()
    };
    let filtered = |f: Value| {
        let q: String = serde_urlencoded::to_string([("filter", f.to_string()), ("sort_by", "name".into())]).unwrap();
        let api = &api;
        async move { api.get(&format!("/apis/v1beta1/jobs?{q}")).await }
    };
    let (_, r) = filtered(json!({"predicates": [{"op": "EQUALS", "key": "name", "string_value": "beta"}]})).await;
    assert_eq!(names(&r), vec!["beta"]);
    let (_, r) =
        filtered(json!({"predicates": [{"op": "IN", "key": "name", "string_values": {"values": ["alpha", "gamma"]}}]}))
            .await;
    assert_eq!(names(&r), vec!["alpha", "gamma"]);
    let (_, r) = filtered(json!({"predicates": [{"op": "IS_SUBSTRING", "key": "name", "stringValue": "mm"}]})).await;
    assert_eq!(names(&r), vec!["gamma"]);
    let (_, r) = filtered(json!({"predicates": [{"op": "GREATER_THAN", "key": "created_at", "long_value": "0"}, {"op": "NOT_EQUALS", "key": "name", "string_value": "alpha"}]})).await;
    assert_eq!(names(&r), vec!["beta", "gamma"]);
    assert_eq!(r["total_size"], 2);
    let (status, _) = filtered(json!({"predicates": [{"op": "EQUALS", "key": "colour", "string_value": "x"}]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, r) = api.get("/apis/v1beta1/jobs?resource_reference_key.type=EXPERIMENT&resource_reference_key.id=e1&sort_by=name%20desc").await;
    assert_eq!(names(&r), vec!["beta", "alpha"]);
}

#[tokio::test]
async fn real_rbac_decides_for_two_users_in_two_namespaces() {
    let env_a = common::env("api-rbac-a").await;
    let env_b = common::env("api-rbac-b").await;
    common::grant_swf_access(&env_a.client, &env_a.namespace, "alice").await;
    common::grant_swf_access(&env_b.client, &env_b.namespace, "bob").await;
    let (url, _) = common::start_job_api(&env_a, &env_a.namespace).await;
    let alice = Http::new(&url, Some(&common::user_token(&env_a, "alice").await));
    let bob = Http::new(&url, Some(&common::user_token(&env_a, "bob").await));

    let (status, a_job) = alice.post("/apis/v1beta1/jobs", job("alices", &env_a.namespace)).await;
    assert_eq!(status, StatusCode::OK, "{a_job}");
    let (status, b_job) = bob.post("/apis/v1beta1/jobs", job("bobs", &env_b.namespace)).await;
    assert_eq!(status, StatusCode::OK, "{b_job}");
    let a_id = a_job["id"].as_str().unwrap();

    // Each in their own namespace only.
    let (status, err) = alice.post("/apis/v1beta1/jobs", job("sneaky", &env_b.namespace)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["code"], 7);
    let list_b = format!(
        "/apis/v1beta1/jobs?resource_reference_key.type=NAMESPACE&resource_reference_key.id={}",
        env_b.namespace
    );
    assert_eq!(alice.get(&list_b).await.0, StatusCode::FORBIDDEN);
    assert_eq!(bob.get(&list_b).await.0, StatusCode::OK);
    // Another tenant's job is "not found": its existence is not revealed.
    assert_eq!(
        bob.get(&format!("/apis/v1beta1/jobs/{a_id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bob.post(&format!("/apis/v1beta1/jobs/{a_id}/disable"), json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bob.delete(&format!("/apis/v1beta1/jobs/{a_id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(
        Api::<ScheduledWorkflow>::namespaced(env_a.client.clone(), &env_a.namespace)
            .list(&Default::default())
            .await
            .unwrap()
            .items[0]
            .spec
            .enabled
    );
    assert_eq!(
        alice
            .post(&format!("/apis/v1beta1/jobs/{a_id}/disable"), json!({}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        alice.delete(&format!("/apis/v1beta1/jobs/{a_id}")).await.0,
        StatusCode::OK
    );
    assert_eq!(Http::new(&url, None).get(&list_b).await.0, StatusCode::UNAUTHORIZED);
}

fn with_token<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

#[tokio::test]
async fn grpc_client_and_the_operator_see_the_same_jobs() {
    let env = common::env("api-grpc").await;
    env.plane.ensure_garbage_collector();
    common::install_argo_crd(&env.client).await;
    let token = common::admin_token(&env).await;
    let (_, grpc_url) = common::start_job_api(&env, &env.namespace).await;
    let operator = common::Operator::start(&env, |_| {}).await;
    let mut client = JobServiceClient::connect(grpc_url.clone()).await.unwrap();
    let mut job: proto::Job = serde_json::from_value(job("grpc job", &env.namespace)).unwrap();
    job.enabled = false;
    job.trigger = serde_json::from_value(json!({"periodic_schedule": {"interval_second": "1"}})).unwrap();
    let created = client
        .create_job(with_token(&token, proto::CreateJobRequest { job: Some(job) }))
        .await
        .unwrap()
        .into_inner();
    let id = created.id.clone();
    let got = client
        .get_job(with_token(&token, proto::GetJobRequest { id: id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.name, "grpc job");
    let listed = client
        .list_jobs(with_token(&token, proto::ListJobsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_size, 1);

    // Disabled: once the operator's status shows it has seen the job, it has created nothing.
    let name = eventually(WAIT, "the operator's status on the disabled job", || async {
        let obj = swfs(&env)
            .list(&Default::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()?;
        let status = obj.status.as_ref()?;
        (status.observed_generation == obj.metadata.generation && !status.conditions.is_empty()).then(|| obj.name_any())
    })
    .await;
    assert!(
        common::creations::ever(&env, "workflows").await.is_empty(),
        "a run of a disabled job"
    );
    // Enable over gRPC: the operator starts creating runs; disable stops it.
    client
        .enable_job(with_token(&token, proto::EnableJobRequest { id: id.clone() }))
        .await
        .unwrap();
    eventually(WAIT, "runs after enable", || async {
        (!list_runs(&env.client, &env.namespace, &common::workflow_resource())
            .await
            .is_empty())
        .then_some(())
    })
    .await;
    client
        .disable_job(with_token(&token, proto::DisableJobRequest { id: id.clone() }))
        .await
        .unwrap();
    eventually(WAIT, "DISABLED status", || async {
        let j = client
            .clone()
            .get_job(with_token(&token, proto::GetJobRequest { id: id.clone() }))
            .await
            .ok()?
            .into_inner();
        (j.status == "DISABLED").then_some(())
    })
    .await;
    // Two of its 1 s ticks come due while disabled, then a pass: it creates nothing more.
    let count = common::creations::ever(&env, "workflows").await.len();
    let due_by = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
    eventually(WAIT, "two ticks due while disabled", || async {
        (jiff::Timestamp::now() > due_by).then_some(())
    })
    .await;
    operator.one_more_pass(&env, &name).await;
    assert_eq!(
        common::creations::ever(&env, "workflows").await.len(),
        count,
        "no runs while disabled"
    );

    // Errors carry gRPC codes.
    let err = client
        .get_job(with_token(&token, proto::GetJobRequest { id: "nope".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = client
        .create_job(with_token(
            &token,
            proto::CreateJobRequest {
                job: Some(proto::Job {
                    name: "x".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = client
        .list_jobs(tonic::Request::new(proto::ListJobsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // Delete cascades to the runs.
    client
        .delete_job(with_token(&token, proto::DeleteJobRequest { id: id.clone() }))
        .await
        .unwrap();
    eventually(Duration::from_secs(120), "runs deleted with the job", || async {
        list_runs(&env.client, &env.namespace, &common::workflow_resource())
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    operator.task.abort();
}

fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

fn https(base: &str, ca_pem: &str, token: &str) -> Http {
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    Http {
        base: base.to_string(),
        token: Some(token.to_string()),
        client,
    }
}

#[tokio::test]
async fn serves_tls_and_reloads_the_certificate_when_its_files_change() {
    let env = common::env("api-tls").await;
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let (cert, key) = self_signed();
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let tls = swf_operator::serve::tls::Reloading::from_files(
        cert_path.clone(),
        key_path.clone(),
        Duration::from_millis(200),
    )
    .unwrap();
    let settings = swf_operator::api::service::ApiSettings {
        default_namespace: Some(env.namespace.clone()),
        ..Default::default()
    };
    let (url, grpc_url) = common::start_job_api_with(&env, settings, Some(tls)).await;
    assert!(url.starts_with("https://"));
    let token = common::admin_token(&env).await;
    let (status, body) = https(&url, &cert, &token).get("/apis/v1beta1/jobs").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Plain HTTP is not served on the TLS port.
    let plain = reqwest::get(url.replace("https://", "http://") + "/healthz").await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // gRPC over TLS.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&cert))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(grpc_url)
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let listed = JobServiceClient::new(channel)
        .list_jobs(with_token(&token, proto::ListJobsRequest::default()))
        .await
        .unwrap();
    assert_eq!(listed.into_inner().total_size, 0);
    // A renewed certificate (cert-manager rewrites the files) is served without a restart.
    let (cert2, key2) = self_signed();
    std::fs::write(&key_path, &key2).unwrap();
    std::fs::write(&cert_path, &cert2).unwrap();
    eventually(Duration::from_secs(30), "the new certificate served", || async {
        let (status, _) = https(&url, &cert2, &token).try_get("/apis/v1beta1/jobs").await?;
        (status == StatusCode::OK).then_some(())
    })
    .await;
}

/// KFP's own Python client (kfp-server-api 1.8.x, installed by `make test` from
/// tests/requirements.txt) works unchanged: the README's example script, run for real.
#[tokio::test]
async fn kfp_server_api_python_client_works_unchanged() {
    let env = common::env("api-python").await;
    let (url, _) = common::start_job_api(&env, &env.namespace).await;
    let script = common::repo_root().join("examples/kfp_server_api_client.py");
    let ns = env.namespace.clone();
    let token = common::admin_token(&env).await;
    let mut python = std::process::Command::new(common::python());
    python.arg(script).args([&url, &token, &ns]);
    let out = common::output_within(python, Duration::from_secs(120)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the kfp-server-api example failed (pip install -r tests/requirements.txt?)\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for step in ["created", "listed 1", "rejected 400", "deleted"] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
    assert!(swfs(&env).list(&Default::default()).await.unwrap().items.is_empty());
}

/// KFP's SDK, `kfp.Client` 1.8.x, creates, lists, reads, disables and deletes a recurring run
/// (examples/kfp_sdk_client.py, run for real).
#[tokio::test]
async fn kfp_sdk_client_1_8_manages_a_recurring_run() {
    let env = common::env("api-kfp-sdk").await;
    let (url, _) = common::start_job_api(&env, &env.namespace).await;
    let script = common::repo_root().join("examples/kfp_sdk_client.py");
    let token = common::admin_token(&env).await;
    let mut python = std::process::Command::new(common::python());
    python.arg(script).args([&url, &token]);
    let out = common::output_within(python, Duration::from_secs(120)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the kfp SDK example failed (make test-deps?)\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for step in [
        "created",
        "listed 1",
        "read sdk nightly 0 0 2 * * *",
        "disabled",
        "deleted",
    ] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
}
