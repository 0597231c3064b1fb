//! The server-rendered pages: functions of the schedules, their runs and `now`. Pure.

use jiff::{Timestamp, tz::TimeZone};
use serde::Deserialize;

use super::{
    html::{Nav, enc, esc, page, schedule_path, time, time_or_dash},
    model::{Entry, outcome_word, run_span},
    preview::{Fate, Preview},
};
use crate::{plugin::view::EventLine, scheduling::runstate::Outcome};

/// The overview's sort and filter (query string).
#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    /// name (default), status, last, next, active, streak.
    pub sort: Option<String>,
    /// Rows whose namespace, name, schedule or status contain this text.
    pub q: Option<String>,
    /// Only schedules with a problem.
    pub problems: Option<String>,
}

impl OverviewQuery {
    pub fn matches(&self, e: &Entry<'_>, now: Timestamp) -> bool {
        if self.problems.is_some() && e.problem().is_none() {
            return false;
        }
        let Some(q) = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) else {
            return true;
        };
        let q = q.to_lowercase();
        let (ns, name) = e.key();
        [
            ns.to_string(),
            name.to_string(),
            e.viewed.schedule_in_words(now),
            e.viewed.condition(),
        ]
        .iter()
        .any(|s| s.to_lowercase().contains(&q))
    }
}

/// The rows of the overview, filtered and sorted.
pub fn overview_order<'e, 'a>(entries: &'e [Entry<'a>], query: &OverviewQuery, now: Timestamp) -> Vec<&'e Entry<'a>> {
    let mut rows: Vec<&Entry<'a>> = entries.iter().filter(|e| query.matches(e, now)).collect();
    match query.sort.as_deref().unwrap_or("name") {
        "status" => rows.sort_by_cached_key(|e| (e.problem().is_none(), e.viewed.condition(), e.key())),
        "last" => rows.sort_by_cached_key(|e| (std::cmp::Reverse(e.viewed.last()), e.key())),
        "next" => rows.sort_by_cached_key(|e| {
            let next = e.viewed.next_fire_times(now, 1).first().copied();
            (next.is_none(), next, e.key())
        }),
        "active" => rows.sort_by_cached_key(|e| (std::cmp::Reverse(e.active()), e.key())),
        "streak" => rows.sort_by_cached_key(|e| (std::cmp::Reverse(e.failure_streak()), e.key())),
        _ => rows.sort_by(|a, b| a.key().cmp(&b.key())),
    }
    rows
}

/// Every schedule: status, schedule in words, zone, last and next fire time, active runs,
/// failure streak; problems stand out with their reason.
pub fn overview(entries: &[Entry<'_>], query: &OverviewQuery, all_namespaces: bool, now: Timestamp) -> String {
    let rows = overview_order(entries, query, now);
    let q = esc(query.q.as_deref().unwrap_or_default());
    let checked = if query.problems.is_some() { " checked" } else { "" };
    let sort = esc(query.sort.as_deref().unwrap_or("name"));
    let mut body = format!(
        "<form class=\"filter\" method=\"get\" action=\"/\" role=\"search\">\
         <label>Filter <input type=\"search\" name=\"q\" value=\"{q}\"></label> \
         <label><input type=\"checkbox\" name=\"problems\" value=\"1\"{checked}> only problems</label> \
         <input type=\"hidden\" name=\"sort\" value=\"{sort}\"><button>Apply</button></form>\
         <p id=\"count\">{} of {} schedules shown; {} with problems.</p>",
        rows.len(),
        entries.len(),
        entries.iter().filter(|e| e.problem().is_some()).count()
    );
    let keep = |key: &str| {
        let mut params = vec![format!("sort={key}")];
        if let Some(q) = query.q.as_deref().filter(|q| !q.is_empty()) {
            params.push(format!("q={}", enc(q)));
        }
        if query.problems.is_some() {
            params.push("problems=1".into());
        }
        format!("/?{}", params.join("&amp;"))
    };
    let header = |label: &str, key: Option<&str>| match key {
        Some(k) => {
            let current = if sort == k { " aria-sort=\"ascending\"" } else { "" };
            format!("<th scope=\"col\"{current}><a href=\"{}\">{label}</a></th>", keep(k))
        }
        None => format!("<th scope=\"col\">{label}</th>"),
    };
    body.push_str("<table id=\"overview\"><thead><tr>");
    if all_namespaces {
        body.push_str(&header("Namespace", None));
    }
    for (label, key) in [
        ("Name", Some("name")),
        ("Status", Some("status")),
        ("Schedule", None),
        ("Zone", None),
        ("Last", Some("last")),
        ("Next", Some("next")),
        ("Active", Some("active")),
        ("Failure streak", Some("streak")),
    ] {
        body.push_str(&header(label, key));
    }
    body.push_str("</tr></thead><tbody>");
    for e in rows {
        body.push_str(&overview_row(e, all_namespaces, now));
    }
    body.push_str("</tbody></table>");
    page("Schedules", Nav::Overview, true, now, &body)
}

fn overview_row(e: &Entry<'_>, all_namespaces: bool, now: Timestamp) -> String {
    let v = &e.viewed;
    let (ns, name) = e.key();
    let problem = e.problem();
    let class = match (&problem, v.paused()) {
        (Some(_), _) => "problem",
        (None, Some(_)) => "paused",
        _ => "ok",
    };
    let next = match (v.next_fire_times(now, 1).first(), v.paused()) {
        (Some(t), _) => time(*t, &v.zone),
        (None, Some(why)) => format!("({})", esc(why)),
        (None, None) => "-".into(),
    };
    let status = match &problem {
        Some(p) => format!(
            "<strong class=\"flag\">⚠ Problem:</strong> {}<br><small>{}</small>",
            esc(&v.condition()),
            esc(p)
        ),
        None => format!("{}<br><small>{}</small>", esc(&v.condition()), esc(&e.readiness())),
    };
    let streak = e.failure_streak();
    let streak_cell = if streak > 0 {
        format!("<strong>{streak} failed</strong>")
    } else {
        "0".into()
    };
    let zone = match &v.validated {
        Ok(valid) => esc(&valid.time_zone),
        Err(_) => "-".into(),
    };
    let mut row = format!("<tr class=\"{class}\" data-schedule=\"{}/{}\">", esc(ns), esc(name));
    if all_namespaces {
        row.push_str(&format!("<td>{}</td>", esc(ns)));
    }
    row.push_str(&format!(
        "<th scope=\"row\"><a href=\"{}\">{}</a></th><td>{status}</td><td>{}</td><td>{zone}</td>\
         <td>{}</td><td>{next}</td><td>{}</td><td>{streak_cell}</td></tr>",
        schedule_path(ns, name),
        esc(name),
        esc(&v.schedule_in_words(now)),
        time_or_dash(v.last(), &v.zone),
        e.active(),
    ));
    row
}

/// What `kubectl swf describe` shows, with the actions. `flash`: what was just done.
pub fn schedule(e: &Entry<'_>, events: &[EventLine], lane: &str, flash: Option<&str>, now: Timestamp) -> String {
    let v = &e.viewed;
    let (ns, name) = e.key();
    let zone = &v.zone;
    let mut body = String::new();
    if let Some(message) = flash {
        body.push_str(&format!("<p class=\"flash\" role=\"status\">{}</p>", esc(message)));
    }
    let mut fields: Vec<(&str, String)> = vec![
        ("Namespace", esc(ns)),
        ("Schedule", esc(&v.schedule_in_words(now))),
        (
            "Time zone",
            esc(&v.validated.as_ref().map_or("-".into(), |x| x.time_zone.clone())),
        ),
        (
            "Enabled",
            v.obj.spec.as_ref().map_or("-".into(), |s| s.enabled.to_string()),
        ),
        ("Status", esc(&v.condition())),
        ("Readiness", esc(&e.readiness())),
    ];
    if let Some(p) = e.problem() {
        fields.push(("Problem", format!("<strong class=\"flag\">⚠ {}</strong>", esc(&p))));
    }
    if let Some(why) = v.not_running_because(e.runs) {
        fields.push(("Not running", esc(&why)));
    }
    if let Some(request) = v.pending_run_now(e.runs) {
        fields.push(("Run now", esc(&request)));
    }
    fields.push(("Last", time_or_dash(v.last(), zone)));
    fields.push(("Active runs", e.active().to_string()));
    fields.push(("Failure streak", e.failure_streak().to_string()));
    if let Some(s) = &v.obj.status.suspension
        && let Some(at) = &s.suspended_at
    {
        fields.push((
            "Suspended",
            format!(
                "since {} after the failed runs {}; <em>Resume</em> below (or <code>kubectl swf resume {}</code>) runs it again",
                time(at.0, zone),
                esc(&s.failed_runs.join(", ")),
                esc(name)
            ),
        ));
    }
    if let Some(b) = &v.obj.status.backfill {
        let next = b.next_tick.as_ref().map(|t| format!(", next {}", time(t.0, zone)));
        let message = b.message.as_ref().map(|m| format!(": {}", esc(m)));
        fields.push((
            "Backfill",
            format!(
                "<span id=\"backfill-status\">{} {}, {}/{} ticks</span>{}{}",
                esc(&b.range),
                esc(&b.phase),
                b.done,
                b.total,
                next.unwrap_or_default(),
                message.unwrap_or_default()
            ),
        ));
    }
    body.push_str("<dl class=\"fields\">");
    for (k, value) in fields {
        body.push_str(&format!("<dt>{k}</dt><dd>{value}</dd>"));
    }
    body.push_str("</dl>");
    body.push_str(&actions(e));
    body.push_str(lane);
    body.push_str("<h2>Next 5 fire times</h2><ol id=\"next\">");
    let next = v.next_fire_times(now, 5);
    if next.is_empty() {
        let why = v.paused().map_or_else(|| "none".to_string(), |w| format!("none: {w}"));
        body.push_str(&format!("<li>({})</li>", esc(&why)));
    }
    for t in next {
        body.push_str(&format!(
            "<li data-t=\"{t}\">{} <small>({t})</small></li>",
            time(t, zone)
        ));
    }
    body.push_str("</ol>");
    body.push_str(&runs_table(e, now));
    body.push_str("<h2>Events</h2>");
    if events.is_empty() {
        body.push_str("<p>(none)</p>");
    } else {
        body.push_str(
            "<table><thead><tr><th>When</th><th>Type</th><th>Reason</th><th>Message</th></tr></thead><tbody>",
        );
        for ev in events {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                time_or_dash(ev.at, zone),
                esc(&ev.type_),
                esc(&ev.reason),
                esc(&ev.message)
            ));
        }
        body.push_str("</tbody></table>");
    }
    let yaml = serde_yaml::to_string(&serde_json::json!({
        "spec": v.obj.spec.as_ref().ok(),
        "status": &v.obj.status,
    }))
    .unwrap_or_default();
    body.push_str(&format!(
        "<details><summary>Spec and status (YAML)</summary><pre>{}</pre></details>",
        esc(&yaml)
    ));
    page(&format!("{ns}/{name}"), Nav::Schedule, true, now, &body)
}

/// The actions, each a link to its confirmation page (nothing changes on a GET).
fn actions(e: &Entry<'_>) -> String {
    let (ns, name) = e.key();
    let base = schedule_path(ns, name);
    let mut links = vec![format!(
        "<a class=\"button\" id=\"run-now\" href=\"{base}/confirm/run-now\">Run now…</a>"
    )];
    let enabled = e.viewed.obj.spec.as_ref().is_ok_and(|s| s.enabled);
    if enabled {
        links.push(format!(
            "<a class=\"button\" id=\"disable\" href=\"{base}/confirm/disable\">Disable…</a>"
        ));
    } else {
        links.push(format!(
            "<a class=\"button\" id=\"enable\" href=\"{base}/confirm/enable\">Enable…</a>"
        ));
    }
    if e.viewed
        .obj
        .status
        .suspension
        .as_ref()
        .is_some_and(|s| s.suspended_at.is_some())
    {
        links.push(format!(
            "<a class=\"button\" id=\"resume\" href=\"{base}/confirm/resume\">Resume…</a>"
        ));
    }
    format!(
        "<section aria-labelledby=\"actions-h\"><h2 id=\"actions-h\">Actions</h2><p>{}</p>\
         <form id=\"backfill-form\" method=\"get\" action=\"{base}/backfill\">\
         <label>Backfill from <input name=\"from\" required placeholder=\"2026-01-01\"></label> \
         <label>to <input name=\"to\" required placeholder=\"2026-02-01\"></label> \
         <button>Preview backfill…</button> <small>RFC 3339, or a local time or date in the schedule's zone; \
         the range is closed-open.</small></form></section>",
        links.join(" ")
    )
}

fn runs_table(e: &Entry<'_>, now: Timestamp) -> String {
    let zone = &e.viewed.zone;
    let mut runs: Vec<_> = e.runs.iter().collect();
    runs.sort_by(|a, b| b.status.scheduled_at.cmp(&a.status.scheduled_at));
    let mut out = String::from("<h2>Runs</h2>");
    if runs.is_empty() {
        out.push_str("<p>(none)</p>");
        return out;
    }
    out.push_str(
        "<table id=\"runs\"><thead><tr><th>Name</th><th>Scheduled</th><th>Outcome</th><th>Phase</th>\
         <th>Duration</th><th>Message</th></tr></thead><tbody>",
    );
    for r in runs {
        let took = match (run_span(r, now), r.outcome) {
            (Some((a, b)), Outcome::Active) => format!("{} so far", crate::plugin::view::duration(b.duration_since(a))),
            (Some((a, b)), _) => crate::plugin::view::duration(b.duration_since(a)),
            (None, _) => "-".into(),
        };
        out.push_str(&format!(
            "<tr id=\"run-{}\" class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.status.name),
            outcome_word(r),
            esc(&r.status.name),
            time_or_dash(r.status.scheduled_at.as_ref().map(|t| t.0), zone),
            outcome_word(r),
            esc(&r.status.phase),
            esc(&took),
            esc(&r.status.message)
        ));
    }
    out.push_str("</tbody></table>");
    out
}

/// An action the schedule page offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    RunNow,
    Enable,
    Disable,
    Resume,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "run-now" => Action::RunNow,
            "enable" => Action::Enable,
            "disable" => Action::Disable,
            "resume" => Action::Resume,
            _ => return None,
        })
    }

    pub fn slug(self) -> &'static str {
        match self {
            Action::RunNow => "run-now",
            Action::Enable => "enable",
            Action::Disable => "disable",
            Action::Resume => "resume",
        }
    }

    fn question(self) -> &'static str {
        match self {
            Action::RunNow => "Create one run now? The run-now request is served once; maxConcurrency still applies.",
            Action::Enable => "Enable the schedule (spec.enabled: true)? Ticks missed while disabled are not run.",
            Action::Disable => "Disable the schedule (spec.enabled: false)? It creates no run until enabled again.",
            Action::Resume => "Resume the schedule its failure policy suspended?",
        }
    }

    /// Shown on the schedule page once done.
    pub fn done(self) -> &'static str {
        match self {
            Action::RunNow => "Run now requested: the operator creates the run on its next pass.",
            Action::Enable => "Enabled.",
            Action::Disable => "Disabled.",
            Action::Resume => "Resume requested.",
        }
    }
}

fn confirm_form(action_path: &str, token: &str, hidden: &[(&str, &str)], label: &str, cancel: &str) -> String {
    let fields: String = hidden
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", esc(v)))
        .collect();
    format!(
        "<form id=\"confirm\" method=\"post\" action=\"{action_path}\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">{fields}\
         <button id=\"confirm-button\" autofocus>{}</button> <a href=\"{cancel}\">Cancel</a></form>",
        esc(token),
        esc(label)
    )
}

/// The confirmation of `action` on a schedule: a POST form carrying the session token.
pub fn confirm(ns: &str, name: &str, action: Action, token: &str, now: Timestamp) -> String {
    let base = schedule_path(ns, name);
    let body = format!(
        "<p>{}</p>{}",
        esc(action.question()),
        confirm_form(&format!("{base}/{}", action.slug()), token, &[], "Confirm", &base)
    );
    page(
        &format!("{} {ns}/{name}?", action.slug()),
        Nav::Schedule,
        false,
        now,
        &body,
    )
}

/// The backfill preview: every tick of the range and what becomes of it, then the request.
pub fn backfill_preview(
    ns: &str,
    name: &str,
    preview: &Result<Preview, String>,
    zone: &TimeZone,
    token: &str,
    now: Timestamp,
) -> String {
    let base = schedule_path(ns, name);
    let body = match preview {
        Err(e) => format!(
            "<p class=\"flag\" role=\"alert\">⚠ Cannot backfill: {}</p><p><a href=\"{base}\">Back</a></p>",
            esc(e)
        ),
        Ok(p) => {
            let create = p.ticks.iter().filter(|(_, f)| *f == Fate::Create).count();
            let mut out = format!(
                "<p id=\"backfill-summary\">Range <code>{}</code>: {} ticks of the schedule, \
                 <strong>{create} runs to create</strong>.</p><table id=\"backfill-ticks\"><thead><tr>\
                 <th>Tick ({})</th><th>UTC</th><th>What happens</th></tr></thead><tbody>",
                esc(&p.value),
                p.ticks.len(),
                esc(zone.iana_name().unwrap_or("schedule's zone")),
            );
            for (t, fate) in &p.ticks {
                out.push_str(&format!(
                    "<tr class=\"{}\" data-t=\"{t}\"><td>{}</td><td>{t}</td><td>{}</td></tr>",
                    fate.slug(),
                    time(*t, zone),
                    esc(fate.words())
                ));
            }
            out.push_str("</tbody></table>");
            if create > 0 {
                out.push_str(&confirm_form(
                    &format!("{base}/backfill"),
                    token,
                    &[("from", &p.from), ("to", &p.to)],
                    &format!("Request the backfill ({create} runs)"),
                    &base,
                ));
            } else {
                out.push_str(&format!("<p>Nothing to create. <a href=\"{base}\">Back</a></p>"));
            }
            out
        }
    };
    page(&format!("Backfill {ns}/{name}"), Nav::Schedule, false, now, &body)
}

/// A short page for a refusal or an error (never echoes request text unescaped).
pub fn message(title: &str, text: &str, now: Timestamp) -> String {
    page(
        title,
        Nav::Schedule,
        false,
        now,
        &format!("<p role=\"alert\">{}</p>", esc(text)),
    )
}

/// Lanes on the timeline at most (filter to see others).
pub const MAX_LANES: usize = 300;
/// The longest window the timeline draws.
pub const MAX_WINDOW_DAYS: i64 = 31;

/// The timeline's window, zone and filter (query string).
#[derive(Debug, Default, Deserialize)]
pub struct TimelineQuery {
    /// RFC 3339 instants; default: 6 hours either side of now.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Hours either side of now (when from/to are not given).
    pub hours: Option<i64>,
    /// The axis' zone (default: this machine's).
    pub tz: Option<String>,
    pub q: Option<String>,
    pub problems: Option<String>,
}

impl TimelineQuery {
    pub fn window(&self, now: Timestamp) -> Result<super::svg::Window, String> {
        let parse = |s: &str| {
            s.trim()
                .parse::<Timestamp>()
                .map_err(|_| format!("{s:?} is not an RFC 3339 time such as 2026-03-29T00:00:00Z"))
        };
        let hours = self.hours.unwrap_or(6).clamp(1, MAX_WINDOW_DAYS * 24);
        let around = jiff::SignedDuration::from_hours(hours);
        let from = match &self.from {
            Some(s) if !s.trim().is_empty() => parse(s)?,
            // Whole minutes, so the window reads well in the form.
            _ => now
                .checked_sub(around)
                .and_then(|t| Timestamp::from_second(t.as_second().div_euclid(60) * 60))
                .map_err(|e| e.to_string())?,
        };
        let to = match &self.to {
            Some(s) if !s.trim().is_empty() => parse(s)?,
            _ => from
                .checked_add(around)
                .and_then(|t| t.checked_add(around))
                .map_err(|e| e.to_string())?,
        };
        if to <= from {
            return Err("the window's end is not after its start".into());
        }
        if to.duration_since(from) > jiff::SignedDuration::from_hours(MAX_WINDOW_DAYS * 24) {
            return Err(format!("the window is longer than {MAX_WINDOW_DAYS} days"));
        }
        Ok(super::svg::Window { from, to })
    }

    fn overview(&self) -> OverviewQuery {
        OverviewQuery {
            sort: None,
            q: self.q.clone(),
            problems: self.problems.clone(),
        }
    }
}

/// The zone named in a query, else `fallback`.
pub fn zone_of(name: Option<&str>, fallback: &TimeZone) -> Result<TimeZone, String> {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => TimeZone::get(n).map_err(|_| format!("{n:?} is not an IANA time zone")),
        None => Ok(fallback.clone()),
    }
}

fn zone_name(zone: &TimeZone) -> String {
    zone.iana_name().unwrap_or("local").to_string()
}

fn window_form(action: &str, query_q: Option<&str>, zone: &TimeZone, extra: &str) -> String {
    format!(
        "<form class=\"filter\" method=\"get\" action=\"{action}\">{extra}\
         <label>Filter <input type=\"search\" name=\"q\" value=\"{}\"></label> \
         <label>Zone <input name=\"tz\" value=\"{}\" size=\"16\"></label> <button>Show</button></form>",
        esc(query_q.unwrap_or_default()),
        esc(&zone_name(zone)),
    )
}

/// The timeline page.
pub fn timeline(entries: &[Entry<'_>], query: &TimelineQuery, local_zone: &TimeZone, now: Timestamp) -> String {
    let (window, zone) = match (query.window(now), zone_of(query.tz.as_deref(), local_zone)) {
        (Ok(w), Ok(z)) => (w, z),
        (Err(e), _) | (_, Err(e)) => return message("Timeline", &e, now),
    };
    let rows = overview_order(entries, &query.overview(), now);
    let shown: Vec<&Entry<'_>> = rows.into_iter().take(MAX_LANES).collect();
    let presets: String = [1, 6, 24, 72, 168]
        .iter()
        .map(|h| {
            format!(
                "<a href=\"/timeline?hours={h}&amp;tz={}\">±{}</a>",
                enc(&zone_name(&zone)),
                if h % 24 == 0 {
                    format!("{}d", h / 24)
                } else {
                    format!("{h}h")
                }
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let extra = format!(
        "<label>From <input name=\"from\" value=\"{}\" size=\"22\"></label> \
         <label>to <input name=\"to\" value=\"{}\" size=\"22\"></label> ",
        window.from, window.to
    );
    let mut body = window_form("/timeline", query.q.as_deref(), &zone, &extra);
    body.push_str(&format!(
        "<p>Window: {presets}. Bars are runs (✓ succeeded, ✗ failed, ▶ running); marks are fire times to \
         come; shaded: disabled or suspended. Times on the axis in {}.</p>",
        esc(&zone_name(&zone))
    ));
    if entries.len() > shown.len() {
        body.push_str(&format!(
            "<p>{} of {} schedules shown: filter to see others.</p>",
            shown.len(),
            entries.len()
        ));
    }
    body.push_str("<div class=\"scroll\">");
    body.push_str(&super::svg::timeline(&shown, window, &zone, now));
    body.push_str("</div>");
    page("Timeline", Nav::Timeline, true, now, &body)
}

/// The forecast's span and filter.
#[derive(Debug, Default, Deserialize)]
pub struct ForecastQuery {
    /// `24h` (default) or `7d`.
    pub span: Option<String>,
    pub tz: Option<String>,
    pub q: Option<String>,
}

/// The forecast page.
pub fn forecast(entries: &[Entry<'_>], query: &ForecastQuery, local_zone: &TimeZone, now: Timestamp) -> String {
    let zone = match zone_of(query.tz.as_deref(), local_zone) {
        Ok(z) => z,
        Err(e) => return message("Forecast", &e, now),
    };
    let minutes = if query.span.as_deref() == Some("7d") {
        7 * 24 * 60
    } else {
        24 * 60
    };
    let filter = OverviewQuery {
        sort: None,
        q: query.q.clone(),
        problems: None,
    };
    let rows = overview_order(entries, &filter, now);
    let f = super::forecast::forecast(&rows, now, minutes);
    let span = if minutes > 24 * 60 { "7d" } else { "24h" };
    let extra = format!(
        "<label>Span <select name=\"span\"><option{}>24h</option><option{}>7d</option></select></label> ",
        if span == "24h" { " selected" } else { "" },
        if span == "7d" { " selected" } else { "" }
    );
    let mut body = window_form("/forecast", query.q.as_deref(), &zone, &extra);
    body.push_str(&super::forecast::render(&f, &rows, &zone));
    page(&format!("Forecast, next {span}"), Nav::Forecast, true, now, &body)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::stored::SwfObject;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn swf(name: &str, spec: serde_json::Value, status: serde_json::Value) -> SwfObject {
        let mut base = json!({"enabled": true, "trigger": {"cronSchedule": {"cron": "0 0 * * * *"}},
            "runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": {}}});
        if let (Some(b), Some(s)) = (base.as_object_mut(), spec.as_object()) {
            b.extend(s.clone());
        }
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "t",
            "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": base, "status": status}))
        .unwrap()
    }

    #[test]
    fn the_overview_has_a_row_per_schedule_and_problems_stand_out() {
        let objs = [
            swf("fine", json!({}), json!({})),
            swf(
                "broken",
                json!({"trigger": {"cronSchedule": {"cron": "* *"}}}),
                json!({}),
            ),
            swf(
                "suspended",
                json!({}),
                json!({"suspension": {"suspendedAt": "2026-12-01T00:00:00Z", "failedRuns": ["a", "b"]}}),
            ),
            swf("off", json!({"enabled": false}), json!({})),
        ];
        let entries: Vec<Entry> = objs.iter().map(|o| Entry::new(o, &[], "UTC")).collect();
        let now = at("2026-12-06T10:00:00Z");
        let html = overview(&entries, &OverviewQuery::default(), false, now);
        assert_eq!(html.matches("<tr class=").count(), 4, "{html}");
        assert_eq!(html.matches("class=\"problem\"").count(), 2, "{html}");
        assert!(html.contains("invalid spec"), "{html}");
        assert!(html.contains("suspended after 2 failed runs"), "{html}");
        assert!(html.contains("(disabled)"), "{html}");
        let only = OverviewQuery {
            problems: Some("1".into()),
            ..Default::default()
        };
        let rows = overview_order(&entries, &only, now);
        let names: Vec<&str> = rows.iter().map(|e| e.key().1).collect();
        assert_eq!(names, ["broken", "suspended"]);
        let next = OverviewQuery {
            sort: Some("next".into()),
            q: Some("F".into()),
            ..Default::default()
        };
        let names: Vec<&str> = overview_order(&entries, &next, now).iter().map(|e| e.key().1).collect();
        assert_eq!(
            names,
            ["fine", "off"],
            "filtered by text, those with a next fire time first"
        );
    }

    #[test]
    fn names_and_messages_are_escaped() {
        let o = swf(
            "x",
            json!({}),
            json!({"conditions": [{"type": "Error", "status": "True",
            "reason": "<script>", "message": "<img src=x onerror=alert(1)>"}]}),
        );
        let e = Entry::new(&o, &[], "UTC");
        let now = at("2026-12-06T10:00:00Z");
        let html = overview(std::slice::from_ref(&e), &OverviewQuery::default(), false, now);
        assert!(!html.contains("<img") && !html.contains("<script>"), "{html}");
        let html = schedule(&e, &[], "", None, now);
        assert!(!html.contains("<img") && !html.contains("<script>"), "{html}");
    }

    /// The overview of 10,000 schedules renders from the cache in under a second (an optimised
    /// build; a debug build gets more room, as it is several times slower).
    #[test]
    fn ten_thousand_schedules_render_quickly() {
        let crons = ["0 0 * * * *", "0 */5 * * * *", "0 30 2 * * *", "@daily"];
        let zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"];
        let objs: Vec<SwfObject> = (0..10_000)
            .map(|i| {
                swf(
                    &format!("s{i:05}"),
                    json!({"timeZone": zones[i % 4], "trigger": {"cronSchedule": {"cron": crons[i % 4]}}}),
                    json!({}),
                )
            })
            .collect();
        let now = at("2026-12-06T10:00:00Z");
        // As `kubectl swf ui` renders: from the cache, specs validated when they changed.
        let validated: Vec<_> = objs.iter().map(|o| crate::plugin::view::validated(o, "UTC")).collect();
        let started = std::time::Instant::now();
        let entries: Vec<Entry> = objs
            .iter()
            .zip(validated)
            .map(|(o, v)| Entry::with(o, &[], v))
            .collect();
        let html = overview(&entries, &OverviewQuery::default(), false, now);
        let took = started.elapsed();
        assert_eq!(html.matches("<tr class=").count(), 10_000);
        let limit = if cfg!(debug_assertions) { 10.0 } else { 1.0 };
        assert!(took.as_secs_f64() < limit, "{took:?}");
        eprintln!("10,000 schedules: {took:?}");
    }

    #[test]
    fn a_timeline_window_is_checked() {
        let now = at("2026-12-06T10:00:00Z");
        let q = TimelineQuery::default();
        let w = q.window(now).unwrap();
        assert_eq!((w.from, w.to), (at("2026-12-06T04:00:00Z"), at("2026-12-06T16:00:00Z")));
        let bad = TimelineQuery {
            from: Some("2026-12-06T10:00:00Z".into()),
            to: Some("2026-12-01T10:00:00Z".into()),
            ..Default::default()
        };
        assert!(bad.window(now).is_err());
        let long = TimelineQuery {
            from: Some("2026-01-01T00:00:00Z".into()),
            to: Some("2026-12-01T00:00:00Z".into()),
            ..Default::default()
        };
        assert!(long.window(now).is_err());
    }
}
