//! `swf-operator next` (and `kubectl swf next`): the next fire times of a cron expression or
//! a period.

use anyhow::Context as _;
use clap::Args;
use jiff::{Timestamp, tz::TimeZone};

use crate::scheduling::{
    cron,
    schedule::{Cadence, Schedule},
    ticks::Grid,
};

#[derive(Args, Debug)]
pub struct NextArgs {
    #[arg(long, conflicts_with = "every", required_unless_present = "every")]
    cron: Option<String>,
    /// Period in seconds.
    #[arg(long)]
    every: Option<i64>,
    #[arg(long, default_value = "UTC")]
    time_zone: String,
    /// Start after this instant (RFC 3339; default: now).
    #[arg(long)]
    after: Option<Timestamp>,
    #[arg(long, default_value_t = 5)]
    count: usize,
}

impl NextArgs {
    /// The schedule the flags describe, with no window (`next` shows its grid).
    fn schedule(&self, tz: TimeZone) -> anyhow::Result<Schedule> {
        match (&self.cron, self.every) {
            (Some(expr), _) => {
                let parsed = cron::parse(expr).map_err(|e| anyhow::anyhow!("invalid cron {expr:?}: {e}"))?;
                if let Some(w) = parsed.warning() {
                    eprintln!("warning: {w}");
                }
                Ok(Schedule::cron(parsed, None, None, tz))
            }
            (None, Some(seconds)) if seconds >= 1 => Ok(Schedule {
                cadence: Cadence::Every { seconds },
                start: None,
                end: None,
                time_zone: tz,
            }),
            _ => anyhow::bail!("--every must be at least 1 second"),
        }
    }

    pub fn run(self) -> anyhow::Result<()> {
        let tz = TimeZone::get(&self.time_zone).with_context(|| format!("unknown time zone {:?}", self.time_zone))?;
        let schedule = self.schedule(tz.clone())?;
        let after = self.after.unwrap_or_else(Timestamp::now);
        // A periodic grid starts at `after`, as a schedule created then would.
        let ticks: Vec<Timestamp> = Grid::new(&schedule, after).from(after).take(self.count).collect();
        for next in &ticks {
            println!(
                "{next}  ({})",
                next.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S %Z")
            );
        }
        if ticks.len() < self.count {
            println!("(no further fire time)");
        }
        Ok(())
    }
}
