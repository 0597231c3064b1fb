//! What the admission webhook decides about one request, without I/O: the reconciler's own
//! validation, and which run kinds the requesting user must be allowed to create.
//!
//! An update is refused only for problems it introduces: an object stored before the webhook
//! existed (or one KFP's controller accepted) keeps taking updates that leave its spec no worse,
//! such as `kubectl patch` of `enabled`. Updates that leave `spec` alone are never examined.

use crate::{
    model::{crd::ScheduledWorkflowSpec, runkind::RunKind, stored::SwfObject},
    scheduling::spec_check::{Rules, SpecProblem, check_object},
};

/// The request as the webhook sees it.
pub enum Change<'a> {
    Create(&'a SwfObject),
    Update { old: &'a SwfObject, new: &'a SwfObject },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Problems this request introduces, as `field: reason`; any one refuses it.
    pub errors: Vec<String>,
    /// Printed by kubectl: readings that surprise (a 5-field cron, a clamp) and problems an
    /// update leaves as they were.
    pub warnings: Vec<String>,
    /// The run kinds the requesting user must be allowed to create in the namespace, because
    /// this request decides what the schedule's runs will be.
    pub authorize: Vec<RunKind>,
}

pub fn review(change: Change<'_>, namespace: &str, rules: &Rules) -> Verdict {
    match change {
        Change::Create(new) => {
            let (errors, warnings) = problems(new, namespace, rules);
            let authorize = if errors.is_empty() { run_kinds(new) } else { vec![] };
            Verdict {
                errors,
                warnings,
                authorize,
            }
        }
        Change::Update { old, new } if same_spec(old, new) => Verdict::default(),
        Change::Update { old, new } => {
            let (found, mut warnings) = problems(new, namespace, rules);
            let (before, _) = problems(old, namespace, rules);
            let (kept, errors): (Vec<_>, Vec<_>) = found.into_iter().partition(|e| before.contains(e));
            warnings.extend(kept.into_iter().map(|e| format!("{e} (already so before this update)")));
            let authorize = if errors.is_empty() && runs_change(old, new) {
                run_kinds(new)
            } else {
                vec![]
            };
            Verdict {
                errors,
                warnings,
                authorize,
            }
        }
    }
}

/// Said when `spec.enabled` is left out: users of CronJob expect a schedule to run.
pub const ENABLED_UNSET_WARNING: &str = "spec.enabled: not set, so this schedule will not run (false is the default, as in KFP); set spec.enabled: true to run it";

/// Every problem the reconciler would report for the object, and its warnings.
fn problems(obj: &SwfObject, namespace: &str, rules: &Rules) -> (Vec<String>, Vec<String>) {
    let (errors, mut warnings) = match check_object(obj, namespace, rules) {
        Ok((_, v)) => (vec![], v.warnings),
        Err(problem @ SpecProblem::Undecodable(_)) => return (problem.each(), vec![]),
        Err(problem) => (problem.each(), vec![]),
    };
    if obj.enabled_unset {
        warnings.push(ENABLED_UNSET_WARNING.to_string());
    }
    (errors, warnings)
}

fn same_spec(old: &SwfObject, new: &SwfObject) -> bool {
    match (&old.spec, &new.spec) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

/// Whether the update changes what a run will be: its kind, its content or its identity.
fn runs_change(old: &SwfObject, new: &SwfObject) -> bool {
    let defines_runs =
        |s: &ScheduledWorkflowSpec| (s.workflow.clone(), s.run_template.clone(), s.service_account.clone());
    match (&old.spec, &new.spec) {
        (Ok(a), Ok(b)) => defines_runs(a) != defines_runs(b),
        _ => true,
    }
}

/// The kinds of object the schedule creates (both, for a spec that names both and is refused).
fn run_kinds(obj: &SwfObject) -> Vec<RunKind> {
    let Ok(spec) = &obj.spec else {
        return vec![];
    };
    let mut kinds = Vec::new();
    if spec.workflow.is_some() {
        kinds.push(RunKind::argo_workflow());
    }
    if let Some(t) = &spec.run_template {
        kinds.push(RunKind::parse(&t.api_version, &t.kind));
    }
    kinds.dedup();
    kinds
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::scheduling::validate::V1Policy;

    fn object(spec: Value) -> SwfObject {
        serde_json::from_value(json!({"metadata": {"name": "s", "namespace": "ns"}, "spec": spec})).unwrap()
    }

    fn job(changes: Value) -> SwfObject {
        let mut spec = json!({
            "enabled": true,
            "trigger": {"cronSchedule": {"cron": "0 0 * * * *"}},
            "runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {}}},
        });
        if let (Value::Object(base), Value::Object(changes)) = (&mut spec, changes) {
            base.extend(changes);
        }
        object(spec)
    }

    fn rules() -> Rules {
        Rules {
            default_time_zone: "UTC".into(),
            ..Rules::default()
        }
    }

    fn job_kind() -> RunKind {
        RunKind::parse("batch/v1", "Job")
    }

    #[test]
    fn a_valid_create_is_allowed_and_authorized_for_its_run_kind() {
        let v = review(Change::Create(&job(json!({}))), "ns", &rules());
        assert_eq!(v.errors, Vec::<String>::new());
        assert_eq!(v.authorize, vec![job_kind()]);
    }

    #[test]
    fn a_bad_create_names_every_field() {
        let bad = job(json!({"timeZone": "Mars/Olympus", "trigger": {"cronSchedule": {"cron": "* * *"}}}));
        let v = review(Change::Create(&bad), "ns", &rules());
        assert!(v.errors.iter().any(|e| e.starts_with("spec.timeZone: ")), "{v:?}");
        assert!(
            v.errors
                .iter()
                .any(|e| e.starts_with("spec.trigger.cronSchedule.cron: ")),
            "{v:?}"
        );
        assert!(v.authorize.is_empty(), "nothing to authorize for a refused spec");
    }

    #[test]
    fn a_five_field_cron_is_a_warning() {
        let v = review(
            Change::Create(&job(json!({"trigger": {"cronSchedule": {"cron": "* * * * *"}}}))),
            "ns",
            &rules(),
        );
        assert!(v.errors.is_empty());
        assert!(v.warnings[0].contains("5-field"), "{v:?}");
    }

    #[test]
    fn leaving_out_enabled_is_a_warning_and_false_or_true_is_not() {
        let mut spec = serde_json::to_value(job(json!({})).spec.unwrap()).unwrap();
        spec.as_object_mut().unwrap().remove("enabled");
        let v = review(Change::Create(&object(spec)), "ns", &rules());
        assert!(v.errors.is_empty(), "{v:?}");
        assert_eq!(v.warnings, vec![ENABLED_UNSET_WARNING.to_string()]);
        for enabled in [true, false] {
            let v = review(Change::Create(&job(json!({"enabled": enabled}))), "ns", &rules());
            assert!(v.warnings.is_empty(), "enabled: {enabled}: {v:?}");
        }
    }

    #[test]
    fn an_undecodable_spec_is_refused_with_its_path() {
        let v = review(
            Change::Create(&job(json!({"successfulRunsHistoryLimit": 2_147_483_648u64}))),
            "ns",
            &rules(),
        );
        assert!(v.errors[0].starts_with("spec.successfulRunsHistoryLimit"), "{v:?}");
    }

    #[test]
    fn an_update_that_leaves_spec_alone_is_not_examined() {
        let broken = job(json!({"timeZone": "Mars/Olympus"}));
        let v = review(
            Change::Update {
                old: &broken,
                new: &broken,
            },
            "ns",
            &rules(),
        );
        assert_eq!(v, Verdict::default());
    }

    /// The same holds for a spec that cannot be decoded at all: unchanged, it is let through
    /// (the reconciler already reports it); changed to another undecodable spec, it is refused.
    #[test]
    fn an_undecodable_spec_is_judged_only_when_it_changes() {
        let undecodable = |field: &str| job(json!({ field: 2_147_483_648u64 }));
        let old = undecodable("successfulRunsHistoryLimit");
        let unchanged = review(Change::Update { old: &old, new: &old }, "ns", &rules());
        assert_eq!(unchanged, Verdict::default());
        let new = undecodable("failedRunsHistoryLimit");
        let changed = review(Change::Update { old: &old, new: &new }, "ns", &rules());
        assert!(
            changed.errors[0].starts_with("spec.failedRunsHistoryLimit"),
            "{changed:?}"
        );
    }

    #[test]
    fn an_update_is_refused_only_for_what_it_breaks() {
        let broken = job(json!({"timeZone": "Mars/Olympus"}));
        let disabled = job(json!({"timeZone": "Mars/Olympus", "enabled": false}));
        let v = review(
            Change::Update {
                old: &broken,
                new: &disabled,
            },
            "ns",
            &rules(),
        );
        assert!(v.errors.is_empty(), "disabling a broken schedule works: {v:?}");
        assert!(v.warnings[0].contains("already so before this update"), "{v:?}");
        let worse = job(json!({"timeZone": "Mars/Olympus", "trigger": {"cronSchedule": {"cron": "x"}}}));
        let v = review(
            Change::Update {
                old: &broken,
                new: &worse,
            },
            "ns",
            &rules(),
        );
        assert_eq!(v.errors.len(), 1, "{v:?}");
        assert!(v.errors[0].starts_with("spec.trigger.cronSchedule.cron"));
    }

    #[test]
    fn updates_are_authorized_only_when_runs_change() {
        let base = job(json!({}));
        let cases = [
            (json!({"enabled": false}), false),
            (json!({"trigger": {"periodicSchedule": {"intervalSecond": 60}}}), false),
            (json!({"serviceAccount": "admin"}), true),
            (
                json!({"runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"x": 1}}}),
                true,
            ),
            (
                json!({"runTemplate": null, "workflow": {"spec": {"entrypoint": "main"}}}),
                true,
            ),
        ];
        for (changes, authorized) in cases {
            let new = job(changes.clone());
            let v = review(Change::Update { old: &base, new: &new }, "ns", &rules());
            assert!(v.errors.is_empty(), "{changes}: {v:?}");
            assert_eq!(!v.authorize.is_empty(), authorized, "{changes}: {v:?}");
        }
        let to_workflow = job(json!({"runTemplate": null, "workflow": {"spec": {"entrypoint": "main"}}}));
        let v = review(
            Change::Update {
                old: &base,
                new: &to_workflow,
            },
            "ns",
            &rules(),
        );
        assert_eq!(v.authorize, vec![RunKind::argo_workflow()], "the new kind is checked");
    }

    #[test]
    fn blocked_v1_pipelines_are_refused_as_the_reconciler_would() {
        let v1 = job(json!({"runTemplate": null, "workflow": {"spec": {"entrypoint": "main"}}}));
        let rules = Rules {
            default_time_zone: "UTC".into(),
            v1_policy: V1Policy::new(true, "allowed"),
        };
        let v = review(Change::Create(&v1), "ns", &rules);
        assert!(v.errors[0].contains("not allowed to run v1 pipelines"), "{v:?}");
        assert!(review(Change::Create(&v1), "allowed", &rules).errors.is_empty());
    }
}
