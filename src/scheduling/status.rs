//! Pure computation of `status`: KFP's single summary condition, trigger state, history.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    model::crd::{
        BackfillStatus, Condition, ScheduledWorkflowStatus, Summary, SuspensionStatus, TriggerStatus, WorkflowHistory,
    },
    scheduling::{failure_policy::SUSPENDED_REASON, runstate::RunsSummary, schedule::TriggerState},
};

/// The message of a schedule disabled because `spec.enabled` was left out.
pub const ENABLED_UNSET_MESSAGE: &str = "The schedule is disabled: spec.enabled is not set, and it is false by default (as in KFP). Set spec.enabled: true to run it.";
/// kstatus' conditions (`kubectl wait --for=condition=Ready`, Flux, Argo CD).
pub const READY: &str = "Ready";
pub const STALLED: &str = "Stalled";

/// KFP's summary condition. KFP's API server reads the last condition (`ConditionSummary`), so
/// it is kept last; it is found by type, so Ready and Stalled are never read as it.
pub fn summary_condition(status: &ScheduledWorkflowStatus) -> Option<&Condition> {
    status.conditions.iter().rev().find(|c| Summary::of(c).is_some())
}

/// Which summary the status carries.
pub fn summary_of(status: &ScheduledWorkflowStatus) -> Option<Summary> {
    summary_condition(status).and_then(Summary::of)
}

fn time(t: Option<Timestamp>) -> Option<Time> {
    t.map(Time)
}

/// The trigger state status records, as it is (not raised to the runs that exist): what is
/// durable, for decisions that must not rest on runs about to be deleted, and for readers.
pub fn recorded_state(t: &TriggerStatus) -> TriggerState {
    TriggerState {
        last_triggered: t.last_triggered_time.as_ref().map(|t| t.0),
        last_index: t.last_workflow_index.unwrap_or(0),
        skip_through: t.skip_through.as_ref().map(|t| t.0),
    }
}

/// The trigger state to plan from: status, raised to what the runs that exist show (status is
/// a report, and may lag: KFP's controller leaves it one tick behind while a run is active).
/// Re-enabling (or resuming) a schedule that has had a run moves `skipThrough` to `now`, so
/// ticks that fell during the pause are not backfilled (KFP #8344). Status says it was paused
/// (`pausedAt`, or, as KFP's controller and older versions wrote it, a `Disabled` summary).
pub fn trigger_state(
    current: &ScheduledWorkflowStatus,
    runs: &RunsSummary,
    enabled: bool,
    now: Timestamp,
) -> TriggerState {
    let t = &current.trigger;
    let last_triggered = t.last_triggered_time.as_ref().map(|t| t.0).max(runs.latest_tick);
    let last_index = t.last_workflow_index.unwrap_or(0).max(runs.highest_index);
    let mut skip_through = t.skip_through.as_ref().map(|t| t.0);
    if enabled && was_paused(current) && last_index > 0 {
        skip_through = Some(skip_through.map_or(now, |s| s.max(now)));
    }
    TriggerState {
        last_triggered,
        last_index,
        skip_through,
    }
}

/// Status recorded a pause (disabled or suspended) that has not been lifted yet.
pub fn was_paused(current: &ScheduledWorkflowStatus) -> bool {
    current.trigger.paused_at.is_some() || summary_of(current) == Some(Summary::Disabled)
}

/// `pausedAt` after a pass: kept from when the pause began, gone once the schedule runs again.
fn paused_at(current: &ScheduledWorkflowStatus, paused: bool, now: Timestamp) -> Option<Time> {
    paused.then(|| current.trigger.paused_at.clone().unwrap_or(Time(now)))
}

fn condition(
    current: &ScheduledWorkflowStatus,
    summary: Summary,
    reason: &str,
    message: String,
    now: Timestamp,
) -> Condition {
    let since = match summary_condition(current) {
        Some(c) if Summary::of(c) == Some(summary) => c.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    Condition {
        type_: summary.as_str().into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: since,
        observed_generation: None,
    }
}

/// Ready (and, for an `Error`, Stalled) in front of KFP's summary, which stays last.
fn with_kstatus(
    current: &ScheduledWorkflowStatus,
    summary: Condition,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    // A spec that cannot run, and a schedule suspended by its failure policy, wait for a person.
    let failed = Summary::of(&summary) == Some(Summary::Error) || summary.reason.as_deref() == Some(SUSPENDED_REASON);
    let mut conditions = vec![kstatus(current, READY, !failed, &summary, generation, now)];
    if failed {
        conditions.push(kstatus(current, STALLED, true, &summary, generation, now));
    }
    conditions.push(summary);
    conditions
}

fn kstatus(
    current: &ScheduledWorkflowStatus,
    type_: &str,
    holds: bool,
    summary: &Condition,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if holds { "True" } else { "False" };
    let since = match current.conditions.iter().find(|c| c.type_ == type_) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: summary.reason.clone(),
        message: summary.message.clone(),
        last_transition_time: since,
        observed_generation: generation,
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

/// Status of a spec that cannot be scheduled: an `Error` condition; history and trigger kept
/// (a pause stays recorded, and one begins when the spec says `enabled: false`).
pub fn invalid(
    current: &ScheduledWorkflowStatus,
    generation: Option<i64>,
    problem: &Problem,
    disabled: bool,
    now: Timestamp,
) -> ScheduledWorkflowStatus {
    let mut status = current.clone();
    let summary = condition(current, Summary::Error, &problem.reason, problem.message.clone(), now);
    status.conditions = with_kstatus(current, summary, generation, now);
    status.trigger.next_triggered_time = None;
    if disabled {
        status.trigger.paused_at = paused_at(current, true, now);
    }
    generation_fields(current, &mut status, generation, now);
    status
}

/// Why the schedule is not doing what its spec asks (a failing create): shown as an `Error`
/// condition until a pass succeeds.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub reason: String,
    pub message: String,
}

/// What a valid pass observed and decided.
pub struct Observed {
    pub problem: Option<Problem>,
    /// `spec.enabled`.
    pub enabled: bool,
    /// `spec.enabled` is not in the stored object (false by default).
    pub enabled_unset: bool,
    /// Disabled, or suspended by the failure policy: nothing of the schedule's own runs.
    pub paused: bool,
    pub one_off: bool,
    pub state: TriggerState,
    pub last_run_now: Option<String>,
    pub next: Option<Timestamp>,
    pub history: WorkflowHistory,
    pub schedule: String,
    pub ended: bool,
    /// spec.failurePolicy's state; its message when it holds the schedule suspended.
    pub suspension: Option<SuspensionStatus>,
    pub suspended_message: Option<String>,
    pub backfill: Option<BackfillStatus>,
}

/// KFP's summary condition type, reason and message (`getStatusAndMessage`). A schedule
/// suspended by its failure policy is `Disabled` (KFP's readers see a schedule that does not
/// run) with its own reason.
fn summary(o: &Observed, active: i64) -> (Summary, &'static str, String) {
    if let Some(message) = &o.suspended_message {
        return (Summary::Disabled, SUSPENDED_REASON, message.clone());
    }
    let summary = if o.one_off {
        if o.state.last_index > 0 && active == 0 {
            Summary::Succeeded
        } else {
            Summary::Running
        }
    } else if o.enabled {
        Summary::Enabled
    } else {
        Summary::Disabled
    };
    let message = if summary == Summary::Disabled && o.enabled_unset {
        ENABLED_UNSET_MESSAGE.to_string()
    } else if o.ended && !o.one_off && o.enabled {
        "The schedule is enabled; it has no tick left before its endTime.".to_string()
    } else {
        summary.kfp_message().to_string()
    };
    (summary, summary.as_str(), message)
}

pub fn compute(
    current: &ScheduledWorkflowStatus,
    generation: Option<i64>,
    o: Observed,
    now: Timestamp,
) -> ScheduledWorkflowStatus {
    let active = o.history.active.len() as i64;
    let summary = match &o.problem {
        Some(p) => condition(current, Summary::Error, &p.reason, p.message.clone(), now),
        None => {
            let (summary, reason, message) = summary(&o, active);
            condition(current, summary, reason, message, now)
        }
    };
    let mut status = ScheduledWorkflowStatus {
        conditions: with_kstatus(current, summary, generation, now),
        trigger: TriggerStatus {
            last_triggered_time: time(o.state.last_triggered),
            next_triggered_time: time(o.next),
            last_workflow_index: (o.state.last_index > 0).then_some(o.state.last_index),
            skip_through: time(o.state.skip_through),
            last_run_now: o.last_run_now,
            paused_at: paused_at(current, o.paused, now),
        },
        workflow_history: o.history,
        active_runs: Some(active),
        schedule: Some(o.schedule),
        backfill: o.backfill,
        suspension: o.suspension,
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
            problem: None,
            enabled,
            enabled_unset: false,
            paused: !enabled,
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
            suspension: None,
            suspended_message: None,
            backfill: None,
        }
    }

    #[test]
    fn a_schedule_disabled_by_leaving_out_enabled_says_so() {
        let now = at("2026-01-01T01:30:00Z");
        let unset = compute(
            &Default::default(),
            Some(1),
            Observed {
                enabled_unset: true,
                ..observed(false)
            },
            now,
        );
        let summary = summary_condition(&unset).unwrap();
        assert_eq!(Summary::of(summary), Some(Summary::Disabled));
        assert_eq!(summary.message.as_deref(), Some(ENABLED_UNSET_MESSAGE));
        let set_false = compute(&Default::default(), Some(1), observed(false), now);
        assert_eq!(
            summary_condition(&set_false).unwrap().message.as_deref(),
            Some(Summary::Disabled.kfp_message())
        );
    }

    #[test]
    fn a_suspended_schedule_is_disabled_for_kfp_and_stalled_for_kstatus_and_resumes_without_backfilling() {
        let enabled = compute(&Default::default(), Some(1), observed(true), at("2026-01-01T01:00:01Z"));
        let mut o = observed(true);
        o.suspended_message = Some("Suspended after 3 runs in a row failed (a, b, c)".into());
        let suspended = compute(&enabled, Some(1), o, at("2026-01-01T02:00:00Z"));
        let kinds: Vec<(&str, &str)> = suspended
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(kinds, [("Ready", "False"), ("Stalled", "True"), ("Disabled", "True")]);
        let summary = summary_condition(&suspended).unwrap();
        assert_eq!(summary.reason.as_deref(), Some(SUSPENDED_REASON));
        assert!(summary.message.as_deref().unwrap().contains("a, b, c"));
        // Resumed: the ticks that fell while suspended are not run.
        let state = trigger_state(&suspended, &RunsSummary::default(), true, at("2026-01-01T05:00:00Z"));
        assert_eq!(state.skip_through, Some(at("2026-01-01T05:00:00Z")));
    }

    #[test]
    fn same_observation_gives_identical_status_so_nothing_is_written() {
        let first = compute(&Default::default(), Some(1), observed(true), at("2026-01-01T01:00:01Z"));
        let second = compute(&first, Some(1), observed(true), at("2026-01-01T01:30:00Z"));
        assert_eq!(first, second, "no heartbeat fields (KFP #8757)");
        assert_eq!(summary_condition(&first).unwrap().type_, "Enabled");
        assert_eq!(first.trigger.last_workflow_index, Some(1));
    }

    #[test]
    fn transition_time_moves_only_on_type_change_and_reenable_skips_the_pause() {
        let enabled = compute(&Default::default(), Some(1), observed(true), at("2026-01-01T01:00:01Z"));
        let disabled = compute(&enabled, Some(2), observed(false), at("2026-01-01T01:10:00Z"));
        assert_eq!(summary_condition(&disabled).unwrap().type_, "Disabled");
        assert_eq!(
            summary_condition(&disabled).unwrap().last_transition_time,
            Some(Time(at("2026-01-01T01:10:00Z")))
        );
        assert_eq!(disabled.spec_updated_at, Some(Time(at("2026-01-01T01:10:00Z"))));
        let none = RunsSummary::default();
        let state = trigger_state(&disabled, &none, true, at("2026-01-01T05:00:00Z"));
        assert_eq!(state.skip_through, Some(at("2026-01-01T05:00:00Z")));
        assert_eq!(
            trigger_state(&enabled, &none, true, at("2026-01-01T05:00:00Z")).skip_through,
            None
        );
        // A schedule that never ran (created disabled) is not paused: enabling it catches up.
        let mut never_ran = disabled.clone();
        never_ran.trigger = Default::default();
        assert_eq!(
            trigger_state(&never_ran, &none, true, at("2026-01-01T05:00:00Z")).skip_through,
            None
        );
    }

    /// Issue 18, bug 2: an `Error` written while disabled hid the pause, and re-enabling ran
    /// every tick of it.
    #[test]
    fn an_error_while_disabled_does_not_turn_re_enabling_into_a_catch_up() {
        let enabled = compute(&Default::default(), Some(1), observed(true), at("2026-01-01T01:00:01Z"));
        let disabled = compute(&enabled, Some(2), observed(false), at("2026-01-01T01:10:00Z"));
        assert_eq!(disabled.trigger.paused_at, Some(Time(at("2026-01-01T01:10:00Z"))));
        let problem = Problem {
            reason: "UnknownRunKind".into(),
            message: "run kind example.com/v1 Thing is not served".into(),
        };
        let error = invalid(&disabled, Some(2), &problem, true, at("2026-01-01T01:20:00Z"));
        assert_eq!(summary_condition(&error).unwrap().type_, Summary::Error.as_str());
        let state = trigger_state(&error, &RunsSummary::default(), true, at("2026-01-01T05:00:00Z"));
        assert_eq!(
            state.skip_through,
            Some(at("2026-01-01T05:00:00Z")),
            "the pause is skipped"
        );
        let running = compute(&error, Some(3), observed(true), at("2026-01-01T05:00:00Z"));
        assert_eq!(running.trigger.paused_at, None, "the pause ends once the schedule runs");
    }

    #[test]
    fn runs_that_exist_raise_a_lagging_status() {
        // KFP's controller leaves status one tick behind while the run is active.
        let lagging = compute(&Default::default(), Some(1), observed(true), at("2026-01-01T01:00:01Z"));
        let runs = RunsSummary {
            latest_tick: Some(at("2026-01-01T02:00:00Z")),
            highest_index: 2,
            active: 1,
            backfill_active: 0,
        };
        let state = trigger_state(&lagging, &runs, true, at("2026-01-01T02:00:05Z"));
        assert_eq!(state.last_triggered, Some(at("2026-01-01T02:00:00Z")));
        assert_eq!(state.last_index, 2);
        // ... and never lower it (runs may have been deleted).
        let state = trigger_state(&lagging, &RunsSummary::default(), true, at("2026-01-01T02:00:05Z"));
        assert_eq!(state.last_triggered, Some(at("2026-01-01T01:00:00Z")));
    }

    #[test]
    fn a_problem_shows_as_an_error_condition() {
        let mut o = observed(true);
        o.problem = Some(Problem {
            reason: "RunCreateFailed".into(),
            message: "creating run x: forbidden".into(),
        });
        let s = compute(&Default::default(), Some(1), o, at("2026-01-01T01:00:01Z"));
        assert_eq!(summary_condition(&s).unwrap().type_, "Error");
        assert_eq!(
            summary_condition(&s).unwrap().reason.as_deref(),
            Some("RunCreateFailed")
        );
    }

    #[test]
    fn invalid_spec_sets_error_and_keeps_history() {
        let ok = compute(&Default::default(), Some(1), observed(true), at("2026-01-01T01:00:01Z"));
        let bad = invalid(
            &ok,
            Some(2),
            &Problem {
                reason: "InvalidSpec".into(),
                message: "spec.timeZone: unknown".into(),
            },
            false,
            at("2026-01-01T01:05:00Z"),
        );
        assert_eq!(summary_condition(&bad).unwrap().type_, "Error");
        assert_eq!(
            summary_condition(&bad).unwrap().message.as_deref(),
            Some("spec.timeZone: unknown")
        );
        assert_eq!(bad.trigger.last_workflow_index, Some(1));
        assert_eq!(bad.trigger.next_triggered_time, None);
    }

    /// KFP's one-off run (`triggerTime` in the past): Running until its run has been created
    /// and has finished, then Succeeded.
    #[test]
    fn a_one_off_schedule_succeeds_once_its_run_has_finished() {
        let one_off = |last_index: i64, active: usize| {
            let mut o = observed(true);
            o.one_off = true;
            o.state.last_index = last_index;
            o.history.active = vec![crate::model::crd::WorkflowStatus::default(); active];
            let status = compute(&Default::default(), Some(1), o, at("2026-01-01T01:00:01Z"));
            summary_of(&status)
        };
        assert_eq!(one_off(0, 0), Some(Summary::Running), "not run yet");
        assert_eq!(one_off(1, 1), Some(Summary::Running), "its run is running");
        assert_eq!(one_off(1, 0), Some(Summary::Succeeded), "its run has finished");
    }

    /// The summary's message says when an enabled recurring schedule has no tick left; a
    /// one-off or a disabled schedule keeps its own message.
    #[test]
    fn an_enabled_schedule_past_its_end_says_it_has_no_tick_left() {
        let message = |enabled: bool, one_off: bool, ended: bool| {
            let mut o = observed(enabled);
            (o.one_off, o.ended) = (one_off, ended);
            let status = compute(&Default::default(), Some(1), o, at("2026-01-01T01:00:01Z"));
            summary_condition(&status)
                .and_then(|c| c.message.clone())
                .unwrap_or_default()
        };
        let no_tick_left = "The schedule is enabled; it has no tick left before its endTime.";
        assert_eq!(message(true, false, true), no_tick_left);
        assert_ne!(message(true, false, false), no_tick_left, "not ended");
        assert_ne!(message(false, false, true), no_tick_left, "disabled");
        assert_ne!(message(true, true, true), no_tick_left, "a one-off");
    }

    /// KFP's readers find the number of active runs and the schedule as text in the status.
    #[test]
    fn status_counts_the_active_runs_and_shows_the_schedule() {
        let mut o = observed(true);
        o.history.active = vec![crate::model::crd::WorkflowStatus::default(); 2];
        let status = compute(&Default::default(), Some(1), o, at("2026-01-01T01:00:01Z"));
        assert_eq!(status.active_runs, Some(2));
        assert_eq!(status.schedule.as_deref(), Some("0 0 * * * * (UTC)"));
    }

    fn find<'a>(s: &'a ScheduledWorkflowStatus, type_: &str) -> Option<&'a Condition> {
        s.conditions.iter().find(|c| c.type_ == type_)
    }

    #[test]
    fn kstatus_ready_and_stalled_stand_before_kfps_summary() {
        let ok = compute(&Default::default(), Some(3), observed(true), at("2026-01-01T01:00:01Z"));
        let types: Vec<&str> = ok.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Enabled"], "KFP reads the last one");
        let ready = find(&ok, READY).unwrap();
        assert_eq!((ready.status.as_str(), ready.observed_generation), ("True", Some(3)));
        let disabled = compute(&ok, Some(4), observed(false), at("2026-01-01T01:10:00Z"));
        assert_eq!(
            find(&disabled, READY).unwrap().status,
            "True",
            "a disabled schedule is as asked"
        );
        assert_eq!(
            find(&disabled, READY).unwrap().last_transition_time,
            ready.last_transition_time,
            "Ready did not change"
        );
        // Its own time, not the summary's (Disabled changed at 01:10).
        let still = compute(&disabled, Some(4), observed(false), at("2026-01-01T01:15:00Z"));
        let kept = find(&still, READY).unwrap().last_transition_time.clone();
        assert_eq!(kept, ready.last_transition_time, "Ready did not change since 01:00:01");
        let bad = invalid(
            &disabled,
            Some(5),
            &Problem {
                reason: "InvalidSpec".into(),
                message: "spec.timeZone: unknown".into(),
            },
            false,
            at("2026-01-01T01:20:00Z"),
        );
        let types: Vec<&str> = bad.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Stalled", "Error"]);
        let (ready, stalled) = (find(&bad, READY).unwrap(), find(&bad, STALLED).unwrap());
        assert_eq!((ready.status.as_str(), stalled.status.as_str()), ("False", "True"));
        assert_eq!(stalled.reason.as_deref(), Some("InvalidSpec"));
        assert_eq!(stalled.observed_generation, Some(5));
        assert_eq!(ready.last_transition_time, Some(Time(at("2026-01-01T01:20:00Z"))));
        let fixed = compute(&bad, Some(6), observed(true), at("2026-01-01T01:30:00Z"));
        assert!(find(&fixed, STALLED).is_none(), "Stalled goes once the spec runs");
    }
}
