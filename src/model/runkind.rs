//! Run kinds: what a tick creates. Everything kind-specific lives in one table here: which
//! group/version/kind, where the service account goes, how "finished" is read, and which
//! kinds are watched from start-up. Any other kind works too (see `Completion::Conditions`).

use std::fmt;

/// The kind of object each tick creates (`apiVersion` + `kind`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// How a kind says it has finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Argo: `status.phase` Succeeded / Failed / Error, or the `workflows.argoproj.io/completed`
    /// label.
    ArgoPhase,
    /// `batch/v1` Job: a `Complete` or `Failed` condition with status True.
    JobConditions,
    /// Tekton and anything else: `Succeeded` True/False, or `Complete`/`Failed` True.
    Conditions,
}

/// One row of the table of kinds the operator knows by name.
#[derive(Debug)]
pub struct KnownKind {
    pub group: &'static str,
    /// `None`: every version of the kind.
    pub version: Option<&'static str>,
    pub kind: &'static str,
    /// The version watched from start-up (when `watched_by_default`).
    pub default_version: &'static str,
    /// Where `spec.serviceAccount` goes, as a path inside the run's `spec`.
    pub service_account_path: &'static [&'static str],
    pub completion: Completion,
    /// Part of `--watch-kinds`' default.
    pub watched_by_default: bool,
}

/// The table. Order matters: the first matching row wins (Tekton v1 before other versions).
pub const KNOWN_KINDS: &[KnownKind] = &[
    KnownKind {
        group: "argoproj.io",
        version: None,
        kind: "Workflow",
        default_version: "v1alpha1",
        service_account_path: &["serviceAccountName"],
        completion: Completion::ArgoPhase,
        watched_by_default: true,
    },
    KnownKind {
        group: "batch",
        version: None,
        kind: "Job",
        default_version: "v1",
        service_account_path: &["template", "spec", "serviceAccountName"],
        completion: Completion::JobConditions,
        watched_by_default: true,
    },
    KnownKind {
        group: "tekton.dev",
        version: Some("v1"),
        kind: "PipelineRun",
        default_version: "v1",
        service_account_path: &["taskRunTemplate", "serviceAccountName"],
        completion: Completion::Conditions,
        watched_by_default: true,
    },
    KnownKind {
        group: "tekton.dev",
        version: None,
        kind: "PipelineRun",
        default_version: "v1beta1",
        service_account_path: &["serviceAccountName"],
        completion: Completion::Conditions,
        watched_by_default: false,
    },
];

impl RunKind {
    /// KFP's run kind: an Argo Workflow.
    pub fn argo_workflow() -> Self {
        RunKind::parse("argoproj.io/v1alpha1", "Workflow")
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

    /// Parses `apiVersion/Kind`, e.g. `batch/v1/Job` or `v1/ConfigMap`.
    pub fn parse_slashed(s: &str) -> Option<Self> {
        let (api_version, kind) = s.rsplit_once('/')?;
        (!api_version.is_empty() && !kind.is_empty()).then(|| RunKind::parse(api_version, kind))
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// This kind's row of `KNOWN_KINDS`, if it has one.
    pub fn known(&self) -> Option<&'static KnownKind> {
        KNOWN_KINDS
            .iter()
            .find(|k| k.group == self.group && k.kind == self.kind && k.version.is_none_or(|v| v == self.version))
    }

    pub fn service_account_path(&self) -> Option<&'static [&'static str]> {
        self.known().map(|k| k.service_account_path)
    }

    pub fn completion(&self) -> Completion {
        self.known().map_or(Completion::Conditions, |k| k.completion)
    }
}

impl fmt::Display for RunKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.kind)
    }
}

/// The kinds watched from start-up unless `--watch-kinds` says otherwise.
pub fn default_watch_kinds() -> Vec<RunKind> {
    KNOWN_KINDS
        .iter()
        .filter(|k| k.watched_by_default)
        .map(|k| RunKind::parse(&format!("{}/{}", k.group, k.default_version), k.kind))
        .collect()
}

/// `--watch-kinds`' default: the table's `watched_by_default` rows (a test keeps them equal).
pub const DEFAULT_WATCH_KINDS: &str = "argoproj.io/v1alpha1/Workflow,batch/v1/Job,tekton.dev/v1/PipelineRun";

/// `default_watch_kinds` as the flag's text.
pub fn default_watch_kinds_flag() -> String {
    default_watch_kinds()
        .iter()
        .map(RunKind::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The kinds the operator lists by name in messages (e.g. where `serviceAccount` can go).
pub fn known_kind_names() -> String {
    let mut names: Vec<String> = KNOWN_KINDS
        .iter()
        .map(|k| match k.version {
            Some(v) => format!("{}/{}/{}", k.group, v, k.kind),
            None => format!("{}/{}", k.group, k.kind),
        })
        .collect();
    names.dedup();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_decides_service_account_paths_and_completion() {
        let argo = RunKind::argo_workflow();
        assert_eq!(argo.service_account_path(), Some(&["serviceAccountName"][..]));
        assert_eq!(argo.completion(), Completion::ArgoPhase);
        let job = RunKind::parse("batch/v1", "Job");
        assert_eq!(
            job.service_account_path(),
            Some(&["template", "spec", "serviceAccountName"][..])
        );
        assert_eq!(job.completion(), Completion::JobConditions);
        let tekton_v1 = RunKind::parse("tekton.dev/v1", "PipelineRun");
        let tekton_beta = RunKind::parse("tekton.dev/v1beta1", "PipelineRun");
        assert_eq!(
            tekton_v1.service_account_path(),
            Some(&["taskRunTemplate", "serviceAccountName"][..])
        );
        assert_eq!(tekton_beta.service_account_path(), Some(&["serviceAccountName"][..]));
        let other = RunKind::parse("v1", "ConfigMap");
        assert_eq!(other.service_account_path(), None);
        assert_eq!(other.completion(), Completion::Conditions);
        assert_eq!(other.api_version(), "v1");
    }

    #[test]
    fn default_watch_list_and_parsing() {
        assert_eq!(default_watch_kinds_flag(), DEFAULT_WATCH_KINDS);
        assert_eq!(
            RunKind::parse_slashed("batch/v1/Job"),
            Some(RunKind::parse("batch/v1", "Job"))
        );
        assert_eq!(
            RunKind::parse_slashed("v1/ConfigMap"),
            Some(RunKind::parse("v1", "ConfigMap"))
        );
        assert_eq!(RunKind::parse_slashed("Job"), None);
        assert_eq!(RunKind::parse_slashed("batch/v1/"), None);
    }
}
