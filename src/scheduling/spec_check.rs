//! The one check of a schedule's spec, shared by the reconciler (an `Error` condition), the
//! admission webhook (a denial) and the JobService (a 400): decode it, validate it with the
//! operator's default time zone, apply KFP's v1-pipeline switch. So a spec is refused at
//! `kubectl apply` or `CreateJob` exactly when the reconciler would stop on it, in the same
//! words.

use crate::{
    model::{crd::ScheduledWorkflowSpec, stored::SwfObject},
    scheduling::validate::{self, Invalid, V1Policy, Validated},
};

/// What the operator applies to every schedule (its flags `--default-time-zone`,
/// `--block-v1-pipelines`, `--v1-allowed-namespaces`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// For schedules without `spec.timeZone` (KFP's `CRON_SCHEDULE_TIMEZONE`).
    pub default_time_zone: String,
    pub v1_policy: V1Policy,
}

/// KFP's defaults: UTC, v1 pipelines allowed.
impl Default for Rules {
    fn default() -> Self {
        Rules::in_zone("UTC")
    }
}

impl Rules {
    /// Times in `default_time_zone`, v1 pipelines allowed.
    pub fn in_zone(default_time_zone: &str) -> Self {
        Rules {
            default_time_zone: default_time_zone.to_string(),
            v1_policy: V1Policy::default(),
        }
    }
}

/// Why a spec cannot run. The text is the `Error` condition's message; `reason` its reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecProblem {
    /// The stored spec does not decode (the API server's schema was bypassed or is older).
    #[error("the stored spec cannot be read: {0}")]
    Undecodable(String),
    #[error("{0}")]
    Invalid(Invalid),
    /// KFP's `BLOCK_V1_PIPELINES` refuses this v1 pipeline in this namespace.
    #[error("spec.workflow: {0}")]
    V1PipelinesBlocked(String),
}

impl SpecProblem {
    /// The reason of the `Error` condition and of the Warning event.
    pub fn reason(&self) -> &'static str {
        match self {
            SpecProblem::Undecodable(_) => "UndecodableSpec",
            SpecProblem::Invalid(_) => "InvalidSpec",
            SpecProblem::V1PipelinesBlocked(_) => "V1PipelinesBlocked",
        }
    }

    /// Each problem on its own, as `field: reason` where there is a field (a webhook's list).
    pub fn each(&self) -> Vec<String> {
        match self {
            SpecProblem::Undecodable(e) => vec![e.clone()],
            SpecProblem::Invalid(invalid) => invalid.0.clone(),
            SpecProblem::V1PipelinesBlocked(_) => vec![self.to_string()],
        }
    }
}

/// A stored object's spec, checked as the reconciler checks it in `namespace`: the spec and
/// what it validated into.
pub fn check_object<'a>(
    obj: &'a SwfObject,
    namespace: &str,
    rules: &Rules,
) -> Result<(&'a ScheduledWorkflowSpec, Validated), SpecProblem> {
    let spec = obj.spec.as_ref().map_err(|e| SpecProblem::Undecodable(e.to_string()))?;
    Ok((spec, check_spec(spec, namespace, rules)?))
}

/// A spec, checked as the reconciler would check it in `namespace`.
pub fn check_spec(spec: &ScheduledWorkflowSpec, namespace: &str, rules: &Rules) -> Result<Validated, SpecProblem> {
    let v = validate::validate(spec, &rules.default_time_zone).map_err(SpecProblem::Invalid)?;
    rules
        .v1_policy
        .check(namespace, &v.source)
        .map_err(SpecProblem::V1PipelinesBlocked)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(spec: serde_json::Value) -> SwfObject {
        serde_json::from_value(json!({"metadata": {"name": "s", "namespace": "ns"}, "spec": spec})).unwrap()
    }

    fn v1_pipeline() -> SwfObject {
        object(json!({
            "enabled": true,
            "trigger": {"cronSchedule": {"cron": "0 0 * * * *"}},
            "workflow": {"spec": {"entrypoint": "main"}},
        }))
    }

    #[test]
    fn each_problem_has_its_reason_and_its_words() {
        let undecodable = object(json!({"maxConcurrency": "many"}));
        let e = check_object(&undecodable, "ns", &Rules::in_zone("UTC")).unwrap_err();
        assert_eq!(e.reason(), "UndecodableSpec");
        assert!(e.to_string().starts_with("the stored spec cannot be read: "), "{e}");

        let invalid = object(json!({"trigger": {"cronSchedule": {"cron": "not cron"}}, "workflow": {}}));
        let e = check_object(&invalid, "ns", &Rules::in_zone("UTC")).unwrap_err();
        assert_eq!(e.reason(), "InvalidSpec");
        assert!(
            e.each()
                .iter()
                .any(|p| p.starts_with("spec.trigger.cronSchedule.cron: ")),
            "{e:?}"
        );

        let blocked = Rules {
            v1_policy: V1Policy::new(true, "allowed"),
            ..Rules::in_zone("UTC")
        };
        let e = check_object(&v1_pipeline(), "ns", &blocked).unwrap_err();
        assert_eq!(e.reason(), "V1PipelinesBlocked");
        assert_eq!(e.each(), [e.to_string()]);
        assert!(
            e.to_string().starts_with("spec.workflow: namespace ns is not allowed"),
            "{e}"
        );
        assert!(check_object(&v1_pipeline(), "allowed", &blocked).is_ok());
    }

    #[test]
    fn the_default_time_zone_is_the_operators() {
        let spec = object(json!({
            "enabled": true,
            "trigger": {"cronSchedule": {"cron": "0 0 9 * * *"}},
            "workflow": {"spec": {}},
        }));
        let (_, berlin) = check_object(&spec, "ns", &Rules::in_zone("Europe/Berlin")).unwrap();
        assert_eq!(berlin.time_zone, "Europe/Berlin");
        let e = check_object(&spec, "ns", &Rules::in_zone("Mars/Olympus")).unwrap_err();
        assert_eq!(e.reason(), "InvalidSpec", "{e}");
    }
}
