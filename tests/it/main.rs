//! Integration tests: one binary, so the harness (`common`) is compiled once and every test
//! of a run shares one throw-away control plane (tests that need a plane of their own start
//! one with `common::private_env`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admission;
mod api_security;
mod backfill;
mod bad_input;
mod cli;
mod common;
mod control_plane;
mod corpus;
mod docs_walk;
mod failure_policy;
mod faults;
mod gitops;
mod jobservice;
mod monitoring;
mod operator;
mod plugin;
mod scheduling;
mod shards;
mod ui;
