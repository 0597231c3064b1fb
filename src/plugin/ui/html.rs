//! HTML building blocks: escaping, links to schedules, the page frame. Pure.

use jiff::{Timestamp, tz::TimeZone};

/// Text made safe for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One URL path segment or query value, percent-encoded (unreserved characters kept).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The schedule page's path.
pub fn schedule_path(ns: &str, name: &str) -> String {
    format!("/s/{}/{}", enc(ns), enc(name))
}

/// A time in `zone` as `2026-11-28 16:00:00 CET`, in a `<time>` element carrying the instant.
pub fn time(t: Timestamp, zone: &TimeZone) -> String {
    format!(
        "<time datetime=\"{t}\">{}</time>",
        esc(&crate::plugin::view::local(t, zone))
    )
}

pub fn time_or_dash(t: Option<Timestamp>, zone: &TimeZone) -> String {
    t.map_or_else(|| "-".into(), |t| time(t, zone))
}

/// Which page the navigation marks as current.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Nav {
    Overview,
    Timeline,
    Forecast,
    Schedule,
}

/// The frame around every page: navigation, the live-update status, `<main id="main">`.
/// `live`: whether the page refreshes itself when the cluster changes (not on forms).
pub fn page(title: &str, nav: Nav, live: bool, now: Timestamp, body: &str) -> String {
    let link = |href: &str, label: &str, here: Nav| {
        let current = if nav == here { " aria-current=\"page\"" } else { "" };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · kubectl swf ui</title>\
         <link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/live.js\" defer></script></head>\
         <body data-live=\"{live}\"><header><nav aria-label=\"pages\">{}{}{}</nav>\
         <span id=\"live\" role=\"status\">{}</span></header>\
         <main id=\"main\" data-now=\"{now}\"><h1>{title}</h1>{body}\
         <p class=\"asof\">As of {}.</p></main></body></html>\n",
        link("/", "Overview", Nav::Overview),
        link("/timeline", "Timeline", Nav::Timeline),
        link("/forecast", "Forecast", Nav::Forecast),
        if live {
            "live updates: connecting"
        } else {
            "live updates: off on this page"
        },
        time(now, &TimeZone::UTC),
        title = esc(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(enc("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(schedule_path("team-a", "nightly.1"), "/s/team-a/nightly.1");
    }
}
