//! What `kubectl swf` prints, from objects and `now`: no client, no clock.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp, tz::TimeZone};

use crate::{
    model::{
        crd::{ScheduledWorkflowSpec, Summary},
        keys::RUN_NOW_REQUEST_ANNOTATION,
        stored::SwfObject,
    },
    scheduling::{
        render::Origin,
        runstate::{self, ObservedRun, Outcome},
        schedule::{self, Cadence, Schedule},
        status::{self, summary_condition},
        ticks::{Grid, Position},
        validate::{self, Validated},
    },
};

/// A schedule as `kubectl swf` reads it: its spec validated as the operator would, and the
/// zone its times are shown in.
pub struct Viewed<'a> {
    pub obj: &'a SwfObject,
    pub validated: Result<Arc<Validated>, String>,
    pub zone: TimeZone,
}

/// The object's spec validated as the operator would.
pub fn validated(obj: &SwfObject, default_tz: &str) -> Result<Arc<Validated>, String> {
    match &obj.spec {
        Ok(spec) => validate::validate(spec, default_tz)
            .map(Arc::new)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

impl<'a> Viewed<'a> {
    pub fn new(obj: &'a SwfObject, default_tz: &str) -> Self {
        Viewed::with(obj, validated(obj, default_tz))
    }

    /// With the spec validated already (`kubectl swf ui` keeps it per object version).
    pub fn with(obj: &'a SwfObject, validated: Result<Arc<Validated>, String>) -> Self {
        let zone = match &validated {
            Ok(v) => v.schedule.time_zone.clone(),
            Err(_) => TimeZone::UTC,
        };
        Viewed { obj, validated, zone }
    }

    fn spec(&self) -> Option<&ScheduledWorkflowSpec> {
        self.obj.spec.as_ref().ok()
    }

    pub fn name(&self) -> &str {
        self.obj.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.obj.metadata.namespace.as_deref().unwrap_or_default()
    }

    fn zone_name(&self) -> String {
        match &self.validated {
            Ok(v) => v.time_zone.clone(),
            Err(_) => "-".into(),
        }
    }

    /// The next `count` fire times: the operator's `nextTriggeredTime` first (what it will
    /// run), then the schedule's own ticks after it.
    pub fn next_fire_times(&self, now: Timestamp, count: usize) -> Vec<Timestamp> {
        let Ok(v) = &self.validated else {
            return vec![];
        };
        if self.paused().is_some() {
            return vec![];
        }
        let position = self.position(&v.schedule, now);
        match self.obj.status.trigger.next_triggered_time.as_ref().map(|t| t.0) {
            Some(next) => {
                let mut ticks = vec![next];
                ticks.extend(schedule::upcoming(&v.schedule, position, next, count.saturating_sub(1)));
                ticks
            }
            None => schedule::upcoming(&v.schedule, position, now, count),
        }
    }

    /// Why the schedule creates no run of its own whatever the time: disabled, or suspended by
    /// its failure policy (spec.enabled is still true then).
    pub fn paused(&self) -> Option<&'static str> {
        let suspended = self
            .obj
            .status
            .suspension
            .as_ref()
            .is_some_and(|s| s.suspended_at.is_some());
        if suspended {
            Some("suspended by spec.failurePolicy")
        } else if self.spec().is_some_and(|s| !s.enabled) {
            Some("disabled")
        } else {
            None
        }
    }

    /// The next fire time as a cell: the time, or why there is none.
    fn next_cell(&self, now: Timestamp) -> String {
        match (self.next_fire_times(now, 1).first(), self.paused()) {
            (Some(t), _) => local(*t, &self.zone),
            (None, Some(why)) => format!("({why})"),
            (None, None) => "-".into(),
        }
    }

    /// A run-now request the operator has not served yet, and what it waits for.
    pub fn pending_run_now(&self, runs: &[ObservedRun]) -> Option<String> {
        let annotations = self.obj.metadata.annotations.as_ref()?;
        let value = annotations.get(RUN_NOW_REQUEST_ANNOTATION).filter(|v| !v.is_empty())?;
        let served = self.obj.status.trigger.last_run_now.as_ref() == Some(value)
            || runs.iter().any(|r| r.origin == Origin::RunNow(value.clone()));
        if served {
            return None;
        }
        let active = self.active(runs);
        let waits = match &self.validated {
            Ok(v) if active >= v.max_concurrency => format!(
                "waits for a free slot ({active} of maxConcurrency {} active); ticks due by then go first",
                v.max_concurrency
            ),
            Ok(_) => "a slot is free: the operator's next pass creates it".into(),
            Err(_) => "the spec cannot run".into(),
        };
        Some(format!("requested ({value:?}); {waits}"))
    }

    /// The schedule's active runs (backfill runs have slots of their own and are not counted);
    /// without the runs, status' active history.
    fn active(&self, runs: &[ObservedRun]) -> usize {
        match runs {
            [] => self.obj.status.workflow_history.active.len(),
            runs => runstate::summarize(runs).active,
        }
    }

    /// Where the schedule stands on its grid, as its status records it (the operator's reading).
    pub fn position(&self, schedule: &Schedule, now: Timestamp) -> Position {
        let state = status::recorded_state(&self.obj.status.trigger);
        let created = self.obj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
        state.position(schedule, created)
    }

    /// The trigger and, when its ticks are evenly spaced, how often it fires.
    pub fn schedule_in_words(&self, now: Timestamp) -> String {
        let Some(spec) = self.spec() else {
            return "-".into();
        };
        let Ok(v) = &self.validated else {
            return schedule::describe(&spec.trigger, &self.zone_name());
        };
        match &v.schedule.cadence {
            Cadence::Once => "once, right after creation".into(),
            Cadence::Every { seconds } => format!("every {}", duration(SignedDuration::from_secs(*seconds))),
            Cadence::Cron(_) => {
                let cron = spec.trigger.cron_schedule.as_ref().map_or("", |c| c.cron.as_str());
                match cadence_words(
                    &Grid::new(&v.schedule, now).from(now).take(6).collect::<Vec<_>>(),
                    &self.zone,
                ) {
                    Some(words) => format!("{cron} ({words})"),
                    None => cron.to_string(),
                }
            }
        }
    }

    /// KFP's summary condition type, with the reason when it is an error.
    pub fn condition(&self) -> String {
        match summary_condition(&self.obj.status) {
            Some(c) if Summary::of(c) == Some(Summary::Error) => {
                format!("Error: {}", c.reason.as_deref().unwrap_or_default())
            }
            Some(c) => c.type_.clone(),
            None => "-".into(),
        }
    }

    /// Why no run will be created at the next tick, if that is so. `runs`: the schedule's runs
    /// when they could be listed (backfill runs have slots of their own and are not counted);
    /// without them, status' active history is.
    pub fn not_running_because(&self, runs: &[ObservedRun]) -> Option<String> {
        if let Err(e) = &self.validated {
            return Some(format!("the spec cannot run: {e}"));
        }
        let c = summary_condition(&self.obj.status);
        if let Some(c) = c.filter(|c| matches!(Summary::of(c), Some(Summary::Error | Summary::Disabled))) {
            let why = c.message.clone().unwrap_or_default();
            return Some(format!(
                "{} ({}): {why}",
                c.type_,
                c.reason.as_deref().unwrap_or_default()
            ));
        }
        if self.spec().is_some_and(|s| !s.enabled) {
            return Some("disabled (spec.enabled is false)".into());
        }
        let active = self.active(runs);
        if let Ok(v) = &self.validated
            && active >= v.max_concurrency
        {
            return Some(format!(
                "waiting: {active} runs active, maxConcurrency is {}",
                v.max_concurrency
            ));
        }
        None
    }

    pub fn last(&self) -> Option<Timestamp> {
        self.obj.status.trigger.last_triggered_time.as_ref().map(|t| t.0)
    }
}

/// "hourly at :30:00", "every 10m", "daily at 02:00:00", or None for uneven ticks.
fn cadence_words(ticks: &[Timestamp], zone: &TimeZone) -> Option<String> {
    let gaps: Vec<i64> = ticks.windows(2).map(|w| w[1].as_second() - w[0].as_second()).collect();
    let gap = *gaps.first()?;
    if gaps.len() < 2 || gaps.iter().any(|g| *g != gap) {
        return None;
    }
    let first = ticks.first()?.to_zoned(zone.clone());
    Some(match gap {
        86_400 => format!("daily at {}", first.strftime("%H:%M:%S")),
        604_800 => format!("weekly, {}", first.strftime("%A %H:%M:%S")),
        3_600 => format!("hourly at {}", first.strftime(":%M:%S")),
        g if g % 86_400 == 0 => format!("every {} days at {}", g / 86_400, first.strftime("%H:%M:%S")),
        g => format!("every {}", duration(SignedDuration::from_secs(g))),
    })
}

/// `1d2h`, `1h30m`, `45s`: the largest two units.
pub fn duration(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let parts: Vec<String> = units
        .iter()
        .scan(s, |left, (size, unit)| {
            let n = *left / size;
            *left %= size;
            Some((n, unit))
        })
        .filter(|(n, _)| *n > 0)
        .take(2)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() { "0s".into() } else { parts.concat() }
}

/// A time in `zone`, as `2026-11-28 16:00:00 CET`.
pub fn local(t: Timestamp, zone: &TimeZone) -> String {
    t.to_zoned(zone.clone()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string()
}

fn local_or_dash(t: Option<Timestamp>, zone: &TimeZone) -> String {
    t.map_or("-".into(), |t| local(t, zone))
}

/// Columns padded like kubectl's tables.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths.get(i).copied().unwrap_or(0)))
            .collect();
        padded.join("   ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// `kubectl swf get`: one row per schedule.
pub fn get_table(schedules: &[Viewed<'_>], all_namespaces: bool, wide: bool, now: Timestamp) -> String {
    let mut header = vec!["NAME", "SCHEDULE", "TIMEZONE", "LAST", "NEXT", "ACTIVE", "STATUS"];
    if wide {
        header.extend(["RUN KIND", "CONCURRENCY", "MESSAGE"]);
    }
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = schedules
        .iter()
        .map(|s| {
            let mut row = vec![
                s.name().to_string(),
                s.schedule_in_words(now),
                s.zone_name(),
                local_or_dash(s.last(), &s.zone),
                s.next_cell(now),
                s.obj.status.workflow_history.active.len().to_string(),
                s.condition(),
            ];
            if wide {
                let (kind, concurrency) = match &s.validated {
                    Ok(v) => (
                        v.source.kind().to_string(),
                        format!("{} {:?}", v.max_concurrency, v.policy),
                    ),
                    Err(_) => ("-".into(), "-".into()),
                };
                let message = summary_condition(&s.obj.status)
                    .and_then(|c| c.message.clone())
                    .unwrap_or_default();
                row.extend([kind, concurrency, message]);
            }
            if all_namespaces {
                row.insert(0, s.namespace().to_string());
            }
            row
        })
        .collect();
    table(&header, &rows)
}

/// One event line for `describe`.
pub struct EventLine {
    pub at: Option<Timestamp>,
    pub type_: String,
    pub reason: String,
    pub message: String,
}

/// `kubectl swf describe`.
pub fn describe(s: &Viewed<'_>, runs: &[ObservedRun], events: &[EventLine], now: Timestamp) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: String| out.push_str(&format!("{k:<16}{v}\n"));
    field("Name:", s.name().into());
    field("Namespace:", s.namespace().into());
    field("Schedule:", s.schedule_in_words(now));
    field("Time zone:", s.zone_name());
    let enabled = s.spec().map_or("-".into(), |spec| spec.enabled.to_string());
    field("Enabled:", enabled);
    field("Status:", s.condition());
    if let Some(why) = s.not_running_because(runs) {
        field("Not running:", why);
    }
    if let Some(request) = s.pending_run_now(runs) {
        field("Run now:", request);
    }
    field("Last:", local_or_dash(s.last(), &s.zone));
    if let Some(b) = &s.obj.status.backfill {
        let next = b.next_tick.as_ref().map(|t| format!(", next {}", local(t.0, &s.zone)));
        let message = b.message.as_ref().map(|m| format!(": {m}"));
        let line = format!(
            "{} {}, {}/{} ticks{}{}",
            b.range,
            b.phase,
            b.done,
            b.total,
            next.unwrap_or_default(),
            message.unwrap_or_default()
        );
        field("Backfill:", line);
    }
    out.push_str("Next 5 fire times:\n");
    let next = s.next_fire_times(now, 5);
    match (next.is_empty(), s.paused()) {
        (true, Some(why)) => out.push_str(&format!("  (none: {why})\n")),
        (true, None) => out.push_str("  (none)\n"),
        _ => {}
    }
    for t in next {
        out.push_str(&format!("  {}  ({})\n", local(t, &s.zone), t));
    }
    runs_section(
        &mut out,
        "Active runs:",
        runs.iter().filter(|r| r.is_active()),
        &s.zone,
        now,
    );
    let mut finished: Vec<&ObservedRun> = runs.iter().filter(|r| r.outcome != Outcome::Active).collect();
    finished.sort_by(|a, b| b.status.scheduled_at.cmp(&a.status.scheduled_at));
    runs_section(&mut out, "Recent runs:", finished.into_iter().take(10), &s.zone, now);
    out.push_str("Events:\n");
    if events.is_empty() {
        out.push_str("  (none)\n");
    }
    for e in events {
        let at = e.at.map_or("-".into(), |t| local(t, &s.zone));
        out.push_str(&format!("  {at}  {:<8} {:<20} {}\n", e.type_, e.reason, e.message));
    }
    out
}

fn runs_section<'r>(
    out: &mut String,
    title: &str,
    runs: impl Iterator<Item = &'r ObservedRun>,
    zone: &TimeZone,
    now: Timestamp,
) {
    out.push_str(title);
    out.push('\n');
    let rows: Vec<Vec<String>> = runs.map(|r| run_row(r, zone, now, false)).collect();
    if rows.is_empty() {
        out.push_str("  (none)\n");
        return;
    }
    for line in table(&["NAME", "SCHEDULED", "PHASE", "DURATION"], &rows).lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
}

/// A run: name, scheduled time, phase, duration (so far, while it runs).
pub fn run_row(r: &ObservedRun, zone: &TimeZone, now: Timestamp, wide: bool) -> Vec<String> {
    let s = &r.status;
    let started = s.started_at.as_ref().or(s.created_at.as_ref()).map(|t| t.0);
    let ended = s.finished_at.as_ref().map(|t| t.0);
    let took = match (started, ended) {
        (Some(a), Some(b)) => duration(b.duration_since(a)),
        (Some(a), None) => format!("{} so far", duration(now.duration_since(a))),
        _ => "-".into(),
    };
    let mut row = vec![
        s.name.clone(),
        local_or_dash(s.scheduled_at.as_ref().map(|t| t.0), zone),
        s.phase.clone(),
        took,
    ];
    if wide {
        row.push(s.message.clone());
    }
    row
}

pub fn runs_table(runs: &[ObservedRun], zone: &TimeZone, now: Timestamp, wide: bool) -> String {
    let mut sorted: Vec<&ObservedRun> = runs.iter().collect();
    sorted.sort_by(|a, b| b.status.scheduled_at.cmp(&a.status.scheduled_at));
    let rows: Vec<Vec<String>> = sorted.into_iter().map(|r| run_row(r, zone, now, wide)).collect();
    let mut header = vec!["NAME", "SCHEDULED", "PHASE", "DURATION"];
    if wide {
        header.push("MESSAGE");
    }
    table(&header, &rows)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn obj(spec: serde_json::Value, status: serde_json::Value) -> SwfObject {
        serde_json::from_value(json!({"metadata": {"name": "nightly", "namespace": "team",
            "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": spec, "status": status}))
        .unwrap()
    }

    fn job(trigger: serde_json::Value) -> serde_json::Value {
        json!({"enabled": true, "timeZone": "Europe/Berlin", "trigger": trigger,
            "runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": {}}})
    }

    #[test]
    fn a_cron_schedule_in_words_in_its_own_zone() {
        let o = obj(job(json!({"cronSchedule": {"cron": "0 0 2 * * *"}})), json!({}));
        let v = Viewed::new(&o, "UTC");
        let now = at("2026-04-01T12:00:00Z");
        assert_eq!(v.schedule_in_words(now), "0 0 2 * * * (daily at 02:00:00)");
        let next = v.next_fire_times(now, 3);
        let shown: Vec<String> = next.iter().map(|t| local(*t, &v.zone)).collect();
        assert_eq!(
            shown,
            [
                "2026-04-02 02:00:00 CEST",
                "2026-04-03 02:00:00 CEST",
                "2026-04-04 02:00:00 CEST"
            ]
        );
    }

    #[test]
    fn next_fire_times_start_with_what_the_operator_will_run() {
        let o = obj(
            job(json!({"periodicSchedule": {"intervalSecond": 600}})),
            json!({"trigger": {"nextTriggeredTime": "2026-01-01T00:10:00Z"}}),
        );
        let v = Viewed::new(&o, "UTC");
        let next = v.next_fire_times(at("2026-01-01T00:05:00Z"), 3);
        assert_eq!(
            next,
            [
                at("2026-01-01T00:10:00Z"),
                at("2026-01-01T00:20:00Z"),
                at("2026-01-01T00:30:00Z")
            ]
        );
        assert_eq!(v.schedule_in_words(at("2026-01-01T00:05:00Z")), "every 10m");
    }

    fn with_run_now(mut o: SwfObject, value: &str) -> SwfObject {
        o.metadata.annotations = Some([(RUN_NOW_REQUEST_ANNOTATION.to_string(), value.to_string())].into());
        o
    }

    #[test]
    fn a_pending_run_now_says_what_it_waits_for() {
        let hourly = || job(json!({"cronSchedule": {"cron": "@hourly"}}));
        let full = with_run_now(
            obj(
                hourly(),
                json!({"workflowHistory": {"active": [{"name": "nightly-1"}]}}),
            ),
            "2",
        );
        let shown = Viewed::new(&full, "UTC").pending_run_now(&[]).unwrap_or_default();
        assert!(
            shown.starts_with("requested (\"2\"); waits for a free slot (1 of maxConcurrency 1 active)"),
            "{shown}"
        );
        let described = describe(&Viewed::new(&full, "UTC"), &[], &[], at("2026-01-01T00:05:00Z"));
        assert!(described.contains(&format!("Run now:        {shown}\n")), "{described}");
        let free = with_run_now(obj(hourly(), json!({})), "2");
        let shown = Viewed::new(&free, "UTC").pending_run_now(&[]).unwrap_or_default();
        assert!(shown.contains("a slot is free"), "{shown}");
        let served = with_run_now(obj(hourly(), json!({"trigger": {"lastRunNow": "2"}})), "2");
        assert_eq!(Viewed::new(&served, "UTC").pending_run_now(&[]), None);
        assert_eq!(Viewed::new(&obj(hourly(), json!({})), "UTC").pending_run_now(&[]), None);
    }

    #[test]
    fn a_suspended_schedule_shows_why_instead_of_a_next_time() {
        let o = obj(
            job(json!({"periodicSchedule": {"intervalSecond": 600}})),
            json!({"trigger": {"nextTriggeredTime": "2026-01-01T00:10:00Z"},
                "suspension": {"suspendedAt": "2026-01-01T00:04:00Z"}}),
        );
        let v = Viewed::new(&o, "UTC");
        let now = at("2026-01-01T00:05:00Z");
        assert!(v.next_fire_times(now, 5).is_empty());
        let table = get_table(&[v], false, false, now);
        assert!(table.contains("(suspended by spec.failurePolicy)"), "{table}");
        let v = Viewed::new(&o, "UTC");
        assert!(describe(&v, &[], &[], now).contains("(none: suspended by spec.failurePolicy)"));
    }

    #[test]
    fn why_a_schedule_is_not_running() {
        let bad = obj(job(json!({"cronSchedule": {"cron": "* * *"}})), json!({}));
        assert!(
            Viewed::new(&bad, "UTC")
                .not_running_because(&[])
                .unwrap()
                .contains("spec.trigger.cronSchedule.cron")
        );
        let mut off = job(json!({"cronSchedule": {"cron": "@hourly"}}));
        off["enabled"] = json!(false);
        let off = obj(off, json!({}));
        assert_eq!(
            Viewed::new(&off, "UTC").not_running_because(&[]).as_deref(),
            Some("disabled (spec.enabled is false)")
        );
        assert!(
            Viewed::new(&off, "UTC")
                .next_fire_times(at("2026-01-01T00:00:00Z"), 5)
                .is_empty()
        );
        let busy = obj(
            job(json!({"cronSchedule": {"cron": "@hourly"}})),
            json!({"workflowHistory": {"active": [{"name": "nightly-1"}]}}),
        );
        assert_eq!(
            Viewed::new(&busy, "UTC").not_running_because(&[]).as_deref(),
            Some("waiting: 1 runs active, maxConcurrency is 1")
        );
        // A backfill's active run holds a backfill slot, not one of the schedule's own.
        let backfilling = ObservedRun {
            status: Default::default(),
            outcome: Outcome::Active,
            tick: None,
            origin: crate::scheduling::render::Origin::Backfill("2026-01-01/2026-01-02".into()),
            deleting: false,
            recorded_only: false,
        };
        assert_eq!(Viewed::new(&busy, "UTC").not_running_because(&[backfilling]), None);
    }

    #[test]
    fn durations_and_tables() {
        assert_eq!(duration(SignedDuration::from_secs(93_784)), "1d2h");
        assert_eq!(duration(SignedDuration::from_secs(45)), "45s");
        assert_eq!(duration(SignedDuration::from_secs(0)), "0s");
        let t = table(&["NAME", "AGE"], &[vec!["a-long-name".into(), "1d".into()]]);
        assert_eq!(t, "NAME          AGE\na-long-name   1d\n");
    }
}
