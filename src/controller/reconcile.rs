//! One reconcile pass, in named stages:
//! check the spec (report a bad one once) → load the runs (watch cache) → prune history →
//! failure policy (suspend or resume) → plan (pure) → apply the plan (replace, create or
//! adopt) → backfill → write status → next action. See docs/architecture.md.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::{Api, Resource, api::DeleteParams, core::Request, runtime::controller::Action};
use tracing::{info, warn};

use super::{
    context::Context,
    error::{Error, is_lasting, status_code},
    events::Kind,
    runs::{Readiness, RunCache},
};
use crate::{
    backfill::{self, BACKFILL_ANNOTATION},
    crd::{
        BackfillStatus, RESUME_ANNOTATION, RUN_NOW_REQUEST_ANNOTATION, ScheduledWorkflowSpec, ScheduledWorkflowStatus,
    },
    failure_policy,
    render::{self, Owner, RunRequest},
    runstate::{self, ObservedRun},
    schedule::{self, Cadence, Plan, PlanInput, TriggerState},
    status::{self, Problem},
    stored::{RunObject, SwfObject},
    validate::{self, Validated},
};

/// How long a pass waits before looking again when a tick was skipped (so the next one runs).
const REPLAN: Duration = Duration::from_millis(100);
/// While a due tick waits for a watched run to finish, its event wakes the pass; this is the
/// safety net should an event be missed.
const WAITING_SAFETY_NET: Duration = Duration::from_secs(300);
/// A tick whose create keeps failing for a lasting reason is given up after this many tries,
/// once a later tick is due (docs/architecture.md, "When a run cannot be created").
pub const MAX_TICK_ATTEMPTS: u32 = 3;

/// The object a pass works on.
struct Target<'a> {
    obj: &'a SwfObject,
    owner: Owner,
    api: Api<SwfObject>,
    generation: Option<i64>,
}

impl<'a> Target<'a> {
    fn of(obj: &'a SwfObject, ctx: &Context) -> Result<Self, Error> {
        let meta = &obj.metadata;
        let owner = Owner {
            name: meta.name.clone().ok_or(Error::MissingMetadata("name"))?,
            namespace: meta.namespace.clone().ok_or(Error::MissingMetadata("namespace"))?,
            uid: meta.uid.clone().ok_or(Error::MissingMetadata("uid"))?,
        };
        Ok(Target {
            api: Api::namespaced(ctx.client.clone(), &owner.namespace),
            obj,
            owner,
            generation: meta.generation,
        })
    }

    fn publish(&self, ctx: &Context, kind: Kind, reason: &str, note: String) {
        ctx.events.publish(self.obj.object_ref(&()), kind, reason, note);
    }

    /// Checked before every create, delete and status write: the lease of this schedule's
    /// shard (the leader's, with one shard) is held and was renewed within the renew deadline.
    fn may_write(&self, ctx: &Context) -> Result<(), Error> {
        if ctx.leader.holds_for(&self.owner.namespace, &self.owner.name) {
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }
}

/// A spec that passed every check, with the cache of its run kind.
struct Checked<'a> {
    spec: &'a ScheduledWorkflowSpec,
    v: Validated,
    cache: Arc<RunCache>,
}

/// What the controller does after a pass: look again after a delay, or only on a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    After(Duration),
    OnChange,
}

impl From<Next> for Action {
    fn from(next: Next) -> Action {
        match next {
            Next::After(delay) => Action::requeue(delay),
            Next::OnChange => Action::await_change(),
        }
    }
}

pub async fn reconcile(obj: Arc<SwfObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_once(&obj, &ctx).await.map(Action::from)
}

/// One pass over `obj` (what the controller runs for each wake-up), timed and traced.
pub async fn reconcile_once(obj: &SwfObject, ctx: &Context) -> Result<Next, Error> {
    let started = std::time::Instant::now();
    // Every log line of the pass names its object.
    let span = tracing::info_span!(
        "reconcile",
        ns = obj.metadata.namespace.as_deref().unwrap_or_default(),
        name = obj.metadata.name.as_deref().unwrap_or_default()
    );
    let result = tracing::Instrument::instrument(pass(obj, ctx), span).await;
    ctx.metrics.reconciled(started.elapsed().as_secs_f64());
    if result.is_ok()
        && let Some(uid) = obj.metadata.uid.as_deref()
    {
        ctx.backoff.succeeded(uid);
    }
    result
}

async fn pass(obj: &SwfObject, ctx: &Context) -> Result<Next, Error> {
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(Next::OnChange); // its runs go with it (owner references)
    }
    let (ns, name) = (obj.metadata.namespace.as_deref(), obj.metadata.name.as_deref());
    if !ctx.leader.holds_for(ns.unwrap_or_default(), name.unwrap_or_default()) {
        // Another replica's schedule; woken again when this one gains its shard (see `run`).
        return Ok(Next::OnChange);
    }
    let target = Target::of(obj, ctx)?;
    let now = ctx.clock.now();
    let current = ctx.status.latest(&target.owner.uid, obj, now);
    let checked = match check(ctx, &target, &current, now).await? {
        Ok(checked) => checked,
        Err(action) => return Ok(action),
    };
    let p = Pass {
        ctx,
        target,
        checked,
        current,
        now,
    };
    let mut runs = p.load_runs();
    let backfill_request = p.backfill_request();
    p.prune_history(&mut runs, backfill_request.as_ref()).await?;
    let suspension = p.failure_policy(&runs);
    let enabled = p.checked.spec.enabled && !suspension.suspended();
    let summary = runstate::summarize(&runs);
    let state = status::trigger_state(&p.current, &summary, enabled, now);
    let plan = schedule::plan(&p.plan_input(state.clone(), enabled, summary.active));
    let mut applied = p.apply(&plan, state, &mut runs).await?;
    let backfill = if suspension.suspended() || applied.failure.is_some() {
        p.current.backfill.clone() // waits: resumed with the schedule, or after the retry
    } else {
        p.backfill(backfill_request, &mut runs, &mut applied).await?
    };
    let new_status = p.build_status(&plan, &applied, &runs, suspension, backfill);
    ctx.metrics.schedule(
        &p.target.owner.uid,
        status::summary_condition(&new_status).map_or("", |c| c.type_.as_str()),
        runs.iter().filter(|r| r.is_active()).count(),
    );
    let owner = &p.target.owner;
    let streak = runstate::failure_streak(&runs).len();
    ctx.metrics
        .failure_streak(&owner.uid, &owner.namespace, &owner.name, streak);
    let backfill_next = new_status
        .backfill
        .as_ref()
        .filter(|b| b.phase == backfill::RUNNING)
        .and_then(|b| b.next_tick.as_ref().map(|t| t.0));
    write_status(ctx, &p.target, &p.current, new_status, now).await?;
    match applied.failure {
        Some(e) => Err(e),
        None => Ok(next_action(&plan, &applied, backfill_next, now)),
    }
}

/// Decodes and validates the spec and finds its run cache. A spec that cannot run is reported
/// once (an `Error` condition and one Warning event per change), not retried until it changes.
async fn check<'a>(
    ctx: &Context,
    target: &Target<'a>,
    current: &ScheduledWorkflowStatus,
    now: Timestamp,
) -> Result<Result<Checked<'a>, Next>, Error> {
    let spec = match &target.obj.spec {
        Ok(spec) => spec,
        Err(e) => {
            let message = format!("the stored spec cannot be read: {e}");
            report(ctx, target, current, "UndecodableSpec", &message, now).await?;
            return Ok(Err(Next::OnChange));
        }
    };
    let v = match validate::validate(spec, &ctx.settings.default_time_zone) {
        Ok(v) => v,
        Err(invalid) => {
            report(ctx, target, current, "InvalidSpec", &invalid.to_string(), now).await?;
            return Ok(Err(Next::OnChange));
        }
    };
    if let Err(message) = ctx.settings.v1_policy.check(&target.owner.namespace, &v.source) {
        report(ctx, target, current, "V1PipelinesBlocked", &message, now).await?;
        return Ok(Err(Next::OnChange));
    }
    let kind = v.source.kind();
    let cache = match ctx.runs.get(&kind).await {
        Ok(cache) => cache,
        Err(e) => {
            let message = format!("run kind {kind} is not served by this cluster ({e}); install its CRD");
            report(ctx, target, current, "UnknownRunKind", &message, now).await?;
            // A CRD installed later is picked up on a retry.
            return Ok(Err(Next::After(ctx.backoff.failed(&target.owner.uid))));
        }
    };
    if let Err(e) = cache.wait_ready(ctx.settings.cache_wait).await {
        if let Readiness::Failing(why) = cache.readiness() {
            let message = format!("the operator cannot watch {kind}: {why}; grant it list and watch");
            report(ctx, target, current, "RunKindNotWatchable", &message, now).await?;
            return Ok(Err(Next::After(ctx.backoff.failed(&target.owner.uid))));
        }
        return Err(e);
    }
    if target.generation != current.observed_generation {
        for warning in &v.warnings {
            target.publish(ctx, Kind::Warning, "SpecWarning", warning.clone());
        }
    }
    Ok(Ok(Checked { spec, v, cache }))
}

/// Writes an `Error` condition; publishes a Warning event when the condition changes.
async fn report(
    ctx: &Context,
    target: &Target<'_>,
    current: &ScheduledWorkflowStatus,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Result<(), Error> {
    let new = status::invalid(current, target.generation, reason, message, now);
    let summary = status::summary_condition(current);
    if summary.and_then(|c| c.message.as_deref()) != Some(message) || summary.is_some_and(|c| c.type_ != status::ERROR)
    {
        warn!(ns = %target.owner.namespace, name = %target.owner.name, %reason, %message, "schedule cannot run");
        target.publish(ctx, Kind::Warning, reason, message.to_string());
    }
    ctx.metrics.schedule(&target.owner.uid, status::ERROR, 0);
    write_status(ctx, target, current, new, now).await
}

/// Everything one pass of a valid schedule works with.
struct Pass<'a> {
    ctx: &'a Context,
    target: Target<'a>,
    checked: Checked<'a>,
    /// The newest status known (see `StatusWriter::latest`).
    current: ScheduledWorkflowStatus,
    now: Timestamp,
}

/// What applying the plan did.
struct Applied {
    state: TriggerState,
    last_run_now: Option<String>,
    /// Shown as the `Error` condition (a create that failed).
    problem: Option<Problem>,
    /// Returned after status is written, so the pass is retried with backoff.
    failure: Option<Error>,
    /// A tick was skipped or given up: plan again at once for the ticks after it.
    replan: bool,
    /// Backfill ticks skipped (a foreign object holds the name): handled, not run.
    backfill_skipped: Vec<Timestamp>,
    /// Why the backfill stopped (a create that kept failing for a lasting reason).
    backfill_failed: Option<String>,
}

/// How one create went.
enum Created {
    New(RunObject),
    /// An earlier pass (or replica) created it: adopted.
    Existing(RunObject),
    /// The name is held by an object this schedule does not own.
    Conflict,
}

impl Pass<'_> {
    /// The schedule's runs: the watch cache, plus runs this process created that the cache
    /// does not show yet (so they count against `maxConcurrency` at once).
    fn load_runs(&self) -> Vec<ObservedRun> {
        let cache = &self.checked.cache;
        let cached = cache.owned_by(&self.target.owner.uid);
        let unseen = self.ctx.created.unseen(&self.target.owner.uid, &cached, self.now);
        cached
            .iter()
            .map(|r| runstate::observe(&cache.kind, r))
            .chain(unseen.iter().map(|r| runstate::observe(&cache.kind, r)))
            .collect()
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        let annotations = self.target.obj.metadata.annotations.as_ref()?;
        annotations.get(key).map(String::as_str)
    }

    fn backfill_request(&self) -> Option<backfill::Request> {
        let tz = &self.checked.v.schedule.time_zone;
        backfill::Request::read(self.annotation(BACKFILL_ANNOTATION), self.current.backfill.as_ref(), tz)
    }

    /// spec.failurePolicy: suspends after N failed runs in a row (one Warning event), and
    /// serves a new `resume` annotation value.
    fn failure_policy(&self, runs: &[ObservedRun]) -> failure_policy::Decision {
        let decision = failure_policy::decide(&failure_policy::Input {
            threshold: self.checked.v.suspend_after,
            runs,
            current: self.current.suspension.as_ref(),
            resume: self.annotation(RESUME_ANNOTATION),
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

    /// History limits (extension): deletes the oldest finished runs beyond them. A run is
    /// deleted only once status records its tick, so a lagging cache cannot make it run again;
    /// nor is a run of a tick a backfill has still to pass. The failure policy's N failed
    /// runs are kept whatever the limit.
    async fn prune_history(
        &self,
        runs: &mut Vec<ObservedRun>,
        backfill: Option<&backfill::Request>,
    ) -> Result<(), Error> {
        let recorded = self.current.trigger.last_triggered_time.as_ref().map(|t| t.0);
        let spec = self.checked.spec;
        let keep_failed = match (spec.failed_runs_history_limit, self.checked.v.suspend_after) {
            (Some(limit), Some(n)) => Some(limit.max(i32::try_from(n).unwrap_or(i32::MAX))),
            (limit, _) => limit,
        };
        let recorded_tick = |r: &ObservedRun| match (&r.run_now, &r.backfill) {
            (Some(_), _) | (None, Some(_)) => true,
            (None, None) => r.tick.is_some_and(|t| Some(t) <= recorded),
        };
        let backfill_pending = |r: &ObservedRun| r.tick.is_some_and(|t| backfill.is_some_and(|b| b.pending(t)));
        let doomed: Vec<String> =
            runstate::beyond_history_limits(runs, spec.successful_runs_history_limit, keep_failed)
                .into_iter()
                .filter(|r| recorded_tick(r) && !backfill_pending(r))
                .map(|r| r.status.name.clone())
                .collect();
        for name in &doomed {
            self.delete_run(name).await?;
        }
        runs.retain(|r| !doomed.contains(&r.status.name));
        Ok(())
    }

    fn created(&self) -> Timestamp {
        let created = self.target.obj.metadata.creation_timestamp.as_ref();
        created.map_or(self.now, |t| t.0)
    }

    fn plan_input(&self, state: TriggerState, enabled: bool, active: usize) -> PlanInput<'_> {
        PlanInput {
            schedule: &self.checked.v.schedule,
            enabled,
            no_catchup: self.checked.v.no_catchup,
            max_concurrency: self.checked.v.max_concurrency,
            policy: self.checked.v.policy,
            created: self.created(),
            state,
            active,
            now: self.now,
        }
    }

    fn publish(&self, kind: Kind, reason: &str, note: String) {
        self.target.publish(self.ctx, kind, reason, note);
    }

    /// Replaces, then creates (or adopts) the planned runs in tick order, then the run-now
    /// run. Stops at the first create that does not succeed.
    async fn apply(&self, plan: &Plan, state: TriggerState, runs: &mut Vec<ObservedRun>) -> Result<Applied, Error> {
        self.replace_oldest(plan.replace, runs).await?;
        for skipped in &plan.skipped {
            let note = format!("Skipped the tick of {skipped}: no free slot (concurrencyPolicy: Skip)");
            self.publish(Kind::Normal, "TickSkipped", note);
        }
        let mut applied = Applied {
            state,
            last_run_now: self.current.trigger.last_run_now.clone(),
            problem: None,
            failure: None,
            replan: false,
            backfill_skipped: Vec::new(),
            backfill_failed: None,
        };
        let mut requests = self.scheduled_requests(plan);
        requests.extend(self.run_now_request(runs, &requests));
        for (i, req) in requests.iter().enumerate() {
            let later_due = i + 1 < plan.runs.len() || plan.next.is_some_and(|n| n <= self.now);
            if !self.create_one(req, later_due, runs, &mut applied).await? {
                break;
            }
        }
        if applied.failure.is_none() {
            applied.state.skip_through = applied.state.skip_through.max(plan.state.skip_through);
        }
        Ok(applied)
    }

    fn scheduled_requests(&self, plan: &Plan) -> Vec<RunRequest> {
        plan.runs
            .iter()
            .map(|r| RunRequest {
                name: render::run_name(&self.target.owner.name, r.scheduled),
                scheduled: r.scheduled,
                index: r.index,
                run_uuid: uuid::Uuid::new_v4().to_string(),
                run_now: None,
                backfill: None,
            })
            .collect()
    }

    /// A new `run-now` annotation value asks for one immediate run while a slot is free. A
    /// value is served once: status remembers it, and so does its run (an annotation).
    fn run_now_request(&self, runs: &[ObservedRun], scheduled: &[RunRequest]) -> Option<RunRequest> {
        let value = self
            .annotation(RUN_NOW_REQUEST_ANNOTATION)
            .filter(|v| !v.is_empty())?
            .to_string();
        let served = self.current.trigger.last_run_now.as_ref() == Some(&value)
            || runs.iter().any(|r| r.run_now.as_ref() == Some(&value));
        let busy = runstate::summarize(runs).active + scheduled.len();
        if served || busy >= self.checked.v.max_concurrency {
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
            run_now: Some(value),
            backfill: None,
        })
    }

    /// Creates one run and records the outcome; false when the pass should stop creating.
    async fn create_one(
        &self,
        req: &RunRequest,
        later_due: bool,
        runs: &mut Vec<ObservedRun>,
        applied: &mut Applied,
    ) -> Result<bool, Error> {
        self.target.may_write(self.ctx)?;
        let service_account = self.checked.spec.service_account.as_deref();
        let body = render::render(&self.target.owner, service_account, &self.checked.v, req, self.now);
        let ns = &self.target.owner.namespace;
        let (run, outcome) = match self.create_or_adopt(&req.name, body).await {
            Ok(Created::New(run)) => {
                self.ctx.created.remember(&self.target.owner.uid, run.clone(), self.now);
                (run, "created")
            }
            Ok(Created::Existing(run)) => (run, "adopted"),
            Ok(Created::Conflict) => {
                self.ctx.metrics.run(ns, "conflict");
                let note = format!(
                    "the name {} is held by an object this ScheduledWorkflow does not own; {}",
                    req.name,
                    what_is_skipped(req)
                );
                self.skip(req, applied, "RunNameConflict", note);
                return Ok(false);
            }
            Err(e) => {
                self.ctx.metrics.run(ns, "failed");
                self.create_failed(req, e, later_due, applied);
                return Ok(false);
            }
        };
        self.ctx.metrics.run(ns, outcome);
        self.record(req, run, outcome == "created", runs, applied);
        Ok(true)
    }

    /// Records a run that now exists for `req`.
    fn record(
        &self,
        req: &RunRequest,
        run: RunObject,
        fresh: bool,
        runs: &mut Vec<ObservedRun>,
        applied: &mut Applied,
    ) {
        let kind = &self.checked.cache.kind;
        let observed = runstate::observe(kind, &run);
        let (ns, swf) = (&self.target.owner.namespace, &self.target.owner.name);
        if fresh {
            if req.run_now.is_none() && req.backfill.is_none() {
                let lag = (self.now - req.scheduled).total(jiff::Unit::Second).unwrap_or(0.0);
                self.ctx.metrics.trigger_lag(lag);
            }
            info!(%ns, %swf, run = %req.name, scheduled = %req.scheduled, backfill = req.backfill.is_some(), "created run");
            let what = if req.backfill.is_some() { " (backfill)" } else { "" };
            let note = format!("Created {} {} for {}{what}", kind.kind, req.name, req.scheduled);
            self.publish(Kind::Normal, "RunCreated", note);
        } else {
            info!(%ns, %swf, run = %req.name, "adopted a run an earlier pass created");
        }
        match (&req.run_now, &req.backfill) {
            (Some(v), _) => applied.last_run_now = Some(v.clone()),
            // A backfill of the past does not move the schedule's own trigger state.
            (None, Some(_)) => {}
            (None, None) => applied.state.last_triggered = applied.state.last_triggered.max(Some(req.scheduled)),
        }
        applied.state.last_index = applied.state.last_index.max(req.index).max(observed.status.index);
        runs.retain(|r| r.status.name != observed.status.name);
        runs.push(observed);
    }

    /// Skips the tick (or drops the run-now request) of `req`, with a Warning event.
    fn skip(&self, req: &RunRequest, applied: &mut Applied, reason: &str, note: String) {
        let (ns, swf) = (&self.target.owner.namespace, &self.target.owner.name);
        warn!(%ns, %swf, run = %req.name, %reason, "{note}");
        self.publish(Kind::Warning, reason, note);
        match (&req.run_now, &req.backfill) {
            (Some(v), _) => applied.last_run_now = Some(v.clone()),
            (None, Some(_)) => applied.backfill_skipped.push(req.scheduled),
            (None, None) => applied.state.skip_through = applied.state.skip_through.max(Some(req.scheduled)),
        }
        applied.replan = true;
    }

    /// A failed create is retried with backoff and shown in the condition; after
    /// `MAX_TICK_ATTEMPTS` lasting failures it is given up once a later tick is due.
    fn create_failed(&self, req: &RunRequest, e: Error, later_due: bool, applied: &mut Applied) {
        let attempts = self.ctx.backoff.tick_failed(&self.target.owner.uid, req.scheduled);
        let lasting = e.api_source().is_some_and(is_lasting);
        let code = e.api_source().and_then(status_code).unwrap_or(0);
        if lasting && attempts >= MAX_TICK_ATTEMPTS && req.backfill.is_some() {
            // The backfill stops (a new annotation value starts it again); the schedule goes on.
            let note = format!("{e} (HTTP {code}); gave up after {attempts} attempts; the backfill stops");
            self.publish(Kind::Warning, "BackfillFailed", note.clone());
            applied.backfill_failed = Some(note);
            return;
        }
        if lasting && attempts >= MAX_TICK_ATTEMPTS && (later_due || req.run_now.is_some()) {
            let note = format!(
                "{e} (HTTP {code}); gave up after {attempts} attempts: {}",
                what_is_skipped(req)
            );
            self.skip(req, applied, "TickAbandoned", note);
            return;
        }
        applied.problem = Some(Problem {
            reason: e.reason().into(),
            message: format!("{e} (attempt {attempts}; retrying with backoff)"),
        });
        applied.failure = Some(e);
    }

    /// Creates the run, or adopts it when an earlier pass created it (same deterministic
    /// name, owned by this schedule). A run of ours being deleted is not adopted: the tick
    /// waits until it is gone.
    async fn create_or_adopt(&self, name: &str, body: serde_json::Value) -> Result<Created, Error> {
        let owner = &self.target.owner;
        let resource = &self.checked.cache.resource;
        let create = |source| Error::CreateRun {
            name: name.to_string(),
            source,
        };
        let url = <RunObject as Resource>::url_path(resource, Some(&owner.namespace));
        let bytes = serde_json::to_vec(&body).map_err(|e| create(kube::Error::SerdeError(e)))?;
        let request = Request::new(url)
            .create(&super::post_params(), bytes)
            .map_err(|e| create(kube::Error::BuildRequest(e)))?;
        match self.ctx.client.request::<RunObject>(request).await {
            Ok(run) => Ok(Created::New(run)),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let api: Api<RunObject> = Api::namespaced_with(self.ctx.client.clone(), &owner.namespace, resource);
                let existing = api.get(name).await.map_err(|source| Error::ReadRun {
                    name: name.to_string(),
                    source,
                })?;
                let owners = existing.metadata.owner_references.iter().flatten();
                let ours = owners.clone().any(|r| r.uid == owner.uid);
                match (ours, existing.metadata.deletion_timestamp.is_some()) {
                    (false, _) => Ok(Created::Conflict),
                    (true, true) => Err(Error::RunBeingDeleted { name: name.to_string() }),
                    (true, false) => Ok(Created::Existing(existing)),
                }
            }
            Err(source) => Err(create(source)),
        }
    }

    /// `concurrencyPolicy: Replace`: deletes the oldest active runs to make room.
    async fn replace_oldest(&self, count: usize, runs: &mut Vec<ObservedRun>) -> Result<(), Error> {
        if count == 0 {
            return Ok(());
        }
        // Backfill runs have their own slots: Replace never deletes them.
        let mut active: Vec<&ObservedRun> = runs.iter().filter(|r| r.is_active() && r.backfill.is_none()).collect();
        active.sort_by(|a, b| a.status.scheduled_at.cmp(&b.status.scheduled_at));
        let victims: Vec<String> = active.iter().take(count).map(|r| r.status.name.clone()).collect();
        for name in &victims {
            self.delete_run(name).await?;
            let note = format!("Deleted active run {name} to make room (concurrencyPolicy: Replace)");
            self.publish(Kind::Normal, "RunReplaced", note);
        }
        runs.retain(|r| !victims.contains(&r.status.name));
        Ok(())
    }

    async fn delete_run(&self, name: &str) -> Result<(), Error> {
        self.target.may_write(self.ctx)?;
        let resource = &self.checked.cache.resource;
        let api: Api<RunObject> = Api::namespaced_with(self.ctx.client.clone(), &self.target.owner.namespace, resource);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(Error::DeleteRun {
                name: name.to_string(),
                source,
            }),
        }
    }

    /// The backfill stage: creates the request's due ticks within its slots, in time order,
    /// and reports progress (events when it starts, finishes, is cancelled or is invalid).
    async fn backfill(
        &self,
        request: Option<backfill::Request>,
        runs: &mut Vec<ObservedRun>,
        applied: &mut Applied,
    ) -> Result<Option<BackfillStatus>, Error> {
        let current = self.current.backfill.as_ref();
        let existing = runstate::ticks_with_runs(runs);
        let situation = backfill::Situation {
            schedule: &self.checked.v.schedule,
            anchor: backfill::anchor(&self.checked.v.schedule, self.created()),
            existing: &existing,
            active: runstate::summarize(runs).backfill_active,
            max_concurrency: self.checked.v.max_concurrency,
            now: self.now,
        };
        let (request, ticks, plan) = match backfill::step(request, current, &situation) {
            backfill::Step::Work { request, ticks, plan } => (request, ticks, plan),
            backfill::Step::Report(status) => {
                self.announce_backfill(current, status.as_ref());
                return Ok(status);
            }
        };
        let mut handled = Vec::new();
        for &tick in &plan.create {
            let req = RunRequest {
                name: render::run_name(&self.target.owner.name, tick),
                scheduled: tick,
                index: applied.state.last_index + 1,
                run_uuid: uuid::Uuid::new_v4().to_string(),
                run_now: None,
                backfill: Some(request.value.clone()),
            };
            if !self.create_one(&req, true, runs, applied).await? {
                if applied.backfill_skipped.contains(&tick) {
                    handled.push(tick);
                }
                break;
            }
            handled.push(tick);
        }
        let mut status = backfill::progress(&request, &ticks, &existing, &handled, self.now);
        if let Some(message) = applied.backfill_failed.take() {
            status = backfill::failed(status, message);
        }
        self.announce_backfill(current, Some(&status));
        Ok(Some(status))
    }

    /// One event per change of a backfill's range or phase.
    fn announce_backfill(&self, before: Option<&BackfillStatus>, after: Option<&BackfillStatus>) {
        let Some(after) = after else { return };
        if before.is_some_and(|b| b.range == after.range && b.phase == after.phase) {
            return;
        }
        let started = before.is_none_or(|b| b.range != after.range);
        let range = &after.range;
        let (kind, reason, note) = match after.phase.as_str() {
            backfill::INVALID => (
                Kind::Warning,
                "BackfillInvalid",
                format!("Backfill {range}: {}", after.message.clone().unwrap_or_default()),
            ),
            backfill::CANCELLED => (
                Kind::Normal,
                "BackfillCancelled",
                format!(
                    "Backfill {range} cancelled after {} of {} ticks",
                    after.done, after.total
                ),
            ),
            backfill::FINISHED => (
                Kind::Normal,
                "BackfillFinished",
                format!(
                    "Backfill {range} finished: {} of {} ticks have runs",
                    after.done, after.total
                ),
            ),
            backfill::RUNNING if started => (
                Kind::Normal,
                "BackfillStarted",
                format!("Backfill {range}: {} ticks", after.total),
            ),
            _ => return, // Failed: BackfillFailed was published with the error
        };
        self.publish(kind, reason, note);
    }

    fn build_status(
        &self,
        plan: &Plan,
        applied: &Applied,
        runs: &[ObservedRun],
        suspension: failure_policy::Decision,
        backfill: Option<BackfillStatus>,
    ) -> ScheduledWorkflowStatus {
        let v = &self.checked.v;
        let suspended_message = match &suspension.status {
            Some(s) if s.suspended_at.is_some() => Some(failure_policy::message(s, &self.target.owner.name)),
            _ => None,
        };
        let history = runstate::history(runs, applied.state.last_index, v.max_history);
        let all_created = applied.failure.is_none() && !applied.replan;
        status::compute(
            &self.current,
            self.target.generation,
            status::Observed {
                problem: applied.problem.clone(),
                enabled: self.checked.spec.enabled,
                one_off: matches!(v.schedule.cadence, Cadence::Once),
                state: applied.state.clone(),
                last_run_now: applied.last_run_now.clone(),
                // Until every planned run exists, the next tick is the first one not created.
                next: if all_created {
                    plan.next
                } else {
                    first_not_created(plan, applied)
                },
                history,
                schedule: schedule::describe(&self.checked.spec.trigger, &v.time_zone),
                ended: plan.next.is_none(),
                suspension: suspension.status,
                suspended_message,
                backfill,
            },
            self.now,
        )
    }
}

fn what_is_skipped(req: &RunRequest) -> String {
    match &req.run_now {
        Some(v) => format!("the run-now request {v:?} is dropped"),
        None => format!("the tick of {} is skipped", req.scheduled),
    }
}

fn first_not_created(plan: &Plan, applied: &Applied) -> Option<Timestamp> {
    let done = applied.state.last_triggered.max(applied.state.skip_through);
    plan.runs
        .iter()
        .map(|r| r.scheduled)
        .find(|t| Some(*t) > done)
        .or(plan.next)
}

async fn write_status(
    ctx: &Context,
    target: &Target<'_>,
    current: &ScheduledWorkflowStatus,
    new: ScheduledWorkflowStatus,
    now: Timestamp,
) -> Result<(), Error> {
    target.may_write(ctx)?;
    let wrote = ctx
        .status
        .write(&target.api, &target.owner.name, &target.owner.uid, current, new, now)
        .await
        .map_err(|source| Error::WriteStatus { source })?;
    if wrote {
        ctx.metrics.status_written();
    }
    Ok(())
}

/// Requeue exactly at the next tick (the schedule's, or a backfill's still to come); while a
/// due tick waits for a slot, run events wake the pass. An idle schedule (disabled, ended,
/// one-off done, no backfill running) waits for a change and costs nothing.
fn next_action(plan: &Plan, applied: &Applied, backfill_next: Option<Timestamp>, now: Timestamp) -> Next {
    if applied.replan {
        return Next::After(REPLAN);
    }
    let until = |t: Timestamp| Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO);
    let scheduled = match plan.next {
        Some(_) if plan.waiting => Some(WAITING_SAFETY_NET),
        Some(t) => Some(until(t)),
        None => None,
    };
    let backfill = backfill_next.map(|t| if t > now { until(t) } else { WAITING_SAFETY_NET });
    match scheduled.into_iter().chain(backfill).min() {
        Some(delay) => Next::After(delay),
        None => Next::OnChange,
    }
}

/// Called by the controller when a pass fails: counts it by reason, logs it, publishes a
/// Warning event for failures a user can act on, and retries with per-object backoff.
pub fn error_policy(obj: Arc<SwfObject>, error: &Error, ctx: Arc<Context>) -> Action {
    retry_after(&obj, error, &ctx).into()
}

/// `error_policy`'s decision: when to try a failed pass again.
pub fn retry_after(obj: &SwfObject, error: &Error, ctx: &Context) -> Next {
    ctx.metrics.reconcile_failed(error.reason());
    if matches!(error, Error::NotLeader) {
        return Next::OnChange;
    }
    let uid = obj.metadata.uid.as_deref().unwrap_or_default();
    let delay = ctx.backoff.failed(uid);
    warn!(ns = ?obj.metadata.namespace, name = ?obj.metadata.name, reason = error.reason(), %error, ?delay, "reconcile failed; retrying");
    if matches!(
        error,
        Error::CreateRun { .. } | Error::ReadRun { .. } | Error::DeleteRun { .. } | Error::WriteStatus { .. }
    ) {
        ctx.events.publish(
            obj.object_ref(&()),
            Kind::Warning,
            error.reason(),
            format!("{error}; retrying in {}s", delay.as_secs()),
        );
    }
    Next::After(delay)
}
