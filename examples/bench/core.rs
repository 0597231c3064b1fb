//! The parts measured without the scheduling loop: the cron core (ns per next-tick
//! computation over robfig/cron's golden specs) and the JobService's ListJobs under load.

use std::{
    hint::black_box,
    path::Path,
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt};
use jiff::{Timestamp, tz::TimeZone};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
};
use serde_json::json;

use crate::{cluster::Cluster, report::percentile};

#[derive(Debug, serde::Serialize)]
pub struct CronCore {
    pub specs: usize,
    pub median_ns: f64,
    pub p99_ns: f64,
    pub max_ns: f64,
}

/// Every spec robfig/cron accepts in tests/fixtures/robfig-v1, each asked for its next tick
/// `iterations` times in a row (from 2026-01-01, in Europe/Berlin for DST); ns per call.
pub fn cron_core(iterations: usize) -> CronCore {
    let path = crate::repo_root().join("tests/fixtures/robfig-v1/kfp-utc-2026-01-01.tsv");
    let text = std::fs::read_to_string(&path).unwrap();
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut per_spec = Vec::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (Some(spec), Some("OK")) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(swf_operator::scheduling::cron::CronExpr::Calendar(cal)) = swf_operator::scheduling::cron::parse(spec)
        else {
            continue;
        };
        let began = Instant::now();
        let mut t = start;
        for _ in 0..iterations {
            match cal.next_after(black_box(t), &tz) {
                Some(next) => t = next,
                None => t = start,
            }
        }
        per_spec.push(began.elapsed().as_nanos() as f64 / iterations as f64);
    }
    let specs = per_spec.len();
    CronCore {
        specs,
        median_ns: percentile(&mut per_spec, 50.0).unwrap_or(f64::NAN),
        p99_ns: percentile(&mut per_spec, 99.0).unwrap_or(f64::NAN),
        max_ns: percentile(&mut per_spec, 100.0).unwrap_or(f64::NAN),
    }
}

#[derive(Debug, serde::Serialize)]
pub struct ListJobs {
    pub jobs: usize,
    pub filter: Option<String>,
    pub clients: usize,
    pub requests: usize,
    pub errors: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub api_peak_rss_mib: f64,
    /// The JobService's resident memory once it has listed every job, before the load.
    pub api_listed_rss_mib: f64,
}

/// What the ListJobs phase asks: how many jobs, callers and seconds, and the filter (KFP's
/// JSON `api.Filter`) each request carries, if any.
pub struct ListLoad<'a> {
    pub jobs: usize,
    pub clients: usize,
    pub seconds: u64,
    pub filter: Option<&'a str>,
}

/// `jobs` ScheduledWorkflows (disabled: nothing runs, named `job-00000`...), the JobService in
/// front of them, and `clients` concurrent callers asking for the first page of 20 for
/// `seconds`.
pub async fn list_jobs(assets: &Path, operator: &Path, load: &ListLoad<'_>) -> ListJobs {
    let ListLoad {
        jobs,
        clients,
        seconds,
        filter,
    } = *load;
    eprintln!("bench: ListJobs over {jobs} jobs, {clients} clients ...");
    let mut cluster = Cluster::start(assets);
    let client = cluster.client().await;
    let crd = crate::repo_root().join("crds/scheduledworkflows.kubeflow.org.yaml");
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_yaml_crd(&crd);
    Api::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await; // the CRD becomes served
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "bench"}})).unwrap();
    Api::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("kubeflow.org", "v1beta1", "ScheduledWorkflow"));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "bench", &ar);
    futures::stream::iter(0..jobs)
        .map(|i| {
            let api = api.clone();
            async move {
                let obj: DynamicObject = serde_json::from_value(json!({"apiVersion": "kubeflow.org/v1beta1",
                    "kind": "ScheduledWorkflow", "metadata": {"name": format!("job-{i:05}")},
                    "spec": {"enabled": false, "description": "a benchmark job", "trigger": {"cronSchedule": {"cron": "0 0 * * * *"}},
                    "workflow": {"spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]}}}}))
                .unwrap();
                api.create(&PostParams::default(), &obj).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let port = swf_test_plane::free_port();
    let args: Vec<String> = vec![
        "api".into(),
        format!("--api-addr=127.0.0.1:{port}"),
        "--api-plain-http".into(),
        "--api-default-namespace=bench".into(),
    ];
    let pid = cluster.spawn("jobservice", operator, &args, &[("RUST_LOG", "warn".into())]);
    let url = format!(
        "http://127.0.0.1:{port}/apis/v1beta1/jobs?page_size=20&resource_reference_key.type=NAMESPACE&resource_reference_key.id=bench"
    );
    let http = reqwest::Client::new();
    let token = cluster.token();
    wait_until_listed(&http, &url, token, jobs).await;
    let listed_rss = crate::cluster::rss(pid) as f64 / (1 << 20) as f64;
    let url = match filter {
        Some(f) => format!(
            "{url}&{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("filter", f)
                .finish()
        ),
        None => url,
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let results: Vec<Vec<Result<f64, ()>>> = futures::future::join_all((0..clients).map(|_| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = http
                    .get(&url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                lat.push(if ok {
                    Ok(t.elapsed().as_secs_f64() * 1000.0)
                } else {
                    Err(())
                });
            }
            lat
        }
    }))
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let all: Vec<Result<f64, ()>> = results.into_iter().flatten().collect();
    let mut ok: Vec<f64> = all.iter().filter_map(|r| r.ok()).collect();
    let rss = crate::cluster::peak_rss(pid) as f64 / (1 << 20) as f64;
    ListJobs {
        jobs,
        filter: filter.map(str::to_string),
        clients,
        requests: all.len(),
        errors: all.len() - ok.len(),
        per_second: all.len() as f64 / elapsed,
        p50_ms: percentile(&mut ok, 50.0).unwrap_or(f64::NAN),
        p99_ms: percentile(&mut ok, 99.0).unwrap_or(f64::NAN),
        max_ms: percentile(&mut ok, 100.0).unwrap_or(f64::NAN),
        api_peak_rss_mib: rss,
        api_listed_rss_mib: listed_rss,
    }
}

fn serde_yaml_crd<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap();
    let value = swf_operator::model::manifest::parse(&text).unwrap();
    serde_json::from_value(value).unwrap()
}

/// Until ListJobs reports every job (the JobService's cache has listed them).
async fn wait_until_listed(http: &reqwest::Client, url: &str, token: &str, jobs: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the JobService never listed {jobs} jobs");
        if let Ok(resp) = http.get(url).bearer_auth(token).send().await
            && let Ok(body) = resp.json::<serde_json::Value>().await
            && body["total_size"]
                .as_u64()
                .or_else(|| body["total_size"].as_str()?.parse().ok())
                == Some(jobs as u64)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
