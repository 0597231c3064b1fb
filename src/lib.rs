//! swf-operator: a Kubernetes operator for KFP-compatible `ScheduledWorkflow` resources.
pub mod cli;
pub mod crd;
pub mod cron;
pub mod go_duration;
