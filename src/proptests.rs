//! Property tests: no input makes the pure modules panic. The cron parser, the macro
//! formatter, validation, planning and rendering get arbitrary text and arbitrary specs
//! (proptest's default 256 cases each, so CI stays quick).

use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{
    cron,
    macros::MacroContext,
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
        let Ok(spec) = serde_json::from_value::<crate::crd::ScheduledWorkflowSpec>(spec) else { return Ok(()) };
        let Ok(v) = validate::validate(&spec, "UTC") else { return Ok(()) };
        let plan = schedule::plan(&PlanInput {
            schedule: &v.schedule,
            enabled: spec.enabled,
            no_catchup: v.no_catchup,
            max_concurrency: v.max_concurrency,
            policy: v.policy,
            created,
            state: TriggerState::default(),
            active,
            now,
        });
        let owner = Owner { name: "n".into(), namespace: "ns".into(), uid: "u".into() };
        for r in &plan.runs {
            let req = RunRequest {
                name: render::run_name("n", r.scheduled),
                scheduled: r.scheduled,
                index: r.index,
                run_uuid: "u".into(),
                run_now: None,
                backfill: None,
            };
            let obj = render::render(&owner, spec.service_account.as_deref(), &v, &req, now);
            prop_assert!(obj["metadata"]["name"].as_str().is_some_and(|n| n.len() <= 63));
        }
    }

    #[test]
    fn manifests_never_panic(text in ".{0,200}") {
        let _ = crate::manifest::parse(&text);
        let _ = crate::manifest::parse_yaml_documents(&text);
    }
}
