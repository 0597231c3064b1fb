//! A backfill's preview: the ticks of the range on the schedule's own grid (`backfill::ticks`,
//! the operator's tick model) and what the operator does with each (`schedule::Claim`, the
//! runs that exist), read from the schedule as it stands. Pure.

use jiff::Timestamp;

use crate::{
    plugin::view::Viewed,
    scheduling::{
        backfill,
        runstate::{self, ObservedRun},
        schedule::{Cadence, Claim},
        status,
    },
};

/// What becomes of one tick of the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// The backfill creates a run for it.
    Create,
    /// It has a run already: not run again.
    HasRun,
    /// The schedule may still create it itself: left to it.
    LeftToSchedule,
    /// Not due yet: the backfill creates it once due.
    NotYetDue,
}

impl Fate {
    pub fn slug(self) -> &'static str {
        match self {
            Fate::Create => "create",
            Fate::HasRun => "has-run",
            Fate::LeftToSchedule => "left-to-schedule",
            Fate::NotYetDue => "not-yet-due",
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Fate::Create => "created by the backfill",
            Fate::HasRun => "has a run already: skipped",
            Fate::LeftToSchedule => "the schedule runs it itself",
            Fate::NotYetDue => "not due yet: created when due",
        }
    }
}

pub struct Preview {
    /// The annotation value the request writes, `<from>/<to>`.
    pub value: String,
    pub from: String,
    pub to: String,
    pub ticks: Vec<(Timestamp, Fate)>,
}

/// The preview of backfilling `[from, to)`, or why it cannot be.
pub fn preview(v: &Viewed<'_>, runs: &[ObservedRun], from: &str, to: &str, now: Timestamp) -> Result<Preview, String> {
    let valid = v.validated.as_ref().map_err(|e| format!("the spec cannot run: {e}"))?;
    let schedule = &valid.schedule;
    if let Cadence::Once = schedule.cadence {
        return Err("a schedule with no trigger (one-off) has no ticks to backfill".into());
    }
    let value = format!("{}/{}", from.trim(), to.trim());
    let range = backfill::parse_range(&value, &schedule.time_zone)?;
    let state = status::recorded_state(&v.obj.status.trigger);
    let created = v.obj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let grid = v.position(schedule, now).grid(schedule);
    let ticks = backfill::ticks(grid, range)?;
    let claim = Claim::of(schedule, &state, created, v.paused().is_some(), now);
    let existing = runstate::ticks_with_runs(runs);
    let ticks = ticks
        .into_iter()
        .map(|t| {
            let fate = if existing.contains(&t) {
                Fate::HasRun
            } else if claim.covers(t) {
                Fate::LeftToSchedule
            } else if t > now {
                Fate::NotYetDue
            } else {
                Fate::Create
            };
            (t, fate)
        })
        .collect();
    Ok(Preview {
        value,
        from: from.trim().to_string(),
        to: to.trim().to_string(),
        ticks,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::stored::SwfObject;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn yearly(status: serde_json::Value) -> SwfObject {
        serde_json::from_value(json!({"metadata": {"name": "y", "namespace": "t",
            "creationTimestamp": "2026-06-01T00:00:00Z"},
            "spec": {"enabled": true, "timeZone": "Europe/Berlin",
                "trigger": {"cronSchedule": {"cron": "0 0 0 1 1 *"}},
                "runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": {}}},
            "status": status}))
        .unwrap()
    }

    #[test]
    fn the_preview_lists_the_ranges_ticks_in_the_schedules_zone_and_their_fate() {
        let o = yearly(json!({}));
        let v = Viewed::new(&o, "UTC");
        let now = at("2026-12-01T00:00:00Z");
        let p = preview(&v, &[], "2020-01-01", "2023-01-01", now).unwrap();
        assert_eq!(p.value, "2020-01-01/2023-01-01");
        // Midnight of 1 January in Berlin: 23:00 UTC the day before.
        assert_eq!(
            p.ticks,
            [
                (at("2019-12-31T23:00:00Z"), Fate::Create),
                (at("2020-12-31T23:00:00Z"), Fate::Create),
                (at("2021-12-31T23:00:00Z"), Fate::Create)
            ]
        );
        // The schedule's own next tick (after its creation) is left to it.
        let p = preview(&v, &[], "2026-01-01", "2028-01-02", now).unwrap();
        assert_eq!(
            p.ticks,
            [
                (at("2025-12-31T23:00:00Z"), Fate::Create),
                (at("2026-12-31T23:00:00Z"), Fate::LeftToSchedule),
                (at("2027-12-31T23:00:00Z"), Fate::LeftToSchedule)
            ]
        );
        assert!(preview(&v, &[], "2023-01-01", "2020-01-01", now).is_err());
        assert!(preview(&v, &[], "yesterday", "2020-01-01", now).is_err());
    }
}
