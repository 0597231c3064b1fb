//! swf-operator: a Kubernetes operator for KFP-compatible `ScheduledWorkflow` resources.
//! docs/architecture.md says which module owns what.
pub mod admission;
pub mod api;
pub mod backfill;
pub mod check;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod cron;
pub mod failure_policy;
pub mod go_duration;
pub mod macros;
pub mod manifest;
pub mod metrics;
pub mod migrate;
pub mod plugin;
#[cfg(test)]
mod proptests;
pub mod render;
pub mod runkind;
pub mod runstate;
pub mod schedule;
pub mod server;
pub mod shards;
pub mod status;
pub mod stored;
pub mod ticks;
pub mod tls;
pub mod validate;
