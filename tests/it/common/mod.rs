//! Test harness: one real control plane (etcd + kube-apiserver, from the `swf-test-plane`
//! crate) per test binary, a namespace per test, and the operator, the JobService and users
//! on it. Tests call everything as `common::x`; each file says what it holds:
//!
//! - `cluster`: the control plane (local, a test's own, or `USE_EXISTING_CLUSTER=true`), kubectl
//! - `env`: what each test gets (`TestEnv`, `env`, `private_env`), CRDs, `eventually`
//! - `users`: the admin, static users, ServiceAccount tokens, the RBAC a test grants
//! - `processes`: child processes that die with the test, `OperatorProcess`, `output_within`
//! - `operator`: the operator in this process (`start_operator`, `Operator`)
//! - `job_api`: the JobService (`start_job_api*`, `api_process`) and KFP's job bodies
//! - `replicas`: operator replicas with leader election (quick failover flags, the Lease holder)
//! - `runs`: the kinds of run (Argo Workflows, Jobs) and listing them
//! - `swf`, `creations`, `browser`: schedules and their runs, every run there ever was (the
//!   audit log), a headless browser; used as `common::swf::x` and so on

pub mod browser;
mod cluster;
pub mod creations;
mod env;
mod job_api;
mod operator;
mod processes;
mod replicas;
mod runs;
pub mod swf;
mod users;

pub use cluster::*;
pub use env::*;
pub use job_api::*;
pub use operator::*;
pub use processes::*;
pub use replicas::*;
pub use runs::*;
pub use swf_test_plane as plane;
pub use users::*;
