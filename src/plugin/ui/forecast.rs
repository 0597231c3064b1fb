//! The coming load: fire times of every shown schedule over the next 24 hours (or 7 days),
//! counted per minute, the busiest minutes and which schedules make them. Pure.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp, tz::TimeZone};

use super::{
    html::{esc, schedule_path, time},
    model::Entry,
};

/// Fire times looked at per schedule at most (an every-second schedule has 86,400 a day).
pub const MAX_TICKS_PER_SCHEDULE: usize = 20_000;

pub struct Forecast {
    /// The first minute (whole minute at or before `now`).
    pub start: Timestamp,
    pub minutes: i64,
    /// Minute index → the schedules firing in it (index into the entries; one per fire time).
    pub bins: BTreeMap<i64, Vec<usize>>,
    /// Schedules whose fire times were cut at `MAX_TICKS_PER_SCHEDULE`.
    pub truncated: Vec<usize>,
}

impl Forecast {
    pub fn total(&self) -> usize {
        self.bins.values().map(Vec::len).sum()
    }

    /// The `n` busiest minutes, most runs first (earlier first on ties).
    pub fn busiest(&self, n: usize) -> Vec<(i64, &[usize])> {
        let mut all: Vec<(i64, &[usize])> = self.bins.iter().map(|(m, s)| (*m, s.as_slice())).collect();
        all.sort_by_key(|(m, s)| (std::cmp::Reverse(s.len()), *m));
        all.truncate(n);
        all
    }

    pub fn minute(&self, index: i64) -> Timestamp {
        self.start
            .checked_add(SignedDuration::from_mins(index))
            .unwrap_or(self.start)
    }
}

/// Counts the fire times of `entries` in `[now, now + minutes)`, per minute.
pub fn forecast(entries: &[&Entry<'_>], now: Timestamp, minutes: i64) -> Forecast {
    let start = Timestamp::from_second(now.as_second().div_euclid(60) * 60).unwrap_or(now);
    let end = start.checked_add(SignedDuration::from_mins(minutes)).unwrap_or(start);
    let mut bins: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    let mut truncated = vec![];
    for (i, e) in entries.iter().enumerate() {
        let ticks = e.viewed.next_fire_times(now, MAX_TICKS_PER_SCHEDULE + 1);
        if ticks.len() > MAX_TICKS_PER_SCHEDULE && ticks.last().is_some_and(|t| *t < end) {
            truncated.push(i);
        }
        for t in ticks.into_iter().take(MAX_TICKS_PER_SCHEDULE).take_while(|t| *t < end) {
            if t < start {
                continue;
            }
            let minute = t.duration_since(start).as_secs().div_euclid(60);
            bins.entry(minute).or_default().push(i);
        }
    }
    Forecast {
        start,
        minutes,
        bins,
        truncated,
    }
}

const CHART_W: f64 = 1000.0;
const CHART_H: f64 = 160.0;

/// The chart (one bar per minute with fire times; its height the count) and the busiest
/// minutes with their schedules.
pub fn render(f: &Forecast, entries: &[&Entry<'_>], zone: &TimeZone) -> String {
    let peak = f.bins.values().map(Vec::len).max().unwrap_or(0).max(1) as f64;
    let per_minute = CHART_W / f.minutes.max(1) as f64;
    let mut out = format!(
        "<p id=\"forecast-summary\">{} fire times of {} schedules from {} to {}; the busiest minute has {}.</p>",
        f.total(),
        entries.len(),
        time(f.start, zone),
        time(f.minute(f.minutes), zone),
        f.bins.values().map(Vec::len).max().unwrap_or(0)
    );
    out.push_str(&format!(
        "<svg class=\"forecast\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\" \
         aria-label=\"fire times per minute\" data-start=\"{}\" data-minutes=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        CHART_W + 110.0,
        CHART_H + 30.0,
        CHART_W + 110.0,
        CHART_H + 30.0,
        f.start,
        f.minutes
    ));
    out.push_str(&format!(
        "<text class=\"axis\" x=\"{}\" y=\"12\">{} per minute</text>",
        CHART_W + 4.0,
        peak
    ));
    for (minute, schedules) in &f.bins {
        let h = schedules.len() as f64 / peak * (CHART_H - 10.0);
        let x = *minute as f64 * per_minute;
        let at = f.minute(*minute);
        out.push_str(&format!(
            "<rect class=\"bin\" data-minute=\"{at}\" data-count=\"{}\" x=\"{x:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{h:.1}\">\
             <title>{}: {} fire times</title></rect>",
            schedules.len(),
            CHART_H - h,
            per_minute.max(1.0),
            esc(&crate::plugin::view::local(at, zone)),
            schedules.len()
        ));
    }
    let window = super::svg::Window {
        from: f.start,
        to: f.minute(f.minutes),
    };
    for (t, label) in super::svg::axis_labels(window, zone) {
        let x = t.duration_since(f.start).as_secs_f64() / 60.0 * per_minute;
        out.push_str(&format!(
            "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"0\" y2=\"{CHART_H}\"/><text class=\"axis\" x=\"{x:.1}\" y=\"{}\">{}</text>",
            CHART_H + 16.0,
            esc(&label)
        ));
    }
    out.push_str("</svg>");
    out.push_str(
        "<h2>Busiest minutes</h2><table id=\"busiest\"><thead><tr><th>Minute</th><th>Fire times</th>\
         <th>Schedules</th></tr></thead><tbody>",
    );
    for (minute, schedules) in f.busiest(20) {
        let mut names: Vec<String> = schedules
            .iter()
            .take(10)
            .filter_map(|i| entries.get(*i))
            .map(|e| {
                let (ns, name) = e.key();
                format!(
                    "<a href=\"{}\">{}</a>",
                    schedule_path(ns, name),
                    esc(&format!("{ns}/{name}"))
                )
            })
            .collect();
        if schedules.len() > 10 {
            names.push(format!("and {} more", schedules.len() - 10));
        }
        out.push_str(&format!(
            "<tr data-minute=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            f.minute(minute),
            time(f.minute(minute), zone),
            schedules.len(),
            names.join(", ")
        ));
    }
    out.push_str("</tbody></table>");
    if !f.truncated.is_empty() {
        out.push_str(&format!(
            "<p>{} schedules fire more than {MAX_TICKS_PER_SCHEDULE} times in this span: only their first \
             {MAX_TICKS_PER_SCHEDULE} are counted.</p>",
            f.truncated.len()
        ));
    }
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

    fn swf(name: &str, cron: &str) -> SwfObject {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "t",
            "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"enabled": true, "trigger": {"cronSchedule": {"cron": cron}},
                "runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": {}}}}))
        .unwrap()
    }

    #[test]
    fn the_midnight_herd_is_the_busiest_minute() {
        let objs = [
            swf("a", "0 0 0 * * *"),
            swf("b", "0 0 0 * * *"),
            swf("c", "0 0 */6 * * *"),
        ];
        let entries: Vec<Entry> = objs.iter().map(|o| Entry::new(o, &[], "UTC")).collect();
        let refs: Vec<&Entry> = entries.iter().collect();
        let now = at("2026-12-06T10:15:30Z");
        let f = forecast(&refs, now, 24 * 60);
        assert_eq!(f.start, at("2026-12-06T10:15:00Z"));
        // c at 12:00, 18:00, 00:00, 06:00; a and b at 00:00.
        assert_eq!(f.total(), 6);
        let busiest = f.busiest(2);
        assert_eq!(f.minute(busiest[0].0), at("2026-12-07T00:00:00Z"));
        assert_eq!(busiest[0].1, [0, 1, 2]);
        assert_eq!(f.minute(busiest[1].0), at("2026-12-06T12:00:00Z"));
        let html = render(&f, &refs, &TimeZone::UTC);
        assert_eq!(html.matches("class=\"bin\"").count(), 4);
        assert!(
            html.contains("data-minute=\"2026-12-07T00:00:00Z\" data-count=\"3\""),
            "{html}"
        );
    }
}
