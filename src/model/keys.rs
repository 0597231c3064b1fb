//! Every label and annotation key the operator reads or writes, in one place. KFP's labels are
//! those of its `backend/src/crd/controller/scheduledworkflow/util/scheduled_workflow.go`;
//! the annotations are this operator's own (docs/kfp-compatibility.md lists which is which).

/// Prefix of the annotations the operator reads; others are not kept in its caches.
pub const OWN_ANNOTATION_PREFIX: &str = "scheduledworkflows.kubeflow.org/";

// On a schedule, written by users (or the JobService).

/// Each new value asks for one immediate run (the run that serves it carries
/// `SERVED_RUN_NOW_ANNOTATION`).
pub const RUN_NOW_REQUEST_ANNOTATION: &str = "scheduledworkflows.kubeflow.org/run-now";
/// On a suspended schedule (spec.failurePolicy): each new value resumes it.
pub const RESUME_ANNOTATION: &str = "scheduledworkflows.kubeflow.org/resume";
/// The display name of a job created through the JobService API.
pub const DISPLAY_NAME_ANNOTATION: &str = "scheduledworkflows.kubeflow.org/displayName";
/// Asks for a backfill (a range, `<from>/<to>`).
pub const BACKFILL_ANNOTATION: &str = "scheduledworkflows.kubeflow.org/backfill";

// On a run, written by the operator.

/// KFP's label: the name of the schedule that created the run.
pub const LABEL_SWF_NAME: &str = "scheduledworkflows.kubeflow.org/scheduledWorkflowName";
/// KFP's label: the run's tick, in Unix seconds.
pub const LABEL_EPOCH: &str = "scheduledworkflows.kubeflow.org/workflowEpoch";
/// KFP's label: the schedule's run count when the run was created.
pub const LABEL_INDEX: &str = "scheduledworkflows.kubeflow.org/workflowIndex";
/// KFP's label: "true" on every run a schedule owns.
pub const LABEL_OWNED: &str = "scheduledworkflows.kubeflow.org/isOwnedByScheduledWorkflow";
/// KFP's label: the run's id, as KFP's persistence agent reads it.
pub const LABEL_RUN_ID: &str = "pipeline/runid";
/// The `run-now` request value the run served (the request is `RUN_NOW_REQUEST_ANNOTATION`).
pub const SERVED_RUN_NOW_ANNOTATION: &str = "scheduledworkflows.kubeflow.org/runNowRequest";
/// The backfill request the run serves (so it is told from scheduled ticks).
pub const BACKFILL_RUN_ANNOTATION: &str = "scheduledworkflows.kubeflow.org/backfillRequest";

// On a run, written by its own controller.

/// Argo sets this label when a workflow has finished.
pub const ARGO_COMPLETED_LABEL: &str = "workflows.argoproj.io/completed";
