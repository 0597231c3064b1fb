//! The one model of a schedule's ticks: where they fall (its grid) and where the schedule
//! stands on it (its position). Every part of the operator that asks "when does this schedule
//! fire?" asks here: the planner, backfill, `check`, `next`, `migrate-check` and the plugin.
//! Pure: no clock, no I/O.
//!
//! - A cron schedule's ticks are its calendar's, in its time zone (DST included).
//! - A periodic schedule's ticks are `origin + k·interval` for every integer `k`: one grid,
//!   extended into the past and the future. The origin is the last tick the schedule ran, else
//!   `startTime`, else the creation time (KFP's anchors); all three lie on the same grid unless
//!   the interval or `startTime` changed, and then the last tick wins, so the planner and a
//!   backfill always see the same ticks.
//! - `startTime`, `endTime` and the 1970 floor are the schedule's window: they limit what the
//!   schedule itself runs (`Position`), not the grid (a backfill is not limited by them).

use jiff::{SignedDuration, Timestamp};

use crate::scheduling::schedule::{Cadence, Schedule};

/// No tick before the Unix epoch runs: a run's `workflowEpoch` label is its tick in Unix
/// seconds, and a label value cannot start with `-`.
pub const EARLIEST: Timestamp = Timestamp::UNIX_EPOCH;

/// Where the schedule itself stands on its grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The periodic grid's origin (see the module's comment).
    pub origin: Timestamp,
    /// Every tick at or before this is behind the schedule: it ran, was skipped, or fell
    /// before the schedule's window. The schedule itself only ever creates ticks after it.
    pub floor: Timestamp,
}

impl Position {
    /// From what status records (`lastTriggeredTime`, `skipThrough`) and the spec (KFP's
    /// rules): ticks after the last one, else after `startTime`, else after the creation time;
    /// a `startTime` moved past the last tick runs a periodic schedule at `startTime` itself
    /// and a cron schedule from its first tick after it.
    pub fn of(
        schedule: &Schedule,
        last: Option<Timestamp>,
        skip_through: Option<Timestamp>,
        created: Timestamp,
    ) -> Position {
        let (origin, floor) = match (last, schedule.start) {
            (Some(last), Some(start)) if start > last => {
                let floor = match schedule.cadence {
                    Cadence::Every { seconds } => {
                        start.checked_sub(SignedDuration::from_secs(seconds)).unwrap_or(start)
                    }
                    _ => start,
                };
                (start, floor)
            }
            (Some(last), _) => (last, last),
            (None, Some(start)) => (start, start),
            (None, None) => (created, created),
        };
        let before_epoch = EARLIEST.checked_sub(SignedDuration::from_nanos(1)).unwrap_or(EARLIEST);
        let floor = [Some(floor), skip_through, Some(before_epoch)]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(floor);
        Position { origin, floor }
    }

    pub fn grid(self, schedule: &Schedule) -> Grid<'_> {
        Grid::new(schedule, self.origin)
    }
}

/// Where a schedule's ticks fall.
#[derive(Clone, Copy, Debug)]
pub struct Grid<'a> {
    schedule: &'a Schedule,
    /// A periodic grid's origin (any of its ticks); unused by cron and one-off schedules.
    origin: Timestamp,
}

impl<'a> Grid<'a> {
    pub fn new(schedule: &'a Schedule, origin: Timestamp) -> Self {
        Grid { schedule, origin }
    }

    /// The first tick strictly after `t`.
    pub fn after(&self, t: Timestamp) -> Option<Timestamp> {
        match &self.schedule.cadence {
            Cadence::Cron(c) => c.next_after(t, &self.schedule.time_zone),
            Cadence::Every { seconds } => self.periodic(t, *seconds, Round::Above),
            Cadence::Once => None,
        }
    }

    /// The first tick at or after `t`.
    pub fn at_or_after(&self, t: Timestamp) -> Option<Timestamp> {
        match &self.schedule.cadence {
            Cadence::Cron(c) => {
                let tz = &self.schedule.time_zone;
                // Cron ticks are whole seconds: look from a second before, keep it if not early.
                let earlier = t.checked_sub(SignedDuration::from_secs(1)).ok()?;
                c.next_after(earlier, tz)
                    .filter(|tick| *tick >= t)
                    .or_else(|| c.next_after(t, tz))
            }
            Cadence::Every { seconds } => self.periodic(t, *seconds, Round::AtOrAbove),
            Cadence::Once => None,
        }
    }

    /// The latest tick at or before `t`.
    pub fn at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        match &self.schedule.cadence {
            Cadence::Cron(c) => c.latest_at_or_before(t, &self.schedule.time_zone),
            Cadence::Every { seconds } => self.periodic(t, *seconds, Round::AtOrBelow),
            Cadence::Once => None,
        }
    }

    /// Ticks strictly after `t`, oldest first.
    pub fn from(self, t: Timestamp) -> impl Iterator<Item = Timestamp> + 'a {
        let mut cursor = t;
        std::iter::from_fn(move || {
            let next = self.after(cursor).filter(|next| *next > cursor)?;
            cursor = next;
            Some(next)
        })
    }

    /// Ticks at or before `t`, newest first.
    pub fn back_from(self, t: Timestamp) -> impl Iterator<Item = Timestamp> + 'a {
        let mut cursor = Some(t);
        std::iter::from_fn(move || {
            let tick = self.at_or_before(cursor?)?;
            // Ticks are whole seconds apart at least (cron) or one interval (periodic).
            cursor = tick.checked_sub(SignedDuration::from_nanos(1)).ok();
            Some(tick)
        })
    }

    /// `origin + k·seconds` for the `k` that `round` picks around `t`.
    fn periodic(&self, t: Timestamp, seconds: i64, round: Round) -> Option<Timestamp> {
        let step = i128::from(seconds.max(1)) * 1_000_000_000;
        let offset = t.duration_since(self.origin).as_nanos();
        let below = offset.div_euclid(step);
        let exact = offset.rem_euclid(step) == 0;
        let k = match round {
            Round::AtOrBelow => below,
            Round::AtOrAbove if exact => below,
            Round::AtOrAbove | Round::Above => below + 1,
        };
        let nanos = k.checked_mul(step)?;
        let shift = SignedDuration::try_from_nanos_i128(nanos)?;
        self.origin.checked_add(shift).ok()
    }
}

#[derive(Clone, Copy)]
enum Round {
    AtOrBelow,
    AtOrAbove,
    Above,
}

#[cfg(test)]
mod tests {
    use jiff::tz::TimeZone;

    use super::*;
    use crate::scheduling::cron;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn every(seconds: i64, start: Option<&str>) -> Schedule {
        Schedule {
            cadence: Cadence::Every { seconds },
            start: start.map(at),
            end: None,
            time_zone: TimeZone::UTC,
        }
    }

    #[test]
    fn a_periodic_grid_runs_both_ways_from_its_origin() {
        let s = every(3600, None);
        let grid = Grid::new(&s, at("2026-01-10T00:20:00Z"));
        assert_eq!(grid.after(at("2026-01-01T00:20:00Z")), Some(at("2026-01-01T01:20:00Z")));
        assert_eq!(
            grid.at_or_after(at("2026-01-01T00:20:00Z")),
            Some(at("2026-01-01T00:20:00Z"))
        );
        assert_eq!(
            grid.at_or_after(at("2026-01-01T00:20:01Z")),
            Some(at("2026-01-01T01:20:00Z"))
        );
        assert_eq!(
            grid.at_or_before(at("2026-01-01T00:19:59Z")),
            Some(at("2025-12-31T23:20:00Z"))
        );
        let back: Vec<_> = grid.back_from(at("2026-01-01T02:20:00Z")).take(3).collect();
        assert_eq!(
            back,
            [
                at("2026-01-01T02:20:00Z"),
                at("2026-01-01T01:20:00Z"),
                at("2026-01-01T00:20:00Z")
            ]
        );
        let forward: Vec<_> = grid.from(at("2026-01-01T00:20:00Z")).take(2).collect();
        assert_eq!(forward, [at("2026-01-01T01:20:00Z"), at("2026-01-01T02:20:00Z")]);
    }

    #[test]
    fn a_start_time_equal_to_the_last_tick_does_not_run_that_tick_again() {
        let s = every(600, Some("2026-01-01T01:00:00Z"));
        let last = Some(at("2026-01-01T01:00:00Z"));
        let position = Position::of(&s, last, None, at("2026-01-01T00:00:00Z"));
        assert_eq!(position.floor, at("2026-01-01T01:00:00Z"));
        assert_eq!(
            position.grid(&s).after(position.floor),
            Some(at("2026-01-01T01:10:00Z"))
        );
    }

    #[test]
    fn a_cron_grid_walks_back_across_a_dst_change() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let s = Schedule::cron(cron::parse("0 30 8 * * *").unwrap(), None, None, berlin);
        let grid = Grid::new(&s, at("2000-01-01T00:00:00Z"));
        let back: Vec<_> = grid.back_from(at("2026-03-30T06:30:00Z")).take(3).collect();
        assert_eq!(
            back,
            [
                at("2026-03-30T06:30:00Z"),
                at("2026-03-29T06:30:00Z"),
                at("2026-03-28T07:30:00Z")
            ]
        );
        assert_eq!(
            grid.at_or_after(at("2026-03-28T07:30:00Z")),
            Some(at("2026-03-28T07:30:00Z"))
        );
    }

    #[test]
    fn position_follows_kfps_anchors() {
        let start = "2026-01-01T00:00:30Z";
        let s = every(60, Some(start));
        let created = at("2025-12-01T00:00:00Z");
        // Never ran: the first tick is startTime + interval.
        let p = Position::of(&s, None, None, created);
        assert_eq!(p.grid(&s).after(p.floor), Some(at("2026-01-01T00:01:30Z")));
        // startTime moved past the last tick: the first tick is startTime itself.
        let p = Position::of(&s, Some(at("2025-12-31T00:00:00Z")), None, created);
        assert_eq!(p.grid(&s).after(p.floor), Some(at(start)));
        // Ran since: the grid goes on from the last tick; skipThrough only raises the floor.
        let last = at("2026-01-01T00:05:30Z");
        let p = Position::of(&s, Some(last), Some(at("2026-01-01T00:07:00Z")), created);
        assert_eq!((p.origin, p.floor), (last, at("2026-01-01T00:07:00Z")));
        assert_eq!(p.grid(&s).after(p.floor), Some(at("2026-01-01T00:07:30Z")));
        // Nothing before 1970.
        let old = every(60, Some("1969-12-31T23:58:00Z"));
        let p = Position::of(&old, None, None, created);
        assert_eq!(p.grid(&old).after(p.floor), Some(at("1970-01-01T00:00:00Z")));
    }
}
