//! Command line: `run`, `crd`, `check`, `next`.
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "swf-operator", version, about = "KFP-compatible ScheduledWorkflow operator")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the ScheduledWorkflow CRD (YAML).
    Crd,
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Crd => {
                print!("{}", crate::crd::ScheduledWorkflow::crd_yaml());
                Ok(())
            }
        }
    }
}
