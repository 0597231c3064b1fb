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

impl Next {
    /// The same wake-up, asked for `spent` after the pass read its clock. kube-runtime counts
    /// a requeue's delay from when the pass returns, so a pass that took seconds (its status
    /// write waiting behind a tick's creates) would otherwise wake that much after the next
    /// tick, and the tick's runs would all start late by it.
    pub fn less(self, spent: Duration) -> Next {
        match self {
            Next::After(delay) => Next::After(delay.saturating_sub(spent)),
            Next::OnChange => Next::OnChange,
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

/// A slot held by a run known only from the status or from this process's creates stops
/// counting at `expires` (`runs::recorded_expiry`, `RecentCreates::unseen_expiry`), and no
/// event will say so: the pass looks again then at the latest.
pub(super) fn no_later_than(next: Next, expires: Option<Timestamp>, now: Timestamp) -> Next {
    let Some(expires) = expires else { return next };
    // A moment after it, so the run no longer counts when the pass comes.
    let at_expiry = Duration::try_from(expires.duration_since(now)).unwrap_or(Duration::ZERO) + REPLAN;
    match next {
        Next::After(delay) => Next::After(delay.min(at_expiry)),
        Next::OnChange => Next::After(at_expiry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduling::schedule::TriggerState;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn plan(next: Option<&str>, waiting: bool) -> Plan {
        Plan {
            runs: vec![],
            replace: 0,
            skipped: vec![],
            state: TriggerState::default(),
            next: next.map(at),
            waiting,
        }
    }

    #[test]
    fn a_wake_up_is_shortened_by_the_time_the_pass_took_and_never_below_zero() {
        let spent = Duration::from_secs(3);
        assert_eq!(
            Next::After(Duration::from_secs(60)).less(spent),
            Next::After(Duration::from_secs(57))
        );
        assert_eq!(Next::After(REPLAN).less(spent), Next::After(Duration::ZERO));
        assert_eq!(Next::OnChange.less(spent), Next::OnChange);
    }

    fn backfill(next: Option<&str>) -> Backfilled {
        Backfilled {
            next: next.map(at),
            ..Backfilled::waiting(None)
        }
    }

    #[test]
    fn the_pass_comes_back_exactly_at_the_next_tick() {
        let next = after_pass(
            &plan(Some("2026-01-01T00:00:30Z"), false),
            false,
            &backfill(None),
            at(NOW),
        );
        assert_eq!(next, Next::After(Duration::from_secs(30)));
    }

    #[test]
    fn a_tick_waiting_for_a_slot_is_woken_by_run_events_with_a_safety_net() {
        let next = after_pass(
            &plan(Some("2025-12-31T23:59:00Z"), true),
            false,
            &backfill(None),
            at(NOW),
        );
        assert_eq!(next, Next::After(WAITING_SAFETY_NET));
    }

    #[test]
    fn the_sooner_of_the_schedules_tick_and_the_backfills_comes_first() {
        let later_tick = plan(Some("2026-01-01T00:10:00Z"), false);
        let next = after_pass(&later_tick, false, &backfill(Some("2026-01-01T00:00:05Z")), at(NOW));
        assert_eq!(next, Next::After(Duration::from_secs(5)));
        // A backfill tick already due waits for a slot: run events wake it.
        let next = after_pass(&later_tick, false, &backfill(Some("2025-12-31T00:00:00Z")), at(NOW));
        assert_eq!(next, Next::After(WAITING_SAFETY_NET));
        // Due this instant and not created: it waits too (not a pass again at once, a hot loop).
        let next = after_pass(&later_tick, false, &backfill(Some(NOW)), at(NOW));
        assert_eq!(next, Next::After(WAITING_SAFETY_NET));
    }

    #[test]
    fn more_to_do_at_once_comes_back_at_once_and_nothing_to_do_waits_for_a_change() {
        let idle = plan(None, false);
        assert_eq!(after_pass(&idle, true, &backfill(None), at(NOW)), Next::After(REPLAN));
        let replan = Backfilled {
            replan: true,
            ..backfill(None)
        };
        assert_eq!(after_pass(&idle, false, &replan, at(NOW)), Next::After(REPLAN));
        assert_eq!(after_pass(&idle, false, &backfill(None), at(NOW)), Next::OnChange);
    }

    #[test]
    fn a_slot_held_by_a_run_known_only_from_the_status_is_looked_at_again_when_it_expires() {
        let expires = Some(at("2026-01-01T00:00:40Z"));
        let at_expiry = Next::After(Duration::from_secs(40) + REPLAN);
        assert_eq!(
            no_later_than(Next::After(WAITING_SAFETY_NET), expires, at(NOW)),
            at_expiry
        );
        assert_eq!(no_later_than(Next::OnChange, expires, at(NOW)), at_expiry);
        let sooner = Next::After(Duration::from_secs(5));
        assert_eq!(no_later_than(sooner, expires, at(NOW)), sooner);
        assert_eq!(no_later_than(Next::OnChange, None, at(NOW)), Next::OnChange);
    }
}
