//! One reconcile pass, in named stages:
//! check the spec (report a bad one once) → load the runs (watch cache) → choose what history
//! limits prune → failure policy (suspend or resume) → plan (pure) → apply the plan (replace,
//! create or adopt; run-now) → backfill → write status (conditional on the object planned
//! from) → delete what was pruned → next action. See docs/architecture.md.
//!
//! Each stage lives in its own module; this one holds the pass itself and what every stage
//! shares (`Target`, `Pass`).

mod backfill_stage;
mod check;
mod create;
mod history;
mod next;
mod policy;
mod schedule_stage;
mod write;

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::{Api, Resource, runtime::controller::Action};
use tracing::warn;

pub use self::next::Next;
use self::{check::Checked, write::write_status};
use super::{
    context::Context,
    error::Error,
    events::Kind,
    lanes::Lane,
    runs::{self, recorded_unseen},
};
use crate::{
    model::{crd::ScheduledWorkflowStatus, stored::SwfObject},
    scheduling::{
        render::Owner,
        runstate::{self, ObservedRun},
        status,
    },
};

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

    fn annotation(&self, key: &str) -> Option<&str> {
        let annotations = self.obj.metadata.annotations.as_ref()?;
        annotations.get(key).map(String::as_str)
    }

    /// The creation time (`now` for an object the API server did not stamp).
    fn created(&self, now: Timestamp) -> Timestamp {
        let created = self.obj.metadata.creation_timestamp.as_ref();
        created.map_or(now, |t| t.0)
    }
}

/// Everything one pass of a valid schedule works with.
struct Pass<'a> {
    ctx: &'a Context,
    target: Target<'a>,
    checked: Box<Checked<'a>>,
    /// The status the pass starts from (the target's).
    current: ScheduledWorkflowStatus,
    now: Timestamp,
}

impl Pass<'_> {
    fn publish(&self, kind: Kind, reason: &str, note: String) {
        self.target.publish(self.ctx, kind, reason, note);
    }

    fn created(&self) -> Timestamp {
        self.target.created(self.now)
    }

    /// The schedule's runs: the watch cache, plus runs this process created that the cache
    /// does not show yet (so they count against `maxConcurrency` at once), plus runs the status
    /// lists as active that neither shows yet (another replica's, before a handover). And when
    /// the first run known only from this process's creates stops counting.
    fn load_runs(&self) -> (Vec<ObservedRun>, Option<Timestamp>) {
        let cache = &self.checked.cache;
        let cached = cache.owned_by(&self.target.owner.uid);
        let unseen = self
            .ctx
            .runs
            .created
            .unseen(&self.target.owner.uid, &cached, cache, self.now);
        let mut runs: Vec<ObservedRun> = cached
            .iter()
            .map(|r| runstate::observe(&cache.kind, r))
            .chain(unseen.iter().map(|r| runstate::observe(&cache.kind, r)))
            .collect();
        let recorded = recorded_unseen(&self.current.workflow_history.active, &runs, cache, self.now);
        runs.extend(recorded.into_iter().map(runstate::recorded_active));
        (runs, self.ctx.runs.created.unseen_expiry(&self.target.owner.uid))
    }
}

/// What the controller runs for each wake-up: one pass (`reconcile_once`), as a task of its own.
///
/// Why a task: kube-runtime drives every pass in flight from one task
/// (its `FutureHashMap`), so at a tick's burst the passes' planning, rendering and JSON would
/// share one thread, and each wake-up of any pass would poll every pass's whole state
/// machine; spawned, passes run on every worker thread and what kube-runtime polls is a
/// `JoinHandle`. A pass that panicked fails alone (`PassPanicked`) instead of taking the
/// controller's task down with it. Issue 21 §2; docs/performance.md.
///
/// The wake-up it asks for is counted from the clock the pass read, not from its end
/// (`Next::less`).
pub async fn reconcile(obj: Arc<SwfObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let clock = ctx.clock.clone();
    let mut pass = PassTask(tokio::spawn(async move {
        // Read as the task starts, with the pass's own clock: at a tick's burst a spawned task
        // may wait for a worker, and that wait is not time the pass's delay was counted from.
        let started = ctx.clock.now();
        (started, reconcile_once(&obj, &ctx).await)
    }));
    let (started, next) = match (&mut pass.0).await {
        Ok((started, result)) => (started, result?),
        Err(stopped) => return Err(Error::PassPanicked(stopped.to_string())),
    };
    let spent = Duration::try_from(clock.now().duration_since(started)).unwrap_or(Duration::ZERO);
    Ok(next.less(spent).into())
}

/// A spawned pass, aborted when the controller drops it (shutdown, a test's operator
/// aborted), as the pass itself would have been dropped before it was spawned.
struct PassTask(tokio::task::JoinHandle<(Timestamp, Result<Next, Error>)>);

impl Drop for PassTask {
    fn drop(&mut self) {
        self.0.abort();
    }
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
    let result = tracing::Instrument::instrument(pass_on_the_newest(obj, ctx), span).await;
    ctx.metrics.reconciled(started.elapsed().as_secs_f64());
    if result.is_ok()
        && let Some(uid) = obj.metadata.uid.as_deref()
    {
        ctx.backoff.succeeded(uid);
    }
    result
}

/// A pass on the newest version of `obj` known (`StatusWriter::newest`); when its status
/// write is refused because the object changed since the view it
/// planned from (a user's edit, another replica's write), one more pass on the object read
/// afresh. The runs the first pass created are known to the second (RecentCreates).
async fn pass_on_the_newest(obj: &SwfObject, ctx: &Context) -> Result<Next, Error> {
    let obj = ctx.status.newest(obj, ctx.clock.now());
    // Boxed: the two passes would otherwise each take room in this state machine.
    match Box::pin(pass(&obj, ctx)).await {
        Err(Error::StatusConflict) => match Box::pin(read_afresh(&obj, ctx)).await? {
            Some(fresh) => Box::pin(pass(&fresh, ctx)).await,
            None => Ok(Next::OnChange), // deleted, or deleted and recreated: its own events follow
        },
        other => other,
    }
}

/// `obj` as the API server has it now; `None` when it is gone or is another object by now.
async fn read_afresh(obj: &SwfObject, ctx: &Context) -> Result<Option<SwfObject>, Error> {
    let meta = &obj.metadata;
    let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return Ok(None);
    };
    let api: Api<SwfObject> = Api::namespaced(ctx.client.clone(), ns);
    let _slot = ctx.lanes.enter(Lane::Later).await;
    let fresh = api
        .get_opt(name)
        .await
        .map_err(|source| Error::ReadSchedule { source })?;
    let fresh = fresh.filter(|f| f.metadata.uid == meta.uid);
    if let Some(f) = &fresh {
        // Until the watch shows it, later passes plan from it too (not from the stale view).
        ctx.status.read(f.clone(), ctx.clock.now());
    }
    Ok(fresh)
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
    let current = obj.status.clone();
    // Each stage that awaits is boxed, so a pass holds the memory of the stage it is in, not
    // of its largest (at a burst, 1,024 passes wait for a write slot at once; unboxed, each
    // held about 15 KiB). docs/performance.md, "Memory and start-up".
    let checked = match Box::pin(check::check(ctx, &target, &current, now)).await? {
        check::Verdict::Runs(checked) => checked,
        check::Verdict::Stop(next) => return Ok(next),
    };
    let p = Pass {
        ctx,
        target,
        checked,
        current,
        now,
    };
    let (mut runs, unseen_expiry) = p.load_runs();
    let request = p.backfill_request();
    let pruned = p.prune_history(&mut runs, request.as_ref());
    let suspension = p.failure_policy(&runs);
    let paused = !p.checked.spec.enabled || suspension.suspended();
    let state = p.trigger_state(&runs, paused);
    let plan = p.plan(state.clone(), &runs, paused);
    let applied = Box::pin(p.apply(&plan, state, paused, &mut runs)).await?;
    let backfilled = if suspension.suspended() || applied.failure.is_some() {
        backfill_stage::Backfilled::waiting(p.current.backfill.clone()) // resumed with the schedule, or after the retry
    } else {
        Box::pin(p.backfill(request, &applied.state, paused, &mut runs)).await?
    };
    let new_status = p.build_status(&plan, &applied, &backfilled, &runs, suspension, paused);
    p.record_metrics(&new_status, &runs);
    let written = match Box::pin(write_status(ctx, &p.target, new_status, !pruned.is_empty(), now)).await {
        Ok(()) => Box::pin(p.delete_pruned(&pruned)).await,
        failed => failed,
    };
    let next = next::after_pass(&plan, applied.replan, &backfilled, now);
    let held_until = runs::recorded_expiry(&runs).into_iter().chain(unseen_expiry).min();
    let next = next::no_later_than(next, held_until, now);
    match (written, applied.failure.or(backfilled.failure)) {
        // A create failed (perhaps after creating: a 500 can hide a success): retried after a
        // backoff, by when the cache shows what it did, not at once by `pass_on_the_newest`.
        (Err(Error::StatusConflict), Some(failure)) => Err(failure),
        (Err(e), _) | (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => Ok(next),
    }
}

impl Pass<'_> {
    fn record_metrics(&self, new_status: &ScheduledWorkflowStatus, runs: &[ObservedRun]) {
        let owner = &self.target.owner;
        let summary = status::summary_condition(new_status).map_or("", |c| c.type_.as_str());
        let active = runs.iter().filter(|r| r.is_active()).count();
        self.ctx.metrics.schedule(&owner.uid, summary, active);
        let streak = runstate::failure_streak(runs).len();
        self.ctx
            .metrics
            .failure_streak(&owner.uid, &owner.namespace, &owner.name, streak);
    }
}

/// Called by the controller when a pass fails: see `retry_after`.
pub fn error_policy(obj: Arc<SwfObject>, error: &Error, ctx: Arc<Context>) -> Action {
    retry_after(&obj, error, &ctx).into()
}

/// When to try a failed pass again: counts the failure by reason, logs it, publishes a
/// Warning event for failures a user can act on, and backs off per object.
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
