//! GitOps tools read a schedule's health from its status: kstatus' Ready/Stalled conditions
//! (`kubectl wait --for=condition=Ready`, Flux) and Argo CD's Lua health check
//! (deploy/gitops/health.lua), run here with Debian's lua5.1 on status objects the operator
//! wrote on the real control plane.
use std::{io::Write, process::Command};

use serde_json::{Value, json};

use crate::common::{
    self, TestEnv, eventually, kubectl, start_operator,
    swf::{WAIT, create, job_swf},
};

/// `value` as a Lua table constructor (how Argo CD hands the object to the script).
fn lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let escaped: String = s
                .chars()
                .map(|c| match c {
                    '\\' => "\\\\".into(),
                    '"' => "\\\"".into(),
                    c if (c as u32) < 0x20 => format!("\\{:03}", c as u32),
                    c => c.to_string(),
                })
                .collect();
            format!("\"{escaped}\"")
        }
        Value::Array(items) => format!("{{{}}}", items.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua(&json!(k)), lua(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// Argo CD's verdict on `obj`: (status, message).
pub(crate) fn argocd_health(obj: &Value) -> (String, String) {
    let script = common::repo_root().join("deploy/gitops/health.lua");
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "obj = {}", lua(obj)).unwrap();
    writeln!(
        file,
        "local hs = dofile({})\nio.write(hs.status, \"\\t\", hs.message or \"\")",
        lua(&json!(script.display().to_string()))
    )
    .unwrap();
    let out = Command::new("lua5.1")
        .arg(file.path())
        .output()
        .expect("lua5.1 (Debian's lua5.1 package; `make test` installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, message) = text.split_once('\t').unwrap_or((&text, ""));
    (status.to_string(), message.to_string())
}

fn get_json(env: &TestEnv, name: &str) -> Value {
    serde_json::from_str(&kubectl(
        env.plane,
        &["get", "swf", name, "-n", &env.namespace, "-o", "json"],
    ))
    .unwrap()
}

#[tokio::test]
async fn gitops_tools_read_health_from_the_status_the_operator_writes() {
    let env = common::env("gitops").await;
    let _operator = start_operator(&env).await;
    let hourly = json!({"trigger": {"cronSchedule": {"cron": "0 0 * * * *"}}});
    create(&env, job_swf("healthy", hourly.clone())).await;
    let mut off = hourly.clone();
    off["enabled"] = json!(false);
    create(&env, job_swf("disabled", off)).await;
    // Stored as if no webhook were installed: the reconciler reports it.
    create(&env, job_swf("broken", json!({"timeZone": "Mars/Olympus"}))).await;

    // kstatus: kubectl wait understands the conditions (run off the runtime, which the
    // in-process operator shares).
    let (plane, ns) = (env.plane, env.namespace.clone());
    tokio::task::spawn_blocking(move || {
        let wait = |condition: &str, objects: &[&str]| {
            let mut args = vec!["wait", "-n", &ns, condition, "--timeout=60s"];
            args.extend_from_slice(objects);
            kubectl(plane, &args);
        };
        wait("--for=condition=Ready", &["swf/healthy", "swf/disabled"]);
        wait("--for=condition=Stalled", &["swf/broken"]);
    })
    .await
    .unwrap();

    let expect = [
        ("healthy", "Healthy", "The schedule is enabled."),
        ("disabled", "Suspended", "The schedule is disabled"),
        (
            "broken",
            "Degraded",
            "InvalidSpec: spec.timeZone: unknown IANA time zone",
        ),
    ];
    for (name, status, message) in expect {
        let obj = eventually(WAIT, &format!("{name}: status for its generation"), || async {
            let obj = get_json(&env, name);
            (obj["status"]["observedGeneration"] == obj["metadata"]["generation"]).then_some(obj)
        })
        .await;
        let conditions: Vec<&str> = obj["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(conditions.first(), Some(&"Ready"), "{name}: {conditions:?}");
        let (got, why) = argocd_health(&obj);
        assert_eq!(got, status, "{name}: {why}");
        assert!(why.starts_with(message), "{name}: {why:?}");
    }
    // A spec the operator has not read yet.
    let mut stale = get_json(&env, "healthy");
    stale["metadata"]["generation"] = json!(99);
    assert_eq!(argocd_health(&stale).0, "Progressing");
    assert_eq!(
        argocd_health(&json!({"metadata": {"name": "new"}, "spec": {}})).0,
        "Progressing"
    );
}

#[test]
fn argocd_cm_embeds_the_health_check_unchanged() {
    let root = common::repo_root().join("deploy/gitops");
    let script = std::fs::read_to_string(root.join("health.lua")).unwrap();
    let cm: Value =
        swf_operator::model::manifest::parse(&std::fs::read_to_string(root.join("argocd-cm.yaml")).unwrap()).unwrap();
    let embedded = cm["data"]["resource.customizations.health.kubeflow.org_ScheduledWorkflow"]
        .as_str()
        .unwrap();
    assert_eq!(embedded.trim_end(), script.trim_end());
}
