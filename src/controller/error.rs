//! Why a reconcile pass failed: one variant per failing call, each with a stable reason used
//! as the Event reason and as the `reason` label of `swf_reconcile_errors_total`.

use crate::{model::runkind::RunKind, serve::kube_error::said};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the ScheduledWorkflow has no metadata.{0}")]
    MissingMetadata(&'static str),
    #[error("cannot look up run kind {kind}: {}", said(.source))]
    ResolveKind {
        kind: RunKind,
        #[source]
        source: kube::Error,
    },
    #[error("runs of {kind} are not in the operator's cache yet: {detail}")]
    RunsNotCached { kind: RunKind, detail: String },
    #[error("cannot create run {name}: {}", said(.source))]
    CreateRun {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read run {name} after its create conflicted: {}", said(.source))]
    ReadRun {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("run {name} is being deleted; its tick waits until it is gone")]
    RunBeingDeleted { name: String },
    #[error("cannot delete run {name}: {}", said(.source))]
    DeleteRun {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot write status: {}", said(.source))]
    WriteStatus {
        #[source]
        source: kube::Error,
    },
    #[error("cannot read the ScheduledWorkflow afresh: {}", said(.source))]
    ReadSchedule {
        #[source]
        source: kube::Error,
    },
    #[error("the ScheduledWorkflow changed while the pass planned (status write refused: 409 Conflict)")]
    StatusConflict,
    #[error("not the leader: runs are created only by the replica holding the lease of the schedule's shard")]
    NotLeader,
    #[error("the pass stopped unexpectedly: {0}")]
    PassPanicked(String),
}

impl Error {
    /// A stable, CamelCase reason (Event reason, metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::MissingMetadata(_) => "MissingMetadata",
            Error::ResolveKind { .. } => "RunKindLookupFailed",
            Error::RunsNotCached { .. } => "RunsNotCached",
            Error::CreateRun { .. } => "RunCreateFailed",
            Error::ReadRun { .. } => "RunReadFailed",
            Error::RunBeingDeleted { .. } => "RunBeingDeleted",
            Error::DeleteRun { .. } => "RunDeleteFailed",
            Error::WriteStatus { .. } => "StatusWriteFailed",
            Error::ReadSchedule { .. } => "ScheduleReadFailed",
            Error::StatusConflict => "StatusConflict",
            Error::NotLeader => "NotLeader",
            Error::PassPanicked(_) => "PassPanicked",
        }
    }

    /// The underlying API error, if any.
    pub fn api_source(&self) -> Option<&kube::Error> {
        match self {
            Error::ResolveKind { source, .. }
            | Error::CreateRun { source, .. }
            | Error::ReadRun { source, .. }
            | Error::DeleteRun { source, .. }
            | Error::WriteStatus { source }
            | Error::ReadSchedule { source } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubernetes_error_reads_as_its_message_and_code_not_rust_debug_text() {
        let status: kube::core::Status =
            serde_json::from_value(serde_json::json!({"code": 404, "message": "404 page not found"})).unwrap();
        let e = Error::ResolveKind {
            kind: RunKind::parse("argoproj.io/v1alpha1", "Workflow"),
            source: kube::Error::Api(Box::new(status)),
        };
        let text = e.to_string();
        assert!(text.ends_with(": 404 page not found (HTTP 404)"), "{text}");
        assert!(!text.contains("Status {"), "{text}");
    }
}
