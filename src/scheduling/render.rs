//! Pure construction of run objects: deterministic names, KFP labels, owner reference,
//! parameters and macros. KFP's labels are those of its `util/scheduled_workflow.go`
//! `NewWorkflow` (docs/kfp-compatibility.md, "Runs").

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Value, json};

use crate::{
    model::{
        compact::CompactJson,
        crd::{Parameter, RunTemplate},
        keys::{LABEL_EPOCH, LABEL_INDEX, LABEL_OWNED, LABEL_RUN_ID, LABEL_SWF_NAME, SERVED_RUN_NOW_ANNOTATION},
    },
    scheduling::{
        kfp_macros::MacroContext,
        validate::{RunSource, Validated},
    },
};

const MAX_NAME: usize = 63;

fn fnv32a(s: &str) -> u32 {
    s.bytes()
        .fold(0x811c9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// A DNS-1123 label prefix of at most `room` characters, unique per SWF name: long names are
/// cut and get a hash of the full name so two long names never share a prefix.
fn name_prefix(swf_name: &str, room: usize) -> String {
    let clean: String = swf_name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    if clean.len() <= room && clean == swf_name {
        return clean;
    }
    let hash = format!("{:08x}", fnv32a(swf_name));
    let keep = room.saturating_sub(hash.len() + 1);
    let head = clean[..clean.len().min(keep)].trim_end_matches('-');
    format!("{head}-{hash}")
}

/// Name of the run for the tick at `scheduled`: the same tick always gives the same name, so a
/// retried, repeated or concurrent pass can never create a second run for it.
pub fn run_name(swf_name: &str, scheduled: Timestamp) -> String {
    let suffix = scheduled.as_second().to_string();
    format!("{}-{suffix}", name_prefix(swf_name, MAX_NAME - suffix.len() - 1))
}

/// Name of the run serving a `run-now` request value.
pub fn run_now_name(swf_name: &str, request: &str) -> String {
    let suffix = format!("now-{:08x}", fnv32a(request));
    format!("{}-{suffix}", name_prefix(swf_name, MAX_NAME - suffix.len() - 1))
}

/// The value of KFP's `scheduledWorkflowName` label (label values are at most 63 chars).
pub fn swf_label_value(swf_name: &str) -> String {
    if swf_name.len() <= MAX_NAME {
        swf_name.to_string()
    } else {
        name_prefix(swf_name, MAX_NAME)
    }
}

/// Sets `value` at `path`, turning whatever is in the way into objects.
fn set_path(root: &mut Value, path: &[&str], value: Value) {
    match path.split_first() {
        None => *root = value,
        Some((first, rest)) => {
            if !root.is_object() {
                *root = json!({});
            }
            if let Value::Object(map) = root {
                set_path(map.entry(first.to_string()).or_insert(Value::Null), rest, value);
            }
        }
    }
}

/// KFP's `ReplaceUID`: `{{workflow.uid}}` becomes the run's UUID, in every key and string.
fn replace_workflow_uid(v: &mut Value, uuid: &str) {
    const PLACEHOLDER: &str = "{{workflow.uid}}";
    match v {
        Value::String(s) if s.contains(PLACEHOLDER) => *s = s.replace(PLACEHOLDER, uuid),
        Value::Array(items) => items.iter_mut().for_each(|i| replace_workflow_uid(i, uuid)),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains(PLACEHOLDER)) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (k.replace(PLACEHOLDER, uuid), v))
                    .collect();
            }
            map.values_mut().for_each(|i| replace_workflow_uid(i, uuid));
        }
        _ => {}
    }
}

/// The ScheduledWorkflow a run belongs to.
#[derive(Clone, Debug)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl Owner {
    /// A controller reference, as KFP sets it (so deleting the schedule deletes its runs).
    pub fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: "kubeflow.org/v1beta1".into(),
            kind: "ScheduledWorkflow".into(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// Why a run exists. Written on the run as an annotation, so it is read back the same way
/// after a restart: a run-now run is not a tick, and a backfill's runs have their own slots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// The schedule's own tick (also every run KFP's controller created).
    #[default]
    Scheduled,
    /// A `run-now` request: the annotation value it served.
    RunNow(String),
    /// A backfill: the request (annotation value) it served.
    Backfill(String),
}

impl Origin {
    /// Read from a run's annotations.
    pub fn of(annotations: Option<&BTreeMap<String, String>>) -> Origin {
        let get = |key: &str| annotations.and_then(|a| a.get(key)).cloned();
        match (
            get(SERVED_RUN_NOW_ANNOTATION),
            get(crate::model::keys::BACKFILL_RUN_ANNOTATION),
        ) {
            (Some(value), _) => Origin::RunNow(value),
            (None, Some(range)) => Origin::Backfill(range),
            (None, None) => Origin::Scheduled,
        }
    }

    /// The annotation that records it on the run.
    fn annotation(&self) -> Option<(&'static str, &str)> {
        match self {
            Origin::Scheduled => None,
            Origin::RunNow(value) => Some((SERVED_RUN_NOW_ANNOTATION, value)),
            Origin::Backfill(range) => Some((crate::model::keys::BACKFILL_RUN_ANNOTATION, range)),
        }
    }

    /// Its run is the run of a tick (run-now runs are not).
    pub fn is_tick(&self) -> bool {
        !matches!(self, Origin::RunNow(_))
    }

    pub fn is_backfill(&self) -> bool {
        matches!(self, Origin::Backfill(_))
    }
}

/// One run to build.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub name: String,
    pub scheduled: Timestamp,
    pub index: i64,
    pub run_uuid: String,
    pub origin: Origin,
}

/// A run's body before KFP's labels and the owner are added.
struct Body {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    spec: Value,
}

/// Builds the full object for one run.
pub fn render(owner: &Owner, service_account: Option<&str>, v: &Validated, req: &RunRequest, now: Timestamp) -> Value {
    let macros = MacroContext {
        scheduled: req.scheduled,
        current: now,
        index: req.index,
        run_uuid: req.run_uuid.clone(),
    };
    let kind = v.source.kind();
    let mut body = match &v.source {
        RunSource::Workflow {
            spec,
            metadata,
            parameters,
        } => workflow_body(spec, metadata.as_ref(), parameters, &macros),
        RunSource::Template(t) => template_body(t, &macros),
    };
    if let (Some(sa), Some(path)) = (service_account, kind.service_account_path()) {
        set_path(&mut body.spec, path, Value::String(sa.to_string()));
    }
    body.labels.extend(kfp_labels(owner, req));
    if let Some((key, value)) = req.origin.annotation() {
        body.annotations.insert(key.into(), value.into());
    }
    json!({
        "apiVersion": kind.api_version(),
        "kind": kind.kind,
        "metadata": {
            "name": req.name,
            "namespace": owner.namespace,
            "labels": body.labels,
            "annotations": body.annotations,
            "ownerReferences": [owner.reference()],
        },
        "spec": body.spec,
    })
}

/// KFP's labels on every run (`SetCannonicalLabels`).
fn kfp_labels(owner: &Owner, req: &RunRequest) -> [(String, String); 5] {
    [
        (LABEL_SWF_NAME.into(), swf_label_value(&owner.name)),
        (LABEL_EPOCH.into(), req.scheduled.as_second().to_string()),
        (LABEL_INDEX.into(), req.index.to_string()),
        (LABEL_OWNED.into(), "true".into()),
        (LABEL_RUN_ID.into(), req.run_uuid.clone()),
    ]
}

/// An Argo Workflow, KFP's way: the embedded metadata's string labels and annotations, the
/// parameters (macros expanded), `{{workflow.uid}}` replaced, the run id on every pod.
fn workflow_body(spec: &Value, metadata: Option<&Value>, parameters: &[Parameter], macros: &MacroContext) -> Body {
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    if let Some(meta) = metadata {
        for (key, target) in [("labels", &mut labels), ("annotations", &mut annotations)] {
            if let Some(map) = meta.get(key).and_then(Value::as_object) {
                target.extend(
                    map.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))),
                );
            }
        }
    }
    let mut spec = spec.clone();
    if !override_v2_runtime_config(&mut spec, parameters, macros) {
        override_parameters(&mut spec, parameters, macros);
    }
    replace_workflow_uid(&mut spec, &macros.run_uuid);
    set_path(
        &mut spec,
        &["podMetadata", "labels", LABEL_RUN_ID],
        Value::String(macros.run_uuid.clone()),
    );
    Body {
        labels,
        annotations,
        spec,
    }
}

/// Any object: macros expanded in its metadata and in every string of its spec.
fn template_body(t: &RunTemplate, macros: &MacroContext) -> Body {
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    if let Some(meta) = &t.metadata {
        labels.extend(meta.labels.iter().map(|(k, v)| (k.clone(), macros.expand(v))));
        annotations.extend(meta.annotations.iter().map(|(k, v)| (k.clone(), macros.expand(v))));
    }
    let mut spec = t.spec.as_ref().map_or_else(|| json!({}), CompactJson::value);
    macros.expand_json(&mut spec);
    Body {
        labels,
        annotations,
        spec,
    }
}

/// Where KFP v2 puts a pipeline's inputs: the `runtime-config` argument (a JSON string) of the
/// `root-driver` task of the `entrypoint` template (KFP's `argocompiler`, `dag.go`).
fn v2_runtime_config(spec: &mut Value) -> Option<&mut Value> {
    let named = |v: &Value, name: &str| v.get("name").and_then(Value::as_str) == Some(name);
    let entry = spec
        .get_mut("templates")?
        .as_array_mut()?
        .iter_mut()
        .find(|t| named(t, "entrypoint"))?;
    let driver = entry
        .pointer_mut("/dag/tasks")?
        .as_array_mut()?
        .iter_mut()
        .find(|t| named(t, "root-driver"))?;
    let param = driver
        .pointer_mut("/arguments/parameters")?
        .as_array_mut()?
        .iter_mut()
        .find(|p| named(p, "runtime-config"))?;
    param.get_mut("value")
}

/// KFP v2 recurring runs (kubeflow/pipelines#12494, where KFP leaves macros unexpanded): the
/// schedule's parameters (JSON-encoded values, as KFP's API server stores them) go into the
/// runtime config's `parameterValues`, and macros in its string values are expanded. Nothing
/// is added to `spec.arguments.parameters`. False when `spec` is not a KFP v2 workflow.
fn override_v2_runtime_config(spec: &mut Value, parameters: &[Parameter], macros: &MacroContext) -> bool {
    let Some(value) = v2_runtime_config(spec) else {
        return false;
    };
    let mut config: Value = value
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let mut values = config
        .get("parameterValues")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for p in parameters {
        // A value that is not JSON is taken as a plain string.
        let decoded = serde_json::from_str(&p.value).unwrap_or_else(|_| Value::String(p.value.clone()));
        values.insert(p.name.clone(), decoded);
    }
    for v in values.values_mut() {
        if let Value::String(s) = v {
            *s = macros.expand(s);
        }
    }
    set_path(&mut config, &["parameterValues"], Value::Object(values));
    // serde_json's map keeps keys sorted, as KFP's `stablyMarshalJSON` writes them.
    *value = Value::String(config.to_string());
    true
}

/// Sets `spec.arguments.parameters` values from the SWF's parameters (macros expanded).
/// KFP only overrides parameters the workflow declares and drops the rest; we also add the
/// undeclared ones, so no parameter a user wrote is silently lost.
fn override_parameters(spec: &mut Value, parameters: &[Parameter], macros: &MacroContext) {
    if parameters.is_empty() {
        return;
    }
    if spec
        .pointer("/arguments/parameters")
        .and_then(Value::as_array)
        .is_none()
    {
        set_path(spec, &["arguments", "parameters"], json!([]));
    }
    let Some(list) = spec.pointer_mut("/arguments/parameters").and_then(Value::as_array_mut) else {
        return;
    };
    for p in parameters {
        let value = Value::String(macros.expand(&p.value));
        match list
            .iter_mut()
            .find(|e| e.get("name").and_then(Value::as_str) == Some(&p.name))
        {
            Some(existing) => set_path(existing, &["value"], value),
            None => list.push(json!({"name": p.name, "value": value})),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduling::validate::validate;

    fn owner() -> Owner {
        Owner {
            name: "nightly".into(),
            namespace: "ns".into(),
            uid: "u-1".into(),
        }
    }

    fn spec(v: Value) -> crate::model::crd::ScheduledWorkflowSpec {
        serde_json::from_value(v).unwrap()
    }

    fn req(t: &str) -> RunRequest {
        RunRequest {
            name: run_name("nightly", t.parse().unwrap()),
            scheduled: t.parse().unwrap(),
            index: 3,
            run_uuid: "uuid-3".into(),
            origin: Origin::Scheduled,
        }
    }

    #[test]
    fn names_are_deterministic_dns_labels_within_63_chars() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(run_name("nightly", t), "nightly-1767225600");
        let long = "a".repeat(250);
        let other = format!("{}b", "a".repeat(249));
        for n in [run_name(&long, t), run_now_name(&long, "x"), run_name("My.Swf", t)] {
            assert!(n.len() <= 63, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
        }
        assert_ne!(
            run_name(&long, t),
            run_name(&other, t),
            "long names that share a prefix differ"
        );
        assert!(swf_label_value(&long).len() <= 63);
    }

    #[test]
    fn workflow_run_has_kfp_labels_owner_parameters_and_macros() {
        let s = spec(json!({"enabled": true, "serviceAccount": "runner",
            "workflow": {"parameters": [{"name": "date", "value": "[[ScheduledTime.2006-01-02]]"}, {"name": "extra", "value": "[[Index]]"}],
                "spec": {"entrypoint": "main", "arguments": {"parameters": [{"name": "date", "value": "x"}]},
                    "templates": [{"name": "main", "container": {"args": ["{{workflow.uid}}"]}}]}}}));
        let v = validate(&s, "UTC").unwrap();
        let obj = render(
            &owner(),
            s.service_account.as_deref(),
            &v,
            &req("2026-01-01T00:00:00Z"),
            "2026-01-01T00:00:02Z".parse().unwrap(),
        );
        assert_eq!(obj["apiVersion"], "argoproj.io/v1alpha1");
        assert_eq!(obj["kind"], "Workflow");
        let labels = &obj["metadata"]["labels"];
        assert_eq!(labels[LABEL_SWF_NAME], "nightly");
        assert_eq!(labels[LABEL_EPOCH], "1767225600");
        assert_eq!(labels[LABEL_INDEX], "3");
        assert_eq!(labels[LABEL_OWNED], "true");
        assert_eq!(labels[LABEL_RUN_ID], "uuid-3");
        let owner = &obj["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                owner["uid"].as_str(),
                owner["controller"].as_bool(),
                owner["kind"].as_str()
            ),
            (Some("u-1"), Some(true), Some("ScheduledWorkflow"))
        );
        assert_eq!(
            obj["spec"]["arguments"]["parameters"],
            json!([{"name": "date", "value": "2026-01-01"}, {"name": "extra", "value": "3"}])
        );
        assert_eq!(obj["spec"]["templates"][0]["container"]["args"][0], "uuid-3");
        assert_eq!(obj["spec"]["serviceAccountName"], "runner");
        assert_eq!(obj["spec"]["podMetadata"]["labels"][LABEL_RUN_ID], "uuid-3");
    }

    #[test]
    fn kfp_v2_runs_get_their_macros_in_the_runtime_config() {
        let fixture: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/kfp-v2/scheduledworkflow.json")).unwrap();
        let s: crate::model::crd::ScheduledWorkflowSpec = serde_json::from_value(fixture["spec"].clone()).unwrap();
        let v = validate(&s, "UTC").unwrap();
        let obj = render(
            &owner(),
            None,
            &v,
            &req("2026-03-04T05:06:07Z"),
            "2026-03-04T05:06:09Z".parse().unwrap(),
        );
        let mut wf = obj["spec"].clone();
        let config: Value = serde_json::from_str(v2_runtime_config(&mut wf).unwrap().as_str().unwrap()).unwrap();
        assert_eq!(config, json!({"parameterValues": {"message": "run-2026-03-04"}}));
        let args = obj["spec"]["arguments"]["parameters"].as_array().unwrap();
        assert!(
            args.iter().all(|a| a["name"] != "message"),
            "no top-level parameter is added for a v2 input"
        );
        assert_eq!(
            obj["spec"]["podMetadata"]["labels"]["pipelines.kubeflow.org/v2_component"],
            "true"
        );
    }

    #[test]
    fn deep_specs_and_uid_placeholders_in_keys_do_not_panic() {
        let mut deep = json!("{{workflow.uid}}");
        for _ in 0..127 {
            deep = json!([deep]);
        }
        let s = spec(
            json!({"workflow": {"spec": {"entrypoint": "main", "templates": [{"name": "main", "{{workflow.uid}}": deep}]}}}),
        );
        let v = validate(&s, "UTC").unwrap();
        let obj = render(
            &owner(),
            None,
            &v,
            &req("2026-01-01T00:00:00Z"),
            "2026-01-01T00:00:02Z".parse().unwrap(),
        );
        assert!(
            obj["spec"]["templates"][0].get("uuid-3").is_some(),
            "keys are replaced too"
        );
    }

    #[test]
    fn template_run_expands_macros_and_sets_job_service_account() {
        let s = spec(
            json!({"serviceAccount": "runner", "runTemplate": {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"labels": {"team": "data"}, "annotations": {"when": "[[ScheduledTime]]"}},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "args": ["{{$.scheduledTime.strftime('%Y')}}"]}]}}}}}),
        );
        let v = validate(&s, "UTC").unwrap();
        let obj = render(
            &owner(),
            s.service_account.as_deref(),
            &v,
            &req("2026-01-01T00:00:00Z"),
            "2026-01-01T00:00:02Z".parse().unwrap(),
        );
        assert_eq!(obj["apiVersion"], "batch/v1");
        assert_eq!(obj["metadata"]["labels"]["team"], "data");
        assert_eq!(obj["metadata"]["annotations"]["when"], "20260101000000");
        assert_eq!(obj["spec"]["template"]["spec"]["containers"][0]["args"][0], "2026");
        assert_eq!(obj["spec"]["template"]["spec"]["serviceAccountName"], "runner");
    }
}
