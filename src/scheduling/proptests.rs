//! Property tests: no input makes the pure modules panic. The cron parser, the macro
//! formatter, validation, planning and rendering get arbitrary text and arbitrary specs
//! (proptest's default 256 cases each, so CI stays quick).

use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::scheduling::{
    cron,
    kfp_macros::MacroContext,
    render::{self, Owner, RunRequest},
    schedule::{self, PlanInput, TriggerState},
    validate,
};

/// Any instant jiff can hold.
fn instant() -> impl Strategy<Value = Timestamp> {
    (Timestamp::MIN.as_second()..=Timestamp::MAX.as_second())
        .prop_map(|s| Timestamp::from_second(s).unwrap_or_default())
}

/// Text that looks like cron, and text that does not.
fn cron_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9*/,?@A-Za-z -]{0,40}",
        "(@every )?[0-9]{0,6}(ns|us|ms|s|m|h)?",
        "([0-9*?/,-]{1,6} ){4,6}",
        any::<String>(),
    ]
}

/// Any text, and text made of the characters of Go's layout elements (and one that is not ASCII),
/// which reaches every branch of the tokenizer in `macros`.
fn go_layout() -> impl Strategy<Value = String> {
    prop_oneof![".{0,20}", "[-0-9_.,:ZJMSTPpadnoyurt日]{0,24}"]
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,10}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Specs built from plausible and implausible values for each field.
fn spec_value() -> impl Strategy<Value = Value> {
    (
        prop::option::of(any::<i64>()),
        prop::option::of(any::<i64>()),
        cron_text(),
        any::<i64>(),
        prop::option::of(instant()),
        prop::option::of(instant()),
        0..4u8,
        json_value(),
        prop::option::of(".{0,30}"),
    )
        .prop_map(|(mc, mh, cron, interval, start, end, shape, spec, tz)| {
            let time = |t: Option<Timestamp>| t.map(|t| t.to_string());
            let trigger = match shape % 3 {
                0 => json!({"cronSchedule": {"cron": cron, "startTime": time(start), "endTime": time(end)}}),
                1 => json!({"periodicSchedule": {"intervalSecond": interval, "startTime": time(start), "endTime": time(end)}}),
                _ => json!({}),
            };
            let source = if shape == 3 {
                json!({"runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": spec}})
            } else {
                json!({"workflow": {"spec": spec, "parameters": [{"name": "p", "value": "[[ScheduledTime.2006]]"}]}})
            };
            let mut v = json!({"enabled": true, "maxConcurrency": mc, "maxHistory": mh, "trigger": trigger, "timeZone": tz});
            if let (Value::Object(a), Value::Object(b)) = (&mut v, source) {
                a.extend(b);
            }
            strip_nulls(&mut v);
            v
        })
}

fn strip_nulls(v: &mut Value) {
    if let Value::Object(map) = v {
        map.retain(|_, v| !v.is_null());
        map.values_mut().for_each(strip_nulls);
    }
}

proptest! {
    #[test]
    fn cron_never_panics(text in cron_text(), at in instant()) {
        if let Ok(cron::CronExpr::Calendar(c)) = cron::parse(&text) {
            let _ = c.next_after(at, &jiff::tz::TimeZone::UTC);
            let _ = c.latest_at_or_before(at, &jiff::tz::TimeZone::UTC);
        }
    }

    #[test]
    fn macros_never_panic(text in ".{0,60}", layout in go_layout(), scheduled in instant(), index in any::<i64>()) {
        let m = MacroContext { scheduled, current: scheduled, index, run_uuid: "u".into() };
        let _ = m.expand(&text);
        let _ = m.expand(&format!("[[ScheduledTime.{layout}]] {{{{$.currentTime.strftime('{layout}')}}}}"));
    }

    #[test]
    fn validate_plan_and_render_never_panic(spec in spec_value(), created in instant(), now in instant(), active in 0..20usize) {
        let Ok(spec) = serde_json::from_value::<crate::model::crd::ScheduledWorkflowSpec>(spec) else { return Ok(()) };
        let Ok(v) = validate::validate(&spec, "UTC") else { return Ok(()) };
        let plan = schedule::plan(&PlanInput {
            schedule: &v.schedule,
            enabled: spec.enabled,
            no_catchup: v.no_catchup,
            max_concurrency: v.max_concurrency,
            policy: v.policy,
            created,
            state: TriggerState::default(),
            taken: &schedule::NOTHING_TAKEN,
            active,
            replaceable: active,
            now,
        });
        let owner = Owner { name: "n".into(), namespace: "ns".into(), uid: "u".into() };
        for r in &plan.runs {
            let req = RunRequest {
                name: render::run_name("n", r.scheduled),
                scheduled: r.scheduled,
                index: r.index,
                run_uuid: "u".into(),
                origin: render::Origin::Scheduled,
            };
            let obj = render::render(&owner, spec.service_account.as_deref(), &v, &req, now);
            prop_assert!(obj["metadata"]["name"].as_str().is_some_and(|n| n.len() <= 63));
        }
    }

    #[test]
    fn manifests_never_panic(text in ".{0,200}") {
        let _ = crate::model::manifest::parse(&text);
        let _ = crate::model::manifest::parse_yaml_documents(&text);
    }
}

/// A schedule the operator could be running: a few cron shapes and periodic intervals, in a
/// few zones (one with 30-minute DST), with or without a startTime.
fn any_schedule() -> impl Strategy<Value = schedule::Schedule> {
    let crons = [
        "0 * * * * *",
        "*/20 * * * * *",
        "0 30 2 * * *",
        "0 0 */3 * * 1-5",
        "15,45 10 * * * *",
    ];
    let zones = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
    ];
    (
        0..crons.len() + 3,
        0..zones.len(),
        7..7_200i64,
        prop::option::of(0..400_000i64),
    )
        .prop_map(move |(shape, zone, interval, start)| {
            let time_zone = jiff::tz::TimeZone::get(zones[zone]).unwrap_or(jiff::tz::TimeZone::UTC);
            let start = start.map(|s| Timestamp::from_second(1_767_000_000 + s).unwrap_or_default());
            match crons.get(shape) {
                Some(c) => match cron::parse(c) {
                    Ok(expr) => schedule::Schedule::cron(expr, start, None, time_zone),
                    Err(_) => unreachable!("the crons above parse"),
                },
                None => schedule::Schedule {
                    cadence: schedule::Cadence::Every { seconds: interval },
                    start,
                    end: None,
                    time_zone,
                },
            }
        })
}

proptest! {
    /// One tick model: a backfill over a range creates exactly the ticks the planner runs over
    /// the same range, from the same history (last tick, skipThrough, creation), whatever the
    /// grid's origin.
    #[test]
    fn backfill_ticks_are_the_planners_ticks(
        s in any_schedule(),
        last in prop::option::of(0..500_000i64),
        skip in prop::option::of(0..500_000i64),
        created in 0..500_000i64,
        from in 0..600_000i64,
        len in 1..40_000i64,
    ) {
        let t = |offset: i64| Timestamp::from_second(1_767_000_000 + offset).unwrap_or_default();
        let state = TriggerState { last_triggered: last.map(t), last_index: i64::from(last.is_some()), skip_through: skip.map(t) };
        let (created, from, to) = (t(created), t(from), t(from + len));
        let position = state.position(&s, created);
        prop_assume!(from > position.floor);
        let range = crate::scheduling::backfill::Range { from, to };
        let Ok(backfilled) = crate::scheduling::backfill::ticks(position.grid(&s), range) else { return Ok(()) };
        let mut planned = Vec::new();
        let mut state = state;
        let before_to = to.checked_sub(jiff::SignedDuration::from_nanos(1)).unwrap_or(to);
        while planned.len() <= backfilled.len() {
            let plan = schedule::plan(&PlanInput {
                schedule: &s,
                enabled: true,
                no_catchup: false,
                max_concurrency: 10,
                policy: Default::default(),
                created,
                state: state.clone(),
                taken: &schedule::NOTHING_TAKEN,
                active: 0,
                replaceable: 0,
                now: before_to,
            });
            if plan.runs.is_empty() {
                break;
            }
            planned.extend(plan.runs.iter().map(|r| r.scheduled).filter(|t| *t >= from));
            state = plan.state;
        }
        prop_assert_eq!(planned, backfilled);
    }
}
