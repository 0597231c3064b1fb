//! Stage: history limits (`successfulRunsHistoryLimit`, `failedRunsHistoryLimit`). The oldest
//! finished runs beyond the limits are deleted (after the status write), except a run whose tick a creator may still
//! create: the schedule (its claim on the floor status records) or the backfill in progress.
//! Deleting such a run would make its tick due again. Nor is a run the failure policy reads
//! deleted (`failure_policy::protected`). See docs/architecture.md, "Has this tick run?".

use kube::{Api, api::DeleteParams};

use super::Pass;
use crate::{
    controller::{error::Error, lanes::Lane},
    model::{keys::RUN_NOW_REQUEST_ANNOTATION, stored::RunObject},
    scheduling::{
        backfill, failure_policy,
        render::Origin,
        runstate::{self, ObservedRun},
        schedule::Claim,
        status,
    },
};

impl Pass<'_> {
    /// The runs beyond the history limits that may be deleted, taken out of `runs`. They are
    /// deleted by `delete_pruned` only once the pass's status write has succeeded: that write
    /// is conditional on the object the pass planned from, so a pass that had not yet seen a
    /// new backfill request (whose ticks the runs may be) deletes nothing.
    pub(super) fn prune_history(
        &self,
        runs: &mut Vec<ObservedRun>,
        request: Option<&backfill::Request>,
    ) -> Vec<String> {
        let spec = self.checked.spec;
        let threshold = self.checked.v.suspend_after;
        let keep = failure_policy::protected(runs, threshold, self.current.suspension.as_ref());
        // With a policy, the failed limit reads as at least N, so the runs it names stay
        // inspectable after a resume too.
        let keep_failed = match (spec.failed_runs_history_limit, threshold) {
            (Some(limit), Some(n)) => Some(limit.max(i32::try_from(n).unwrap_or(i32::MAX))),
            (limit, _) => limit,
        };
        let doomed: Vec<String> =
            runstate::beyond_history_limits(runs, spec.successful_runs_history_limit, keep_failed)
                .into_iter()
                .filter(|r| !keep.contains(r.status.name.as_str()) && self.may_forget(r, request))
                .map(|r| r.status.name.clone())
                .collect();
        runs.retain(|r| !doomed.contains(&r.status.name));
        doomed
    }

    /// Deletes the runs `prune_history` chose.
    pub(super) async fn delete_pruned(&self, doomed: &[String]) -> Result<(), Error> {
        for name in doomed {
            self.delete_run(name, Lane::Later).await?;
        }
        Ok(())
    }

    /// True when deleting `run` cannot make anything run again.
    fn may_forget(&self, run: &ObservedRun, request: Option<&backfill::Request>) -> bool {
        match &run.origin {
            // A run-now value is served once: status records it, or the annotation moved on.
            Origin::RunNow(value) => {
                self.current.trigger.last_run_now.as_ref() == Some(value)
                    || self.target.annotation(RUN_NOW_REQUEST_ANNOTATION) != Some(value.as_str())
            }
            _ => run
                .tick
                .is_some_and(|t| !self.recorded_claim().covers(t) && !request.is_some_and(|b| b.pending(t))),
        }
    }

    /// What the schedule may still create, from what status durably records (not from the
    /// runs that exist: the run about to be deleted is one of them), endTime aside: lifted,
    /// it lets the schedule reach the ticks after it (found by the simulation: a pruned backfill
    /// run past endTime ran again as a scheduled run once endTime was lifted).
    pub(super) fn recorded_claim(&self) -> Claim {
        let state = status::recorded_state(&self.current.trigger);
        // Resumed or re-enabled, a schedule that has had a run skips what fell meanwhile.
        let paused = status::was_paused(&self.current) && state.last_index > 0;
        Claim::of(&self.checked.v.schedule, &state, self.created(), paused, self.now).ignoring_end()
    }

    pub(super) async fn delete_run(&self, name: &str, lane: Lane) -> Result<(), Error> {
        let _slot = self.ctx.lanes.enter(lane).await;
        self.target.may_write(self.ctx)?;
        let resource = &self.checked.cache.resource;
        let api: Api<RunObject> = Api::namespaced_with(self.ctx.client.clone(), &self.target.owner.namespace, resource);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(Error::DeleteRun {
                    name: name.to_string(),
                    source,
                });
            }
        }
        // Being deleted, it holds no slot from now on, not only once the watch says so.
        let cache = &self.checked.cache;
        cache.mark_deleting(&self.target.owner.namespace, name, self.now);
        self.ctx.runs.created.forget(&self.target.owner.uid, name);
        Ok(())
    }
}
