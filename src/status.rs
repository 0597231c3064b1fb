//! Pure computation of `status`: KFP's single summary condition, trigger state, history.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    crd::{Condition, ScheduledWorkflowStatus, TriggerStatus, WorkflowHistory},
    schedule::TriggerState,
};

/// KFP's condition types and messages (`getStatusAndMessage`).
pub const ENABLED: (&str, &str) = ("Enabled", "The schedule is enabled.");
pub const DISABLED: (&str, &str) = ("Disabled", "The schedule is disabled.");
pub const RUNNING: (&str, &str) = ("Running", "The one-off schedule is running.");
pub const SUCCEEDED: (&str, &str) = ("Succeeded", "The one-off schedule has succeeded.");
pub const ERROR: &str = "Error";

fn time(t: Option<Timestamp>) -> Option<Time> {
    t.map(Time)
}

/// The trigger state to plan from. Re-enabling (the last status said `Disabled`) moves
/// `skipThrough` to `now`, so ticks that fell during the pause are not backfilled (KFP #8344).
pub fn trigger_state(current: &ScheduledWorkflowStatus, enabled: bool, now: Timestamp) -> TriggerState {
    let t = &current.trigger;
    let mut state = TriggerState {
        last_triggered: t.last_triggered_time.as_ref().map(|t| t.0),
        last_index: t.last_workflow_index.unwrap_or(0),
        skip_through: t.skip_through.as_ref().map(|t| t.0),
    };
    let was_disabled = current.conditions.first().is_some_and(|c| c.type_ == DISABLED.0);
    if enabled && was_disabled {
        state.skip_through = Some(state.skip_through.map_or(now, |s| s.max(now)));
    }
    state
}

fn condition(
    current: &ScheduledWorkflowStatus,
    type_: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> Condition {
    let since = match current.conditions.first() {
        Some(c) if c.type_ == type_ => c.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    Condition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: since,
    }
}

fn generation_fields(
    current: &ScheduledWorkflowStatus,
    status: &mut ScheduledWorkflowStatus,
    generation: Option<i64>,
    now: Timestamp,
) {
    status.observed_generation = generation;
    status.spec_updated_at = if current.observed_generation == generation && generation.is_some() {
        current.spec_updated_at.clone()
    } else {
        Some(Time(now))
    };
}

/// Status of a spec that cannot be scheduled: an `Error` condition; history and trigger kept.
pub fn invalid(
    current: &ScheduledWorkflowStatus,
    generation: Option<i64>,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> ScheduledWorkflowStatus {
    let mut status = current.clone();
    status.conditions = vec![condition(current, ERROR, reason, message.to_string(), now)];
    status.trigger.next_triggered_time = None;
    generation_fields(current, &mut status, generation, now);
    status
}

/// What a valid pass observed and decided.
pub struct Observed {
    pub enabled: bool,
    pub one_off: bool,
    pub state: TriggerState,
    pub last_run_now: Option<String>,
    pub next: Option<Timestamp>,
    pub history: WorkflowHistory,
    pub schedule: String,
    pub ended: bool,
}

pub fn compute(
    current: &ScheduledWorkflowStatus,
    generation: Option<i64>,
    o: Observed,
    now: Timestamp,
) -> ScheduledWorkflowStatus {
    let active = o.history.active.len() as i64;
    let ((type_, message), reason) = if o.one_off {
        if o.state.last_index > 0 && active == 0 {
            (SUCCEEDED, SUCCEEDED.0)
        } else {
            (RUNNING, RUNNING.0)
        }
    } else if !o.enabled {
        (DISABLED, DISABLED.0)
    } else {
        (ENABLED, ENABLED.0)
    };
    let mut message = message.to_string();
    if o.ended && !o.one_off && o.enabled {
        message = "The schedule is enabled; it has no tick left before its endTime.".into();
    }
    let mut status = ScheduledWorkflowStatus {
        conditions: vec![condition(current, type_, reason, message, now)],
        trigger: TriggerStatus {
            last_triggered_time: time(o.state.last_triggered),
            next_triggered_time: time(o.next),
            last_workflow_index: (o.state.last_index > 0).then_some(o.state.last_index),
            skip_through: time(o.state.skip_through),
            last_run_now: o.last_run_now,
        },
        workflow_history: o.history,
        active_runs: Some(active),
        schedule: Some(o.schedule),
        ..Default::default()
    };
    generation_fields(current, &mut status, generation, now);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn observed(enabled: bool) -> Observed {
        Observed {
            enabled,
            one_off: false,
            state: TriggerState {
                last_triggered: Some(at("2026-01-01T01:00:00Z")),
                last_index: 1,
                skip_through: None,
            },
            last_run_now: None,
            next: Some(at("2026-01-01T02:00:00Z")),
            history: WorkflowHistory::default(),
            schedule: "0 0 * * * * (UTC)".into(),
            ended: false,
        }
    }

    #[test]
    fn same_observation_gives_identical_status_so_nothing_is_written() {
        let first = compute(&Default::default(), Some(1), observed(true), at("2026-01-01T01:00:01Z"));
        let second = compute(&first, Some(1), observed(true), at("2026-01-01T01:30:00Z"));
        assert_eq!(first, second, "no heartbeat fields (KFP #8757)");
        assert_eq!(first.conditions[0].type_, "Enabled");
        assert_eq!(first.trigger.last_workflow_index, Some(1));
    }

    #[test]
    fn transition_time_moves_only_on_type_change_and_reenable_skips_the_pause() {
        let enabled = compute(&Default::default(), Some(1), observed(true), at("2026-01-01T01:00:01Z"));
        let disabled = compute(&enabled, Some(2), observed(false), at("2026-01-01T01:10:00Z"));
        assert_eq!(disabled.conditions[0].type_, "Disabled");
        assert_eq!(
            disabled.conditions[0].last_transition_time,
            Some(Time(at("2026-01-01T01:10:00Z")))
        );
        assert_eq!(disabled.spec_updated_at, Some(Time(at("2026-01-01T01:10:00Z"))));
        let state = trigger_state(&disabled, true, at("2026-01-01T05:00:00Z"));
        assert_eq!(state.skip_through, Some(at("2026-01-01T05:00:00Z")));
        assert_eq!(
            trigger_state(&enabled, true, at("2026-01-01T05:00:00Z")).skip_through,
            None
        );
    }

    #[test]
    fn invalid_spec_sets_error_and_keeps_history() {
        let ok = compute(&Default::default(), Some(1), observed(true), at("2026-01-01T01:00:01Z"));
        let bad = invalid(
            &ok,
            Some(2),
            "InvalidSpec",
            "spec.timeZone: unknown",
            at("2026-01-01T01:05:00Z"),
        );
        assert_eq!(bad.conditions[0].type_, "Error");
        assert_eq!(bad.conditions[0].message.as_deref(), Some("spec.timeZone: unknown"));
        assert_eq!(bad.trigger.last_workflow_index, Some(1));
        assert_eq!(bad.trigger.next_triggered_time, None);
    }
}
