//! Stage: build the status a pass leaves, and write it only when it differs from the newest
//! status known.

use jiff::Timestamp;

use super::{Pass, Target, backfill_stage::Backfilled, schedule_stage::Applied};
use crate::{
    controller::{context::Context, error::Error, lanes::Lane},
    model::crd::ScheduledWorkflowStatus,
    scheduling::{
        failure_policy,
        runstate::{self, ObservedRun},
        schedule::{self, Cadence, Plan, TriggerState},
        status,
    },
    serve::kube_error::status_code,
};

/// Writes `new` if it differs from the target's status, or if `confirm`: then the write
/// stands for "the pass planned from the newest object" (it is conditional), before an action
/// only such a pass may take.
pub(super) async fn write_status(
    ctx: &Context,
    target: &Target<'_>,
    new: ScheduledWorkflowStatus,
    confirm: bool,
    now: Timestamp,
) -> Result<(), Error> {
    let _slot = ctx.lanes.enter(Lane::Later).await;
    // Boxed once the slot is held: a pass waiting for one does not hold a request's memory.
    Box::pin(patch_status(ctx, target, new, confirm, now)).await
}

/// Confirms that the pass plans from the newest object before it deletes a running run for
/// `Replace`: the status, unchanged, written on the condition that the object has not changed
/// (a 409 makes the pass read it afresh and plan again). A pass whose view is behind a new
/// backfill request would otherwise delete a run whose tick that request then runs again.
/// In the due lane: a due create waits for it.
pub(super) async fn confirm_view(ctx: &Context, target: &Target<'_>, now: Timestamp) -> Result<(), Error> {
    let _slot = ctx.lanes.enter(Lane::Due).await;
    patch_status(ctx, target, target.obj.status.clone(), true, now).await
}

async fn patch_status(
    ctx: &Context,
    target: &Target<'_>,
    new: ScheduledWorkflowStatus,
    confirm: bool,
    now: Timestamp,
) -> Result<(), Error> {
    target.may_write(ctx)?;
    let wrote = ctx
        .status
        .write(&target.api, target.obj, new, confirm, now)
        .await
        .map_err(|source| match status_code(&source) {
            Some(409) => Error::StatusConflict,
            _ => Error::WriteStatus { source },
        })?;
    if wrote {
        ctx.metrics.status_written();
    }
    Ok(())
}

impl Pass<'_> {
    /// The status this pass leaves: KFP's summary and trigger status, history, backfill and
    /// suspension (`status::compute`).
    pub(super) fn build_status(
        &self,
        plan: &Plan,
        applied: &Applied,
        backfilled: &Backfilled,
        runs: &[ObservedRun],
        suspension: failure_policy::Decision,
        paused: bool,
    ) -> ScheduledWorkflowStatus {
        let v = &self.checked.v;
        let suspended_message = match &suspension.status {
            Some(s) if s.suspended_at.is_some() => Some(failure_policy::message(s, &self.target.owner.name)),
            _ => None,
        };
        let mut state = applied.state.clone();
        state.last_index = state.last_index.max(backfilled.last_index);
        let all_created = applied.failure.is_none() && !applied.replan;
        let observed = status::Observed {
            problem: applied.problem.clone().or_else(|| backfilled.problem.clone()),
            enabled: self.checked.spec.enabled,
            enabled_unset: self.target.obj.enabled_unset,
            paused,
            one_off: matches!(v.schedule.cadence, Cadence::Once),
            history: runstate::history(runs, state.last_index, v.max_history),
            // Until every planned run exists, the next tick is the first one not created.
            next: if all_created {
                plan.next
            } else {
                first_not_created(plan, &applied.state)
            },
            state,
            last_run_now: applied.last_run_now.clone(),
            schedule: schedule::describe(&self.checked.spec.trigger, &v.time_zone),
            ended: plan.next.is_none(),
            suspension: suspension.status,
            suspended_message,
            backfill: backfilled.status.clone(),
        };
        status::compute(&self.current, self.target.generation, observed, self.now)
    }
}

fn first_not_created(plan: &Plan, state: &TriggerState) -> Option<Timestamp> {
    let done = state.last_triggered.max(state.skip_through);
    plan.runs
        .iter()
        .map(|r| r.scheduled)
        .find(|t| Some(*t) > done)
        .or(plan.next)
}
