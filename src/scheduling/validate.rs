//! Pure validation of a `ScheduledWorkflow` spec into what the reconciler needs. Every problem
//! is reported with its field path; nothing is silently ignored. Values KFP's controller
//! clamps are clamped the same way, with a warning (docs/kfp-compatibility.md), so an object
//! KFP ran keeps running.

use jiff::{Timestamp, tz::TimeZone};

use crate::{
    model::{
        compact::CompactJson,
        crd::{ConcurrencyPolicy, CronSchedule, Parameter, PeriodicSchedule, RunTemplate, ScheduledWorkflowSpec},
        manifest,
        runkind::{self, RunKind},
    },
    scheduling::{
        cron,
        schedule::{Cadence, Schedule},
    },
};

/// KFP's bounds (`util/scheduled_workflow.go`: `maxConcurrency()`, `maxHistory()`).
pub const MAX_CONCURRENCY: (i64, i64) = (1, 10);
pub const MAX_HISTORY: (i64, i64) = (0, 100);
const DEFAULT_MAX_CONCURRENCY: i64 = 1;
const DEFAULT_MAX_HISTORY: i64 = 10;
/// spec.failurePolicy.suspendAfterConsecutiveFailures' bound (our extension).
pub const MAX_SUSPEND_AFTER: i64 = 100;
/// The longest period accepted (100 years); beyond it no tick is representable anyway.
pub const MAX_INTERVAL_SECONDS: i64 = 100 * 365 * 24 * 3600;

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

/// KFP's switches that stop v1 pipelines (`BLOCK_V1_PIPELINES`, `V1_ALLOWED_NAMESPACES`;
/// KFP's `common/util/v1_support.go` `IsV1PipelinesBlocked`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct V1Policy {
    pub blocked: bool,
    /// Namespaces still allowed to run v1 pipelines when `blocked` (lowercase); empty: none.
    pub allowed_namespaces: Vec<String>,
}

impl V1Policy {
    pub fn new(blocked: bool, allowed: &str) -> Self {
        V1Policy {
            blocked,
            allowed_namespaces: allowed
                .split(',')
                .map(|n| n.trim().to_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    fn blocks(&self, namespace: &str) -> bool {
        self.blocked && !self.allowed_namespaces.contains(&namespace.trim().to_lowercase())
    }

    /// An error when `source` is a v1 pipeline and `namespace` may not run one (KFP's
    /// controller's `shouldEnforceV1Block`: a workflow is v2 when it carries KFP's markers).
    pub fn check(&self, namespace: &str, source: &RunSource) -> Result<(), String> {
        let RunSource::Workflow { spec, metadata, .. } = source else {
            return Ok(()); // not a KFP pipeline
        };
        let marked = |v: Option<&serde_json::Value>, key: &str| {
            ["labels", "annotations"].iter().any(|m| {
                v.and_then(|v| v.get(m))
                    .and_then(|m| m.get(key))
                    .and_then(|v| v.as_str())
                    == Some("true")
            })
        };
        let v2 = marked(metadata.as_ref(), "pipelines.kubeflow.org/v2_pipeline")
            || marked(spec.get("podMetadata"), "pipelines.kubeflow.org/v2_component");
        if v2 || !self.blocks(namespace) {
            return Ok(());
        }
        Err(format!(
            "namespace {namespace} is not allowed to run v1 pipelines (BLOCK_V1_PIPELINES); please migrate to KFP v2 pipelines"
        ))
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
    /// spec.failurePolicy.suspendAfterConsecutiveFailures (docs/failure-policy.md).
    pub suspend_after: Option<usize>,
    /// Things that work but probably surprise (a 5-field cron read seconds-first, a clamp).
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

/// Collects problems and warnings, each with its field path.
#[derive(Default)]
struct Findings {
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Findings {
    fn error(&mut self, field: &str, reason: impl std::fmt::Display) {
        self.errors.push(format!("{field}: {reason}"));
    }
    fn warn(&mut self, field: &str, reason: impl std::fmt::Display) {
        self.warnings.push(format!("{field}: {reason}"));
    }
}

/// Validates a spec. `default_tz` is the operator's `--default-time-zone`.
pub fn validate(spec: &ScheduledWorkflowSpec, default_tz: &str) -> Result<Validated, Invalid> {
    let mut found = Findings::default();
    let (tz_name, time_zone) = time_zone(spec, default_tz, &mut found);
    let schedule = trigger(spec, time_zone, &mut found);
    let source = source(spec, &mut found);
    let max_concurrency = clamped(
        "spec.maxConcurrency",
        spec.max_concurrency,
        DEFAULT_MAX_CONCURRENCY,
        MAX_CONCURRENCY,
        &mut found,
    );
    let max_history = clamped(
        "spec.maxHistory",
        spec.max_history,
        DEFAULT_MAX_HISTORY,
        MAX_HISTORY,
        &mut found,
    );
    let suspend_after = failure_policy(spec, &mut found);
    match (schedule, source) {
        (Some(schedule), Some(source)) if found.errors.is_empty() => Ok(Validated {
            schedule,
            time_zone: tz_name,
            source,
            max_concurrency: usize::try_from(max_concurrency).unwrap_or(1),
            no_catchup: spec.no_catchup.unwrap_or(false),
            policy: spec.concurrency_policy.unwrap_or_default(),
            max_history,
            suspend_after,
            warnings: found.warnings,
        }),
        _ => Err(Invalid(found.errors)),
    }
}

/// A zone by IANA name; `Local` and the empty name are the machine's zone, as KFP reads
/// `CRON_SCHEDULE_TIMEZONE` (`util/const.go` `GetLocation`).
pub fn zone_by_name(name: &str) -> Result<TimeZone, jiff::Error> {
    match name {
        "" | "Local" => Ok(TimeZone::system()),
        _ => TimeZone::get(name),
    }
}

fn time_zone(spec: &ScheduledWorkflowSpec, default_tz: &str, found: &mut Findings) -> (String, TimeZone) {
    let name = spec.time_zone.clone().unwrap_or_else(|| default_tz.to_string());
    match zone_by_name(&name) {
        Ok(tz) => (name, tz),
        Err(_) => {
            found.error("spec.timeZone", format!("unknown IANA time zone {name:?}"));
            (name, TimeZone::UTC)
        }
    }
}

/// Our extension, so an out-of-range value is refused rather than clamped.
fn failure_policy(spec: &ScheduledWorkflowSpec, found: &mut Findings) -> Option<usize> {
    let n = spec.failure_policy.as_ref()?.suspend_after_consecutive_failures?;
    if !(1..=MAX_SUSPEND_AFTER).contains(&n) {
        found.error(
            "spec.failurePolicy.suspendAfterConsecutiveFailures",
            format!("{n} is outside 1..{MAX_SUSPEND_AFTER}"),
        );
        return None;
    }
    usize::try_from(n).ok()
}

/// KFP clamps out-of-range values when it reads them; so do we, and say so.
fn clamped(field: &str, value: Option<i64>, default: i64, (min, max): (i64, i64), found: &mut Findings) -> i64 {
    let v = value.unwrap_or(default);
    let c = v.clamp(min, max);
    if c != v {
        found.warn(
            field,
            format!("{v} is outside {min}..{max}; read as {c}, as KFP's controller does"),
        );
    }
    c
}

fn trigger(spec: &ScheduledWorkflowSpec, time_zone: TimeZone, found: &mut Findings) -> Option<Schedule> {
    let schedule = match (&spec.trigger.cron_schedule, &spec.trigger.periodic_schedule) {
        (Some(_), Some(_)) => {
            found.error("spec.trigger", "set exactly one of cronSchedule or periodicSchedule");
            return None;
        }
        (Some(c), None) => cron_trigger(c, time_zone, found)?,
        (None, Some(p)) => periodic_trigger(p, time_zone, found)?,
        (None, None) => Schedule {
            cadence: Cadence::Once,
            start: None,
            end: None,
            time_zone,
        },
    };
    window(&schedule, found);
    Some(schedule)
}

fn ts(t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

fn cron_trigger(c: &CronSchedule, time_zone: TimeZone, found: &mut Findings) -> Option<Schedule> {
    const FIELD: &str = "spec.trigger.cronSchedule.cron";
    let expr = match cron::parse(&c.cron) {
        Ok(expr) => expr,
        Err(e) => {
            found.error(
                FIELD,
                format!("{:?} is not a valid KFP (robfig/cron v1) expression: {e}", c.cron),
            );
            return None;
        }
    };
    if let Some(w) = expr.warning() {
        found.warn(FIELD, format!("{:?}: {w}", c.cron));
    }
    if let cron::CronExpr::Calendar(cal) = &expr
        && cal.never_fires
    {
        found.error(
            FIELD,
            format!("{:?} matches no date (e.g. Feb 30), so it never fires", c.cron),
        );
    }
    Some(Schedule::cron(expr, ts(&c.start_time), ts(&c.end_time), time_zone))
}

fn periodic_trigger(p: &PeriodicSchedule, time_zone: TimeZone, found: &mut Findings) -> Option<Schedule> {
    const FIELD: &str = "spec.trigger.periodicSchedule.intervalSecond";
    if p.interval_second > MAX_INTERVAL_SECONDS {
        found.error(
            FIELD,
            format!("{} is more than {MAX_INTERVAL_SECONDS} (100 years)", p.interval_second),
        );
        return None;
    }
    if p.interval_second < 1 {
        // KFP's `getInterval()` reads anything below 1 as 1.
        found.warn(
            FIELD,
            format!("{} is below 1; read as 1, as KFP's controller does", p.interval_second),
        );
    }
    Some(Schedule {
        cadence: Cadence::Every {
            seconds: p.interval_second.max(1),
        },
        start: ts(&p.start_time),
        end: ts(&p.end_time),
        time_zone,
    })
}

fn window(s: &Schedule, found: &mut Findings) {
    if let (Some(start), Some(end)) = (s.start, s.end)
        && end < start
    {
        found.error("spec.trigger", format!("endTime {end} is before startTime {start}"));
    }
    if s.start.is_some_and(|t| t < Timestamp::UNIX_EPOCH) {
        found.warn(
            "spec.trigger.startTime",
            "is before 1970-01-01; ticks before then are not run (a run's workflowEpoch label holds its tick in Unix seconds, which cannot be negative)",
        );
    }
}

fn source(spec: &ScheduledWorkflowSpec, found: &mut Findings) -> Option<RunSource> {
    let source = match (&spec.workflow, &spec.run_template) {
        (Some(_), Some(_)) => {
            found.error("spec", "set exactly one of workflow or runTemplate");
            None
        }
        (Some(w), None) => workflow_source(w, found),
        (None, Some(t)) => template_source(t, found),
        (None, None) => {
            found.error(
                "spec",
                "nothing to run; set workflow.spec (an Argo WorkflowSpec) or runTemplate",
            );
            None
        }
    };
    if let (Some(source), Some(_)) = (&source, &spec.service_account)
        && source.kind().service_account_path().is_none()
    {
        found.error(
            "spec.serviceAccount",
            format!(
                "cannot be applied to {} (known kinds: {}); set it inside runTemplate.spec",
                source.kind(),
                runkind::known_kind_names()
            ),
        );
    }
    source
}

fn workflow_source(w: &crate::model::crd::WorkflowResource, found: &mut Findings) -> Option<RunSource> {
    const FIELD: &str = "spec.workflow.spec";
    let Some(value) = &w.spec else {
        found.error(
            FIELD,
            "empty; runs that KFP's API server would compile from a pipeline (pipelineId without an embedded workflow) need KFP and are not supported here",
        );
        return None;
    };
    match workflow_spec(value) {
        Ok((spec, metadata)) => Some(RunSource::Workflow {
            spec,
            metadata,
            parameters: w.parameters.clone(),
        }),
        Err(e) => {
            found.error(FIELD, e);
            None
        }
    }
}

/// Parses a workflow spec given as an object or as a JSON/YAML string (KFP writes a string
/// holding a whole Workflow; older objects hold a bare `WorkflowSpec`).
fn workflow_spec(value: &CompactJson) -> Result<(serde_json::Value, Option<serde_json::Value>), String> {
    let parsed = match value.as_str() {
        Some(s) => manifest::parse(s).map_err(|e| format!("the string {e}"))?,
        None => value.value(),
    };
    let serde_json::Value::Object(map) = &parsed else {
        return Err("must be an Argo WorkflowSpec object (or a JSON string of one)".into());
    };
    // A whole Workflow (apiVersion/kind/spec) rather than a bare spec.
    if let Some(inner) = map.get("spec").filter(|s| s.is_object())
        && !map.contains_key("templates")
        && !map.contains_key("entrypoint")
    {
        return Ok((inner.clone(), map.get("metadata").cloned()));
    }
    Ok((parsed, None))
}

fn template_source(t: &RunTemplate, found: &mut Findings) -> Option<RunSource> {
    if t.api_version.trim().is_empty() || t.kind.trim().is_empty() {
        found.error("spec.runTemplate", "apiVersion and kind are required");
        None
    } else if t.kind == "ScheduledWorkflow" {
        found.error(
            "spec.runTemplate.kind",
            "a ScheduledWorkflow cannot create ScheduledWorkflows",
        );
        None
    } else {
        Some(RunSource::Template(t.clone()))
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
    fn failure_policy_out_of_range_is_refused_with_its_field() {
        let with = |n: i64| {
            spec(
                serde_json::json!({"trigger": {"periodicSchedule": {"intervalSecond": 60}}, "workflow": wf(),
                "failurePolicy": {"suspendAfterConsecutiveFailures": n}}),
            )
        };
        assert_eq!(validate(&with(3), "UTC").unwrap().suspend_after, Some(3));
        assert_eq!(validate(&with(1), "UTC").unwrap().suspend_after, Some(1));
        assert_eq!(
            validate(&with(100), "UTC").unwrap().suspend_after,
            Some(100),
            "100 is in range"
        );
        for bad in [0, -1, 101] {
            let e = validate(&with(bad), "UTC").unwrap_err().to_string();
            assert!(e.contains("spec.failurePolicy.suspendAfterConsecutiveFailures"), "{e}");
        }
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
            "trigger": {"cronSchedule": {"cron": "0 0 12 * * 7", "startTime": "2026-02-01T00:00:00Z", "endTime": "2026-01-01T00:00:00Z"}},
            "workflow": {"spec": "not json {"},
        }));
        let Invalid(errors) = validate(&s, "UTC").unwrap_err();
        let joined = errors.join("\n");
        for want in [
            "spec.timeZone: unknown IANA time zone",
            "spec.trigger.cronSchedule.cron: \"0 0 12 * * 7\" is not a valid KFP (robfig/cron v1) expression: End of range (7) above maximum (6)",
            "spec.workflow.spec: must be an Argo WorkflowSpec object",
        ] {
            assert!(joined.contains(want), "missing {want} in {joined}");
        }
        // The cron error stops the window check (no schedule to check it against).
        assert_eq!(errors.len(), 3, "{joined}");
    }

    #[test]
    fn end_before_start_is_an_error() {
        let s = spec(serde_json::json!({"trigger": {"periodicSchedule": {"intervalSecond": 5,
            "startTime": "2026-02-01T00:00:00Z", "endTime": "2026-01-01T00:00:00Z"}}, "workflow": wf()}));
        assert_eq!(
            validate(&s, "UTC").unwrap_err().0,
            vec!["spec.trigger: endTime 2026-01-01T00:00:00Z is before startTime 2026-02-01T00:00:00Z"]
        );
    }

    #[test]
    fn never_firing_cron_is_an_error_and_five_fields_warn() {
        let s = spec(serde_json::json!({"trigger": {"cronSchedule": {"cron": "0 0 0 30 2 *"}}, "workflow": wf()}));
        assert!(validate(&s, "UTC").unwrap_err().to_string().contains("never fires"));
        let s = spec(serde_json::json!({"trigger": {"cronSchedule": {"cron": "0 0 * * *"}}, "workflow": wf()}));
        let warnings = validate(&s, "UTC").unwrap().warnings;
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("spec.trigger.cronSchedule.cron: \"0 0 * * *\": 5-field"));
    }

    #[test]
    fn kfp_values_out_of_range_are_clamped_with_a_warning() {
        let s = spec(serde_json::json!({"maxConcurrency": 20, "maxHistory": -3,
            "trigger": {"periodicSchedule": {"intervalSecond": 0}}, "workflow": wf()}));
        let v = validate(&s, "UTC").unwrap();
        assert_eq!((v.max_concurrency, v.max_history), (10, 0));
        assert!(matches!(v.schedule.cadence, Cadence::Every { seconds: 1 }));
        assert_eq!(
            v.warnings,
            vec![
                "spec.trigger.periodicSchedule.intervalSecond: 0 is below 1; read as 1, as KFP's controller does",
                "spec.maxConcurrency: 20 is outside 1..10; read as 10, as KFP's controller does",
                "spec.maxHistory: -3 is outside 0..100; read as 0, as KFP's controller does",
            ]
        );
        let s = spec(serde_json::json!({"maxConcurrency": 0, "workflow": wf()}));
        assert_eq!(validate(&s, "UTC").unwrap().max_concurrency, 1);
    }

    /// KFP's `CRON_SCHEDULE_TIMEZONE` may be `Local` or empty: the machine's zone.
    #[test]
    fn local_and_the_empty_zone_are_the_machines() {
        for name in ["", "Local"] {
            assert_eq!(zone_by_name(name).ok(), Some(TimeZone::system()), "{name:?}");
        }
        assert!(zone_by_name("Mars/Olympus").is_err());
    }

    /// The edges of the window and interval rules: each value right at a bound is fine.
    #[test]
    fn values_at_the_bounds_are_accepted_without_a_warning() {
        let periodic = |p: serde_json::Value| {
            let s = spec(serde_json::json!({"trigger": {"periodicSchedule": p}, "workflow": wf()}));
            validate(&s, "UTC").map(|v| v.warnings)
        };
        let none: Vec<String> = Vec::new();
        assert_eq!(
            periodic(serde_json::json!({"intervalSecond": 1})).ok(),
            Some(none.clone())
        );
        let same = "2026-01-01T00:00:00Z";
        let at_once = serde_json::json!({"intervalSecond": 5, "startTime": same, "endTime": same});
        assert_eq!(periodic(at_once).ok(), Some(none.clone()), "endTime == startTime");
        let epoch = serde_json::json!({"intervalSecond": 5, "startTime": "1970-01-01T00:00:00Z"});
        assert_eq!(periodic(epoch).ok(), Some(none), "startTime at 1970-01-01");
    }

    /// A run template needs both apiVersion and kind.
    #[test]
    fn a_run_template_without_api_version_or_kind_is_refused() {
        for (api_version, kind) in [("", "Job"), ("batch/v1", ""), (" ", " ")] {
            let s = spec(serde_json::json!({"runTemplate": {"apiVersion": api_version, "kind": kind, "spec": {}}}));
            let err = validate(&s, "UTC").unwrap_err().to_string();
            assert!(
                err.contains("spec.runTemplate: apiVersion and kind are required"),
                "{err}"
            );
        }
    }

    /// The bound is 100 years of seconds, exactly.
    #[test]
    fn an_interval_of_100_years_is_the_longest_accepted() {
        let with = |seconds: i64| {
            spec(serde_json::json!({"trigger": {"periodicSchedule": {"intervalSecond": seconds}}, "workflow": wf()}))
        };
        assert!(validate(&with(3_153_600_000), "UTC").is_ok());
        assert!(validate(&with(3_153_600_001), "UTC").is_err());
    }

    #[test]
    fn huge_interval_is_an_error() {
        let s =
            spec(serde_json::json!({"trigger": {"periodicSchedule": {"intervalSecond": i64::MAX}}, "workflow": wf()}));
        assert!(
            validate(&s, "UTC")
                .unwrap_err()
                .to_string()
                .starts_with("spec.trigger.periodicSchedule.intervalSecond: 9223372036854775807 is more than")
        );
    }

    #[test]
    fn both_triggers_or_both_sources_are_errors() {
        let s = spec(
            serde_json::json!({"trigger": {"cronSchedule": {"cron": "@daily"}, "periodicSchedule": {"intervalSecond": 5}},
            "workflow": wf(), "runTemplate": {"apiVersion": "batch/v1", "kind": "Job"}}),
        );
        let e = validate(&s, "UTC").unwrap_err().to_string();
        assert!(
            e.contains("spec.trigger: set exactly one of cronSchedule")
                && e.contains("spec: set exactly one of workflow"),
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
                .starts_with("spec.serviceAccount: cannot be applied to v1/ConfigMap")
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

    #[test]
    fn v1_pipelines_are_refused_where_kfp_refuses_them() {
        let v1 = validate(&spec(serde_json::json!({"workflow": wf()})), "UTC")
            .unwrap()
            .source;
        let v2 = validate(
            &spec(
                serde_json::json!({"workflow": {"spec": {"entrypoint": "e", "templates": [],
                "podMetadata": {"labels": {"pipelines.kubeflow.org/v2_component": "true"}}}}}),
            ),
            "UTC",
        )
        .unwrap()
        .source;
        let job = validate(
            &spec(serde_json::json!({"runTemplate": {"apiVersion": "batch/v1", "kind": "Job"}})),
            "UTC",
        )
        .unwrap()
        .source;
        let off = V1Policy::new(false, "");
        let all = V1Policy::new(true, "");
        let some = V1Policy::new(true, " Team-A ,,team-b");
        assert!(off.check("x", &v1).is_ok());
        assert!(
            all.check("x", &v1)
                .unwrap_err()
                .contains("namespace x is not allowed to run v1 pipelines")
        );
        assert!(all.check("x", &v2).is_ok(), "v2 pipelines run");
        assert!(all.check("x", &job).is_ok(), "other kinds are not pipelines");
        assert!(some.check("team-a", &v1).is_ok());
        assert!(some.check("team-c", &v1).is_err());
    }

    #[test]
    fn start_before_1970_warns() {
        let s = spec(
            serde_json::json!({"trigger": {"cronSchedule": {"cron": "@daily", "startTime": "1960-01-01T00:00:00Z"}}, "workflow": wf()}),
        );
        let v = validate(&s, "UTC").unwrap();
        assert!(v.warnings[0].starts_with("spec.trigger.startTime: is before 1970-01-01"));
    }
}
