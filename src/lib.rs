//! swf-operator: a Kubernetes operator for KFP-compatible `ScheduledWorkflow` resources.
//! The folders are the architecture; docs/architecture.md says which module owns what, and a
//! test (`layout`) fails when a module is missing from it or the folders import in a cycle.
//!
//! - `model`: what is stored: the custom resource, run kinds, manifests, every key.
//! - `scheduling`: pure decisions: ticks, plans, validation, backfill, failure policy, status.
//! - `controller`: the reconciler, its caches and leader election; the only writer of status.
//! - `admission`, `api`: the webhook and the JobService, beside the controller.
//! - `serve`: what every server of the process shares (health, metrics, TLS, listening).
//! - `cli`, `plugin`: the two binaries' commands.
pub mod admission;
pub mod api;
pub mod cli;
pub mod controller;
#[cfg(test)]
mod layout;
pub mod model;
pub mod plugin;
pub mod scheduling;
pub mod serve;
