//! Pure validation of a `ScheduledWorkflow` spec into what the reconciler needs.
//! Every problem is reported with its field path; nothing is silently ignored.

use jiff::{Timestamp, tz::TimeZone};

use crate::{
    crd::{ConcurrencyPolicy, Parameter, RunTemplate, ScheduledWorkflowSpec},
    cron,
    schedule::{Cadence, Schedule},
};

/// The kind of object each tick creates.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RunKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl RunKind {
    pub fn argo_workflow() -> Self {
        RunKind {
            group: "argoproj.io".into(),
            version: "v1alpha1".into(),
            kind: "Workflow".into(),
        }
    }

    pub fn parse(api_version: &str, kind: &str) -> Self {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        RunKind {
            group,
            version,
            kind: kind.to_string(),
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.kind)
    }
}

/// What to create per tick.
#[derive(Clone, Debug)]
pub enum RunSource {
    /// KFP's form: an Argo `WorkflowSpec` (plus metadata when KFP embedded a whole Workflow).
    Workflow {
        spec: serde_json::Value,
        metadata: Option<serde_json::Value>,
        parameters: Vec<Parameter>,
    },
    Template(RunTemplate),
}

impl RunSource {
    pub fn kind(&self) -> RunKind {
        match self {
            RunSource::Workflow { .. } => RunKind::argo_workflow(),
            RunSource::Template(t) => RunKind::parse(&t.api_version, &t.kind),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Validated {
    pub schedule: Schedule,
    pub time_zone: String,
    pub source: RunSource,
    pub max_concurrency: usize,
    pub no_catchup: bool,
    pub policy: ConcurrencyPolicy,
    pub max_history: i64,
    /// Things that work but probably surprise (e.g. a 5-field cron read seconds-first).
    pub warnings: Vec<String>,
}

/// Every problem found, as `field: reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub Vec<String>);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

fn ts(t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

/// Parses a workflow spec given as an object or as a JSON/YAML string (KFP writes a string
/// holding a whole Workflow; older objects hold a bare `WorkflowSpec`).
fn workflow_spec(value: &serde_json::Value) -> Result<(serde_json::Value, Option<serde_json::Value>), String> {
    let parsed = match value {
        serde_json::Value::String(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(v) => v,
            Err(json_err) => serde_yaml::from_str::<serde_json::Value>(s)
                .map_err(|_| format!("is a string but not a JSON or YAML object: {json_err}"))?,
        },
        other => other.clone(),
    };
    let serde_json::Value::Object(map) = &parsed else {
        return Err("must be an Argo WorkflowSpec object (or a JSON string of one)".into());
    };
    // A whole Workflow (apiVersion/kind/spec) rather than a bare spec.
    if map.get("spec").is_some_and(|s| s.is_object())
        && !map.contains_key("templates")
        && !map.contains_key("entrypoint")
    {
        return Ok((map["spec"].clone(), map.get("metadata").cloned()));
    }
    Ok((parsed, None))
}

/// Validates a spec. `default_tz` is the operator's `--default-time-zone`.
pub fn validate(spec: &ScheduledWorkflowSpec, default_tz: &str) -> Result<Validated, Invalid> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    let tz_name = spec.time_zone.clone().unwrap_or_else(|| default_tz.to_string());
    let time_zone = match TimeZone::get(&tz_name) {
        Ok(tz) => tz,
        Err(_) => {
            errors.push(format!("spec.timeZone: unknown IANA time zone {tz_name:?}"));
            TimeZone::UTC
        }
    };

    let trigger = &spec.trigger;
    let schedule = match (&trigger.cron_schedule, &trigger.periodic_schedule) {
        (Some(_), Some(_)) => {
            errors.push("spec.trigger: set exactly one of cronSchedule or periodicSchedule".into());
            None
        }
        (Some(c), None) => {
            let (start, end) = (ts(&c.start_time), ts(&c.end_time));
            match cron::parse(&c.cron) {
                Ok(expr) => {
                    if let Some(w) = expr.warning() {
                        warnings.push(format!("spec.trigger.cronSchedule.cron {:?}: {w}", c.cron));
                    }
                    if let cron::CronExpr::Calendar(cal) = &expr
                        && cal.never_fires
                    {
                        errors.push(format!(
                            "spec.trigger.cronSchedule.cron: {:?} matches no date (e.g. Feb 30), so it never fires",
                            c.cron
                        ));
                    }
                    Some(Schedule::cron(expr, start, end, time_zone.clone()))
                }
                Err(e) => {
                    errors.push(format!(
                        "spec.trigger.cronSchedule.cron: {:?} is not a valid KFP (robfig/cron v1) expression: {e}",
                        c.cron
                    ));
                    None
                }
            }
        }
        (None, Some(p)) => {
            if p.interval_second < 0 {
                errors.push(format!(
                    "spec.trigger.periodicSchedule.intervalSecond: must be at least 1, got {}",
                    p.interval_second
                ));
            }
            // KFP reads 0 as 1 (`getInterval()`).
            let seconds = p.interval_second.max(1);
            Some(Schedule {
                cadence: Cadence::Every { seconds },
                start: ts(&p.start_time),
                end: ts(&p.end_time),
                time_zone: time_zone.clone(),
            })
        }
        (None, None) => Some(Schedule {
            cadence: Cadence::Once,
            start: None,
            end: None,
            time_zone: time_zone.clone(),
        }),
    };
    if let Some(s) = &schedule
        && let (Some(start), Some(end)) = (s.start, s.end)
        && end < start
    {
        errors.push(format!("spec.trigger: endTime {end} is before startTime {start}"));
    }

    let source = match (&spec.workflow, &spec.run_template) {
        (Some(_), Some(_)) => {
            errors.push("spec: set exactly one of workflow or runTemplate".into());
            None
        }
        (Some(w), None) => match &w.spec {
            Some(value) => match workflow_spec(value) {
                Ok((spec, metadata)) => Some(RunSource::Workflow {
                    spec,
                    metadata,
                    parameters: w.parameters.clone(),
                }),
                Err(e) => {
                    errors.push(format!("spec.workflow.spec: {e}"));
                    None
                }
            },
            None => {
                errors.push(
                    "spec.workflow.spec: empty; runs that KFP's API server would compile from a pipeline \
                     (pipelineId without an embedded workflow) need KFP and are not supported here"
                        .into(),
                );
                None
            }
        },
        (None, Some(t)) => {
            if t.api_version.trim().is_empty() || t.kind.trim().is_empty() {
                errors.push("spec.runTemplate: apiVersion and kind are required".into());
                None
            } else if t.kind == "ScheduledWorkflow" {
                errors.push("spec.runTemplate: a ScheduledWorkflow cannot create ScheduledWorkflows".into());
                None
            } else {
                Some(RunSource::Template(t.clone()))
            }
        }
        (None, None) => {
            errors.push("spec: nothing to run; set workflow.spec (an Argo WorkflowSpec) or runTemplate".into());
            None
        }
    };
    if let (Some(source), Some(_)) = (&source, &spec.service_account)
        && crate::render::service_account_path(&source.kind()).is_none()
    {
        errors.push(format!(
            "spec.serviceAccount: cannot be applied to {} (known kinds: Argo Workflow, batch/v1 Job, Tekton PipelineRun); set it inside runTemplate.spec",
            source.kind()
        ));
    }

    let max_concurrency = spec.max_concurrency.unwrap_or(1);
    if !(1..=10).contains(&max_concurrency) {
        errors.push(format!(
            "spec.maxConcurrency: must be between 1 and 10, got {max_concurrency}"
        ));
    }
    let max_history = spec.max_history.unwrap_or(10);
    if !(0..=100).contains(&max_history) {
        errors.push(format!("spec.maxHistory: must be between 0 and 100, got {max_history}"));
    }

    match (schedule, source) {
        (Some(schedule), Some(source)) if errors.is_empty() => Ok(Validated {
            schedule,
            time_zone: tz_name,
            source,
            max_concurrency: max_concurrency as usize,
            no_catchup: spec.no_catchup.unwrap_or(false),
            policy: spec.concurrency_policy.unwrap_or_default(),
            max_history,
            warnings,
        }),
        _ => Err(Invalid(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> ScheduledWorkflowSpec {
        serde_json::from_value(v).unwrap()
    }

    fn wf() -> serde_json::Value {
        serde_json::json!({"spec": {"entrypoint": "main", "templates": [{"name": "main"}]}})
    }

    #[test]
    fn accepts_kfp_string_workflow() {
        let whole = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"generateName": "p-"}, "spec": {"entrypoint": "main", "templates": []}});
        let s = spec(
            serde_json::json!({"enabled": true, "trigger": {"periodicSchedule": {"intervalSecond": 60}},
            "workflow": {"spec": whole.to_string()}}),
        );
        let v = validate(&s, "UTC").unwrap();
        let RunSource::Workflow { spec, metadata, .. } = v.source else {
            panic!()
        };
        assert_eq!(spec["entrypoint"], "main");
        assert_eq!(metadata.unwrap()["generateName"], "p-");
    }

    #[test]
    fn reports_every_problem_with_its_field() {
        let s = spec(serde_json::json!({
            "timeZone": "Mars/Olympus",
            "maxConcurrency": 20,
            "trigger": {"cronSchedule": {"cron": "0 0 12 * * 7", "startTime": "2026-02-01T00:00:00Z", "endTime": "2026-01-01T00:00:00Z"}},
            "workflow": {"spec": "not json {"},
        }));
        let Invalid(errors) = validate(&s, "UTC").unwrap_err();
        let joined = errors.join("\n");
        for want in [
            "spec.timeZone",
            "End of range (7) above maximum (6)",
            "spec.workflow.spec",
            "spec.maxConcurrency",
        ] {
            assert!(joined.contains(want), "missing {want} in {joined}");
        }
    }

    #[test]
    fn end_before_start_is_an_error() {
        let s = spec(serde_json::json!({"trigger": {"periodicSchedule": {"intervalSecond": 5,
            "startTime": "2026-02-01T00:00:00Z", "endTime": "2026-01-01T00:00:00Z"}}, "workflow": wf()}));
        assert!(
            validate(&s, "UTC")
                .unwrap_err()
                .to_string()
                .contains("before startTime")
        );
    }

    #[test]
    fn never_firing_cron_is_an_error_and_five_fields_warn() {
        let s = spec(serde_json::json!({"trigger": {"cronSchedule": {"cron": "0 0 0 30 2 *"}}, "workflow": wf()}));
        assert!(validate(&s, "UTC").unwrap_err().to_string().contains("never fires"));
        let s = spec(serde_json::json!({"trigger": {"cronSchedule": {"cron": "0 0 * * *"}}, "workflow": wf()}));
        assert_eq!(validate(&s, "UTC").unwrap().warnings.len(), 1);
    }

    #[test]
    fn both_triggers_or_both_sources_are_errors() {
        let s = spec(
            serde_json::json!({"trigger": {"cronSchedule": {"cron": "@daily"}, "periodicSchedule": {"intervalSecond": 5}},
            "workflow": wf(), "runTemplate": {"apiVersion": "batch/v1", "kind": "Job"}}),
        );
        let e = validate(&s, "UTC").unwrap_err().to_string();
        assert!(
            e.contains("exactly one of cronSchedule") && e.contains("exactly one of workflow"),
            "{e}"
        );
    }

    #[test]
    fn service_account_needs_a_known_kind() {
        let s =
            spec(serde_json::json!({"serviceAccount": "sa", "runTemplate": {"apiVersion": "v1", "kind": "ConfigMap"}}));
        assert!(
            validate(&s, "UTC")
                .unwrap_err()
                .to_string()
                .contains("spec.serviceAccount")
        );
        let s =
            spec(serde_json::json!({"serviceAccount": "sa", "runTemplate": {"apiVersion": "batch/v1", "kind": "Job"}}));
        assert!(validate(&s, "UTC").is_ok());
    }

    #[test]
    fn pipeline_id_without_workflow_is_explained() {
        let s = spec(serde_json::json!({"pipelineId": "p1", "workflow": {"parameters": []}}));
        assert!(validate(&s, "UTC").unwrap_err().to_string().contains("need KFP"));
    }
}
