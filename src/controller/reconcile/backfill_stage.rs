//! Stage: the backfill (docs/backfill.md). Creates the request's due ticks within the
//! backfill's own slots, oldest first, on the schedule's grid, leaving to the schedule the
//! ticks it may still create itself; reports progress (events when it starts, finishes, is
//! cancelled or is invalid).

use jiff::Timestamp;
use tracing::warn;

use super::{MAX_TICK_ATTEMPTS, Pass, create::Outcome};
use crate::{
    controller::{error::Error, events::Kind},
    model::{
        crd::{BackfillPhase, BackfillStatus},
        keys::BACKFILL_ANNOTATION,
    },
    scheduling::{
        backfill,
        render::{self, Origin, RunRequest},
        runstate::{self, ObservedRun},
        schedule::{Claim, TriggerState},
        status::Problem,
    },
    serve::kube_error::status_code,
};

/// What the backfill stage did.
pub(super) struct Backfilled {
    /// What status.backfill becomes.
    pub status: Option<BackfillStatus>,
    /// The tick the backfill waits for (a slot, or its time), while it runs.
    pub next: Option<Timestamp>,
    /// The highest `workflowIndex` it gave a run (0 for none).
    pub last_index: i64,
    pub problem: Option<Problem>,
    pub failure: Option<Error>,
    /// Plan again at once: a tick was skipped, or a due tick has a free slot.
    pub replan: bool,
}

impl Backfilled {
    /// Nothing done this pass; status.backfill stays `status`.
    pub fn waiting(status: Option<BackfillStatus>) -> Backfilled {
        Backfilled {
            status,
            next: None,
            last_index: 0,
            problem: None,
            failure: None,
            replan: false,
        }
    }
}

impl Pass<'_> {
    pub(super) fn backfill_request(&self) -> Option<backfill::Request> {
        let tz = &self.checked.v.schedule.time_zone;
        let annotation = self.target.annotation(BACKFILL_ANNOTATION);
        backfill::Request::read(annotation, self.current.backfill.as_ref(), tz)
    }

    /// Runs after the schedule's own stage: `state` is its trigger state once its runs exist.
    pub(super) async fn backfill(
        &self,
        request: Option<backfill::Request>,
        state: &TriggerState,
        paused: bool,
        runs: &mut Vec<ObservedRun>,
    ) -> Result<Backfilled, Error> {
        let current = self.current.backfill.as_ref();
        let existing = runstate::ticks_with_runs(runs);
        let schedule = &self.checked.v.schedule;
        let created = self.created();
        let claim = Claim::of(schedule, state, created, paused, self.now);
        let situation = backfill::Situation {
            schedule,
            grid: state.position(schedule, created).grid(schedule),
            claim,
            existing: &existing,
            active: runstate::summarize(runs).backfill_active,
            max_concurrency: self.checked.v.max_concurrency,
            now: self.now,
        };
        let (request, ticks, plan) = match backfill::decide(request, current, &situation) {
            backfill::Decision::Work { request, ticks, plan } => (request, ticks, plan),
            backfill::Decision::Report(status) => {
                self.announce_backfill(current, status.as_ref());
                return Ok(Backfilled::waiting(status));
            }
        };
        let mut out = Backfilled::waiting(None);
        let mut handled = Vec::new();
        let mut gave_up = None;
        for &tick in &plan.create {
            let req = RunRequest {
                name: render::run_name(&self.target.owner.name, tick),
                scheduled: tick,
                index: state.last_index.max(out.last_index) + 1,
                run_uuid: uuid::Uuid::new_v4().to_string(),
                origin: Origin::Backfill(request.value.clone()),
            };
            match self.create_backfill(&req, runs, &mut out).await? {
                Created::Yes => handled.push(tick),
                Created::SkippedTick => {
                    handled.push(tick);
                    break;
                }
                Created::GaveUp(note) => {
                    gave_up = Some(note);
                    break;
                }
                Created::Failed => break,
            }
        }
        let mut status = backfill::progress(&request, &ticks, &existing, &handled, &claim, self.now);
        if let Some(message) = gave_up {
            status = backfill::failed(status, message);
        }
        self.announce_backfill(current, Some(&status));
        let running = status.phase() == Some(BackfillPhase::Running);
        out.next = status.next_tick.as_ref().map(|t| t.0).filter(|_| running);
        let free = runstate::summarize(runs).backfill_active < self.checked.v.max_concurrency;
        out.replan |= out.failure.is_none() && free && out.next.is_some_and(|t| t <= self.now && !claim.covers(t));
        out.status = Some(status);
        Ok(out)
    }

    async fn create_backfill(
        &self,
        req: &RunRequest,
        runs: &mut Vec<ObservedRun>,
        out: &mut Backfilled,
    ) -> Result<Created, Error> {
        match self.create_one(req, runs).await? {
            Outcome::Created { index } | Outcome::Adopted { index } => {
                out.last_index = out.last_index.max(req.index).max(index);
                Ok(Created::Yes)
            }
            Outcome::Conflict => {
                let note = format!(
                    "the name {} is held by an object this ScheduledWorkflow does not own; the backfill skips the tick of {}",
                    req.name, req.scheduled
                );
                warn!(ns = %self.target.owner.namespace, swf = %self.target.owner.name, run = %req.name, "{note}");
                self.publish(Kind::Warning, "RunNameConflict", note);
                out.replan = true;
                Ok(Created::SkippedTick)
            }
            Outcome::Failed {
                error,
                attempts,
                lasting,
            } => {
                let code = error.api_source().and_then(status_code).unwrap_or(0);
                if lasting && attempts >= MAX_TICK_ATTEMPTS {
                    // The backfill stops (a new annotation value starts it again); the schedule goes on.
                    let note = format!("{error} (HTTP {code}); gave up after {attempts} attempts; the backfill stops");
                    self.publish(Kind::Warning, "BackfillFailed", note.clone());
                    return Ok(Created::GaveUp(note));
                }
                out.problem = Some(Problem {
                    reason: error.reason().into(),
                    message: format!("{error} (attempt {attempts}; retrying with backoff)"),
                });
                out.failure = Some(error);
                Ok(Created::Failed)
            }
        }
    }

    /// One event per change of a backfill's range or phase.
    fn announce_backfill(&self, before: Option<&BackfillStatus>, after: Option<&BackfillStatus>) {
        let Some(after) = after else { return };
        if before.is_some_and(|b| b.range == after.range && b.phase == after.phase) {
            return;
        }
        let started = before.is_none_or(|b| b.range != after.range);
        let range = &after.range;
        let (kind, reason, note) = match after.phase() {
            Some(BackfillPhase::Invalid) => (
                Kind::Warning,
                "BackfillInvalid",
                format!("Backfill {range}: {}", after.message.clone().unwrap_or_default()),
            ),
            Some(BackfillPhase::Cancelled) => (
                Kind::Normal,
                "BackfillCancelled",
                format!(
                    "Backfill {range} cancelled after {} of {} ticks",
                    after.done, after.total
                ),
            ),
            Some(BackfillPhase::Finished) => (
                Kind::Normal,
                "BackfillFinished",
                format!(
                    "Backfill {range} finished: {} of {} ticks have runs",
                    after.done, after.total
                ),
            ),
            Some(BackfillPhase::Running) if started => (
                Kind::Normal,
                "BackfillStarted",
                format!("Backfill {range}: {} ticks", after.total),
            ),
            // Failed: BackfillFailed was published with the error.
            Some(BackfillPhase::Running | BackfillPhase::Failed) | None => return,
        };
        self.publish(kind, reason, note);
    }
}

/// How one backfill create went, for the loop.
enum Created {
    Yes,
    /// A foreign object holds the name: the tick is handled without a run.
    SkippedTick,
    /// A lasting failure, retried enough: the backfill stops with this message.
    GaveUp(String),
    /// Retried with backoff (the pass fails after writing status).
    Failed,
}
