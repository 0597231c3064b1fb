//! Stage 1: check the spec. Decode it, validate it, apply KFP's v1-pipeline switch, find the
//! cache of its run kind. A spec that cannot run is reported once (an `Error` condition and
//! one Warning event per change) and not retried until it changes.

use std::sync::Arc;

use jiff::Timestamp;
use tracing::warn;

use super::{Next, Target, write::write_status};
use crate::{
    controller::{
        context::Context,
        error::Error,
        events::Kind,
        runs::{Readiness, RunCache},
    },
    model::crd::{ScheduledWorkflowSpec, ScheduledWorkflowStatus, Summary},
    scheduling::{
        spec_check::check_object,
        status::{self, Problem},
        validate::Validated,
    },
};

/// A spec that passed every check, with the cache of its run kind.
pub(super) struct Checked<'a> {
    pub spec: &'a ScheduledWorkflowSpec,
    pub v: Validated,
    pub cache: Arc<RunCache>,
}

/// What the check found.
pub(super) enum Verdict<'a> {
    /// The schedule can run: go on with the pass.
    Runs(Box<Checked<'a>>),
    /// It cannot (reported); the pass ends here.
    Stop(Next),
}

pub(super) async fn check<'a>(
    ctx: &Context,
    target: &Target<'a>,
    current: &ScheduledWorkflowStatus,
    now: Timestamp,
) -> Result<Verdict<'a>, Error> {
    let (spec, v) = match check_object(target.obj, &target.owner.namespace, &ctx.settings.rules) {
        Ok(checked) => checked,
        Err(problem) => {
            let problem = Problem {
                reason: problem.reason().into(),
                message: problem.to_string(),
            };
            report(ctx, target, current, &problem, now).await?;
            return Ok(Verdict::Stop(Next::OnChange));
        }
    };
    let cache = match find_cache(ctx, &v).await {
        Ok(cache) => cache,
        Err(CacheProblem::Failed(e)) => return Err(e),
        Err(CacheProblem::Report(problem)) => {
            report(ctx, target, current, &problem, now).await?;
            // A CRD installed later, or RBAC granted later, is picked up on a retry.
            return Ok(Verdict::Stop(Next::After(ctx.backoff.failed(&target.owner.uid))));
        }
    };
    if target.generation != current.observed_generation {
        for warning in &v.warnings {
            target.publish(ctx, Kind::Warning, "SpecWarning", warning.clone());
        }
    }
    Ok(Verdict::Runs(Box::new(Checked { spec, v, cache })))
}

enum CacheProblem {
    /// Shown to the user: the kind is unknown or cannot be watched.
    Report(Problem),
    /// Transient (the first list has not finished): the pass fails and is retried.
    Failed(Error),
}

/// The watch cache of the schedule's run kind, ready to read.
async fn find_cache(ctx: &Context, v: &Validated) -> Result<Arc<RunCache>, CacheProblem> {
    let kind = v.source.kind();
    let cache = ctx.runs.get(&kind).await.map_err(|e| {
        CacheProblem::Report(Problem {
            reason: "UnknownRunKind".into(),
            message: format!("run kind {kind} is not served by this cluster ({e}); install its CRD"),
        })
    })?;
    if let Err(e) = cache.wait_ready(ctx.settings.cache_wait).await {
        return Err(match cache.readiness() {
            Readiness::Failing(why) => CacheProblem::Report(Problem {
                reason: "RunKindNotWatchable".into(),
                message: format!("the operator cannot watch {kind}: {why}; grant it list and watch"),
            }),
            _ => CacheProblem::Failed(e),
        });
    }
    Ok(cache)
}

/// Writes an `Error` condition; publishes a Warning event when the condition changes.
async fn report(
    ctx: &Context,
    target: &Target<'_>,
    current: &ScheduledWorkflowStatus,
    problem: &Problem,
    now: Timestamp,
) -> Result<(), Error> {
    let disabled = target.obj.spec.as_ref().is_ok_and(|s| !s.enabled);
    let new = status::invalid(current, target.generation, problem, disabled, now);
    let summary = status::summary_condition(current);
    let message = problem.message.as_str();
    if summary.and_then(|c| c.message.as_deref()) != Some(message)
        || summary.is_some_and(|c| Summary::of(c) != Some(Summary::Error))
    {
        let (ns, name, reason) = (&target.owner.namespace, &target.owner.name, &problem.reason);
        warn!(%ns, %name, %reason, %message, "schedule cannot run");
        target.publish(ctx, Kind::Warning, reason, problem.message.clone());
    }
    ctx.metrics.schedule(&target.owner.uid, Summary::Error.as_str(), 0);
    write_status(ctx, target, new, false, now).await
}
