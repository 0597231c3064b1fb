//! Pure scheduling: every decision the operator makes, with no I/O and no clock (`now` is an
//! argument). The controller, the JobService, the webhook and the CLI call into it.
//!
//! - `ticks`: the one model of a schedule's ticks (grid and position); `cron`,
//!   `go_duration`: KFP's cron grammar; `schedule`: which ticks are due.
//! - `validate`: a spec into what planning needs, every problem with its field path;
//!   `spec_check`: the one check the reconciler, the webhook and the JobService share.
//! - `backfill`, `failure_policy`: the two features that act beside the schedule.
//! - `render`, `kfp_macros`: run objects and KFP's parameter macros; `runstate`: reading runs;
//!   `status`: the status written back.
pub mod backfill;
pub mod cron;
pub mod failure_policy;
pub mod go_duration;
pub mod kfp_macros;
#[cfg(test)]
mod proptests;
pub mod render;
pub mod runstate;
pub mod schedule;
pub mod spec_check;
pub mod status;
pub mod ticks;
pub mod validate;
