//! The alert rules in deploy/monitoring/: promtool's checks and unit tests, the
//! PrometheusRule kept equal to the plain file, and a real Prometheus (Debian's package)
//! scraping the operator during a test, evaluating the rules and answering a lag query.
use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

use crate::common::{
    self, Operator, eventually,
    swf::{WAIT, create, job_swf},
};

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(common::repo_root())
        .output()
        .expect("promtool (Debian's prometheus package; `make test` installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(common::repo_root().join(path)).unwrap();
    swf_operator::model::manifest::parse(&text).unwrap()
}

#[test]
fn the_rules_pass_promtool_and_both_forms_agree() {
    let checked = promtool(&["check", "rules", "deploy/monitoring/rules.yaml"]);
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    promtool(&["test", "rules", "tests/monitoring/rules_test.yaml"]);
    assert_eq!(
        yaml("deploy/monitoring/prometheusrule.yaml")["spec"]["groups"],
        yaml("deploy/monitoring/rules.yaml")["groups"],
        "prometheusrule.yaml carries rules.yaml's groups"
    );
}

/// Prometheus on a free port, scraping `target` every second with the project's rules.
fn start_prometheus(dir: &std::path::Path, target: &str) -> (std::process::Child, String) {
    let rules = common::repo_root().join("deploy/monitoring/rules.yaml");
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [{}]\nscrape_configs:\n  - job_name: swf-operator\n    static_configs: [{{targets: ['{target}']}}]\n",
        rules.display()
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = common::plane::free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's prometheus package; `make test` installs it)");
    (child, format!("http://127.0.0.1:{port}"))
}

async fn query(base: &str, promql: &str) -> Option<Value> {
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .ok()?;
    let body: Value = resp.json().await.ok()?;
    let result = body["data"]["result"].as_array()?.first()?.clone();
    Some(result)
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_operator_and_evaluates_the_rules() {
    let env = common::env("prometheus").await;
    let operator = Operator::start(&env, |_| {}).await;
    let port = common::plane::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = tokio::spawn(swf_operator::serve::serve(
        addr,
        operator.metrics.clone(),
        operator.health.clone(),
    ));
    create(
        &env,
        job_swf(
            "every1",
            json!({"maxConcurrency": 10, "trigger": {"periodicSchedule": {"intervalSecond": 1}}}),
        ),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let (mut prometheus, base) = start_prometheus(dir.path(), &addr.to_string());
    let lag = eventually(WAIT, "Prometheus computes the trigger lag p99", || async {
        let r = query(
            &base,
            "histogram_quantile(0.99, sum by (le) (rate(swf_trigger_lag_seconds_bucket[20s])))",
        )
        .await?;
        let v: f64 = r["value"][1].as_str()?.parse().ok()?;
        v.is_finite().then_some(v)
    })
    .await;
    println!("trigger lag p99 as Prometheus computes it: {lag:.3} s");
    assert!(lag < 5.0, "{lag}");
    let runs = query(&base, "sum(swf_runs_total{outcome=\"created\"})").await.unwrap();
    assert!(runs["value"][1].as_str().unwrap().parse::<f64>().unwrap() >= 1.0);
    // Every rule evaluates against the real metric names without error.
    let rules = eventually(WAIT, "the rules evaluated", || async {
        let body: Value = reqwest::get(format!("{base}/api/v1/rules"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let rules = body["data"]["groups"][0]["rules"].as_array()?.clone();
        rules
            .iter()
            .all(|r| r["lastEvaluation"].as_str().is_some_and(|t| !t.starts_with("0001")))
            .then_some(rules)
    })
    .await;
    assert_eq!(rules.len(), 7);
    for r in &rules {
        assert_eq!(r["health"], "ok", "{}: {}", r["name"], r["lastError"]);
        assert_ne!(r["state"], "firing", "{} fires on a healthy operator", r["name"]);
    }
    // A rule naming a metric that does not exist evaluates to nothing, "ok" and silent: every
    // metric a rule reads must be one the operator exports. A labelled family with no sample
    // yet is not in the exposition, so the families are the registrations in src/serve/metrics.rs,
    // and those seen in the exposition must be among them.
    let source = std::fs::read_to_string(common::repo_root().join("src/serve/metrics.rs")).unwrap();
    let exported = registered_families(&source);
    let seen = exported_families(&operator.metrics.render());
    assert!(
        seen.is_subset(&exported),
        "exposed but not found registered: {:?}",
        seen.difference(&exported)
    );
    for r in &rules {
        let query = r["query"].as_str().unwrap_or_default();
        for name in metric_names(query) {
            assert!(
                exported.contains(&family(&name)),
                "{}: {name} is not exported by the operator",
                r["name"]
            );
        }
    }
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    server.abort();
    operator.task.abort();
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// The metric families in a Prometheus text exposition (`# TYPE <family> <type>`).
fn exported_families(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The families `src/serve/metrics.rs` registers (`registry.register("name", ...)`, prefix `swf_`).
fn registered_families(source: &str) -> std::collections::BTreeSet<String> {
    source
        .split("registry.register")
        .skip(1)
        .filter_map(|call| {
            let call = call.trim_start_matches(|c: char| c == '(' || c.is_whitespace());
            let name = call.strip_prefix('"')?.split('"').next()?;
            Some(format!("swf_{name}"))
        })
        .collect()
}

/// The `swf_` metric names a PromQL expression reads.
fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("swf_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// The family a series belongs to: a counter's `_total`, a histogram's `_bucket`/`_sum`/`_count`.
fn family(series: &str) -> String {
    ["_total", "_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| series.strip_suffix(suffix))
        .unwrap_or(series)
        .to_string()
}
