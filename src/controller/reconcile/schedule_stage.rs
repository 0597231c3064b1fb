//! Stages: plan the schedule's own ticks (pure, `schedule::plan`) and apply the plan: delete
//! the oldest active runs for `Replace`, create (or adopt) the planned runs in tick order, then
//! the `run-now` run. Stops at the first create that does not succeed.

use tracing::warn;

use super::{MAX_TICK_ATTEMPTS, Pass, create::Outcome, write::confirm_view};
use crate::{
    controller::{error::Error, events::Kind, lanes::Lane},
    model::{crd::ConcurrencyPolicy, keys::RUN_NOW_REQUEST_ANNOTATION},
    scheduling::{
        backfill,
        render::{self, Origin, RunRequest},
        runstate::{self, ObservedRun},
        schedule::{self, Claim, Plan, PlanInput, Taken, TriggerState},
        status::{self, Problem},
    },
};

/// What applying the schedule's plan did.
pub(super) struct Applied {
    /// The trigger state once the runs that were created exist.
    pub state: TriggerState,
    pub last_run_now: Option<String>,
    /// Shown as the `Error` condition (a create that failed).
    pub problem: Option<Problem>,
    /// Returned after status is written, so the pass is retried with backoff.
    pub failure: Option<Error>,
    /// Plan again at once: a tick was skipped or given up, or a slot is free for a due tick
    /// (an adopted run had already finished).
    pub replan: bool,
}

impl Pass<'_> {
    /// Status raised to what the runs show (`status::trigger_state`): where planning starts.
    pub(super) fn trigger_state(&self, runs: &[ObservedRun], paused: bool) -> TriggerState {
        status::trigger_state(&self.current, &runstate::summarize(runs), !paused, self.now)
    }

    pub(super) fn plan(&self, state: TriggerState, runs: &[ObservedRun], paused: bool) -> Plan {
        let taken = self.taken(runs);
        schedule::plan(&self.plan_input(state, !paused, &taken, runs))
    }

    fn plan_input<'t>(
        &'t self,
        state: TriggerState,
        enabled: bool,
        taken: &'t Taken,
        runs: &[ObservedRun],
    ) -> PlanInput<'t> {
        PlanInput {
            schedule: &self.checked.v.schedule,
            enabled,
            no_catchup: self.checked.v.no_catchup,
            max_concurrency: self.checked.v.max_concurrency,
            policy: self.checked.v.policy,
            created: self.created(),
            state,
            taken,
            active: runstate::summarize(runs).active,
            replaceable: self.replaceable(runs).len(),
            now: self.now,
        }
    }

    /// Ticks the schedule passes without a run of its own: they have a run, or the backfill in
    /// progress recorded them as handled.
    fn taken(&self, runs: &[ObservedRun]) -> Taken {
        let tz = &self.checked.v.schedule.time_zone;
        Taken {
            ticks: runstate::ticks_with_runs(runs),
            backfill: backfill::record(self.current.backfill.as_ref(), tz),
        }
    }

    /// Applies `plan`, made from `state`.
    pub(super) async fn apply(
        &self,
        plan: &Plan,
        state: TriggerState,
        paused: bool,
        runs: &mut Vec<ObservedRun>,
    ) -> Result<Applied, Error> {
        self.replace_oldest(plan.replace, runs).await?;
        let mut applied = Applied {
            state,
            last_run_now: self.served_run_now(runs),
            problem: None,
            failure: None,
            replan: false,
        };
        let mut requests = self.scheduled_requests(plan);
        requests.extend(self.run_now_request(runs, &requests));
        for (i, req) in requests.iter().enumerate() {
            let later_due = i + 1 < plan.runs.len() || plan.next.is_some_and(|n| n <= self.now);
            if !self.create_scheduled(req, later_due, runs, &mut applied).await? {
                break;
            }
        }
        if applied.failure.is_none() {
            // Skipped and passed ticks are decided once every planned run exists.
            applied.state.skip_through = applied.state.skip_through.max(plan.state.skip_through);
            self.announce_skipped(plan);
            applied.replan |= self.more_due_now(runs, &applied, paused) || self.replace_awaits_record(plan, runs);
        }
        Ok(applied)
    }

    /// After the creates: is something due with a free slot (an adopted run that had already
    /// finished frees its slot, and no run event will follow)? Then plan again at once.
    fn more_due_now(&self, runs: &[ObservedRun], applied: &Applied, paused: bool) -> bool {
        let taken = self.taken(runs);
        let again = schedule::plan(&self.plan_input(applied.state.clone(), !paused, &taken, runs));
        let run_now_waits = self.pending_run_now(runs, applied.last_run_now.as_deref()).is_some();
        !again.runs.is_empty() || (run_now_waits && self.free_slots(runs) > 0)
    }

    fn free_slots(&self, runs: &[ObservedRun]) -> usize {
        self.checked
            .v
            .max_concurrency
            .saturating_sub(runstate::summarize(runs).active)
    }

    fn scheduled_requests(&self, plan: &Plan) -> Vec<RunRequest> {
        plan.runs
            .iter()
            .map(|r| RunRequest {
                name: render::run_name(&self.target.owner.name, r.scheduled),
                scheduled: r.scheduled,
                index: r.index,
                run_uuid: uuid::Uuid::new_v4().to_string(),
                origin: Origin::Scheduled,
            })
            .collect()
    }

    /// The `run-now` annotation's value, when it is new: not served yet (status remembers
    /// the last one served, and so does its run, by an annotation).
    /// The last run-now request served: what status recorded, or the request whose run exists
    /// (status may have missed it: a crash between the create and the status write). Recorded,
    /// its run can be pruned like any other.
    fn served_run_now(&self, runs: &[ObservedRun]) -> Option<String> {
        match self
            .target
            .annotation(RUN_NOW_REQUEST_ANNOTATION)
            .filter(|v| !v.is_empty())
        {
            Some(value) if runs.iter().any(|r| r.origin == Origin::RunNow(value.to_string())) => {
                Some(value.to_string())
            }
            _ => self.current.trigger.last_run_now.clone(),
        }
    }

    fn pending_run_now(&self, runs: &[ObservedRun], last_served: Option<&str>) -> Option<String> {
        let value = self
            .target
            .annotation(RUN_NOW_REQUEST_ANNOTATION)
            .filter(|v| !v.is_empty())?;
        let served = last_served == Some(value) || runs.iter().any(|r| r.origin == Origin::RunNow(value.to_string()));
        (!served).then(|| value.to_string())
    }

    /// A new `run-now` value asks for one immediate run while a slot is free.
    fn run_now_request(&self, runs: &[ObservedRun], scheduled: &[RunRequest]) -> Option<RunRequest> {
        let value = self.pending_run_now(runs, self.current.trigger.last_run_now.as_deref())?;
        if runstate::summarize(runs).active + scheduled.len() >= self.checked.v.max_concurrency {
            return None;
        }
        let last = [
            scheduled.last().map_or(0, |r| r.index),
            runstate::summarize(runs).highest_index,
            self.current.trigger.last_workflow_index.unwrap_or(0),
        ];
        Some(RunRequest {
            name: render::run_now_name(&self.target.owner.name, &value),
            scheduled: self.now,
            index: last.into_iter().max().unwrap_or(0) + 1,
            run_uuid: uuid::Uuid::new_v4().to_string(),
            origin: Origin::RunNow(value),
        })
    }

    /// Creates one of the schedule's runs (a tick's or the run-now one) and records what
    /// happened; false when the pass should stop creating.
    async fn create_scheduled(
        &self,
        req: &RunRequest,
        later_due: bool,
        runs: &mut Vec<ObservedRun>,
        applied: &mut Applied,
    ) -> Result<bool, Error> {
        match self.create_one(req, runs).await? {
            Outcome::Created { index } | Outcome::Adopted { index } => {
                match &req.origin {
                    Origin::RunNow(value) => applied.last_run_now = Some(value.clone()),
                    _ => applied.state.last_triggered = applied.state.last_triggered.max(Some(req.scheduled)),
                }
                applied.state.last_index = applied.state.last_index.max(req.index).max(index);
                Ok(true)
            }
            Outcome::Conflict => {
                let note = format!(
                    "the name {} is held by an object this ScheduledWorkflow does not own; {}",
                    req.name,
                    what_is_skipped(req)
                );
                self.skip(req, applied, "RunNameConflict", note);
                Ok(false)
            }
            Outcome::Failed {
                error,
                attempts,
                lasting,
            } => {
                let code = error
                    .api_source()
                    .and_then(crate::serve::kube_error::status_code)
                    .unwrap_or(0);
                if lasting && attempts >= MAX_TICK_ATTEMPTS && (later_due || !req.origin.is_tick()) {
                    let what = what_is_skipped(req);
                    let note = format!("{error} (HTTP {code}); gave up after {attempts} attempts: {what}");
                    self.skip(req, applied, "TickAbandoned", note);
                } else {
                    applied.problem = Some(Problem {
                        reason: error.reason().into(),
                        message: format!("{error} (attempt {attempts}; retrying with backoff)"),
                    });
                    applied.failure = Some(error);
                }
                Ok(false)
            }
        }
    }

    /// Skips the tick (or drops the run-now request) of `req`, with a Warning event.
    fn skip(&self, req: &RunRequest, applied: &mut Applied, reason: &str, note: String) {
        let (ns, swf) = (&self.target.owner.namespace, &self.target.owner.name);
        warn!(%ns, %swf, run = %req.name, %reason, "{note}");
        self.publish(Kind::Warning, reason, note);
        match &req.origin {
            Origin::RunNow(value) => applied.last_run_now = Some(value.clone()),
            _ => applied.state.skip_through = applied.state.skip_through.max(Some(req.scheduled)),
        }
        applied.replan = true;
    }

    fn announce_skipped(&self, plan: &Plan) {
        for skipped in &plan.skipped {
            let through = plan.state.skip_through.filter(|t| t > skipped);
            let also = through.map_or(String::new(), |t| format!(" and every tick due after it through {t}"));
            let note = format!("Skipped the tick of {skipped}{also}: no free slot (concurrencyPolicy: Skip)");
            self.publish(Kind::Normal, "TickSkipped", note);
        }
    }

    /// The active runs `Replace` may delete, oldest first: the schedule's own scheduled runs
    /// whose tick status records (`unrecorded` says why the others wait).
    fn replaceable<'r>(&self, runs: &'r [ObservedRun]) -> Vec<&'r ObservedRun> {
        let claim = self.recorded_claim();
        let mut active: Vec<&ObservedRun> = self
            .replace_candidates(runs)
            .filter(|r| !unrecorded(r, &claim))
            .collect();
        active.sort_by(|a, b| a.status.scheduled_at.cmp(&b.status.scheduled_at));
        active
    }

    /// The schedule's own active scheduled runs. Not a backfill's (they have their own slots)
    /// nor a run-now run (a person asked for it; issue 18, R9). Nor a run whose tick the
    /// backfill in progress has still to handle: it would find that tick without a run and run
    /// it again (R1). Nor a run known only from the status: it may be gone already, and its
    /// last state is not known.
    fn replace_candidates<'r>(&self, runs: &'r [ObservedRun]) -> impl Iterator<Item = &'r ObservedRun> {
        let request = self.backfill_request();
        let still_to_come =
            move |r: &ObservedRun| r.tick.is_some_and(|t| request.as_ref().is_some_and(|b| b.pending(t)));
        runs.iter()
            .filter(move |r| r.is_active() && r.origin == Origin::Scheduled && !r.recorded_only && !still_to_come(r))
    }

    /// `Replace` waits only for status to record the tick of a run it would delete: this
    /// pass's status write records it (status is raised to the runs that exist), so the pass
    /// plans again at once and replaces then.
    fn replace_awaits_record(&self, plan: &Plan, runs: &[ObservedRun]) -> bool {
        if !plan.waiting || self.checked.v.policy != ConcurrencyPolicy::Replace {
            return false;
        }
        let claim = self.recorded_claim();
        self.replace_candidates(runs).any(|r| unrecorded(r, &claim))
    }

    /// `concurrencyPolicy: Replace`: deletes the oldest replaceable runs to make room, once
    /// the pass knows it plans from the newest object (`confirm_view`).
    async fn replace_oldest(&self, count: usize, runs: &mut Vec<ObservedRun>) -> Result<(), Error> {
        if count == 0 {
            return Ok(());
        }
        confirm_view(self.ctx, &self.target, self.now).await?;
        let victims: Vec<String> = self
            .replaceable(runs)
            .iter()
            .take(count)
            .map(|r| r.status.name.clone())
            .collect();
        for name in &victims {
            self.delete_run(name, Lane::Due).await?;
            let note = format!("Deleted active run {name} to make room (concurrencyPolicy: Replace)");
            self.publish(Kind::Normal, "RunReplaced", note);
        }
        runs.retain(|r| !victims.contains(&r.status.name));
        Ok(())
    }
}

/// A run whose tick status does not record yet (the status write after its create failed,
/// or was refused): deleting it would make its tick due again (issue 18: a pass whose status
/// write met a 409 planned again, replaced the run it had just created, and its second write
/// failed too; the next owner ran that tick a second time).
fn unrecorded(run: &ObservedRun, claim: &Claim) -> bool {
    run.tick.is_some_and(|t| claim.covers(t))
}

fn what_is_skipped(req: &RunRequest) -> String {
    match &req.origin {
        Origin::RunNow(value) => format!("the run-now request {value:?} is dropped"),
        _ => format!("the tick of {} is skipped", req.scheduled),
    }
}
