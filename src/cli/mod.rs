//! The operator's command line, one file per command: `run` (run.rs), `api` (api.rs), `crd`
//! (here), `check` (check.rs), `migrate-check` (migrate_check.rs), `next` (next.rs).

pub mod api;
pub mod check;
pub mod migrate_check;
pub mod next;
pub mod run;

use api::ApiArgs;
use check::CheckArgs;
use clap::{Parser, Subcommand};
use migrate_check::MigrateCheckArgs;
use next::NextArgs;
use run::RunArgs;

use crate::model::crd::ScheduledWorkflow;

#[derive(Parser, Debug)]
#[command(name = "swf-operator", version, about = "KFP-compatible ScheduledWorkflow operator")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator (uses $KUBECONFIG, ~/.kube/config, or the in-cluster config).
    Run(Box<RunArgs>),
    /// Serve only the JobService API (no scheduling).
    Api(Box<ApiArgs>),
    /// Print the ScheduledWorkflow CRD (YAML).
    Crd,
    /// Validate ScheduledWorkflow manifests offline (a GitOps CI step) and print next fire times.
    Check(CheckArgs),
    /// Read the cluster's ScheduledWorkflows (read-only) and say, per object, what changes when
    /// this operator takes over from KFP's controller. Exits 1 when something needs attention.
    MigrateCheck(MigrateCheckArgs),
    /// Print the next fire times of a KFP cron expression or a period.
    Next(NextArgs),
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Run(args) => run::run_operator(*args),
            Command::Api(args) => api::run_api(*args),
            Command::Crd => {
                print!("{}", ScheduledWorkflow::crd_yaml());
                Ok(())
            }
            Command::Check(args) => args.run(),
            Command::MigrateCheck(args) => args.run(),
            Command::Next(args) => args.run(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `RUST_LOG` filters (default `info,kube=warn`); a pass's lines carry its `ns` and `name`.
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}
