//! KFP's cron grammar: robfig/cron v1.2.0 `cron.Parse`, which KFP's controller calls
//! (`backend/src/crd/controller/scheduledworkflow/util/cron_schedule.go`; see
//! docs/kfp-compatibility.md, "Cron", and docs/architecture.md for why croner).
//!
//! We parse and validate the grammar ourselves (so we accept and reject exactly what robfig
//! does, with its reasons), then hand croner a normalised pattern of plain numbers. croner
//! walks the calendar in the schedule's time zone and brings the DST policy we want:
//! a fixed-time tick in a spring-forward gap runs once at the end of the gap, and once (not
//! twice, as robfig) in a repeated fall-back hour; wildcard schedules follow elapsed time.

use std::fmt;

use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};
use jiff::{Timestamp, Zoned, tz::TimeZone};

/// A parsed KFP cron expression.
#[derive(Clone, Debug)]
pub enum CronExpr {
    /// A calendar pattern (fields or a `@daily`-style descriptor).
    Calendar(Box<CalendarSchedule>),
    /// `@every <duration>`: the previous tick plus a constant delay (robfig's
    /// `ConstantDelaySchedule`), whole seconds, at least one.
    Every { seconds: i64 },
}

#[derive(Clone, Debug)]
pub struct CalendarSchedule {
    cron: Cron,
    /// True when the spec had 5 fields: robfig v1 reads them as `sec min hour dom month`.
    pub five_fields: bool,
    /// True when no date can ever match (e.g. Feb 30): such a schedule never fires.
    pub never_fires: bool,
}

/// Why an expression was rejected; the wording follows robfig's so KFP users recognise it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError(pub String);

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CronError {}

fn err<T>(msg: impl Into<String>) -> Result<T, CronError> {
    Err(CronError(msg.into()))
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const SECONDS: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// One field as robfig stores it: the set of values and whether it was written with `*`/`?`
/// (robfig's "star bit", which decides AND vs OR between the two day fields).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Field {
    bits: u64,
    star: bool,
}

impl Field {
    fn all(b: &Bounds) -> Field {
        Field {
            bits: bits(b.min, b.max, 1),
            star: true,
        }
    }
    fn one(v: u32) -> Field {
        Field {
            bits: 1 << v,
            star: false,
        }
    }
    fn values(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |v| self.bits & (1 << v) != 0)
    }
    fn is_full(self, b: &Bounds) -> bool {
        self.bits == bits(b.min, b.max, 1)
    }
}

fn bits(min: u32, max: u32, step: u32) -> u64 {
    (min..=max).step_by(step as usize).fold(0, |acc, v| acc | 1 << v)
}

/// Go's `strconv.Atoi` plus robfig's "no negative numbers" rule.
fn must_parse_int(expr: &str) -> Result<u32, CronError> {
    let digits = expr
        .strip_prefix('+')
        .or_else(|| expr.strip_prefix('-'))
        .unwrap_or(expr);
    let parsed = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        expr.parse::<i64>().ok()
    } else {
        None
    };
    match parsed {
        None => err(format!(
            "Failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: invalid syntax"
        )),
        Some(n) if n < 0 => err(format!("Negative number ({n}) not allowed: {expr}")),
        Some(n) => Ok(u32::try_from(n.min(u32::MAX as i64)).unwrap_or(u32::MAX)),
    }
}

fn parse_int_or_name(expr: &str, b: &Bounds) -> Result<u32, CronError> {
    let lower = expr.to_ascii_lowercase();
    if let Some((_, v)) = b.names.iter().find(|(n, _)| *n == lower) {
        return Ok(*v);
    }
    must_parse_int(expr)
}

fn parse_range(expr: &str, b: &Bounds) -> Result<Field, CronError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, star) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (b.min, b.max, true)
    } else {
        let start = parse_int_or_name(low_and_high[0], b)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => parse_int_or_name(low_and_high[1], b)?,
            _ => return err(format!("Too many hyphens: {expr}")),
        };
        (start, end, false)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            // robfig: "N/step" means "N-max/step".
            if single {
                end = b.max;
            }
            step
        }
        _ => return err(format!("Too many slashes: {expr}")),
    };
    if start < b.min {
        return err(format!(
            "Beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return err(format!("End of range ({end}) above maximum ({}): {expr}", b.max));
    }
    if start > end {
        return err(format!(
            "Beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return err(format!("Step of range should be a positive number: {expr}"));
    }
    Ok(Field {
        bits: bits(start, end, step),
        star,
    })
}

fn parse_field(field: &str, b: &Bounds) -> Result<Field, CronError> {
    let mut out = Field::default();
    for part in field.split(',').filter(|p| !p.is_empty()) {
        let f = parse_range(part, b)?;
        out.bits |= f.bits;
        out.star |= f.star;
    }
    Ok(out)
}

/// The six fields of a calendar schedule, robfig-style.
struct Fields {
    second: Field,
    minute: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
}

impl Fields {
    fn descriptor(name: &str) -> Option<Fields> {
        let zero = Field::one(0);
        let (hour, dom, month, dow) = match name {
            "@yearly" | "@annually" => (zero, Field::one(1), Field::one(1), Field::all(&DOW)),
            "@monthly" => (zero, Field::one(1), Field::all(&MONTHS), Field::all(&DOW)),
            "@weekly" => (zero, Field::all(&DOM), Field::all(&MONTHS), Field::one(0)),
            "@daily" | "@midnight" => (zero, Field::all(&DOM), Field::all(&MONTHS), Field::all(&DOW)),
            "@hourly" => (
                Field::all(&HOURS),
                Field::all(&DOM),
                Field::all(&MONTHS),
                Field::all(&DOW),
            ),
            _ => return None,
        };
        Some(Fields {
            second: zero,
            minute: zero,
            hour,
            dom,
            month,
            dow,
        })
    }

    /// robfig v1's `dayMatches`: OR when both day fields are restricted, AND when either
    /// carries the star bit (`*`, `?`, `*/n`).
    fn days_and(&self) -> bool {
        self.dom.star || self.dow.star
    }

    /// True when no calendar day can ever match.
    fn never_fires(&self) -> bool {
        if self.dom.bits == 0 || self.month.bits == 0 || self.dow.bits == 0 {
            return true;
        }
        if !self.days_and() {
            return false; // OR with a non-empty weekday set always matches some day
        }
        const DAYS_IN_MONTH: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        !self
            .month
            .values()
            .any(|m| self.dom.values().any(|d| d <= DAYS_IN_MONTH[m as usize]))
    }

    /// A croner pattern of plain numbers. Day fields are always listed (never `*`) so croner's
    /// own AND/OR rule cannot differ from robfig's; the rule is set on the parser instead.
    fn to_croner(&self) -> String {
        fn list(f: Field, b: &Bounds, star_when_full: bool) -> String {
            if star_when_full && f.is_full(b) {
                return "*".into();
            }
            f.values().map(|v| v.to_string()).collect::<Vec<_>>().join(",")
        }
        format!(
            "{} {} {} {} {} {}",
            list(self.second, &SECONDS, true),
            list(self.minute, &MINUTES, true),
            list(self.hour, &HOURS, true),
            list(self.dom, &DOM, false),
            list(self.month, &MONTHS, true),
            list(self.dow, &DOW, false)
        )
    }
}

/// Parses a KFP cron expression exactly as robfig/cron v1.2.0 `cron.Parse` does.
pub fn parse(spec: &str) -> Result<CronExpr, CronError> {
    if spec.is_empty() {
        return err("Empty spec string");
    }
    if spec.starts_with('@') {
        if let Some(duration) = spec.strip_prefix("@every ") {
            let nanos = crate::scheduling::go_duration::parse(duration)
                .map_err(|e| CronError(format!("Failed to parse duration {spec}: {e}")))?;
            // robfig's Every(): at least one second, truncated to whole seconds.
            let seconds = (nanos / 1_000_000_000).max(1) as i64;
            return Ok(CronExpr::Every { seconds });
        }
        let fields = Fields::descriptor(spec).ok_or_else(|| CronError(format!("Unrecognized descriptor: {spec}")))?;
        return calendar(fields, false);
    }
    let parts: Vec<&str> = spec.split_whitespace().collect();
    if parts.len() < 5 || parts.len() > 6 {
        return err(format!("Expected 5 to 6 fields, found {}: {spec}", parts.len()));
    }
    let fields = Fields {
        second: parse_field(parts[0], &SECONDS)?,
        minute: parse_field(parts[1], &MINUTES)?,
        hour: parse_field(parts[2], &HOURS)?,
        dom: parse_field(parts[3], &DOM)?,
        month: parse_field(parts[4], &MONTHS)?,
        dow: match parts.get(5) {
            Some(dow) => parse_field(dow, &DOW)?,
            None => Field::all(&DOW),
        },
    };
    calendar(fields, parts.len() == 5)
}

fn calendar(fields: Fields, five_fields: bool) -> Result<CronExpr, CronError> {
    let parser = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .dom_and_dow(fields.days_and())
        .build();
    let pattern = fields.to_croner();
    let cron = parser
        .parse(&pattern)
        .map_err(|e| CronError(format!("internal: normalised pattern {pattern:?} rejected: {e}")))?;
    Ok(CronExpr::Calendar(Box::new(CalendarSchedule {
        cron,
        five_fields,
        never_fires: fields.never_fires(),
    })))
}

impl CalendarSchedule {
    /// First tick strictly after `t`, in `tz`; `None` when there is none.
    pub fn next_after(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        if self.never_fires {
            return None;
        }
        let from = t.to_zoned(tz.clone());
        self.cron
            .find_next_occurrence(&from, false)
            .ok()
            .map(|z: Zoned| z.timestamp())
    }

    /// Latest tick at or before `t`, in `tz`; found by searching backwards, so its cost does not
    /// grow with the number of ticks since some earlier instant.
    pub fn latest_at_or_before(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        if self.never_fires {
            return None;
        }
        let from = t.to_zoned(tz.clone());
        self.cron
            .find_previous_occurrence(&from, true)
            .ok()
            .map(|z: Zoned| z.timestamp())
    }
}

impl CronExpr {
    /// A warning for users, when the expression probably does not mean what they think.
    pub fn warning(&self) -> Option<String> {
        match self {
            CronExpr::Calendar(c) if c.five_fields => Some(
                "5-field cron expressions are read as 'second minute hour day-of-month month' \
                 (KFP's robfig/cron v1 grammar: seconds come first); add a leading seconds \
                 field, e.g. '0 0 * * * *' for hourly"
                    .into(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc_next(spec: &str, after: i64, n: usize) -> Vec<i64> {
        let CronExpr::Calendar(c) = parse(spec).unwrap() else {
            panic!("not calendar")
        };
        let mut t = Timestamp::from_second(after).unwrap();
        (0..n)
            .map(|_| {
                t = c.next_after(t, &TimeZone::UTC).unwrap();
                t.as_second()
            })
            .collect()
    }

    /// The golden file (tests/fixtures/robfig-v1/): one line per spec, `spec`, then `OK` and
    /// 20 fire times strictly after 2026-01-01T00:00:00Z (UTC), or `ERR` and robfig's message.
    fn golden() -> Vec<(String, Result<Vec<i64>, String>)> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/robfig-v1/kfp-utc-2026-01-01.tsv"
        );
        let data = std::fs::read_to_string(path).expect("tests/fixtures/robfig-v1 is in the repository");
        data.lines()
            .map(|line| {
                let cols: Vec<&str> = line.split('\t').collect();
                let verdict = match cols[1] {
                    "OK" => Ok(cols[2].split(' ').map(|s| s.parse().unwrap()).collect()),
                    "ERR" => Err(cols[2].to_string()),
                    other => panic!("bad verdict {other}"),
                };
                (cols[0].to_string(), verdict)
            })
            .collect()
    }

    const GOLDEN_START: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    /// Every spec of the robfig v1.2.0 golden file: same verdict, same 20 fire times, through
    /// the planner (`schedule::plan`, which is what runs in the operator) for every spec.
    #[test]
    fn matches_robfig_v1_golden_data() {
        use crate::scheduling::schedule::{PlanInput, Schedule, TriggerState, plan};
        let golden = golden();
        let ok = golden.iter().filter(|(_, v)| v.is_ok()).count();
        let rejected = golden.iter().filter(|(_, v)| v.is_err()).count();
        assert_eq!((ok, rejected), (2695, 14), "the whole file is read");
        let start = Timestamp::from_second(GOLDEN_START).unwrap();
        let mut failures = Vec::new();
        for (spec, verdict) in &golden {
            match (verdict, parse(spec)) {
                (Ok(want), Ok(expr)) => {
                    assert_eq!(want.len(), 20, "{spec}");
                    let schedule = Schedule::cron(expr, None, None, TimeZone::UTC);
                    let mut state = TriggerState::default();
                    let mut got = Vec::new();
                    for &expected in want {
                        let p = plan(&PlanInput {
                            schedule: &schedule,
                            enabled: true,
                            no_catchup: false,
                            max_concurrency: 1,
                            policy: Default::default(),
                            created: start,
                            state: state.clone(),
                            taken: &crate::scheduling::schedule::NOTHING_TAKEN,
                            active: 0,
                            replaceable: 0,
                            now: Timestamp::from_second(expected).unwrap(),
                        });
                        got.push(p.runs.first().map_or(0, |r| r.scheduled.as_second()));
                        state = p.state;
                    }
                    if &got != want {
                        failures.push(format!("{spec:?}: got {got:?}, want {want:?}"));
                    }
                }
                (Err(why), Err(e)) => {
                    // Same reason as robfig: compare the message up to its first colon.
                    let want = why.split(':').next().unwrap();
                    if !e.0.starts_with(want) {
                        failures.push(format!("{spec:?}: error {e:?}, robfig said {why:?}"));
                    }
                }
                (v, got) => failures.push(format!("{spec:?}: robfig {v:?}, we {got:?}")),
            }
        }
        assert!(
            failures.is_empty(),
            "{} mismatches, first: {:#?}",
            failures.len(),
            &failures[..failures.len().min(10)]
        );
    }

    /// `latest_at_or_before` (used by noCatchup, Replace and Skip) against the same data: at
    /// each fire time it finds that time, one second earlier it finds the previous one.
    #[test]
    fn latest_at_or_before_matches_robfig_v1_golden_data() {
        let mut checked = 0;
        for (spec, verdict) in golden() {
            let (Ok(times), Ok(CronExpr::Calendar(c))) = (verdict, parse(&spec)) else {
                continue;
            };
            let at = |s: i64| Timestamp::from_second(s).unwrap();
            for (k, &t) in times.iter().enumerate() {
                assert_eq!(
                    c.latest_at_or_before(at(t), &TimeZone::UTC),
                    Some(at(t)),
                    "{spec} at {t}"
                );
                let before = c.latest_at_or_before(at(t - 1), &TimeZone::UTC);
                match k {
                    0 => assert!(before.is_none_or(|b| b.as_second() <= GOLDEN_START), "{spec}"),
                    _ => assert_eq!(before, Some(at(times[k - 1])), "{spec} before {t}"),
                }
                checked += 1;
            }
        }
        assert!(checked >= 2600 * 20, "checked {checked}");
    }

    #[test]
    fn five_fields_are_seconds_first() {
        // KFP quirk: "*/5 * * * *" fires every 5 seconds, "0 0 * * *" hourly.
        assert_eq!(utc_next("*/5 * * * *", 0, 2), vec![5, 10]);
        assert_eq!(utc_next("0 0 * * *", 0, 2), vec![3600, 7200]);
        assert!(parse("0 0 * * *").unwrap().warning().is_some());
        assert!(parse("0 0 * * * *").unwrap().warning().is_none());
    }

    #[test]
    fn day_fields_or_unless_star() {
        // 2026-01-01 is a Thursday. dom=1,15 OR dow=Fri → Jan 1, 2, 9, 15.
        let days: Vec<i64> = utc_next("0 0 0 1,15 * 5", 1_767_225_599, 4)
            .iter()
            .map(|t| (t - 1_767_225_600) / 86400 + 1)
            .collect();
        assert_eq!(days, vec![1, 2, 9, 15]);
        // v1: */2 in dom carries the star bit → AND: Mondays on odd days.
        let days: Vec<i64> = utc_next("0 0 12 */2 * 1", 1_767_225_600, 2)
            .iter()
            .map(|t| (t - 1_767_225_600) / 86400 + 1)
            .collect();
        assert_eq!(days, vec![5, 19]);
    }

    #[test]
    fn rejects_what_robfig_rejects() {
        for (spec, why) in [
            ("0 0 12 * * 7", "End of range (7) above maximum (6)"),
            ("@every x", "Failed to parse duration @every x"),
            ("@fortnightly", "Unrecognized descriptor"),
            ("0 0 0 L * *", "Failed to parse int from L"),
            ("1-2-3 * * * * *", "Too many hyphens"),
            ("1/2/3 * * * * *", "Too many slashes"),
            ("", "Empty spec string"),
        ] {
            let e = parse(spec).unwrap_err();
            assert!(e.0.starts_with(why), "{spec:?}: {e}");
        }
    }

    #[test]
    fn impossible_dates_never_fire() {
        let CronExpr::Calendar(c) = parse("0 0 0 30 2 *").unwrap() else {
            panic!()
        };
        assert!(c.never_fires);
        assert_eq!(c.next_after(Timestamp::UNIX_EPOCH, &TimeZone::UTC), None);
        let CronExpr::Calendar(c) = parse("0 0 0 29 2 *").unwrap() else {
            panic!()
        };
        assert!(!c.never_fires);
        assert_eq!(
            c.next_after(Timestamp::from_second(1_767_225_600).unwrap(), &TimeZone::UTC)
                .unwrap()
                .to_string(),
            "2028-02-29T00:00:00Z"
        );
        // OR with a weekday always matches.
        let CronExpr::Calendar(c) = parse("0 0 0 30 2 MON").unwrap() else {
            panic!()
        };
        assert!(!c.never_fires);
    }

    #[test]
    fn every_is_constant_delay() {
        assert!(matches!(
            parse("@every 1h30m").unwrap(),
            CronExpr::Every { seconds: 5400 }
        ));
        assert!(matches!(parse("@every 500ms").unwrap(), CronExpr::Every { seconds: 1 }));
        assert!(matches!(parse("@every 1.5s").unwrap(), CronExpr::Every { seconds: 1 }));
    }

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn dst_spring_forward_gap_runs_once_after_the_gap() {
        // 2026-03-08: 02:00 EST → 03:00 EDT in New York. 02:30 does not exist that day.
        let CronExpr::Calendar(c) = parse("0 30 2 * * *").unwrap() else {
            panic!()
        };
        let t = c.next_after(at("2026-03-08T06:00:00Z"), &ny()).unwrap(); // 01:00 EST
        assert_eq!(
            t,
            at("2026-03-08T07:00:00Z"),
            "03:00 EDT, the first instant after the gap"
        );
        let t2 = c.next_after(t, &ny()).unwrap();
        assert_eq!(t2, at("2026-03-09T06:30:00Z"), "then 02:30 EDT the next day");
    }

    #[test]
    fn dst_fall_back_fixed_time_runs_once() {
        // 2026-11-01: 02:00 EDT → 01:00 EST. 01:30 happens twice; robfig runs twice, we once.
        let CronExpr::Calendar(c) = parse("0 30 1 * * *").unwrap() else {
            panic!()
        };
        let t = c.next_after(at("2026-11-01T04:00:00Z"), &ny()).unwrap(); // 00:00 EDT
        assert_eq!(t, at("2026-11-01T05:30:00Z"), "01:30 EDT");
        let t2 = c.next_after(t, &ny()).unwrap();
        assert_eq!(
            t2,
            at("2026-11-02T06:30:00Z"),
            "next day 01:30 EST, not 01:30 EST the same day"
        );
    }

    #[test]
    fn dst_wildcard_hour_follows_elapsed_time() {
        // Every 30 minutes through the repeated hour: both passes, in time order.
        let CronExpr::Calendar(c) = parse("0 */30 * * * *").unwrap() else {
            panic!()
        };
        let mut t = at("2026-11-01T04:45:00Z"); // 00:45 EDT
        let mut got = Vec::new();
        for _ in 0..6 {
            t = c.next_after(t, &ny()).unwrap();
            got.push(t.as_second() - at("2026-11-01T05:00:00Z").as_second());
        }
        assert_eq!(got, vec![0, 1800, 3600, 5400, 7200, 9000], "every 30 min of real time");
    }

    #[test]
    fn latest_at_or_before_is_direct() {
        let CronExpr::Calendar(c) = parse("* * * * * *").unwrap() else {
            panic!()
        };
        let now = at("2026-02-01T00:00:00.5Z");
        assert_eq!(
            c.latest_at_or_before(now, &TimeZone::UTC),
            Some(at("2026-02-01T00:00:00Z"))
        );
        let CronExpr::Calendar(c) = parse("0 0 9 * * 1-5").unwrap() else {
            panic!()
        };
        // Sunday 2026-02-01 12:00 → Friday 2026-01-30 09:00.
        assert_eq!(
            c.latest_at_or_before(at("2026-02-01T12:00:00Z"), &TimeZone::UTC),
            Some(at("2026-01-30T09:00:00Z"))
        );
    }

    #[test]
    fn time_zone_shifts_fire_times() {
        let CronExpr::Calendar(c) = parse("0 0 9 * * *").unwrap() else {
            panic!()
        };
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        assert_eq!(
            c.next_after(at("2026-01-01T00:00:00Z"), &tokyo),
            Some(at("2026-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn leap_day() {
        let CronExpr::Calendar(c) = parse("0 0 12 29 FEB ?").unwrap() else {
            panic!()
        };
        assert_eq!(
            c.next_after(at("2027-01-01T00:00:00Z"), &TimeZone::UTC),
            Some(at("2028-02-29T12:00:00Z"))
        );
    }
}
