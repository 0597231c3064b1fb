//! KFP's parameter macros (`backend/src/common/util/parameter_formatter.go`; see
//! docs/kfp-compatibility.md, "Macros"): `[[ScheduledTime]]`, `[[ScheduledTime.<Go layout>]]`,
//! `[[CurrentTime]]`, `[[CurrentTime.<Go layout>]]`, `[[Index]]`, `[[RunUUID]]`,
//! `{{$.scheduledTime.strftime('…')}}`, `{{$.currentTime.strftime('…')}}`. Times are UTC, the
//! default layout is `20060102150405`; unknown tokens are left as they are.

use std::sync::LazyLock;

use jiff::{Timestamp, Zoned, tz::TimeZone};
use regex::{Captures, Regex};

/// The values macros expand to for one run.
#[derive(Clone, Debug)]
pub struct MacroContext {
    pub scheduled: Timestamp,
    pub current: Timestamp,
    pub index: i64,
    pub run_uuid: String,
}

// Constant patterns, exercised by every test below: they cannot fail at run time.
#[allow(clippy::unwrap_used)]
static TOKEN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[\[(.*?)\]\]|\{\{\$\.(.*?)\}\}").unwrap());
#[allow(clippy::unwrap_used)]
static STRFTIME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^(scheduledTime|currentTime)\.strftime\(['"](.*)['"]\)$"#).unwrap());

const DEFAULT_LAYOUT: &str = "20060102150405";

impl MacroContext {
    /// Expands every known macro in `text`.
    pub fn expand(&self, text: &str) -> String {
        if !text.contains("[[") && !text.contains("{{$.") {
            return text.to_string();
        }
        TOKEN
            .replace_all(text, |caps: &Captures| {
                let expanded = match (caps.get(1), caps.get(2)) {
                    (Some(inner), _) => self.bracket(inner.as_str()),
                    (_, Some(inner)) => self.brace(inner.as_str()),
                    _ => None,
                };
                expanded.unwrap_or_else(|| caps[0].to_string())
            })
            .into_owned()
    }

    fn bracket(&self, inner: &str) -> Option<String> {
        let utc = |t: Timestamp| t.to_zoned(TimeZone::UTC);
        match inner {
            "ScheduledTime" => Some(go_format(&utc(self.scheduled), DEFAULT_LAYOUT)),
            "CurrentTime" => Some(go_format(&utc(self.current), DEFAULT_LAYOUT)),
            "Index" => Some(self.index.to_string()),
            "RunUUID" => Some(self.run_uuid.clone()),
            _ => {
                if let Some(layout) = inner.strip_prefix("ScheduledTime.") {
                    Some(go_format(&utc(self.scheduled), layout))
                } else {
                    inner
                        .strip_prefix("CurrentTime.")
                        .map(|layout| go_format(&utc(self.current), layout))
                }
            }
        }
    }

    fn brace(&self, inner: &str) -> Option<String> {
        let caps = STRFTIME.captures(inner)?;
        let t = if &caps[1] == "scheduledTime" {
            self.scheduled
        } else {
            self.current
        };
        jiff::fmt::strtime::format(&caps[2], &t.to_zoned(TimeZone::UTC)).ok()
    }

    /// Expands macros in every string of a JSON value (keys are left alone).
    pub fn expand_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = self.expand(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.expand_json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.expand_json(v)),
            _ => {}
        }
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A UTC offset the ways Go writes it.
struct Offset {
    seconds: i32,
}

impl Offset {
    fn parts(&self) -> (char, i32, i32) {
        let sign = if self.seconds < 0 { '-' } else { '+' };
        (sign, self.seconds.abs() / 3600, self.seconds.abs() % 3600 / 60)
    }
    /// `-07:00` / `-0700` / `-07`.
    fn numeric(&self, colon: bool, minutes: bool) -> String {
        let (sign, h, m) = self.parts();
        match (minutes, colon) {
            (false, _) => format!("{sign}{h:02}"),
            (true, true) => format!("{sign}{h:02}:{m:02}"),
            (true, false) => format!("{sign}{h:02}{m:02}"),
        }
    }
    /// `Z07:00` and friends: `Z` for UTC.
    fn z(&self, colon: bool, minutes: bool) -> String {
        if self.seconds == 0 {
            "Z".into()
        } else {
            self.numeric(colon, minutes)
        }
    }
}

/// Go's layout tokens and their values for `t`, longest first (as Go's `nextStdChunk`).
fn go_tokens(t: &Zoned) -> [(&'static str, String); 34] {
    let month = MONTHS[usize::from(t.month().unsigned_abs()).saturating_sub(1) % 12];
    let weekday = DAYS[usize::from(t.weekday().to_monday_zero_offset().unsigned_abs()) % 7];
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let off = Offset {
        seconds: t.offset().seconds(),
    };
    let nanos = t.subsec_nanosecond();
    let pm = t.hour() >= 12;
    [
        ("January", month.to_string()),
        ("Monday", weekday.to_string()),
        ("Z07:00", off.z(true, true)),
        ("-07:00", off.numeric(true, true)),
        ("Z0700", off.z(false, true)),
        ("-0700", off.numeric(false, true)),
        ("2006", format!("{:04}", t.year())),
        (".000000000", format!(".{nanos:09}")),
        (".000000", format!(".{:06}", nanos / 1000)),
        (".000", format!(".{:03}", nanos / 1_000_000)),
        (".999999999", trim_frac(nanos, 9)),
        (".999999", trim_frac(nanos, 6)),
        (".999", trim_frac(nanos, 3)),
        ("Jan", month[..3].to_string()),
        ("Mon", weekday[..3].to_string()),
        (
            "MST",
            if off.seconds == 0 {
                "UTC".into()
            } else {
                off.numeric(false, false)
            },
        ),
        ("Z07", off.z(false, false)),
        ("-07", off.numeric(false, false)),
        ("002", format!("{:03}", t.day_of_year())),
        ("_2", format!("{:>2}", t.day())),
        ("01", format!("{:02}", t.month())),
        ("02", format!("{:02}", t.day())),
        ("03", format!("{hour12:02}")),
        ("04", format!("{:02}", t.minute())),
        ("05", format!("{:02}", t.second())),
        ("06", format!("{:02}", t.year() % 100)),
        ("15", format!("{:02}", t.hour())),
        ("PM", if pm { "PM" } else { "AM" }.into()),
        ("pm", if pm { "pm" } else { "am" }.into()),
        ("1", t.month().to_string()),
        ("2", t.day().to_string()),
        ("3", hour12.to_string()),
        ("4", t.minute().to_string()),
        ("5", t.second().to_string()),
    ]
}

/// Formats `t` with a Go reference-time layout (`Mon Jan 2 15:04:05 MST 2006`).
pub fn go_format(t: &Zoned, layout: &str) -> String {
    let tokens = go_tokens(t);
    let mut out = String::new();
    let mut rest = layout;
    'outer: while let Some(c) = rest.chars().next() {
        for (token, value) in &tokens {
            if let Some(after) = rest.strip_prefix(token) {
                out.push_str(value);
                rest = after;
                continue 'outer;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn trim_frac(nanos: i32, digits: u32) -> String {
    let scaled = nanos / 10i32.pow(9 - digits);
    if scaled == 0 {
        return String::new();
    }
    let s = format!(".{scaled:0width$}", width = digits as usize);
    s.trim_end_matches('0').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> MacroContext {
        MacroContext {
            scheduled: "2024-01-01T10:00:00Z".parse().unwrap(),
            current: "2024-01-02T03:04:05Z".parse().unwrap(),
            index: 7,
            run_uuid: "1234-abcd".into(),
        }
    }

    #[test]
    fn kfp_macros() {
        let c = ctx();
        assert_eq!(c.expand("run-[[ScheduledTime]]"), "run-20240101100000");
        assert_eq!(c.expand("[[CurrentTime]]"), "20240102030405");
        assert_eq!(c.expand("[[ScheduledTime.2006-01-02]]"), "2024-01-01");
        assert_eq!(
            c.expand("[[CurrentTime.15:04:05 Jan _2 2006 MST]]"),
            "03:04:05 Jan  2 2024 UTC"
        );
        assert_eq!(c.expand("[[Index]]/[[RunUUID]]"), "7/1234-abcd");
        assert_eq!(
            c.expand("{{$.scheduledTime.strftime('%Y-%m-%d %H:%M')}}"),
            "2024-01-01 10:00"
        );
        assert_eq!(c.expand("{{$.currentTime.strftime('%s')}}"), "1704164645");
    }

    #[test]
    fn unknown_tokens_stay() {
        let c = ctx();
        assert_eq!(
            c.expand("[[Nope]] {{$.other}} {{workflow.uid}}"),
            "[[Nope]] {{$.other}} {{workflow.uid}}"
        );
    }

    #[test]
    fn go_layouts() {
        let t: Zoned = "2024-03-05T15:04:05+00:00[UTC]".parse().unwrap();
        assert_eq!(
            go_format(&t, "Monday, 02-Jan-06 03:04PM Z07:00"),
            "Tuesday, 05-Mar-24 03:04PM Z"
        );
        assert_eq!(
            go_format(&t, "2006-01-02T15:04:05.000Z0700"),
            "2024-03-05T15:04:05.000Z"
        );
        assert_eq!(go_format(&t, "1/2 3pm day002"), "3/5 3pm day065");
    }

    #[test]
    fn json_strings_are_expanded() {
        let mut v = serde_json::json!({"a": ["x-[[Index]]", 3], "b": {"c": "[[ScheduledTime.2006]]"}});
        ctx().expand_json(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["x-7", 3], "b": {"c": "2024"}}));
    }
}
