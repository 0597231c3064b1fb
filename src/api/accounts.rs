//! Every service account a job's runs would use, wherever the run names it (pure).
//!
//! `spec.serviceAccount` is set where the run kind keeps it (`runkind::KNOWN_KINDS`), but the
//! run itself may name others: a Job's pod (`template.spec.serviceAccountName`, or the
//! deprecated `serviceAccount`), an Argo template or executor, a Tekton task run, a pod spec
//! patch (Argo's `podSpecPatch`, a YAML/JSON string). So the whole run is walked, every key
//! that names a service account is collected, and `podSpecPatch` strings are parsed and walked
//! too. A value that is not a literal name (a macro, an Argo expression) or a patch that cannot
//! be read is reported as unchecked: the API cannot know what it becomes.

use serde_json::Value;

use crate::model::{crd::ScheduledWorkflowSpec, manifest};

/// Keys whose string value names a service account (Kubernetes, Argo, Tekton).
const ACCOUNT_KEYS: &[&str] = &["serviceAccountName", "serviceAccount", "taskServiceAccountName"];
/// Keys whose string value is a pod spec patch (Argo).
const PATCH_KEYS: &[&str] = &["podSpecPatch"];

/// What a job's runs name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accounts {
    /// Literal service account names, with where they are.
    pub named: Vec<(String, String)>,
    /// Places whose account cannot be known before the run exists.
    pub unchecked: Vec<String>,
}

impl Accounts {
    fn walk(&mut self, value: &Value, path: &str) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    let here = format!("{path}.{key}");
                    match v {
                        Value::String(s) if ACCOUNT_KEYS.contains(&key.as_str()) => self.name(s, here),
                        Value::String(s) if PATCH_KEYS.contains(&key.as_str()) => match manifest::parse(s) {
                            Ok(patch) => self.walk(&patch, &here),
                            Err(_) => self.unchecked.push(here),
                        },
                        other => self.walk(other, &here),
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.walk(v, &format!("{path}[{i}]"));
                }
            }
            _ => {}
        }
    }

    fn name(&mut self, name: &str, path: String) {
        if crate::model::names::is_dns1123_subdomain(name) {
            self.named.push((name.to_string(), path));
        } else if !name.is_empty() {
            self.unchecked.push(path);
        }
    }
}

/// The service accounts the runs of `spec` would use.
pub fn of(spec: &ScheduledWorkflowSpec) -> Accounts {
    let mut found = Accounts::default();
    if let Some(sa) = &spec.service_account {
        found.name(sa, "spec.serviceAccount".into());
    }
    if let Some(workflow) = spec.workflow.as_ref().and_then(|w| w.spec.as_ref()) {
        match workflow.as_str() {
            Some(text) => match manifest::parse(text) {
                Ok(workflow) => found.walk(&workflow, "spec.workflow.spec"),
                Err(_) => found.unchecked.push("spec.workflow.spec".into()),
            },
            None => found.walk(&workflow.value(), "spec.workflow.spec"),
        }
    }
    if let Some(spec) = spec.run_template.as_ref().and_then(|t| t.spec.as_ref()) {
        found.walk(&spec.value(), "spec.runTemplate.spec");
    }
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(v: Value) -> ScheduledWorkflowSpec {
        serde_json::from_value(v).unwrap()
    }

    fn names(a: &Accounts) -> Vec<&str> {
        let mut names: Vec<&str> = a.named.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        names
    }

    #[test]
    fn every_place_a_run_names_an_account_is_found() {
        let workflow = json!({"serviceAccountName": "a", "executor": {"serviceAccountName": "b"},
            "templates": [{"name": "t", "serviceAccountName": "c", "podSpecPatch": "{\"serviceAccountName\": \"d\"}"},
                          {"name": "u", "podSpecPatch": "serviceAccountName: e\n"}]});
        let found = of(&spec(
            json!({"serviceAccount": "s", "workflow": {"spec": workflow.to_string()}}),
        ));
        assert_eq!(names(&found), vec!["a", "b", "c", "d", "e", "s"]);
        assert!(found.unchecked.is_empty(), "{found:?}");
        let job = json!({"template": {"spec": {"serviceAccountName": "f", "serviceAccount": "g"}}});
        let found = of(&spec(
            json!({"runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": job}}),
        ));
        assert_eq!(names(&found), vec!["f", "g"]);
        assert!(found.named.contains(&(
            "f".into(),
            "spec.runTemplate.spec.template.spec.serviceAccountName".into()
        )));
        let tekton = json!({"taskRunTemplate": {"serviceAccountName": "h"},
            "taskRunSpecs": [{"pipelineTaskName": "x", "serviceAccountName": "i", "taskServiceAccountName": "j"}]});
        let found = of(&spec(
            json!({"runTemplate": {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": tekton}}),
        ));
        assert_eq!(names(&found), vec!["h", "i", "j"]);
    }

    #[test]
    fn what_cannot_be_known_before_the_run_is_reported() {
        let workflow = json!({"templates": [{"serviceAccountName": "{{workflow.parameters.sa}}"},
            {"podSpecPatch": "{{inputs.parameters.patch}}: ["}]});
        let found = of(&spec(json!({"workflow": {"spec": workflow}})));
        assert!(found.named.is_empty());
        assert_eq!(
            found.unchecked,
            vec![
                "spec.workflow.spec.templates[0].serviceAccountName",
                "spec.workflow.spec.templates[1].podSpecPatch"
            ]
        );
        let macro_sa = json!({"template": {"spec": {"serviceAccountName": "[[ScheduledTime.swf-operator]]"}}});
        let found = of(&spec(
            json!({"runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": macro_sa}}),
        ));
        assert_eq!(found.unchecked.len(), 1, "a macro could expand to any name");
    }

    #[test]
    fn the_run_kind_tables_places_are_keys_the_walk_knows() {
        for kind in crate::model::runkind::KNOWN_KINDS {
            let key = kind.service_account_path.last().unwrap();
            assert!(ACCOUNT_KEYS.contains(key), "{}: {key}", kind.kind);
        }
    }
}
