//! `kubectl swf` on the real control plane, run the way users run it: `kubectl swf ...` with
//! the `kubectl-swf` binary on `PATH`.
use std::process::Command;

use kube::ResourceExt;
use serde_json::{Value, json};

use crate::common::{
    self, TestEnv, eventually, job_resource, start_operator,
    swf::{WAIT, create, finish_job, job_swf, swfs, wait_runs},
};

/// `kubectl swf <args>` against the plane: exit code, stdout, stderr.
fn kubectl_swf(env: &TestEnv, args: &[&str]) -> (i32, String, String) {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_kubectl-swf"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("kubectl")
        .env("PATH", path)
        .arg("swf")
        .args(args)
        .arg(format!("--kubeconfig={}", env.plane.kubeconfig.display()))
        .output()
        .expect("run kubectl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(env: &TestEnv, args: &[&str]) -> String {
    let (code, out, err) = kubectl_swf(env, args);
    assert_eq!(code, 0, "kubectl swf {args:?}: {err}{out}");
    out
}

#[tokio::test]
async fn kubectl_swf_shows_schedules_runs_and_next_fire_times() {
    let env = common::env("plugin").await;
    let ns = env.namespace.as_str();
    let _operator = start_operator(&env).await;
    let swf = create(
        &env,
        job_swf(
            "every2",
            json!({"maxConcurrency": 3, "timeZone": "Europe/Berlin", "trigger": {"periodicSchedule": {"intervalSecond": 2}}}),
        ),
    )
    .await;
    let runs = wait_runs(&env, &swf, &job_resource(), 2).await;
    finish_job(&env.client, ns, &runs[0].name_any()).await;

    let get = ok(&env, &["get", "-n", ns]);
    println!("$ kubectl swf get\n{get}");
    let row = get.lines().find(|l| l.starts_with("every2")).expect(&get);
    assert!(
        row.contains("every 2s") && row.contains("Europe/Berlin") && row.contains("Enabled"),
        "{get}"
    );
    assert!(
        row.contains("CET") || row.contains("CEST"),
        "times in the schedule's zone: {get}"
    );
    let all = ok(&env, &["get", "-A"]);
    assert!(all.starts_with("NAMESPACE") && all.contains(ns), "{all}");
    let wide = ok(&env, &["get", "every2", "-n", ns, "-o", "wide"]);
    assert!(wide.contains("batch/v1/Job") && wide.contains("3 Wait"), "{wide}");
    let json: Value = serde_json::from_str(&ok(&env, &["get", "-n", ns, "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"][0]["metadata"]["name"], "every2");
    let yaml = ok(&env, &["get", "every2", "-n", ns, "-o", "yaml"]);
    assert!(yaml.contains("kind: ScheduledWorkflow"), "{yaml}");

    let finished = eventually(WAIT, "the finished run listed as Succeeded", || async {
        let out = ok(&env, &["runs", "every2", "-n", ns]);
        out.lines()
            .any(|l| l.starts_with(&runs[0].name_any()) && l.contains("Succeeded"))
            .then_some(out)
    })
    .await;
    println!("$ kubectl swf runs every2\n{finished}");
    assert!(finished.starts_with("NAME") && finished.contains("SCHEDULED") && finished.contains("Pending"));

    let describe = ok(&env, &["describe", "every2", "-n", ns]);
    println!("$ kubectl swf describe every2\n{describe}");
    let fire_times = describe
        .split("Next 5 fire times:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| l.starts_with("  "))
        .count();
    assert_eq!(fire_times, 5, "{describe}");
    for section in ["Active runs:", "Recent runs:", "Events:", "every 2s", "Europe/Berlin"] {
        assert!(describe.contains(section), "{section}: {describe}");
    }
    assert!(describe.contains("Succeeded"), "history with outcomes: {describe}");

    let out = ok(&env, &["disable", "every2", "-n", ns]);
    assert_eq!(out.trim(), "scheduledworkflow/every2 disabled");
    assert!(!swfs(&env).get("every2").await.unwrap().spec.enabled);
    let why = eventually(WAIT, "describe says why it does not run", || async {
        let d = ok(&env, &["describe", "every2", "-n", ns]);
        d.lines()
            .any(|l| l.starts_with("Not running:") && l.contains("Disabled"))
            .then_some(d)
    })
    .await;
    assert!(why.contains("Next 5 fire times:\n  (none: disabled)"), "{why}");
    ok(&env, &["enable", "every2", "-n", ns]);
    assert!(swfs(&env).get("every2").await.unwrap().spec.enabled);

    // Run now: on a yearly schedule, so no tick gets in the way.
    create(
        &env,
        job_swf("yearly", json!({"trigger": {"cronSchedule": {"cron": "0 0 0 1 1 *"}}})),
    )
    .await;
    let out = ok(&env, &["run-now", "yearly", "-n", ns]);
    assert!(out.contains("run-now requested"), "{out}");
    eventually(WAIT, "a run-now run", || async {
        let out = ok(&env, &["runs", "yearly", "-n", ns]);
        out.contains("yearly-now-").then_some(())
    })
    .await;

    // Backfill: checked against the schedule first (dates in its zone), then followed in describe.
    let (code, _, err) = kubectl_swf(
        &env,
        &[
            "backfill",
            "yearly",
            "-n",
            ns,
            "--from",
            "2023-01-01",
            "--to",
            "2020-01-01",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the end is not after the start"), "{err}");
    let out = ok(
        &env,
        &[
            "backfill",
            "yearly",
            "-n",
            ns,
            "--from",
            "2020-01-01",
            "--to",
            "2023-01-01",
        ],
    );
    assert!(out.contains("backfill of 3 ticks requested"), "{out}");
    let described = eventually(WAIT, "backfill progress in describe", || async {
        let d = ok(&env, &["describe", "yearly", "-n", ns]);
        d.lines()
            .any(|l| l.starts_with("Backfill:") && l.contains("2020-01-01/2023-01-01 Running, 1/3 ticks"))
            .then_some(d)
    })
    .await;
    println!("$ kubectl swf describe yearly\n{described}");
    ok(&env, &["backfill", "yearly", "-n", ns, "--cancel"]);
    let annotations = swfs(&env).get("yearly").await.unwrap().annotations().clone();
    assert!(
        !annotations.contains_key(swf_operator::model::keys::BACKFILL_ANNOTATION),
        "{annotations:?}"
    );
    let out = ok(&env, &["resume", "yearly", "-n", ns]);
    assert!(out.contains("resume requested"), "{out}");
    let annotations = swfs(&env).get("yearly").await.unwrap().annotations().clone();
    assert!(
        annotations.contains_key(swf_operator::model::keys::RESUME_ANNOTATION),
        "{annotations:?}"
    );

    let (code, _, err) = kubectl_swf(&env, &["describe", "nope", "-n", ns]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("scheduledworkflow \"nope\" not found"), "{err}");
    let (code, _, _) = kubectl_swf(&env, &["describe"]);
    assert_eq!(code, 2, "a usage error");
}

#[test]
fn offline_commands_and_completions() {
    let bin = env!("CARGO_BIN_EXE_kubectl-swf");
    let run = |args: &[&str]| Command::new(bin).args(args).output().unwrap();
    let next = run(&[
        "next",
        "--cron",
        "0 0 * * * *",
        "--after",
        "2026-01-01T00:30:00Z",
        "--count",
        "2",
    ]);
    let text = String::from_utf8_lossy(&next.stdout);
    assert!(
        text.starts_with("2026-01-01T01:00:00Z") && text.contains("2026-01-01T02:00:00Z"),
        "{text}"
    );
    let examples = common::repo_root().join("examples/quickstart.yaml");
    assert!(run(&["check", examples.to_str().unwrap()]).status.success());
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        bad.path(),
        "apiVersion: kubeflow.org/v1beta1\nkind: ScheduledWorkflow\nmetadata: {name: x}\nspec:\n  trigger: {cronSchedule: {cron: '* * *'}}\n",
    )
    .unwrap();
    assert_eq!(run(&["check", bad.path().to_str().unwrap()]).status.code(), Some(1));
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completion", shell]);
        assert!(script.status.success());
        let text = String::from_utf8_lossy(&script.stdout);
        assert!(text.contains("kubectl-swf") && text.contains("run-now"), "{shell}");
    }
    // Output into a pipe already closed (`| head -3` that has read enough) ends it quietly.
    let mut closed = Command::new(bin)
        .args(["completion", "zsh"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(closed.stdout.take());
    let out = closed.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "a closed pipe printed: {err}");
}
