//! `swf-operator check`: offline validation of ScheduledWorkflow manifests.

use std::path::PathBuf;

use clap::Args;
use jiff::Timestamp;

use crate::{
    model::{crd::ScheduledWorkflowSpec, manifest::ManifestError},
    scheduling::{
        schedule::{self, TriggerState},
        validate,
    },
};

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// YAML files (several documents each allowed); non-ScheduledWorkflow documents are skipped.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long, env = "CRON_SCHEDULE_TIMEZONE", default_value = "UTC")]
    default_time_zone: String,
    /// How many fire times to print per schedule.
    #[arg(long, default_value_t = 3)]
    count: usize,
}

impl CheckArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let report = check_files(&self.files, &self.default_time_zone, self.count, Timestamp::now());
        print!("{}", report.output);
        if report.errors > 0 {
            anyhow::bail!("{} invalid ScheduledWorkflow(s)", report.errors);
        }
        Ok(())
    }
}

pub struct Report {
    pub output: String,
    pub errors: usize,
}

/// Fields a ScheduledWorkflow spec may have (from the CRD's schema); anything else would be
/// pruned by the API server.
fn spec_fields() -> Vec<String> {
    let crd = crate::model::crd::ScheduledWorkflow::crd_manifest();
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties")
        .and_then(serde_json::Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

pub fn check_files(files: &[PathBuf], default_tz: &str, count: usize, now: Timestamp) -> Report {
    let mut report = Report {
        output: String::new(),
        errors: 0,
    };
    let known = spec_fields();
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                report.fail(format!("{}: cannot read: {e}\n", file.display()));
                continue;
            }
        };
        for (i, doc) in crate::model::manifest::parse_yaml_documents(&text)
            .into_iter()
            .enumerate()
        {
            let value = match doc {
                Ok(v) => v,
                Err(ManifestError::Syntax(e)) => {
                    report.fail(format!("{} (document {}): not YAML: {e}\n", file.display(), i + 1));
                    continue;
                }
                Err(e) => {
                    report.fail(format!("{} (document {}): {e}\n", file.display(), i + 1));
                    continue;
                }
            };
            if value.is_null() || value["kind"] != "ScheduledWorkflow" {
                continue;
            }
            let name = value["metadata"]["name"].as_str().unwrap_or("<unnamed>");
            let at = format!("{}: ScheduledWorkflow {name}", file.display());
            match check_schedule(&value["spec"], &known, default_tz, count, now) {
                Ok(lines) => report.output.push_str(&format!("{at}: {lines}")),
                Err(problems) => report.fail(format!("{at}: {problems}")),
            }
        }
    }
    report
}

impl Report {
    fn fail(&mut self, text: String) {
        self.output.push_str(&text);
        self.errors += 1;
    }
}

/// `OK (...)` with warnings and the next fire times, or `INVALID` with every problem.
fn check_schedule(
    spec: &serde_json::Value,
    known: &[String],
    default_tz: &str,
    count: usize,
    now: Timestamp,
) -> Result<String, String> {
    let mut problems: Vec<String> = spec
        .as_object()
        .map(|m| m.keys().filter(|k| !known.contains(k)).cloned().collect::<Vec<_>>())
        .unwrap_or_default()
        .iter()
        .map(|k| format!("spec.{k}: unknown field (the API server would drop it)"))
        .collect();
    let typed: ScheduledWorkflowSpec = serde_json::from_value(spec.clone()).map_err(|e| format!("spec: {e}\n"))?;
    match validate::validate(&typed, default_tz) {
        Err(invalid) => problems.extend(invalid.0),
        Ok(v) if problems.is_empty() => {
            let mut out = format!("OK ({})\n", schedule::describe(&typed.trigger, &v.time_zone));
            for w in &v.warnings {
                out.push_str(&format!("  warning: {w}\n"));
            }
            let times = next_times(&v, count, now);
            if times.is_empty() {
                out.push_str("  next: none\n");
            }
            for t in times {
                out.push_str(&format!("  next: {t}\n"));
            }
            return Ok(out);
        }
        Ok(_) => {}
    }
    let mut out = "INVALID\n".to_string();
    for p in problems {
        out.push_str(&format!("  {p}\n"));
    }
    Err(out)
}

/// The next `count` fire times after `now` of a schedule created now (the tick model's).
fn next_times(v: &validate::Validated, count: usize, now: Timestamp) -> Vec<Timestamp> {
    let position = TriggerState::default().position(&v.schedule, now);
    schedule::upcoming(&v.schedule, position, now, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_yaml_is_one_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.yaml");
        std::fs::write(&path, "kind: [unclosed\n  - : :\n").unwrap();
        let r = check_files(&[path], "UTC", 1, "2026-01-01T00:00:00Z".parse().unwrap());
        assert_eq!(r.errors, 1, "{}", r.output);
        assert!(r.output.contains("not YAML"), "{}", r.output);
    }

    #[test]
    fn reports_errors_with_file_and_field_and_next_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("swf.yaml");
        std::fs::write(
            &path,
            "apiVersion: kubeflow.org/v1beta1\nkind: ScheduledWorkflow\nmetadata: {name: good}\nspec:\n  enabled: true\n  trigger: {cronSchedule: {cron: '0 0 * * * *'}}\n  workflow: {spec: {entrypoint: main}}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: skipped}\n---\n\
             apiVersion: kubeflow.org/v1beta1\nkind: ScheduledWorkflow\nmetadata: {name: bad}\nspec:\n  enabledd: true\n  trigger: {cronSchedule: {cron: '0 0 * * * 8'}}\n  workflow: {spec: {entrypoint: main}}\n",
        )
        .unwrap();
        let r = check_files(&[path], "UTC", 2, "2026-01-01T00:30:00Z".parse().unwrap());
        assert_eq!(r.errors, 1, "{}", r.output);
        assert!(r.output.contains("ScheduledWorkflow good: OK"), "{}", r.output);
        assert!(
            r.output
                .contains("next: 2026-01-01T01:00:00Z\n  next: 2026-01-01T02:00:00Z"),
            "{}",
            r.output
        );
        assert!(r.output.contains("ScheduledWorkflow bad: INVALID"), "{}", r.output);
        assert!(r.output.contains("spec.enabledd: unknown field"), "{}", r.output);
        assert!(r.output.contains("End of range (8) above maximum (6)"), "{}", r.output);
    }
}

#[cfg(test)]
mod example_tests {
    /// Every manifest in examples/ is a valid ScheduledWorkflow with a next fire time.
    #[test]
    fn examples_are_valid() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
        let files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        assert!(files.len() >= 7);
        let r = super::check_files(&files, "UTC", 1, "2026-01-01T00:30:00Z".parse().unwrap());
        assert_eq!(r.errors, 0, "{}", r.output);
        assert_eq!(r.output.matches(": OK").count(), files.len(), "{}", r.output);
        assert!(!r.output.contains("next: none"), "{}", r.output);
    }
}
