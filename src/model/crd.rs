//! The `ScheduledWorkflow` custom resource (`kubeflow.org/v1beta1`).
//!
//! Field names and meanings follow KFP's `backend/src/crd/pkg/apis/scheduledworkflow/v1beta1/types.go`
//! (docs/kfp-compatibility.md, "The resource"), so objects written by KFP keep working. Fields marked
//! *extension* are ours; KFP ignores them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::model::compact::CompactJson;

/// A schedule that creates runs (Argo Workflows, or any object given as `runTemplate`).
// kube's `printcolumn(...)` repeats `type_`/`json_path` per column by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kubeflow.org",
    version = "v1beta1",
    kind = "ScheduledWorkflow",
    plural = "scheduledworkflows",
    singular = "scheduledworkflow",
    shortname = "swf",
    namespaced,
    status = "ScheduledWorkflowStatus",
    printcolumn(name = "Enabled", type_ = "boolean", json_path = ".spec.enabled"),
    printcolumn(name = "Schedule", type_ = "string", json_path = ".status.schedule"),
    printcolumn(name = "Last", type_ = "date", json_path = ".status.trigger.lastTriggeredTime"),
    printcolumn(name = "Next", type_ = "string", json_path = ".status.trigger.nextTriggeredTime"),
    printcolumn(name = "Active", type_ = "integer", json_path = ".status.activeRuns"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.conditions[-1:].type"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledWorkflowSpec {
    /// Free text (KFP samples carry it; KFP's Go type does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When false no run is created. Ticks that fall while disabled are not run on re-enable.
    /// Not set means false, as in KFP (unlike CronJob's `suspend`): such a schedule does not
    /// run; the admission webhook warns and status says so.
    #[serde(default)]
    pub enabled: bool,
    /// How many runs may be active at once: 1..10, default 1. Values outside are read as the
    /// nearest bound with a warning, as KFP's controller clamps them (so the schema accepts them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<i64>,
    /// When true only the latest due tick runs after a pause; otherwise every missed tick runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_catchup: Option<bool>,
    /// How many finished runs are listed in status: 0..100, default 10 (clamped like
    /// maxConcurrency). Deletes nothing; see successfulRunsHistoryLimit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_history: Option<i64>,
    /// When to run. No trigger means one run, right after creation (KFP's one-off).
    #[serde(default)]
    pub trigger: Trigger,
    /// An Argo Workflow to run (KFP's form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowResource>,
    /// Service account the runs use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// KFP: the pipeline the runs come from (written by KFP's API server; kept as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
    /// KFP: the pipeline's name, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_name: Option<String>,
    /// KFP: the pipeline version the runs come from, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_version_id: Option<String>,
    /// KFP: the experiment the runs belong to, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<String>,
    /// KFP plugin input, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object_map")]
    pub plugins_input: Option<BTreeMap<String, serde_json::Value>>,

    /// Extension: IANA time zone the cron fields are read in (default: the operator's
    /// `--default-time-zone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Extension: any object to create per tick instead of an Argo Workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_template: Option<RunTemplate>,
    /// Extension: what a due tick does while `maxConcurrency` runs are active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,
    /// Extension: keep at most this many succeeded runs (unset = keep all, as KFP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub successful_runs_history_limit: Option<i32>,
    /// Extension: keep at most this many failed runs (unset = keep all, as KFP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub failed_runs_history_limit: Option<i32>,
    /// Extension: what the schedule does when its runs keep failing (docs/failure-policy.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
}

/// Extension: stop a schedule whose runs keep failing (kubeflow/pipelines#8294).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailurePolicy {
    /// Suspend the schedule after this many finished runs in a row failed (1..100): no run is
    /// created until it is resumed with the `scheduledworkflows.kubeflow.org/resume`
    /// annotation (`kubectl swf resume NAME`). That many failed runs are kept, whatever
    /// failedRunsHistoryLimit says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_after_consecutive_failures: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// Runs at the times a cron expression names (set this or periodicSchedule, not both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_schedule: Option<CronSchedule>,
    /// Runs every intervalSecond seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periodic_schedule: Option<PeriodicSchedule>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronSchedule {
    /// No tick before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// No tick after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// robfig/cron v1 expression, seconds first (KFP's grammar).
    #[serde(default)]
    pub cron: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeriodicSchedule {
    /// No tick before this instant (the first tick is at startTime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// No tick after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// Seconds between runs; below 1 is read as 1 (KFP reads 0 as 1), at most 100 years.
    #[serde(default)]
    pub interval_second: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowResource {
    /// Overrides of the workflow's `spec.arguments.parameters`; values may hold macros.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    /// An Argo `WorkflowSpec`, as an object or as a JSON string (KFP writes a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub spec: Option<CompactJson>,
    /// KFP v2 pipeline root, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_root: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Parameter {
    /// The workflow parameter to set (KFP's API server writes KFP v2 values JSON-encoded).
    #[serde(default)]
    pub name: String,
    /// Its value; macros such as `[[ScheduledTime]]` and `[[Index]]` are replaced per run.
    #[serde(default)]
    pub value: String,
}

/// An object manifest created once per tick.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunTemplate {
    /// apiVersion of the object to create, e.g. `batch/v1`.
    pub api_version: String,
    /// kind of the object to create, e.g. `Job`.
    pub kind: String,
    /// Labels and annotations for each run (KFP's run labels are added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RunTemplateMetadata>,
    /// The object's spec, as its kind defines it; strings may hold macros.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub spec: Option<CompactJson>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RunTemplateMetadata {
    /// Labels set on every run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations set on every run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// KFP: a due tick waits for a free slot and keeps its scheduled time.
    #[default]
    Wait,
    /// A tick that is due while the limit is reached is dropped.
    Skip,
    /// The oldest active scheduled run is deleted to make room (never a run-now or backfill run).
    Replace,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledWorkflowStatus {
    /// `Ready` (True when the schedule runs as its spec says, disabled included), `Stalled`
    /// (only while it cannot: the reason and message say why), then KFP's one summary
    /// condition, last, where KFP's API server reads it (`ConditionSummary`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the schedule last fired and fires next (KFP's trigger status).
    #[serde(default)]
    pub trigger: TriggerStatus,
    /// The active runs and the most recent finished ones (at most maxHistory).
    #[serde(default)]
    pub workflow_history: WorkflowHistory,
    /// Extension: generation of the spec this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Extension: when a spec change was first observed (the JobService's `updated_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_updated_at: Option<Time>,
    /// Extension: how many runs are active (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_runs: Option<i64>,
    /// Extension: the schedule in words, with its time zone (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Extension: the backfill asked for by the `scheduledworkflows.kubeflow.org/backfill`
    /// annotation, and how far it has got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<BackfillStatus>,
    /// Extension: set while spec.failurePolicy holds the schedule suspended, and to remember
    /// the last resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension: Option<SuspensionStatus>,
}

/// KFP's summary condition (`getStatusAndMessage`): every status carries exactly one, last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Summary {
    Enabled,
    Disabled,
    /// A one-off schedule whose run has not finished.
    Running,
    /// A one-off schedule whose run has finished.
    Succeeded,
    /// The spec cannot run, or a run cannot be created: the reason says which.
    Error,
}

impl Summary {
    pub const ALL: [Summary; 5] = [
        Self::Enabled,
        Self::Disabled,
        Self::Running,
        Self::Succeeded,
        Self::Error,
    ];

    /// The condition's type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Disabled => "Disabled",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Error => "Error",
        }
    }

    /// KFP's message (an `Error` carries its problem's own).
    pub fn kfp_message(self) -> &'static str {
        match self {
            Self::Enabled => "The schedule is enabled.",
            Self::Disabled => "The schedule is disabled.",
            Self::Running => "The one-off schedule is running.",
            Self::Succeeded => "The one-off schedule has succeeded.",
            Self::Error => "",
        }
    }

    /// The summary a condition is, if it is one.
    pub fn of(condition: &Condition) -> Option<Summary> {
        Self::ALL.into_iter().find(|s| s.as_str() == condition.type_)
    }
}

/// Where a backfill stands (`status.backfill.phase`). Stored as its text, so an object with a
/// phase this version does not know still decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackfillPhase {
    Running,
    Finished,
    /// The annotation was removed.
    Cancelled,
    Failed,
    Invalid,
}

impl BackfillPhase {
    pub const ALL: [BackfillPhase; 5] = [
        Self::Running,
        Self::Finished,
        Self::Cancelled,
        Self::Failed,
        Self::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "Running",
            Self::Finished => "Finished",
            Self::Cancelled => "Cancelled",
            Self::Failed => "Failed",
            Self::Invalid => "Invalid",
        }
    }

    pub fn parse(text: &str) -> Option<BackfillPhase> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

impl From<BackfillPhase> for String {
    fn from(phase: BackfillPhase) -> String {
        phase.as_str().to_string()
    }
}

/// Progress of a backfill (docs/backfill.md).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackfillStatus {
    /// The annotation value this status is about (`<from>/<to>`, closed-open).
    #[serde(default)]
    pub range: String,
    /// Running, Finished, Cancelled (the annotation was removed), Failed or Invalid.
    #[serde(default)]
    pub phase: String,
    /// Why it failed or is invalid, or what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The schedule's ticks in the range.
    #[serde(default)]
    pub total: i64,
    /// Ticks of the range that have a run (created by the backfill or before it).
    #[serde(default)]
    pub done: i64,
    /// Every tick up to this one has a run; the backfill goes on after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<Time>,
    /// The next tick to run (waiting for a slot, or for its time to come).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_tick: Option<Time>,
}

impl BackfillStatus {
    /// The phase, if it is one this version knows.
    pub fn phase(&self) -> Option<BackfillPhase> {
        BackfillPhase::parse(&self.phase)
    }
}

/// spec.failurePolicy's state (docs/failure-policy.md).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuspensionStatus {
    /// When the schedule was suspended; absent when it is not suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<Time>,
    /// The failed runs that suspended it, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_runs: Vec<String>,
    /// The last `resume` annotation value served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_resume: Option<String>,
    /// When it was served (the operator's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<Time>,
    /// The latest finish time among the runs when it was served, on the runs' own clock: only
    /// runs that finish after it count towards a new suspension (so a cluster clock ahead of
    /// the operator's cannot undo a resume at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_after: Option<Time>,
    /// Runs that had finished at exactly `resumedAfter` when it was served: they do not count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed_after_runs: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// KFP's summary (Enabled, Disabled, Running, Succeeded or Error; always the last
    /// condition, where KFP reads it), or kstatus' Ready and Stalled in front of it.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// Always "True" for KFP's summary condition; "True" or "False" for Ready.
    #[serde(default)]
    pub status: String,
    /// A CamelCase word saying why (for an Error: which check failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What a person needs to know, with the field path for a spec problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Extension: changes only when `type` (or, for Ready and Stalled, `status`) changes (no
    /// heartbeat writes, KFP #8757).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Extension, on Ready and Stalled: the generation of the spec they describe (kstatus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerStatus {
    /// Scheduled (not wall-clock) time of the last run created by the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_triggered_time: Option<Time>,
    /// Next scheduled time; absent when the schedule has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_triggered_time: Option<Time>,
    /// Index of the last created run; the first run has index 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_workflow_index: Option<i64>,
    /// Extension: ticks at or before this instant are never run by the schedule: set on
    /// re-enable (so a pause is not backfilled; KFP #8344), when `concurrencyPolicy: Skip` drops
    /// a tick, and when the schedule passes a tick that already has a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_through: Option<Time>,
    /// Extension: set while the schedule is disabled or suspended (since when). On re-enable the
    /// ticks that fell meanwhile are skipped; kept through errors, so an `Error` written while
    /// disabled cannot turn the re-enable into a catch-up of the whole pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<Time>,
    /// Extension: the last `run-now` annotation value that was served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_now: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowHistory {
    /// Runs that have not finished, newest scheduled first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<WorkflowStatus>,
    /// Finished runs, newest scheduled first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completed: Vec<WorkflowStatus>,
}

/// One run as KFP lists it in `status.workflowHistory`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStatus {
    /// The run's name.
    #[serde(default)]
    pub name: String,
    /// The run's namespace.
    #[serde(default)]
    pub namespace: String,
    /// KFP: the run's API path (kept when KFP wrote it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
    /// The run's uid.
    #[serde(default)]
    pub uid: String,
    /// Pending, Running, Succeeded, Failed (Argo's own phase for Workflows).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// Why it ended, when its kind says.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the run object was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// When it started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// The tick it was created for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<Time>,
    /// Its workflowIndex (1 for the schedule's first run).
    #[serde(default)]
    pub index: i64,
    /// Extension: `apiVersion`/`kind` of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Extension: the run-now request the run served. With `backfill`, it tells a new owner
    /// after a handover what a run is before its own watch shows the run: a run-now run holds
    /// a slot but is no tick, a backfill's run holds the backfill's slot, not the schedule's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_now: Option<String>,
    /// Extension: the backfill request (its range) the run was created for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<String>,
}

fn any_value(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

fn any_object_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "x-kubernetes-preserve-unknown-fields": true }
    })
}

impl ScheduledWorkflow {
    /// The CRD as installed: the derived one, minus empty-string defaults, which
    /// kube-apiserver 1.20 reads as `null` and rejects (serde's `default` adds nothing there).
    // Serialising our own static types to JSON cannot fail (tested by `make check-crds`).
    #[allow(clippy::expect_used)]
    pub fn crd_manifest() -> serde_json::Value {
        use kube::CustomResourceExt;
        let mut crd = serde_json::to_value(Self::crd()).expect("CRD serialises");
        strip_empty_string_defaults(&mut crd);
        strip_enabled_default(&mut crd);
        crd
    }

    /// The CRD as YAML, as committed in `crds/`.
    #[allow(clippy::expect_used)]
    pub fn crd_yaml() -> String {
        serde_yaml::to_string(&Self::crd_manifest()).expect("CRD serialises")
    }
}

/// No schema default for `spec.enabled`: the API server would fill it in before admission,
/// and a schedule left without `enabled` (one that never runs) could not be warned about.
fn strip_enabled_default(crd: &mut serde_json::Value) {
    let versions = crd.pointer_mut("/spec/versions").and_then(|v| v.as_array_mut());
    for version in versions.into_iter().flatten() {
        let enabled = version
            .pointer_mut("/schema/openAPIV3Schema/properties/spec/properties/enabled")
            .and_then(|e| e.as_object_mut());
        if let Some(enabled) = enabled {
            enabled.remove("default");
        }
    }
}

fn strip_empty_string_defaults(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("default").is_some_and(|d| d.as_str() == Some("")) {
                map.remove("default");
            }
            map.values_mut().for_each(strip_empty_string_defaults);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_empty_string_defaults),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every property path under `schema` that has no description.
    fn undescribed(schema: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
            if let Some(items) = schema.get("items") {
                undescribed(items, &format!("{path}[]"), out);
            }
            return;
        };
        for (name, prop) in props {
            let here = format!("{path}.{name}");
            let text = prop.get("description").and_then(|d| d.as_str()).unwrap_or_default();
            if text.trim().is_empty() {
                out.push(here.clone());
            }
            undescribed(prop, &here, out);
        }
    }

    #[test]
    fn kubectl_explain_describes_every_field() {
        let crd = ScheduledWorkflow::crd_manifest();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut missing = Vec::new();
        undescribed(&schema["properties"]["spec"], "spec", &mut missing);
        undescribed(&schema["properties"]["status"], "status", &mut missing);
        assert!(missing.is_empty(), "fields without a description: {missing:#?}");
    }
}
