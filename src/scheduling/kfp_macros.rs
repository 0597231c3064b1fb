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
        let utc = |t: Timestamp| whole_seconds(t).to_zoned(TimeZone::UTC);
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

/// KFP formats `time.Unix(epoch, 0)`: the time without its fraction of a second (Go's `Unix()`
/// rounds down, also before 1970).
fn whole_seconds(t: Timestamp) -> Timestamp {
    let floor = t.as_second() - i64::from(t.subsec_nanosecond() < 0);
    Timestamp::from_second(floor).unwrap_or(t)
}

// Go's layout elements, their tokenizer and their values: `src/time/format.go` (`nextStdChunk`,
// `appendFormat`, `appendNano`), and the layout list in the docs of Go's package time.

/// One element of a Go layout (Go's `std*` constants); any other text is copied as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Std {
    LongMonth,    // January
    Month,        // Jan
    NumMonth,     // 1
    ZeroMonth,    // 01
    LongWeekDay,  // Monday
    WeekDay,      // Mon
    Day,          // 2
    UnderDay,     // _2
    ZeroDay,      // 02
    UnderYearDay, // __2
    ZeroYearDay,  // 002
    Hour,         // 15
    Hour12,       // 3
    ZeroHour12,   // 03
    Minute,       // 4
    ZeroMinute,   // 04
    Second,       // 5
    ZeroSecond,   // 05
    LongYear,     // 2006
    Year,         // 06
    UpperPm,      // PM
    LowerPm,      // pm
    ZoneName,     // MST
    Offset(OffsetLayout),
    Fraction(FractionLayout),
}

/// `-07`, `-0700`, `-070000`, `-07:00`, `-07:00:00`, and the same with `Z` for the sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OffsetLayout {
    /// The `Z…` forms write UTC as `Z`.
    z_for_utc: bool,
    colons: bool,
    fields: OffsetFields,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OffsetFields {
    Hours,
    HoursMinutes,
    HoursMinutesSeconds,
}

/// `.000`, `,000`, `.999`, `,999`, with any number of digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FractionLayout {
    separator: char,
    digits: usize,
    /// `9`s drop trailing zeros (and the separator when nothing is left); `0`s keep them.
    trim_zeros: bool,
}

/// Go's `nextStdChunk`: the literal text before the first layout element, that element (`None`
/// when there is none: the whole layout is text), and the layout after it.
fn next_std_chunk(layout: &str) -> (&str, Option<Std>, &str) {
    let bytes = layout.as_bytes();
    for i in 0..bytes.len() {
        let Some((std, len)) = bytes.get(i..).and_then(std_at) else {
            continue;
        };
        // Elements are ASCII, so both cuts fall on char boundaries; `get` only avoids a panic.
        if let (Some(prefix), Some(rest)) = (layout.get(..i), layout.get(i + len..)) {
            return (prefix, Some(std), rest);
        }
    }
    (layout, None, "")
}

/// The element `s` starts with, and its length, as Go's `nextStdChunk` decides at one position.
fn std_at(s: &[u8]) -> Option<(Std, usize)> {
    let element = match s.first()? {
        b'J' => month_name(s)?,
        b'M' => weekday_or_zone_name(s)?,
        b'0' => zero_padded(s)?,
        b'1' if s.starts_with(b"15") => (Std::Hour, 2),
        b'1' => (Std::NumMonth, 1),
        b'2' if s.starts_with(b"2006") => (Std::LongYear, 4),
        b'2' => (Std::Day, 1),
        b'_' => space_padded(s)?,
        b'3' => (Std::Hour12, 1),
        b'4' => (Std::Minute, 1),
        b'5' => (Std::Second, 1),
        b'P' if s.starts_with(b"PM") => (Std::UpperPm, 2),
        b'p' if s.starts_with(b"pm") => (Std::LowerPm, 2),
        b'-' | b'Z' => zone_offset(s)?,
        b'.' | b',' => fraction(s)?,
        _ => return None,
    };
    Some(element)
}

/// Go's `startsWithLowerCase`: keeps `Mon` out of `Monthly` and `Jan` out of `Janitor`.
fn lowercase_at(s: &[u8], at: usize) -> bool {
    s.get(at).is_some_and(u8::is_ascii_lowercase)
}

/// `January`; `Jan` unless a lowercase letter follows.
fn month_name(s: &[u8]) -> Option<(Std, usize)> {
    if s.starts_with(b"January") {
        Some((Std::LongMonth, 7))
    } else if s.starts_with(b"Jan") && !lowercase_at(s, 3) {
        Some((Std::Month, 3))
    } else {
        None
    }
}

/// `Monday`; `Mon` unless a lowercase letter follows; `MST` (Go has no lowercase rule for
/// `January`, `Monday` or `MST`).
fn weekday_or_zone_name(s: &[u8]) -> Option<(Std, usize)> {
    if s.starts_with(b"Monday") {
        Some((Std::LongWeekDay, 6))
    } else if s.starts_with(b"Mon") && !lowercase_at(s, 3) {
        Some((Std::WeekDay, 3))
    } else if s.starts_with(b"MST") {
        Some((Std::ZoneName, 3))
    } else {
        None
    }
}

/// `01` to `06`, and `002`; any other `0` is text.
fn zero_padded(s: &[u8]) -> Option<(Std, usize)> {
    let std = match s.get(1)? {
        b'1' => Std::ZeroMonth,
        b'2' => Std::ZeroDay,
        b'3' => Std::ZeroHour12,
        b'4' => Std::ZeroMinute,
        b'5' => Std::ZeroSecond,
        b'6' => Std::Year,
        b'0' if s.starts_with(b"002") => return Some((Std::ZeroYearDay, 3)),
        _ => return None,
    };
    Some((std, 2))
}

/// `_2` and `__2`. Go reads `_2006` as a literal `_` then the year: leaving the `_` as text here
/// lets the next position take `2006`, which gives the same chunks.
fn space_padded(s: &[u8]) -> Option<(Std, usize)> {
    if s.starts_with(b"_2006") {
        None
    } else if s.starts_with(b"_2") {
        Some((Std::UnderDay, 2))
    } else if s.starts_with(b"__2") {
        Some((Std::UnderYearDay, 3))
    } else {
        None
    }
}

/// A sign (`-`, or `Z` for "UTC as `Z`") and one of Go's offset forms, tried in Go's order.
fn zone_offset(s: &[u8]) -> Option<(Std, usize)> {
    use OffsetFields::*;
    const FORMS: [(&[u8], bool, OffsetFields); 5] = [
        (b"070000", false, HoursMinutesSeconds),
        (b"07:00:00", true, HoursMinutesSeconds),
        (b"0700", false, HoursMinutes),
        (b"07:00", true, HoursMinutes),
        (b"07", false, Hours),
    ];
    let (sign, rest) = s.split_first()?;
    let &(form, colons, fields) = FORMS.iter().find(|(form, ..)| rest.starts_with(form))?;
    let layout = OffsetLayout {
        z_for_utc: *sign == b'Z',
        colons,
        fields,
    };
    Some((Std::Offset(layout), 1 + form.len()))
}

/// A `.` or `,` then a run of `0`s or of `9`s, only when no other digit follows the run (Go:
/// "only fractional second is all digits"; `.0001` is text and a month).
fn fraction(s: &[u8]) -> Option<(Std, usize)> {
    let (&separator, rest) = s.split_first()?;
    let digit = *rest.first().filter(|&&d| d == b'0' || d == b'9')?;
    let digits = rest.iter().take_while(|&&d| d == digit).count();
    if rest.get(digits).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let layout = FractionLayout {
        separator: char::from(separator),
        digits,
        trim_zeros: digit == b'9',
    };
    Some((Std::Fraction(layout), 1 + digits))
}

/// Formats `t` with a Go reference-time layout (`Mon Jan 2 15:04:05 MST 2006`) as Go's
/// `time.Format` does: the layout is cut into chunks by Go's rules (`next_std_chunk`) and any
/// text that is no layout element is copied as it is.
pub fn go_format(t: &Zoned, layout: &str) -> String {
    let mut out = String::with_capacity(layout.len() + 10);
    let mut rest = layout;
    while !rest.is_empty() {
        let (prefix, std, suffix) = next_std_chunk(rest);
        out.push_str(prefix);
        let Some(std) = std else { break };
        push_std(&mut out, std, t);
        rest = suffix;
    }
    out
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
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Go's `appendFormat` for one element.
fn push_std(out: &mut String, std: Std, t: &Zoned) {
    let month = MONTHS[usize::from(t.month().unsigned_abs()).saturating_sub(1) % 12];
    let weekday = DAYS[usize::from(t.weekday().to_sunday_zero_offset().unsigned_abs()) % 7];
    match std {
        Std::LongMonth => out.push_str(month),
        Std::Month => out.push_str(abbreviated(month)),
        Std::NumMonth => push_int(out, t.month().into(), 0),
        Std::ZeroMonth => push_int(out, t.month().into(), 2),
        Std::LongWeekDay => out.push_str(weekday),
        Std::WeekDay => out.push_str(abbreviated(weekday)),
        Std::Day => push_int(out, t.day().into(), 0),
        Std::UnderDay => push_space_padded(out, t.day().into(), 2),
        Std::ZeroDay => push_int(out, t.day().into(), 2),
        Std::UnderYearDay => push_space_padded(out, t.day_of_year().into(), 3),
        Std::ZeroYearDay => push_int(out, t.day_of_year().into(), 3),
        Std::Hour => push_int(out, t.hour().into(), 2),
        Std::Hour12 => push_int(out, hour12(t), 0),
        Std::ZeroHour12 => push_int(out, hour12(t), 2),
        Std::Minute => push_int(out, t.minute().into(), 0),
        Std::ZeroMinute => push_int(out, t.minute().into(), 2),
        Std::Second => push_int(out, t.second().into(), 0),
        Std::ZeroSecond => push_int(out, t.second().into(), 2),
        Std::LongYear => push_int(out, t.year().into(), 4),
        // Go writes the last two digits of the year's absolute value.
        Std::Year => push_int(out, i64::from(t.year().unsigned_abs() % 100), 2),
        Std::UpperPm => out.push_str(if t.hour() >= 12 { "PM" } else { "AM" }),
        Std::LowerPm => out.push_str(if t.hour() >= 12 { "pm" } else { "am" }),
        Std::ZoneName => push_zone_name(out, t),
        Std::Offset(layout) => push_offset(out, layout, t.offset().seconds()),
        Std::Fraction(layout) => push_fraction(out, layout, t.subsec_nanosecond()),
    }
}

/// `Jan` from `January`, `Mon` from `Monday` (the names are ASCII).
fn abbreviated(name: &str) -> &str {
    name.get(..3).unwrap_or(name)
}

/// Noon is 12 PM and midnight 12 AM.
fn hour12(t: &Zoned) -> i64 {
    match t.hour() % 12 {
        0 => 12,
        h => h.into(),
    }
}

/// Go's `appendInt`: a `-` for negatives, then the digits zero-padded to `width`.
fn push_int(out: &mut String, value: i64, width: usize) {
    if value < 0 {
        out.push('-');
    }
    out.push_str(&format!("{:0width$}", value.unsigned_abs()));
}

/// `_2` and `__2`: spaces in front up to `width`.
fn push_space_padded(out: &mut String, value: i64, width: usize) {
    out.push_str(&format!("{value:>width$}"));
}

/// Go writes the zone's abbreviation (`UTC`, `EST`); a zone with no name (Go's
/// `FixedZone("", …)`, like jiff's fixed offsets) as `-0700`.
fn push_zone_name(out: &mut String, t: &Zoned) {
    let zone = t.time_zone();
    let nameless = zone.iana_name().is_none() && zone.to_fixed_offset().is_ok();
    if nameless {
        let numeric = OffsetLayout {
            z_for_utc: false,
            colons: false,
            fields: OffsetFields::HoursMinutes,
        };
        push_offset(out, numeric, t.offset().seconds());
    } else {
        out.push_str(zone.to_offset_info(t.timestamp()).abbreviation());
    }
}

/// Go's offset arithmetic, kept as Go does it: the sign is that of the offset in whole minutes,
/// and the seconds keep their own sign.
fn push_offset(out: &mut String, layout: OffsetLayout, offset_seconds: i32) {
    if layout.z_for_utc && offset_seconds == 0 {
        out.push('Z');
        return;
    }
    let mut minutes = i64::from(offset_seconds / 60);
    let mut seconds = i64::from(offset_seconds);
    if minutes < 0 {
        out.push('-');
        minutes = -minutes;
        seconds = -seconds;
    } else {
        out.push('+');
    }
    push_int(out, minutes / 60, 2);
    if layout.colons {
        out.push(':');
    }
    if layout.fields != OffsetFields::Hours {
        push_int(out, minutes % 60, 2);
    }
    if layout.fields == OffsetFields::HoursMinutesSeconds {
        if layout.colons {
            out.push(':');
        }
        push_int(out, seconds % 60, 2);
    }
}

/// Go's `appendNano`. Go keeps the digit count in 12 bits and writes at most 9 digits.
fn push_fraction(out: &mut String, layout: FractionLayout, nanos: i32) {
    let digits = (layout.digits & 0xfff).min(9);
    let all = format!("{:09}", nanos.unsigned_abs());
    let mut shown = all.get(..digits).unwrap_or(&all);
    if layout.trim_zeros {
        shown = shown.trim_end_matches('0');
        if shown.is_empty() {
            return;
        }
    }
    out.push(layout.separator);
    out.push_str(shown);
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

    // The times of the table below, in the zones that exercise the zone elements.
    const TUE: &str = "2024-03-05T15:04:05.1203+00:00[UTC]"; // a fraction with trailing zeros
    const NEWYEAR: &str = "2024-01-01T00:00:00+00:00[UTC]"; // midnight, day 1, no fraction
    const NYE: &str = "2024-12-31T09:08:07+00:00[UTC]"; // day 366
    const STJOHNS: &str = "2024-03-05T15:04:05-03:30[America/St_Johns]";
    const KOLKATA: &str = "2024-03-05T15:04:05+05:30[Asia/Kolkata]";
    const MONROVIA: &str = "1971-06-01T12:00:00-00:44:30[Africa/Monrovia]"; // an offset with seconds
    const FIXED: &str = "2024-03-05T15:04:05-03:30[-03:30]"; // no zone name
    // Under a minute west of UTC: jiff's zoned text takes whole minutes only, so `table_time` builds it.
    const TINY: &str = "2024-03-05T15:04:05 at a fixed offset of -30 s";
    const BCE: &str = "-000005-03-05T15:04:05+00:00[UTC]";

    /// Every element of Go's layout list, Go's predefined layouts, and the context rules of
    /// `nextStdChunk` (Go's `src/time/format.go`): (time, layout, expected, why).
    /// The expected strings came from Go's own `time.Format` (go1.19.8 linux/amd64, whose
    /// `nextStdChunk` is the same as Go's today), run once over these times and layouts.
    #[rustfmt::skip]
    const GO_CASES: &[(&str, &str, &str, &str)] = &[
        (TUE, "2006", "2024", "four-digit year"),
        (TUE, "06", "24", "two-digit year"),
        (TUE, "Jan", "Mar", "short month name"),
        (TUE, "January", "March", "long month name"),
        (TUE, "01", "03", "zero-padded month"),
        (TUE, "1", "3", "month number"),
        (TUE, "Mon", "Tue", "short weekday name"),
        (TUE, "Monday", "Tuesday", "long weekday name"),
        (TUE, "2", "5", "day of month"),
        (TUE, "_2", " 5", "space-padded day of month"),
        (NYE, "_2", "31", "a two-digit day needs no space"),
        (TUE, "02", "05", "zero-padded day of month"),
        (TUE, "__2", " 65", "space-padded day of year"),
        (NEWYEAR, "__2", "  1", "a one-digit day of year gets two spaces"),
        (NYE, "__2", "366", "day 366 of a leap year needs no space"),
        (TUE, "002", "065", "zero-padded day of year"),
        (NEWYEAR, "002", "001", "zero-padded day of year, first day"),
        (TUE, "15", "15", "24-hour clock"),
        (TUE, "3", "3", "12-hour clock"),
        (TUE, "03", "03", "zero-padded 12-hour clock"),
        (NEWYEAR, "3", "12", "midnight is 12 on the 12-hour clock"),
        (NEWYEAR, "03PM", "12AM", "midnight is 12 AM"),
        (TUE, "4", "4", "minute"),
        (TUE, "04", "04", "zero-padded minute"),
        (TUE, "5", "5", "second"),
        (TUE, "05", "05", "zero-padded second"),
        (TUE, "PM", "PM", "PM after noon"),
        (TUE, "pm", "pm", "lowercase pm"),
        (NEWYEAR, "pm", "am", "am before noon"),
        (TUE, "MST", "UTC", "the zone's abbreviation: UTC"),
        (STJOHNS, "MST", "NST", "the zone's abbreviation in a named zone"),
        (KOLKATA, "MST", "IST", "the zone's abbreviation east of UTC"),
        (FIXED, "MST", "-0330", "a zone with no name is written as -0700"),
        (TUE, "-07", "+00", "numeric offset, hours"),
        (TUE, "-0700", "+0000", "numeric offset, hours and minutes"),
        (TUE, "-07:00", "+00:00", "numeric offset with a colon"),
        (TUE, "-070000", "+000000", "numeric offset with seconds"),
        (TUE, "-07:00:00", "+00:00:00", "numeric offset with seconds and colons"),
        (TUE, "Z07", "Z", "the Z forms write UTC as Z"),
        (TUE, "Z0700", "Z", "the Z forms write UTC as Z"),
        (TUE, "Z07:00", "Z", "the Z forms write UTC as Z"),
        (TUE, "Z070000", "Z", "the Z forms write UTC as Z"),
        (TUE, "Z07:00:00", "Z", "the Z forms write UTC as Z"),
        (STJOHNS, "-07", "-03", "hours only: the 30 minutes are dropped"),
        (STJOHNS, "-0700", "-0330", "negative offset, hours and minutes"),
        (STJOHNS, "-07:00", "-03:30", "negative offset with a colon"),
        (STJOHNS, "-070000", "-033000", "negative offset with seconds"),
        (STJOHNS, "-07:00:00", "-03:30:00", "negative offset with seconds and colons"),
        (STJOHNS, "Z07", "-03", "outside UTC a Z form is numeric"),
        (STJOHNS, "Z0700", "-0330", "outside UTC a Z form is numeric"),
        (STJOHNS, "Z07:00", "-03:30", "outside UTC a Z form is numeric"),
        (STJOHNS, "Z070000", "-033000", "outside UTC a Z form is numeric"),
        (STJOHNS, "Z07:00:00", "-03:30:00", "outside UTC a Z form is numeric"),
        (KOLKATA, "Z07:00", "+05:30", "positive offsets get a +"),
        (MONROVIA, "-07:00:00", "-00:44:30", "an offset with seconds (Monrovia Mean Time)"),
        (MONROVIA, "Z070000", "-004430", "an offset with seconds, no colons"),
        (MONROVIA, "-0700", "-0044", "the seconds are dropped without a seconds form"),
        (MONROVIA, "MST", "MMT", "Monrovia Mean Time's abbreviation"),
        (TINY, "-07:00:00", "+00:00:-30", "Go signs whole minutes; the -30 s keep their own sign"),
        (TUE, ".0", ".1", "one zero: one digit, zeros kept"),
        (TUE, ".000", ".120", "milliseconds, zeros kept"),
        (TUE, ".000000", ".120300", "microseconds, zeros kept"),
        (TUE, ".000000000", ".120300000", "nanoseconds, zeros kept"),
        (TUE, ".0000", ".1203", "any number of digits"),
        (TUE, ".0000000000", ".120300000", "at most nine digits are written"),
        (TUE, ".9", ".1", "one nine: one digit, zeros trimmed"),
        (TUE, ".999", ".12", "trailing zeros trimmed"),
        (TUE, ".999999", ".1203", "trailing zeros trimmed"),
        (TUE, ".999999999", ".1203", "trailing zeros trimmed"),
        (TUE, ",000", ",120", "a comma separator"),
        (TUE, ",999", ",12", "a comma separator, zeros trimmed"),
        (NEWYEAR, ".999", "", "no fraction: nines write nothing, not even the dot"),
        (NEWYEAR, ".000", ".000", "no fraction: zeros are kept"),
        (TUE, "05.000s", "05.120s", "a fraction followed by a letter"),
        (TUE, ".0001", ".0003", "a digit after the zeros: no fraction, the 01 is the month"),
        (TUE, ".09", ".09", "mixed digits are no fraction"),
        (TUE, ":000", ":000", "three zeros without a separator are text"),
        (TUE, "..000", "..120", "a dot before the fraction is text"),
        (TUE, ".", ".", "a lone dot is text"),
        (TUE, "Monthly-2006", "Monthly-2024", "Mon only when no lowercase letter follows"),
        (TUE, "Mondays", "Tuesdays", "Monday is taken whole, whatever follows"),
        (TUE, "MonX", "TueX", "an uppercase letter after Mon is no obstacle"),
        (TUE, "Mon2", "Tue5", "a digit after Mon is the next element"),
        (TUE, "Month", "Month", "Mon before a lowercase letter, and no MST: text"),
        (TUE, "Janitor", "Janitor", "Jan only when no lowercase letter follows"),
        (TUE, "Jana", "Jana", "Jan before a lowercase letter is text"),
        (TUE, "Januaryx", "Marchx", "January is taken whole, whatever follows"),
        (TUE, "Jan.", "Mar.", "Jan before punctuation"),
        (TUE, "January2006", "March2024", "January then the year"),
        (TUE, "MSTx", "UTCx", "MST has no lowercase rule"),
        (TUE, "_2006", "_2024", "a literal _ then the year"),
        (TUE, "__2006", " 65024", "__2 then 0 as text then 06"),
        (TUE, "___2", "_ 65", "a literal _ then __2"),
        (TUE, "2005", "5005", "2 then 0 as text then 05"),
        (TUE, "07", "07", "0 before 7 is text"),
        (TUE, "00", "00", "0 before 0 is text"),
        (TUE, "0002", "0065", "a 0 as text then 002"),
        (TUE, "15:4:5", "15:4:5", "unpadded minute and second"),
        (TUE, "Pm", "Pm", "Pm is text"),
        (TUE, "pM", "pM", "pM is text"),
        (TUE, "Z07:0", "Z:0", "Z07 then text"),
        (TUE, "-07:0", "+00:0", "-07 then text"),
        (TUE, "-070", "+000", "-07 then a 0 as text"),
        (TUE, "-7", "-7", "a sign before 7 is text"),
        (TUE, "Z", "Z", "a lone Z is text"),
        (TUE, "日2006年", "日2024年", "text that is not ASCII is copied"),
        (TUE, "", "", "an empty layout gives nothing"),
        (BCE, "2006 06", "-0005 05", "a year before 1 is signed and zero-padded; 06 uses its absolute value"),
        (BCE, "Jan 2 2006", "Mar 5 -0005", "a year before 1 after a date"),
        (TUE, "20060102150405", "20240305150405", "KFP's default layout"),
        (TUE, "01/02 03:04:05PM '06 -0700", "03/05 03:04:05PM '24 +0000", "Go's Layout"),
        (TUE, "Mon Jan _2 15:04:05 2006", "Tue Mar  5 15:04:05 2024", "Go's ANSIC"),
        (TUE, "Mon Jan _2 15:04:05 MST 2006", "Tue Mar  5 15:04:05 UTC 2024", "Go's UnixDate"),
        (TUE, "Mon Jan 02 15:04:05 -0700 2006", "Tue Mar 05 15:04:05 +0000 2024", "Go's RubyDate"),
        (TUE, "02 Jan 06 15:04 MST", "05 Mar 24 15:04 UTC", "Go's RFC822"),
        (TUE, "02 Jan 06 15:04 -0700", "05 Mar 24 15:04 +0000", "Go's RFC822Z"),
        (TUE, "Monday, 02-Jan-06 15:04:05 MST", "Tuesday, 05-Mar-24 15:04:05 UTC", "Go's RFC850"),
        (TUE, "Mon, 02 Jan 2006 15:04:05 MST", "Tue, 05 Mar 2024 15:04:05 UTC", "Go's RFC1123"),
        (TUE, "Mon, 02 Jan 2006 15:04:05 -0700", "Tue, 05 Mar 2024 15:04:05 +0000", "Go's RFC1123Z"),
        (TUE, "2006-01-02T15:04:05Z07:00", "2024-03-05T15:04:05Z", "Go's RFC3339"),
        (STJOHNS, "2006-01-02T15:04:05Z07:00", "2024-03-05T15:04:05-03:30", "Go's RFC3339 outside UTC"),
        (TUE, "2006-01-02T15:04:05.999999999Z07:00", "2024-03-05T15:04:05.1203Z", "Go's RFC3339Nano"),
        (TUE, "3:04PM", "3:04PM", "Go's Kitchen"),
        (TUE, "Jan _2 15:04:05", "Mar  5 15:04:05", "Go's Stamp"),
        (TUE, "Jan _2 15:04:05.000", "Mar  5 15:04:05.120", "Go's StampMilli"),
        (TUE, "Jan _2 15:04:05.000000", "Mar  5 15:04:05.120300", "Go's StampMicro"),
        (TUE, "Jan _2 15:04:05.000000000", "Mar  5 15:04:05.120300000", "Go's StampNano"),
        (TUE, "2006-01-02 15:04:05", "2024-03-05 15:04:05", "Go's DateTime"),
        (TUE, "2006-01-02", "2024-03-05", "Go's DateOnly"),
        (TUE, "15:04:05", "15:04:05", "Go's TimeOnly"),
        (TUE, "Monday, 02-Jan-06 03:04PM Z07:00", "Tuesday, 05-Mar-24 03:04PM Z", "long names, zero padding, PM and a Z offset together"),
        (TUE, "2006-01-02T15:04:05.000Z0700", "2024-03-05T15:04:05.120Z", "milliseconds then a Z offset"),
        (TUE, "1/2 3pm day002", "3/5 3pm day065", "unpadded numbers; \"day\" is text before 002"),
    ];

    fn table_time(at: &str) -> Zoned {
        if at == TINY {
            let offset = jiff::tz::Offset::from_seconds(-30).unwrap();
            return jiff::civil::datetime(2024, 3, 5, 15, 4, 5, 0)
                .to_zoned(TimeZone::fixed(offset))
                .unwrap();
        }
        at.parse().unwrap()
    }

    #[test]
    fn go_format_matches_go_time_format() {
        let failures: Vec<String> = GO_CASES
            .iter()
            .filter_map(|&(at, layout, want, why)| {
                let t = table_time(at);
                let got = go_format(&t, layout);
                (got != want).then(|| format!("{layout:?} at {at}: got {got:?}, Go gives {want:?} ({why})"))
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} differ from Go:\n{}",
            failures.len(),
            GO_CASES.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn time_macros_drop_the_fraction_as_kfp() {
        // KFP formats time.Unix(epoch, 0); Go's Unix() rounds down, also before 1970.
        let c = MacroContext {
            scheduled: "1969-12-31T23:59:59.5Z".parse().unwrap(),
            current: "2024-01-02T03:04:05.678Z".parse().unwrap(),
            ..ctx()
        };
        assert_eq!(c.expand("[[CurrentTime.05.000]]"), "05.000");
        assert_eq!(
            c.expand("[[ScheduledTime.2006-01-02T15:04:05.999]]"),
            "1969-12-31T23:59:59"
        );
    }

    #[test]
    fn json_strings_are_expanded() {
        let mut v = serde_json::json!({"a": ["x-[[Index]]", 3], "b": {"c": "[[ScheduledTime.2006]]"}});
        ctx().expand_json(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["x-7", 3], "b": {"c": "2024"}}));
    }
}
