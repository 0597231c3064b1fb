//! `swf-operator check`: offline validation of ScheduledWorkflow manifests.

use std::path::PathBuf;

use jiff::Timestamp;

use crate::{
    crd::ScheduledWorkflowSpec,
    schedule::{self, PlanInput, TriggerState},
    validate,
};

pub struct Report {
    pub output: String,
    pub errors: usize,
}

/// Fields a ScheduledWorkflow spec may have; anything else would be pruned by the API server.
const SPEC_FIELDS: &[&str] = &[
    "description",
    "enabled",
    "maxConcurrency",
    "noCatchup",
    "maxHistory",
    "trigger",
    "workflow",
    "serviceAccount",
    "pipelineId",
    "pipelineName",
    "pipelineVersionId",
    "experimentId",
    "pluginsInput",
    "timeZone",
    "runTemplate",
    "concurrencyPolicy",
    "successfulRunsHistoryLimit",
    "failedRunsHistoryLimit",
];

pub fn check_files(files: &[PathBuf], default_tz: &str, count: usize, now: Timestamp) -> Report {
    let mut output = String::new();
    let mut errors = 0;
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                output.push_str(&format!("{}: cannot read: {e}\n", file.display()));
                errors += 1;
                continue;
            }
        };
        for (i, doc) in crate::manifest::parse_yaml_documents(&text).into_iter().enumerate() {
            let value = match doc {
                Ok(v) => v,
                Err(crate::manifest::ManifestError::Syntax(e)) => {
                    output.push_str(&format!("{} (document {}): not YAML: {e}\n", file.display(), i + 1));
                    errors += 1;
                    continue;
                }
                Err(e) => {
                    output.push_str(&format!("{} (document {}): {e}\n", file.display(), i + 1));
                    errors += 1;
                    continue;
                }
            };
            if value.is_null() || value["kind"] != "ScheduledWorkflow" {
                continue;
            }
            let name = value["metadata"]["name"].as_str().unwrap_or("<unnamed>").to_string();
            let at = format!("{}: ScheduledWorkflow {name}", file.display());
            let unknown: Vec<String> = value["spec"]
                .as_object()
                .map(|m| {
                    m.keys()
                        .filter(|k| !SPEC_FIELDS.contains(&k.as_str()))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let spec: ScheduledWorkflowSpec = match serde_json::from_value(value["spec"].clone()) {
                Ok(s) => s,
                Err(e) => {
                    output.push_str(&format!("{at}: spec: {e}\n"));
                    errors += 1;
                    continue;
                }
            };
            let mut problems: Vec<String> = unknown
                .iter()
                .map(|k| format!("spec.{k}: unknown field (the API server would drop it)"))
                .collect();
            match validate::validate(&spec, default_tz) {
                Err(invalid) => problems.extend(invalid.0),
                Ok(v) if problems.is_empty() => {
                    output.push_str(&format!(
                        "{at}: OK ({})\n",
                        schedule::describe(&spec.trigger, &v.time_zone)
                    ));
                    for w in &v.warnings {
                        output.push_str(&format!("  warning: {w}\n"));
                    }
                    let mut state = TriggerState::default();
                    let mut shown = 0;
                    let mut cursor = now;
                    while shown < count {
                        let plan = schedule::plan(&PlanInput {
                            schedule: &v.schedule,
                            enabled: true,
                            no_catchup: true,
                            max_concurrency: 1,
                            policy: Default::default(),
                            created: now,
                            state: state.clone(),
                            active: 0,
                            now: cursor,
                        });
                        match plan.next {
                            Some(next) => {
                                output.push_str(&format!("  next: {next}\n"));
                                state.last_triggered = Some(next);
                                state.last_index += 1;
                                cursor = next;
                                shown += 1;
                            }
                            None => break,
                        }
                    }
                    if shown == 0 {
                        output.push_str("  next: none\n");
                    }
                    continue;
                }
                Ok(_) => {}
            }
            errors += 1;
            output.push_str(&format!("{at}: INVALID\n"));
            for p in problems {
                output.push_str(&format!("  {p}\n"));
            }
        }
    }
    Report { output, errors }
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
