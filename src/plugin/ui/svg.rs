//! The timeline as SVG: one lane per schedule over a window, past runs as bars from start to
//! finish (coloured and labelled by outcome), future fire times as marks at their instants
//! (the schedule's own ticks, in its zone: DST included), pauses shaded. Pure.

use jiff::{SignedDuration, Timestamp, Unit, ZonedRound, tz::TimeZone};

use super::{
    html::{esc, schedule_path},
    model::{Entry, outcome_word, run_span},
};
use crate::{
    plugin::view::local,
    scheduling::{runstate::Outcome, schedule},
};

const LABEL_W: f64 = 220.0;
const PLOT_W: f64 = 960.0;
const LANE_H: f64 = 30.0;
const AXIS_H: f64 = 34.0;
/// Fire-time marks drawn per lane at most (a denser lane says how many it left out).
pub const MAX_MARKS: usize = 500;

/// The span of time shown, `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Window {
    fn x(&self, t: Timestamp) -> f64 {
        let span = self.to.duration_since(self.from).as_secs_f64().max(1.0);
        let at = t.duration_since(self.from).as_secs_f64().clamp(0.0, span);
        LABEL_W + at / span * PLOT_W
    }

    fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.to
    }
}

/// The schedule's fire times in the window that are still to come (none while paused).
pub fn future_marks(e: &Entry<'_>, w: Window, now: Timestamp) -> (Vec<Timestamp>, bool) {
    let v = &e.viewed;
    let Ok(valid) = &v.validated else {
        return (vec![], false);
    };
    if v.paused().is_some() || w.to <= now {
        return (vec![], false);
    }
    let ticks: Vec<Timestamp> = if w.from <= now {
        v.next_fire_times(now, MAX_MARKS + 1)
    } else {
        let position = v.position(&valid.schedule, now);
        let before = w.from.checked_sub(SignedDuration::from_nanos(1)).unwrap_or(w.from);
        schedule::upcoming(&valid.schedule, position, before, MAX_MARKS + 1)
    };
    let mut marks: Vec<Timestamp> = ticks.into_iter().filter(|t| w.contains(*t) && *t >= now).collect();
    let more = marks.len() > MAX_MARKS;
    marks.truncate(MAX_MARKS);
    (marks, more)
}

/// Axis labels: round times in `zone` (whole days in the zone's calendar, so a 23-hour or
/// 25-hour day is drawn as it is).
pub fn axis_labels(w: Window, zone: &TimeZone) -> Vec<(Timestamp, String)> {
    let minutes = w.to.duration_since(w.from).as_mins();
    let (unit, increment, format) = match minutes {
        m if m <= 2 => (Unit::Second, 10, "%H:%M:%S"),
        m if m <= 15 => (Unit::Minute, 1, "%H:%M"),
        m if m <= 60 => (Unit::Minute, 5, "%H:%M"),
        m if m <= 2 * 60 => (Unit::Minute, 15, "%H:%M"),
        m if m <= 12 * 60 => (Unit::Hour, 1, "%H:%M"),
        m if m <= 48 * 60 => (Unit::Hour, 6, "%a %H:%M"),
        m if m <= 8 * 24 * 60 => (Unit::Day, 1, "%a %d %b"),
        _ => (Unit::Day, 7, "%d %b"),
    };
    let start = w.from.to_zoned(zone.clone());
    let Ok(mut at) = start.round(
        ZonedRound::new()
            .smallest(unit)
            .increment(increment)
            .mode(jiff::RoundMode::Ceil),
    ) else {
        return vec![];
    };
    let step = match unit {
        Unit::Day => jiff::Span::new().days(increment),
        Unit::Hour => jiff::Span::new().hours(increment),
        Unit::Second => jiff::Span::new().seconds(increment),
        _ => jiff::Span::new().minutes(increment),
    };
    let mut labels = vec![];
    while at.timestamp() < w.to && labels.len() < 40 {
        labels.push((at.timestamp(), at.strftime(format).to_string()));
        match at.checked_add(step) {
            Ok(next) => at = next,
            Err(_) => break,
        }
    }
    labels
}

/// The timeline of `entries` over `w`; axis labels in `zone`.
pub fn timeline(entries: &[&Entry<'_>], w: Window, zone: &TimeZone, now: Timestamp) -> String {
    let height = AXIS_H + LANE_H * entries.len() as f64 + 4.0;
    let width = LABEL_W + PLOT_W + 10.0;
    let mut out = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         role=\"img\" aria-label=\"timeline from {} to {}\" data-from=\"{}\" data-to=\"{}\" \
         xmlns=\"http://www.w3.org/2000/svg\">",
        w.from, w.to, w.from, w.to
    );
    for (t, label) in axis_labels(w, zone) {
        let x = w.x(t);
        out.push_str(&format!(
            "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{height}\"/>\
             <text class=\"axis\" x=\"{x:.1}\" y=\"{}\">{}</text>",
            AXIS_H - 12.0,
            AXIS_H - 16.0,
            esc(&label)
        ));
    }
    for (i, e) in entries.iter().enumerate() {
        out.push_str(&lane(e, w, AXIS_H + LANE_H * i as f64, now));
    }
    if w.contains(now) {
        let x = w.x(now);
        out.push_str(&format!(
            "<line class=\"now\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{height}\"><title>now</title></line>\
             <text class=\"axis now-label\" x=\"{x:.1}\" y=\"{}\">now</text>",
            AXIS_H - 10.0,
            height - 2.0
        ));
    }
    out.push_str("</svg>");
    out
}

/// One schedule's lane, its top at `y`.
fn lane(e: &Entry<'_>, w: Window, y: f64, now: Timestamp) -> String {
    let (ns, name) = e.key();
    let zone = &e.viewed.zone;
    let mid = y + LANE_H / 2.0;
    let mut out = format!(
        "<g class=\"lane\" data-schedule=\"{}/{}\"><a href=\"{}\"><text class=\"lane-label\" x=\"4\" y=\"{:.1}\">{}</text></a>\
         <line class=\"lane-line\" x1=\"{LABEL_W}\" x2=\"{}\" y1=\"{mid:.1}\" y2=\"{mid:.1}\"/>",
        esc(ns),
        esc(name),
        schedule_path(ns, name),
        mid + 4.0,
        esc(&format!("{ns}/{name}")),
        LABEL_W + PLOT_W
    );
    if let Some((since, label)) = e.paused_since(now) {
        let start = since.max(w.from);
        if start < w.to {
            let (x1, x2) = (w.x(start), w.x(w.to));
            out.push_str(&format!(
                "<rect class=\"paused\" data-why=\"{label}\" x=\"{x1:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\">\
                 <title>{label} since {}</title></rect><text class=\"paused-label\" x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
                y + 2.0,
                (x2 - x1).max(1.0),
                LANE_H - 4.0,
                esc(&local(since, zone)),
                x1 + 3.0,
                y + 11.0
            ));
        }
    }
    let mut runs: Vec<_> = e
        .runs
        .iter()
        .filter_map(|r| run_span(r, now).map(|span| (r, span)))
        .filter(|(_, (a, b))| *a < w.to && *b >= w.from)
        .collect();
    runs.sort_by_key(|(_, (a, _))| *a);
    for (r, (a, b)) in runs {
        let word = outcome_word(r);
        let glyph = match r.outcome {
            Outcome::Succeeded => "✓",
            Outcome::Failed => "✗",
            Outcome::Active => "▶",
        };
        let (x1, x2) = (w.x(a), w.x(b));
        let title = format!(
            "{}: {word}, {} to {}",
            r.status.name,
            local(a, zone),
            if r.outcome == Outcome::Active {
                "now".to_string()
            } else {
                local(b, zone)
            }
        );
        out.push_str(&format!(
            "<a class=\"run\" href=\"{}#run-{}\" data-run=\"{}\" data-outcome=\"{word}\" aria-label=\"{}\">\
             <rect class=\"bar {word}\" x=\"{x1:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}</title></rect>\
             <text class=\"glyph\" x=\"{x1:.1}\" y=\"{:.1}\">{glyph}</text></a>",
            schedule_path(ns, name),
            esc(&r.status.name),
            esc(&r.status.name),
            esc(&title),
            y + 8.0,
            (x2 - x1).max(3.0),
            LANE_H - 16.0,
            esc(&title),
            y + LANE_H - 1.0,
        ));
    }
    let (marks, more) = future_marks(e, w, now);
    for t in &marks {
        let x = w.x(*t);
        out.push_str(&format!(
            "<line class=\"tick\" data-t=\"{t}\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"><title>fires {}</title></line>",
            y + 4.0,
            y + LANE_H - 4.0,
            esc(&local(*t, zone))
        ));
    }
    if more {
        out.push_str(&format!(
            "<text class=\"more\" x=\"{:.1}\" y=\"{:.1}\">first {MAX_MARKS} fire times shown: narrow the window</text>",
            LABEL_W + PLOT_W - 300.0,
            y + 11.0
        ));
    }
    out.push_str("</g>");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::stored::SwfObject;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn marks_fall_on_the_schedules_ticks_across_a_dst_change() {
        let o: SwfObject = serde_json::from_value(json!({"metadata": {"name": "daily", "namespace": "t",
            "creationTimestamp": "2026-12-01T00:00:00Z"},
            "spec": {"enabled": true, "timeZone": "Europe/Berlin",
                "trigger": {"cronSchedule": {"cron": "0 30 8 * * *"}},
                "runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": {}}}}))
        .unwrap();
        let e = Entry::new(&o, &[], "UTC");
        let w = Window {
            from: at("2027-03-26T00:00:00Z"),
            to: at("2027-03-30T00:00:00Z"),
        };
        let now = at("2026-12-06T00:00:00Z");
        let (marks, more) = future_marks(&e, w, now);
        assert!(!more);
        // 08:30 in Berlin: 07:30 UTC before the change on 28 March 2027, 06:30 UTC after.
        assert_eq!(
            marks,
            [
                at("2027-03-26T07:30:00Z"),
                at("2027-03-27T07:30:00Z"),
                at("2027-03-28T06:30:00Z"),
                at("2027-03-29T06:30:00Z")
            ]
        );
        let svg = timeline(&[&e], w, &TimeZone::get("Europe/Berlin").unwrap(), now);
        assert_eq!(svg.matches("class=\"tick\"").count(), 4, "{svg}");
        assert!(svg.contains("data-t=\"2027-03-28T06:30:00Z\""));
        // Day labels at local midnights: the 23-hour day is drawn as one.
        let labels = axis_labels(w, &TimeZone::get("Europe/Berlin").unwrap());
        let days: Vec<Timestamp> = labels.iter().map(|(t, _)| *t).collect();
        assert!(
            days.contains(&at("2027-03-27T23:00:00Z")) && days.contains(&at("2027-03-28T22:00:00Z")),
            "{labels:?}"
        );
    }
}
