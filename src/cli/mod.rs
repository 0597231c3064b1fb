//! The operator's command line, one file per command: `run` (run.rs), `api` (api.rs), `crd`
//! (here), `check` (check.rs), `migrate-check` (migrate_check.rs), `next` (next.rs).

pub mod api;
pub mod check;
pub mod migrate_check;
pub mod next;
pub mod run;

use anyhow::Context as _;
use api::ApiCommandArgs;
use check::CheckArgs;
use clap::{Parser, Subcommand};
use migrate_check::MigrateCheckArgs;
use next::NextArgs;
use run::RunArgs;

use crate::{
    model::crd::ScheduledWorkflow,
    scheduling::{
        spec_check::Rules,
        validate::{V1Policy, zone_by_name},
    },
};

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
    Api(Box<ApiCommandArgs>),
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

/// What every schedule is checked against: the same for the reconciler, the webhook and the
/// JobService (`run`, `api`), and for `migrate-check`'s report.
#[derive(clap::Args, Debug, Clone)]
pub struct RulesArgs {
    /// Time zone for schedules without `spec.timeZone` (KFP's CRON_SCHEDULE_TIMEZONE).
    #[arg(long, env = "CRON_SCHEDULE_TIMEZONE", default_value = "UTC")]
    default_time_zone: String,
    /// KFP's switch: refuse to run v1 (Argo-only) pipelines (true/false).
    #[arg(long, env = "BLOCK_V1_PIPELINES", default_value_t = false, action = clap::ArgAction::Set)]
    block_v1_pipelines: bool,
    /// With --block-v1-pipelines: comma-separated namespaces still allowed to run v1 pipelines.
    #[arg(long, env = "V1_ALLOWED_NAMESPACES", default_value = "")]
    v1_allowed_namespaces: String,
}

impl RulesArgs {
    /// The rules, once the time zone is known to exist.
    fn rules(&self) -> anyhow::Result<Rules> {
        let zone = &self.default_time_zone;
        zone_by_name(zone)
            .with_context(|| format!("--default-time-zone {zone:?} is not an IANA time zone (or Local)"))?;
        Ok(Rules {
            default_time_zone: zone.clone(),
            v1_policy: V1Policy::new(self.block_v1_pipelines, &self.v1_allowed_namespaces),
        })
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
