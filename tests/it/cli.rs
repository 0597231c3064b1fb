//! The `swf-operator` binary's offline subcommands, run as a user would.
use std::process::Command;

fn swf_operator(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_swf-operator"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn next_prints_kfp_fire_times_and_warns_about_five_fields() {
    let (ok, out, err) = swf_operator(&[
        "next",
        "--cron",
        "0 0 * * *",
        "--after",
        "2026-01-01T00:00:00Z",
        "--count",
        "2",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("2026-01-01T01:00:00Z") && lines[1].starts_with("2026-01-01T02:00:00Z"),
        "{out}"
    );
    assert!(err.contains("seconds come first"), "{err}");
    let (ok, out, _) = swf_operator(&[
        "next",
        "--every",
        "90",
        "--after",
        "2026-01-01T00:00:00Z",
        "--count",
        "1",
        "--time-zone",
        "Europe/Berlin",
    ]);
    assert!(ok);
    assert!(out.starts_with("2026-01-01T00:01:30Z") && out.contains("CET"), "{out}");
    let (ok, _, err) = swf_operator(&["next", "--cron", "0 0 12 * * 7"]);
    assert!(!ok && err.contains("End of range (7) above maximum (6)"), "{err}");
}

#[test]
fn check_fails_on_invalid_manifests_and_crd_matches_crds_dir() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: kubeflow.org/v1beta1\nkind: ScheduledWorkflow\nmetadata: {name: x}\nspec:\n  timeZone: Nowhere/Land\n  runTemplate: {apiVersion: batch/v1, kind: Job}\n").unwrap();
    let (ok, out, _) = swf_operator(&["check", bad.to_str().unwrap()]);
    assert!(!ok, "invalid manifest must fail the CI step");
    assert!(
        out.contains("bad.yaml: ScheduledWorkflow x: INVALID") && out.contains("spec.timeZone"),
        "{out}"
    );
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/timezone.yaml");
    let (ok, out, _) = swf_operator(&["check", examples]);
    assert!(ok && out.contains("OK (0 0 8 * * * (Europe/Berlin))"), "{out}");

    let (ok, crd, _) = swf_operator(&["crd"]);
    assert!(ok);
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/scheduledworkflows.kubeflow.org.yaml"
    ))
    .unwrap();
    assert_eq!(crd, committed, "crds/ is stale: run `make crds`");
}
