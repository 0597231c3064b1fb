//! Stage: the next action. Requeue exactly at the next tick (the schedule's, or a backfill's
//! still to come); while a due tick waits for a slot, run events wake the pass; an idle
//! schedule (disabled, ended, one-off done, no backfill running) waits for a change and costs
//! nothing. Pure.

use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;

use super::backfill_stage::Backfilled;
use crate::scheduling::schedule::Plan;

/// How long a pass waits before looking again when there is more to do at once (a tick was
/// skipped, or a slot is free for a due tick).
const REPLAN: Duration = Duration::from_millis(100);
/// While a due tick waits for a watched run to finish, its event wakes the pass; this is the
/// safety net should an event be missed.
const WAITING_SAFETY_NET: Duration = Duration::from_secs(300);

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

/// After a pass that succeeded: `replan` when the schedule's stage has more to do at once.
pub(super) fn after_pass(plan: &Plan, replan: bool, backfilled: &Backfilled, now: Timestamp) -> Next {
    if replan || backfilled.replan {
        return Next::After(REPLAN);
    }
    let until = |t: Timestamp| Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO);
    let scheduled = match plan.next {
        Some(_) if plan.waiting => Some(WAITING_SAFETY_NET),
        Some(t) => Some(until(t)),
        None => None,
    };
    let backfill = backfilled
        .next
        .map(|t| if t > now { until(t) } else { WAITING_SAFETY_NET });
    match scheduled.into_iter().chain(backfill).min() {
        Some(delay) => Next::After(delay),
        None => Next::OnChange,
    }
}
