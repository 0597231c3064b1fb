//! Pure mapping between KFP's `Job` message and the `ScheduledWorkflow` resource
//! (KFP's `backend/src/apiserver/server/api_converter.go`; docs/kfp-compatibility.md, "JobService").

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::{
    error::ApiError,
    list::Row,
    proto::{
        CronSchedule, Job, Parameter, PeriodicSchedule, PipelineSpec, Relationship, ResourceKey, ResourceReference,
        ResourceType, Trigger, job::Mode, trigger,
    },
};
use crate::{
    model::{
        crd::{self, ScheduledWorkflow, ScheduledWorkflowSpec, ScheduledWorkflowStatus, Summary},
        keys::DISPLAY_NAME_ANNOTATION,
        stored::SwfObject,
    },
    scheduling::{
        cron,
        spec_check::{Rules, check_spec},
    },
};

/// A protobuf Timestamp: `nanos` is always in 0..1e9, also before 1970 (jiff counts a
/// negative instant's fraction below zero, which protobuf refuses).
pub fn to_ts(t: Timestamp) -> pbjson_types::Timestamp {
    let (mut seconds, mut nanos) = (t.as_second(), t.subsec_nanosecond());
    if nanos < 0 {
        seconds -= 1;
        nanos += 1_000_000_000;
    }
    pbjson_types::Timestamp { seconds, nanos }
}

/// KFP's changes to a workflow at create time (`template.go`), each optional.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// Replaces an empty or `pipeline-runner` service account (KFP's
    /// `DEFAULTPIPELINERUNNERSERVICEACCOUNT`; `setDefaultServiceAccount`). `None`: unchanged.
    pub default_service_account: Option<String>,
    /// Sets `sidecar.istio.io/inject: "false"` on every template that does not say otherwise
    /// (KFP's default).
    pub istio_sidecar_off: bool,
    /// What the operator checks every schedule against: a job it would not run is refused.
    pub rules: Rules,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            default_service_account: None,
            istio_sidecar_off: true,
            rules: Rules::in_zone("UTC"),
        }
    }
}

/// KFP's default pipeline service account, the one `default_service_account` replaces.
const KFP_RUNNER: &str = "pipeline-runner";

fn from_ts(t: &pbjson_types::Timestamp, field: &str) -> Result<Time, ApiError> {
    Timestamp::new(t.seconds, t.nanos)
        .map(Time)
        .map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

/// KFP's `toSWFCRDResourceGeneratedName`: lowercase, keep `[a-z0-9-]`, `job-` when empty,
/// at most 25 characters; we end it with `-` so the generated suffix stays readable.
pub fn generate_name(display_name: &str) -> String {
    let mut s: String = display_name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect();
    s = s.trim_start_matches('-').to_string();
    if s.is_empty() {
        s = "job".into();
    }
    s.truncate(24);
    format!("{}-", s.trim_end_matches('-'))
}

/// A Job from a create request, as the namespace and resource to create.
pub fn job_to_swf(
    job: &Job,
    default_namespace: Option<&str>,
    opts: &CreateOptions,
) -> Result<(String, ScheduledWorkflow), ApiError> {
    let pipeline = job.pipeline_spec.clone().unwrap_or_default();
    let name = display_name(job, &pipeline)?;
    if !(1..=10).contains(&job.max_concurrency) {
        return Err(ApiError::invalid(format!(
            "Max concurrency of a recurring run must be at least 1 and at most 10. Received {}",
            job.max_concurrency
        )));
    }
    let mut spec = ScheduledWorkflowSpec {
        description: (!job.description.is_empty()).then(|| job.description.clone()),
        enabled: job.enabled || job.mode == Mode::Enabled as i32,
        max_concurrency: Some(job.max_concurrency),
        no_catchup: job.no_catchup.then_some(true),
        service_account: (!job.service_account.is_empty()).then(|| job.service_account.clone()),
        ..Default::default()
    };
    let namespace = apply_references(&job.resource_references, &mut spec, default_namespace)?;
    source_from(&pipeline, &mut spec, opts)?;
    if let Some(t) = job.trigger.as_ref().and_then(|t| t.trigger.as_ref()) {
        spec.trigger = trigger_from(t)?;
    }
    // Everything the operator would reject, rejected here with the same words (end < start, …).
    check_spec(&spec, &namespace, &opts.rules).map_err(|e| ApiError::invalid(e.to_string()))?;

    let mut swf = ScheduledWorkflow::new("", spec);
    swf.metadata.name = None;
    swf.metadata.generate_name = Some(generate_name(&name));
    swf.metadata.namespace = Some(namespace.clone());
    swf.metadata.annotations = Some([(DISPLAY_NAME_ANNOTATION.to_string(), name)].into());
    Ok((namespace, swf))
}

/// KFP's rule: the job's name, else the pipeline's name; empty is an error.
fn display_name(job: &Job, pipeline: &PipelineSpec) -> Result<String, ApiError> {
    let name = if job.name.is_empty() {
        pipeline.pipeline_name.clone()
    } else {
        job.name.clone()
    };
    if name.trim().is_empty() {
        return Err(ApiError::invalid("The job name is empty. Please specify a valid name."));
    }
    Ok(name)
}

/// NAMESPACE, EXPERIMENT, PIPELINE and PIPELINE_VERSION references into the spec; returns the
/// namespace.
fn apply_references(
    refs: &[ResourceReference],
    spec: &mut ScheduledWorkflowSpec,
    default_namespace: Option<&str>,
) -> Result<String, ApiError> {
    let mut namespace = default_namespace.map(str::to_string);
    for r in refs {
        let key = r.key.clone().unwrap_or_default();
        let kind = ResourceType::try_from(key.r#type).unwrap_or(ResourceType::UnknownResourceType);
        if key.id.is_empty() {
            return Err(ApiError::invalid(format!(
                "resource_references: {} reference has an empty id",
                kind.as_str_name()
            )));
        }
        match kind {
            ResourceType::Namespace => {
                if let Some(problem) = crate::model::names::namespace_problem("resource_references", &key.id) {
                    return Err(ApiError::invalid(problem));
                }
                namespace = Some(key.id);
            }
            ResourceType::Experiment => spec.experiment_id = Some(key.id),
            ResourceType::Pipeline => spec.pipeline_id = Some(key.id),
            ResourceType::PipelineVersion => spec.pipeline_version_id = Some(key.id),
            other => {
                return Err(ApiError::invalid(format!(
                    "resource_references: type {} is not supported for jobs (use NAMESPACE, EXPERIMENT, PIPELINE or PIPELINE_VERSION)",
                    other.as_str_name()
                )));
            }
        }
    }
    namespace.ok_or_else(|| {
        ApiError::invalid("resource_references: give a NAMESPACE reference (this API has no default namespace)")
    })
}

/// What to run, from `pipeline_spec`: an Argo Workflow (KFP stores its manifest as a JSON
/// string; so do we, so it round-trips), or any other object as a `runTemplate` (what
/// `swf_to_job` shows for one). Jobs that need KFP's pipeline store or compiler are refused.
fn source_from(
    pipeline: &PipelineSpec,
    spec: &mut ScheduledWorkflowSpec,
    opts: &CreateOptions,
) -> Result<(), ApiError> {
    if !pipeline.pipeline_id.is_empty() {
        spec.pipeline_id = Some(pipeline.pipeline_id.clone());
    }
    if !pipeline.pipeline_name.is_empty() {
        spec.pipeline_name = Some(pipeline.pipeline_name.clone());
    }
    if !pipeline.pipeline_manifest.is_empty() || pipeline.runtime_config.is_some() {
        return Err(ApiError::invalid(
            "pipeline_spec: pipeline_manifest and runtime_config (KFP v2 pipelines) need KFP's pipeline compiler; give an Argo workflow_manifest",
        ));
    }
    if pipeline.workflow_manifest.trim().is_empty() {
        let why = if spec.pipeline_id.is_some() || spec.pipeline_version_id.is_some() {
            "a pipeline id cannot be resolved without KFP's pipeline store: give pipeline_spec.workflow_manifest"
        } else {
            "pipeline_spec.workflow_manifest is required (an Argo Workflow, JSON or YAML)"
        };
        return Err(ApiError::invalid(why));
    }
    if spec.pipeline_version_id.is_some() {
        // KFP 1.8's `ValidatePipelineSpecAndResourceReferences`.
        return Err(ApiError::invalid(
            "Please don't specify a pipeline version or pipeline ID when you specify a workflow manifest or pipeline manifest.",
        ));
    }
    let mut manifest = crate::model::manifest::parse(&pipeline.workflow_manifest)
        .map_err(|e| ApiError::invalid(format!("pipeline_spec.workflow_manifest {e}")))?;
    let api_version = manifest.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = manifest.get("kind").and_then(Value::as_str).unwrap_or("");
    match (api_version, kind) {
        ("argoproj.io/v1alpha1", "Workflow") => {
            kfp_create_changes(&mut manifest, opts);
            spec.workflow = Some(crd::WorkflowResource {
                parameters: pipeline
                    .parameters
                    .iter()
                    .map(|p| crd::Parameter {
                        name: p.name.clone(),
                        value: p.value.clone(),
                    })
                    .collect(),
                spec: Some(Value::String(manifest.to_string()).into()),
                pipeline_root: None,
            });
        }
        (v, "Workflow") if v.starts_with("argoproj.io/") => {
            return Err(ApiError::invalid(format!(
                "Unsupported argo version. Expected: argoproj.io/v1alpha1. Received: {v}"
            )));
        }
        ("", _) | (_, "") => {
            return Err(ApiError::invalid(
                "pipeline_spec.workflow_manifest: unknown template format (it needs apiVersion and kind)",
            ));
        }
        _ => {
            spec.run_template = Some(
                serde_json::from_value(manifest)
                    .map_err(|e| ApiError::invalid(format!("pipeline_spec.workflow_manifest: {e}")))?,
            );
        }
    }
    Ok(())
}

/// KFP's create-time changes to an Argo Workflow: the default service account, and Istio's
/// sidecar off on every template that does not say.
fn kfp_create_changes(manifest: &mut Value, opts: &CreateOptions) {
    let Some(spec) = manifest.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(default_sa) = &opts.default_service_account {
        let current = spec.get("serviceAccountName").and_then(Value::as_str).unwrap_or("");
        if current.is_empty() || current == KFP_RUNNER {
            spec.insert("serviceAccountName".into(), Value::String(default_sa.clone()));
        }
    }
    if opts.istio_sidecar_off
        && let Some(templates) = spec.get_mut("templates").and_then(Value::as_array_mut)
    {
        for t in templates.iter_mut().filter_map(Value::as_object_mut) {
            let meta = t.entry("metadata").or_insert_with(|| json!({}));
            if let Some(annotations) = meta
                .as_object_mut()
                .map(|m| m.entry("annotations").or_insert_with(|| json!({})))
                .and_then(Value::as_object_mut)
            {
                annotations
                    .entry("sidecar.istio.io/inject")
                    .or_insert_with(|| Value::String("false".into()));
            }
        }
    }
}

/// A trigger, with KFP's checks (robfig cron, interval at least 1 s).
fn trigger_from(t: &trigger::Trigger) -> Result<crd::Trigger, ApiError> {
    let times = |start: &Option<pbjson_types::Timestamp>, end: &Option<pbjson_types::Timestamp>, kind: &str| {
        let start = start
            .as_ref()
            .map(|t| from_ts(t, &format!("{kind}.start_time")))
            .transpose()?;
        let end = end
            .as_ref()
            .map(|t| from_ts(t, &format!("{kind}.end_time")))
            .transpose()?;
        Ok::<_, ApiError>((start, end))
    };
    let mut out = crd::Trigger::default();
    match t {
        trigger::Trigger::CronSchedule(c) => {
            if let Err(e) = cron::parse(&c.cron) {
                return Err(ApiError::invalid(format!(
                    "Schedule cron is not a supported format(https://godoc.org/github.com/robfig/cron). Error: {e}"
                )));
            }
            let (start_time, end_time) = times(&c.start_time, &c.end_time, "cron_schedule")?;
            out.cron_schedule = Some(crd::CronSchedule {
                start_time,
                end_time,
                cron: c.cron.clone(),
            });
        }
        trigger::Trigger::PeriodicSchedule(p) => {
            if p.interval_second < 1 {
                return Err(ApiError::invalid(format!(
                    "Found invalid period schedule: interval_second must be at least 1, got {}",
                    p.interval_second
                )));
            }
            let (start_time, end_time) = times(&p.start_time, &p.end_time, "periodic_schedule")?;
            out.periodic_schedule = Some(crd::PeriodicSchedule {
                start_time,
                end_time,
                interval_second: p.interval_second,
            });
        }
    }
    Ok(out)
}

fn reference(kind: ResourceType, id: &str, relationship: Relationship) -> ResourceReference {
    ResourceReference {
        key: Some(ResourceKey {
            r#type: kind as i32,
            id: id.to_string(),
        }),
        name: String::new(),
        relationship: relationship as i32,
    }
}

/// KFP's status strings (`toApiJobStatus`).
pub fn status_string(status: &ScheduledWorkflowStatus) -> &'static str {
    match crate::scheduling::status::summary_of(status) {
        Some(Summary::Enabled | Summary::Running | Summary::Succeeded) => "ENABLED",
        Some(Summary::Disabled) => "DISABLED",
        Some(Summary::Error) | None => "STATUS_UNSPECIFIED",
    }
}

/// The last change of spec: recorded by the operator in status, else the creation time.
pub fn updated_at(obj: &SwfObject) -> Option<Timestamp> {
    let created = obj.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created.max(obj.status.spec_updated_at.as_ref().map(|t| t.0))
}

fn display_name_of(obj: &SwfObject) -> String {
    obj.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DISPLAY_NAME_ANNOTATION))
        .cloned()
        .or_else(|| obj.metadata.name.clone())
        .unwrap_or_default()
}

/// What ListJobs sorts and filters a job by, without building the job.
pub fn row(obj: &SwfObject) -> Row {
    let spec = obj.spec.as_ref().ok();
    Row {
        id: obj.metadata.uid.as_deref().unwrap_or_default().into(),
        name: display_name_of(obj).into(),
        description: spec.and_then(|s| s.description.as_deref()).unwrap_or_default().into(),
        pipeline_id: spec.and_then(|s| s.pipeline_id.as_deref()).unwrap_or_default().into(),
        created_at: obj.metadata.creation_timestamp.as_ref().map_or(0, |t| t.0.as_second()),
        updated_at: updated_at(obj).map_or(0, |t| t.as_second()),
    }
}

/// The Job KFP's clients see. A stored spec that cannot be read still lists, with `error`
/// saying why.
pub fn swf_to_job(obj: &SwfObject) -> Job {
    let condition = crate::scheduling::status::summary_condition(&obj.status);
    let error = condition
        .filter(|c| Summary::of(c) == Some(Summary::Error))
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    let mut job = Job {
        id: obj.metadata.uid.clone().unwrap_or_default(),
        name: display_name_of(obj),
        resource_references: vec![reference(
            ResourceType::Namespace,
            obj.metadata.namespace.as_deref().unwrap_or_default(),
            Relationship::Owner,
        )],
        created_at: obj.metadata.creation_timestamp.as_ref().map(|t| to_ts(t.0)),
        updated_at: updated_at(obj).map(to_ts),
        status: status_string(&obj.status).to_string(),
        error,
        ..Default::default()
    };
    match &obj.spec {
        Ok(spec) => fill_from_spec(&mut job, spec),
        Err(e) => job.error = format!("the stored spec cannot be read: {e}"),
    }
    job
}

fn fill_from_spec(job: &mut Job, spec: &ScheduledWorkflowSpec) {
    job.description = spec.description.clone().unwrap_or_default();
    job.pipeline_spec = Some(pipeline_spec_of(spec));
    if let Some(id) = &spec.experiment_id {
        job.resource_references
            .push(reference(ResourceType::Experiment, id, Relationship::Owner));
    }
    if let Some(id) = &spec.pipeline_version_id {
        job.resource_references
            .push(reference(ResourceType::PipelineVersion, id, Relationship::Creator));
    }
    job.service_account = spec.service_account.clone().unwrap_or_default();
    job.max_concurrency = spec.max_concurrency.unwrap_or(1);
    job.trigger = trigger_of(&spec.trigger);
    // KFP never sets mode in responses (`toApiJobV1`).
    job.mode = 0;
    job.enabled = spec.enabled;
    job.no_catchup = spec.no_catchup.unwrap_or(false);
}

fn pipeline_spec_of(spec: &ScheduledWorkflowSpec) -> PipelineSpec {
    let manifest = match spec.workflow.as_ref().and_then(|w| w.spec.as_ref()) {
        Some(workflow) => workflow.as_str().map_or_else(|| workflow.json(), str::to_string),
        // A runTemplate shows as the object it creates; created back, it stays a runTemplate.
        None => spec
            .run_template
            .as_ref()
            .map(|t| serde_json::to_string(t).unwrap_or_default())
            .unwrap_or_default(),
    };
    let parameters = spec
        .workflow
        .iter()
        .flat_map(|w| &w.parameters)
        .map(|p| Parameter {
            name: p.name.clone(),
            value: p.value.clone(),
        })
        .collect();
    PipelineSpec {
        pipeline_id: spec.pipeline_id.clone().unwrap_or_default(),
        pipeline_name: spec.pipeline_name.clone().unwrap_or_default(),
        workflow_manifest: manifest,
        pipeline_manifest: String::new(),
        parameters,
        runtime_config: None,
    }
}

fn trigger_of(t: &crd::Trigger) -> Option<Trigger> {
    let ts = |t: &Option<Time>| t.as_ref().map(|t| to_ts(t.0));
    let inner = if let Some(c) = &t.cron_schedule {
        trigger::Trigger::CronSchedule(CronSchedule {
            start_time: ts(&c.start_time),
            end_time: ts(&c.end_time),
            cron: c.cron.clone(),
        })
    } else {
        let p = t.periodic_schedule.as_ref()?;
        trigger::Trigger::PeriodicSchedule(PeriodicSchedule {
            start_time: ts(&p.start_time),
            end_time: ts(&p.end_time),
            interval_second: p.interval_second,
        })
    };
    Some(Trigger { trigger: Some(inner) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> String {
        serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "p-"},
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]}})
        .to_string()
    }

    fn job(v: serde_json::Value) -> Job {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({"name": "Nightly ETL!", "max_concurrency": "2", "pipeline_spec": {"workflow_manifest": manifest(),
            "parameters": [{"name": "d", "value": "[[ScheduledTime]]"}]},
            "trigger": {"cron_schedule": {"cron": "0 0 2 * * *", "start_time": "2026-01-01T00:00:00Z"}},
            "resource_references": [{"key": {"type": "NAMESPACE", "id": "team-a"}, "relationship": "OWNER"},
                                    {"key": {"type": "EXPERIMENT", "id": "exp-1"}, "relationship": "OWNER"}],
            "mode": "ENABLED", "no_catchup": true, "service_account": "runner", "description": "d"})
    }

    #[test]
    fn round_trip() {
        let (ns, mut swf) = job_to_swf(&job(base()), Some("kubeflow"), &CreateOptions::default()).unwrap();
        assert_eq!(ns, "team-a");
        assert_eq!(swf.metadata.generate_name.as_deref(), Some("nightlyetl-"));
        assert!(swf.spec.enabled, "mode ENABLED means enabled");
        swf.metadata.uid = Some("uid-1".into());
        swf.metadata.creation_timestamp = Some(Time("2026-02-01T00:00:00Z".parse().unwrap()));
        let stored_manifest = swf.spec.workflow.as_ref().unwrap().spec.clone().unwrap();
        let back = swf_to_job(&SwfObject::from_typed(swf));
        assert_eq!(back.name, "Nightly ETL!");
        assert_eq!(back.id, "uid-1");
        assert_eq!(back.max_concurrency, 2);
        assert!(back.enabled && back.no_catchup);
        assert_eq!(
            back.pipeline_spec.as_ref().unwrap().workflow_manifest,
            stored_manifest.as_str().unwrap()
        );
        let stored: Value = serde_json::from_str(stored_manifest.as_str().unwrap()).unwrap();
        assert_eq!(
            stored["spec"]["templates"][0]["metadata"]["annotations"]["sidecar.istio.io/inject"], "false",
            "KFP's create-time change"
        );
        assert_eq!(
            back.pipeline_spec.as_ref().unwrap().parameters[0].value,
            "[[ScheduledTime]]"
        );
        assert_eq!(back.status, "STATUS_UNSPECIFIED");
        let types: Vec<i32> = back
            .resource_references
            .iter()
            .map(|r| r.key.as_ref().unwrap().r#type)
            .collect();
        assert_eq!(
            types,
            vec![ResourceType::Namespace as i32, ResourceType::Experiment as i32]
        );
        let json = serde_json::to_value(&back).unwrap();
        assert_eq!(json["max_concurrency"], "2", "int64 as a JSON string");
        assert_eq!(
            json["resource_references"][0]["key"]["type"], "NAMESPACE",
            "enums by name"
        );
        let start = json["trigger"]["cron_schedule"]["start_time"].as_str().unwrap();
        assert_eq!(
            start.parse::<Timestamp>().unwrap(),
            "2026-01-01T00:00:00Z".parse::<Timestamp>().unwrap(),
            "RFC 3339"
        );
        assert!(
            json.get("mode").is_none() && json.get("error").is_none(),
            "zero fields omitted: {json}"
        );
    }

    #[test]
    fn validation_errors() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (serde_json::json!({"name": ""}), "name is empty"),
            (serde_json::json!({"max_concurrency": "0"}), "at least 1 and at most 10"),
            (
                serde_json::json!({"max_concurrency": "11"}),
                "at least 1 and at most 10",
            ),
            (
                serde_json::json!({"trigger": {"cron_schedule": {"cron": "0 0 * * * 9"}}}),
                "Schedule cron is not a supported format",
            ),
            (
                serde_json::json!({"trigger": {"periodic_schedule": {"interval_second": "0"}}}),
                "interval_second must be at least 1",
            ),
            (
                serde_json::json!({"trigger": {"cron_schedule": {"cron": "@daily", "start_time": "2026-02-01T00:00:00Z", "end_time": "2026-01-01T00:00:00Z"}}}),
                "before startTime",
            ),
            (
                serde_json::json!({"pipeline_spec": {"pipeline_id": "p1"}}),
                "cannot be resolved without KFP's pipeline store",
            ),
            (
                serde_json::json!({"resource_references": [{"key": {"type": "JOB", "id": "x"}}]}),
                "not supported for jobs",
            ),
            (
                serde_json::json!({"resource_references": [{"key": {"type": "NAMESPACE", "id": "Team_A"}}]}),
                "is not a valid namespace name",
            ),
        ];
        for (patch, want) in cases {
            let mut v = base();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            let err = job_to_swf(&job(v), Some("kubeflow"), &CreateOptions::default()).unwrap_err();
            assert!(err.message.contains(want), "{want}: {err:?}");
        }
    }

    #[test]
    fn no_namespace_and_no_default_is_a_400() {
        let mut v = base();
        v["resource_references"] = json!([]);
        let err = job_to_swf(&job(v), None, &CreateOptions::default()).unwrap_err();
        assert!(err.message.contains("give a NAMESPACE reference"), "{err:?}");
    }

    #[test]
    fn kfp_create_checks_and_changes() {
        let with_manifest = |m: Value| {
            let mut v = base();
            v["pipeline_spec"]["workflow_manifest"] = Value::String(m.to_string());
            job_to_swf(
                &job(v),
                None,
                &CreateOptions {
                    default_service_account: Some("team-runner".into()),
                    istio_sidecar_off: false,
                    ..Default::default()
                },
            )
        };
        let err = with_manifest(json!({})).unwrap_err();
        assert!(err.message.contains("unknown template format"), "{err:?}");
        let err = with_manifest(json!({"apiVersion": "argoproj.io/v2", "kind": "Workflow"})).unwrap_err();
        assert!(err.message.contains("Unsupported argo version"), "{err:?}");
        let (_, swf) = with_manifest(json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "spec": {"serviceAccountName": "pipeline-runner", "templates": [{"name": "t"}]}}))
        .unwrap();
        let text = swf.spec.workflow.unwrap().spec.unwrap();
        let wf: Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
        assert_eq!(wf["spec"]["serviceAccountName"], "team-runner");
        assert!(wf["spec"]["templates"][0].get("metadata").is_none(), "istio change off");
        // A manifest with a PIPELINE_VERSION reference (KFP 1.8 refuses both).
        let mut v = base();
        v["resource_references"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": {"type": "PIPELINE_VERSION", "id": "v1"}, "relationship": "CREATOR"}));
        let err = job_to_swf(&job(v), None, &CreateOptions::default()).unwrap_err();
        assert!(
            err.message.contains("Please don't specify a pipeline version"),
            "{err:?}"
        );
    }

    #[test]
    fn a_run_template_job_round_trips_as_a_run_template() {
        let template = json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {}}});
        let mut swf: ScheduledWorkflow = serde_json::from_value(json!({"apiVersion": "kubeflow.org/v1beta1",
            "kind": "ScheduledWorkflow", "metadata": {"name": "j", "namespace": "ns", "uid": "u"},
            "spec": {"enabled": true, "runTemplate": template}}))
        .unwrap();
        swf.metadata.uid = Some("u".into());
        let out = swf_to_job(&SwfObject::from_typed(swf));
        let mut v = serde_json::to_value(&out).unwrap();
        v.as_object_mut()
            .unwrap()
            .retain(|k, _| ["name", "max_concurrency", "pipeline_spec", "resource_references"].contains(&k.as_str()));
        let (_, back) = job_to_swf(&job(v), None, &CreateOptions::default()).unwrap();
        assert!(back.spec.workflow.is_none());
        assert_eq!(back.spec.run_template.unwrap().kind, "Job");
    }

    #[test]
    fn timestamps_before_1970_with_a_fraction_encode() {
        let t: Timestamp = "1969-12-31T23:59:59.5Z".parse().unwrap();
        let ts = to_ts(t);
        assert_eq!((ts.seconds, ts.nanos), (-1, 500_000_000));
        assert!(serde_json::to_string(&ts).is_ok());
    }

    #[test]
    fn an_undecodable_spec_still_lists_with_its_error() {
        let obj: SwfObject = serde_json::from_str(
            r#"{"metadata": {"name": "x", "namespace": "ns", "uid": "u"}, "spec": {"maxConcurrency": "many"}}"#,
        )
        .unwrap();
        let job = swf_to_job(&obj);
        assert_eq!(job.id, "u");
        assert!(
            job.error
                .starts_with("the stored spec cannot be read: spec.maxConcurrency"),
            "{}",
            job.error
        );
    }

    #[test]
    fn unknown_json_fields_are_rejected() {
        let mut v = base();
        v["colour"] = "blue".into();
        assert!(serde_json::from_value::<Job>(v).is_err());
    }

    #[test]
    fn a_job_the_operator_would_refuse_is_refused_at_create_in_its_words() {
        let blocking = |allowed: &str| CreateOptions {
            rules: Rules {
                v1_policy: crate::scheduling::validate::V1Policy::new(true, allowed),
                ..Rules::default()
            },
            ..Default::default()
        };
        let err = job_to_swf(&job(base()), None, &blocking("")).unwrap_err();
        let words = "spec.workflow: namespace team-a is not allowed to run v1 pipelines";
        assert!(err.message.contains(words), "{err:?}");
        assert!(job_to_swf(&job(base()), None, &blocking("team-a")).is_ok());
    }
}
