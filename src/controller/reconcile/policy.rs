//! Stage: the failure policy (`spec.failurePolicy`, docs/failure-policy.md): suspends after N
//! failed runs in a row (one Warning event), and serves a new `resume` annotation value.

use tracing::warn;

use super::Pass;
use crate::{
    controller::events::Kind,
    model::keys::RESUME_ANNOTATION,
    scheduling::{failure_policy, runstate::ObservedRun},
};

impl Pass<'_> {
    pub(super) fn failure_policy(&self, runs: &[ObservedRun]) -> failure_policy::Decision {
        let decision = failure_policy::decide(&failure_policy::Input {
            threshold: self.checked.v.suspend_after,
            runs,
            current: self.current.suspension.as_ref(),
            resume: self.target.annotation(RESUME_ANNOTATION),
            now: self.now,
        });
        let was_suspended = self
            .current
            .suspension
            .as_ref()
            .is_some_and(|s| s.suspended_at.is_some());
        match &decision.status {
            Some(s) if decision.newly_suspended => {
                let message = failure_policy::message(s, &self.target.owner.name);
                warn!(ns = %self.target.owner.namespace, name = %self.target.owner.name, "{message}");
                self.publish(Kind::Warning, failure_policy::SUSPENDED_REASON, message);
            }
            _ if decision.resumed && was_suspended => {
                let note = "Resumed: runs are created again; the failure count restarts".to_string();
                self.publish(Kind::Normal, "Resumed", note);
            }
            _ => {}
        }
        decision
    }
}
