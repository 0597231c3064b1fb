//! `kubectl swf`: a kubectl plugin (the `kubectl-swf` binary on `PATH`) for ScheduledWorkflows:
//! `get`, `describe`, `runs`, `run-now`, `enable`, `disable`, `backfill`, `resume`, `next`,
//! `check`, `completion`, and `ui` (a local web page: src/plugin/ui/, docs/ui.md).
//! kubectl's conventions: `-n`, `-A`, `--context`, `--kubeconfig`, `-o json|yaml|wide`; exit
//! code 0 on success, 1 on an error (a message on stderr), 2 on a usage error.

pub mod ui;
pub mod view;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, ListParams, Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
    discovery::ApiResource,
};
use view::{EventLine, Viewed};

use crate::{
    cli::{check::CheckArgs, next::NextArgs},
    model::{
        crd::ScheduledWorkflow,
        keys::{self, BACKFILL_ANNOTATION, RESUME_ANNOTATION, RUN_NOW_REQUEST_ANNOTATION},
        stored::{RunObject, SwfObject},
    },
    scheduling::{
        backfill::{self},
        render,
        runstate::{self, ObservedRun},
    },
};

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-swf",
    bin_name = "kubectl swf",
    version,
    about = "ScheduledWorkflows from kubectl: schedules in words, next fire times, runs, run now"
)]
pub struct PluginCli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Debug)]
struct Global {
    /// The namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Every namespace (get, ui).
    #[arg(short = 'A', long, global = true)]
    all_namespaces: bool,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Output format: a table (default), wide, json or yaml.
    #[arg(short = 'o', long, global = true, value_enum)]
    output: Option<Output>,
    /// Zone of schedules without spec.timeZone (the operator's --default-time-zone).
    #[arg(long, global = true, env = "CRON_SCHEDULE_TIMEZONE", default_value = "UTC")]
    default_time_zone: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Wide,
    Json,
    Yaml,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List schedules: the schedule in words, its zone, last and next fire time, active runs.
    Get { name: Option<String> },
    /// A schedule in full: next 5 fire times, active and recent runs, events, why it is not running.
    Describe { name: String },
    /// A schedule's runs with their scheduled time, phase and duration.
    Runs { name: String },
    /// Create one run now (the run-now annotation; concurrency still applies).
    RunNow { name: String },
    /// Set spec.enabled to true.
    Enable { name: String },
    /// Set spec.enabled to false.
    Disable { name: String },
    /// Run the schedule's ticks in [FROM, TO) (the backfill annotation; docs/backfill.md).
    /// FROM and TO: RFC 3339 (2026-01-01T00:00:00Z), or a local time or date in the
    /// schedule's zone (2026-01-01T06:00, 2026-01-01).
    Backfill {
        name: String,
        #[arg(long, required_unless_present = "cancel")]
        from: Option<String>,
        #[arg(long, required_unless_present = "cancel")]
        to: Option<String>,
        /// Remove the request: ticks not yet started are not run.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        cancel: bool,
    },
    /// Resume a schedule its failure policy suspended (the resume annotation).
    Resume { name: String },
    /// Next fire times of a KFP cron expression or a period (offline).
    Next(NextArgs),
    /// Validate ScheduledWorkflow manifests offline (exit 1 when one is invalid).
    Check(CheckArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion { shell: clap_complete::Shell },
    /// Serve a web page of the schedules on 127.0.0.1, with your own credentials: overview,
    /// timeline, forecast, schedule pages and actions (docs/ui.md).
    Ui {
        /// The port on 127.0.0.1 (0: a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Open the page in the desktop's browser ($BROWSER when set, else xdg-open).
        #[arg(long)]
        open: bool,
    },
}

/// Entry point of the `kubectl-swf` binary.
pub fn main() {
    let cli = PluginCli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: PluginCli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Next(args) => return args.run(),
        Cmd::Check(args) => return args.run(),
        Cmd::Completion { shell } => {
            let mut cmd = PluginCli::command();
            clap_complete::generate(shell, &mut cmd, "kubectl-swf", &mut std::io::stdout());
            return Ok(());
        }
        _ => {}
    }
    let runtime = match cli.command {
        // The web page renders while it serves: more than one thread.
        Cmd::Ui { .. } => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
        _ => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
    };
    runtime.block_on(remote(cli.global, cli.command))
}

/// The commands that talk to the cluster.
async fn remote(g: Global, command: Cmd) -> anyhow::Result<()> {
    let (client, context_ns) = connect(&g).await?;
    let ns = g.namespace.clone().unwrap_or(context_ns);
    let k = Kube { client, ns, g };
    match command {
        Cmd::Get { name } => k.get(name).await,
        Cmd::Describe { name } => k.describe(&name).await,
        Cmd::Runs { name } => k.runs(&name).await,
        Cmd::RunNow { name } => k.request(&name, RUN_NOW_REQUEST_ANNOTATION, "run-now").await,
        Cmd::Enable { name } => k.set_enabled(&name, true).await,
        Cmd::Disable { name } => k.set_enabled(&name, false).await,
        Cmd::Backfill { name, from, to, cancel } => k.backfill(&name, from.zip(to).filter(|_| !cancel)).await,
        Cmd::Resume { name } => k.request(&name, RESUME_ANNOTATION, "resume").await,
        Cmd::Ui { port, open } => {
            let options = ui::Options {
                namespace: (!k.g.all_namespaces).then(|| k.ns.clone()),
                default_tz: k.g.default_time_zone.clone(),
                port,
                open,
            };
            ui::run(k.client, options).await
        }
        Cmd::Next(_) | Cmd::Check(_) | Cmd::Completion { .. } => Ok(()),
    }
}

/// A client from the kubeconfig (or in-cluster), and the context's namespace.
async fn connect(g: &Global) -> anyhow::Result<(Client, String)> {
    let options = KubeConfigOptions {
        context: g.context.clone(),
        ..Default::default()
    };
    let config = match &g.kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).with_context(|| format!("read {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options).await?
        }
        None if g.context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await.context("no kubeconfig found")?,
    };
    let ns = config.default_namespace.clone();
    Ok((Client::try_from(config)?, ns))
}

struct Kube {
    client: Client,
    ns: String,
    g: Global,
}

impl Kube {
    fn schedules(&self) -> Api<SwfObject> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn raw(&self, all: bool) -> Api<DynamicObject> {
        let ar = ApiResource::erase::<ScheduledWorkflow>(&());
        if all {
            Api::all_with(self.client.clone(), &ar)
        } else {
            Api::namespaced_with(self.client.clone(), &self.ns, &ar)
        }
    }

    async fn one(&self, name: &str) -> anyhow::Result<SwfObject> {
        self.schedules()
            .get_opt(name)
            .await?
            .with_context(|| format!("scheduledworkflow {name:?} not found in namespace {:?}", self.ns))
    }

    /// Prints `value` as JSON or YAML when asked; true when it did.
    fn print_raw<T: serde::Serialize>(&self, value: &T) -> anyhow::Result<bool> {
        match self.g.output {
            Some(Output::Json) => println!("{}", serde_json::to_string_pretty(value)?),
            Some(Output::Yaml) => print!("{}", serde_yaml::to_string(value)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    async fn get(&self, name: Option<String>) -> anyhow::Result<()> {
        let all = self.g.all_namespaces && name.is_none();
        if matches!(self.g.output, Some(Output::Json | Output::Yaml)) {
            let raw = self.raw(all);
            return match name {
                Some(n) => self.print_raw(&raw.get(&n).await?).map(|_| ()),
                None => {
                    let items = raw.list(&ListParams::default()).await?.items;
                    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
                    self.print_raw(&list).map(|_| ())
                }
            };
        }
        let objects = match name {
            Some(n) => vec![self.one(&n).await?],
            None if all => {
                Api::<SwfObject>::all(self.client.clone())
                    .list(&ListParams::default())
                    .await?
                    .items
            }
            None => self.schedules().list(&ListParams::default()).await?.items,
        };
        if objects.is_empty() {
            eprintln!("No resources found in {} namespace.", self.ns);
            return Ok(());
        }
        let viewed: Vec<Viewed<'_>> = objects
            .iter()
            .map(|o| Viewed::new(o, &self.g.default_time_zone))
            .collect();
        let wide = self.g.output == Some(Output::Wide);
        print!("{}", view::get_table(&viewed, all, wide, Timestamp::now()));
        Ok(())
    }

    async fn describe(&self, name: &str) -> anyhow::Result<()> {
        if self.g.output.is_some_and(|o| o != Output::Wide) {
            return self.print_raw(&self.raw(false).get(name).await?).map(|_| ());
        }
        let obj = self.one(name).await?;
        let viewed = Viewed::new(&obj, &self.g.default_time_zone);
        // A schedule whose runs cannot be listed (an unknown kind) is still described.
        let runs = self.runs_of(&obj, &viewed).await.unwrap_or_default();
        let events = self.events(name).await.unwrap_or_default();
        print!("{}", view::describe(&viewed, &runs, &events, Timestamp::now()));
        Ok(())
    }

    async fn runs(&self, name: &str) -> anyhow::Result<()> {
        let obj = self.one(name).await?;
        let viewed = Viewed::new(&obj, &self.g.default_time_zone);
        let runs = self.runs_of(&obj, &viewed).await?;
        if self.print_raw(&runs.iter().map(|r| &r.status).collect::<Vec<_>>())? {
            return Ok(());
        }
        if runs.is_empty() {
            eprintln!("No runs of {name} in namespace {}.", self.ns);
            return Ok(());
        }
        let wide = self.g.output == Some(Output::Wide);
        print!("{}", view::runs_table(&runs, &viewed.zone, Timestamp::now(), wide));
        Ok(())
    }

    /// The schedule's runs: objects of its run kind with its name label and owner reference.
    async fn runs_of(&self, obj: &SwfObject, viewed: &Viewed<'_>) -> anyhow::Result<Vec<ObservedRun>> {
        let v = viewed.validated.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let kind = v.source.kind();
        let gvk = kube::api::GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        let (resource, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .with_context(|| format!("run kind {kind} is not served by this cluster"))?;
        let api: Api<RunObject> = Api::namespaced_with(self.client.clone(), &self.ns, &resource);
        let label = format!("{}={}", keys::LABEL_SWF_NAME, render::swf_label_value(&obj.name_any()));
        let uid = obj.metadata.uid.clone().unwrap_or_default();
        let runs = api.list(&ListParams::default().labels(&label)).await?.items;
        Ok(runs
            .iter()
            .filter(|r| r.metadata.owner_references.iter().flatten().any(|o| o.uid == uid))
            .map(|r| runstate::observe(&kind, r))
            .collect())
    }

    async fn events(&self, name: &str) -> anyhow::Result<Vec<EventLine>> {
        events_of(&self.client, &self.ns, name).await
    }

    async fn annotate(&self, name: &str, key: &str, value: Option<&str>) -> anyhow::Result<()> {
        annotate(&self.schedules(), name, key, value).await
    }

    /// A one-shot request: a new value (now, in Unix seconds) of an annotation the operator
    /// serves once per value.
    async fn request(&self, name: &str, key: &str, what: &str) -> anyhow::Result<()> {
        self.one(name).await?;
        let value = Timestamp::now().as_second().to_string();
        self.annotate(name, key, Some(&value)).await?;
        println!("scheduledworkflow/{name}: {what} requested ({key}={value})");
        Ok(())
    }

    /// Checks the range against the schedule (its zone, its tick count) before asking.
    async fn backfill(&self, name: &str, range: Option<(String, String)>) -> anyhow::Result<()> {
        let obj = self.one(name).await?;
        let Some((from, to)) = range else {
            self.annotate(name, BACKFILL_ANNOTATION, None).await?;
            println!("scheduledworkflow/{name}: backfill cancelled");
            return Ok(());
        };
        let viewed = Viewed::new(&obj, &self.g.default_time_zone);
        let v = viewed.validated.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let value = format!("{from}/{to}");
        let parsed = backfill::parse_range(&value, &v.schedule.time_zone).map_err(anyhow::Error::msg)?;
        let grid = viewed.position(&v.schedule, Timestamp::now()).grid(&v.schedule);
        let ticks = backfill::ticks(grid, parsed).map_err(anyhow::Error::msg)?;
        self.annotate(name, BACKFILL_ANNOTATION, Some(&value)).await?;
        println!(
            "scheduledworkflow/{name}: backfill of {} ticks requested ({BACKFILL_ANNOTATION}={value}); \
             follow it with `kubectl swf describe {name}`",
            ticks.len()
        );
        Ok(())
    }

    async fn set_enabled(&self, name: &str, enabled: bool) -> anyhow::Result<()> {
        self.one(name).await?;
        set_enabled(&self.schedules(), name, enabled).await?;
        let word = if enabled { "enabled" } else { "disabled" };
        println!("scheduledworkflow/{name} {word}");
        Ok(())
    }
}

/// The schedule's last 10 events, oldest first.
pub(crate) async fn events_of(client: &Client, ns: &str, name: &str) -> anyhow::Result<Vec<EventLine>> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let selector = format!("involvedObject.kind=ScheduledWorkflow,involvedObject.name={name}");
    let mut events: Vec<EventLine> = api
        .list(&ListParams::default().fields(&selector))
        .await?
        .items
        .into_iter()
        .map(|e| EventLine {
            at: e
                .last_timestamp
                .map(|t| t.0)
                .or(e.event_time.map(|t| t.0))
                .or(e.metadata.creation_timestamp.map(|t| t.0)),
            type_: e.type_.unwrap_or_default(),
            reason: e.reason.unwrap_or_default(),
            message: e.message.unwrap_or_default(),
        })
        .collect();
    events.sort_by_key(|e| e.at);
    let keep = events.len().saturating_sub(10);
    Ok(events.split_off(keep))
}

/// Sets (or with `None`, removes) one annotation with a merge patch.
pub(crate) async fn annotate(api: &Api<SwfObject>, name: &str, key: &str, value: Option<&str>) -> anyhow::Result<()> {
    let mut annotations = serde_json::Map::new();
    annotations.insert(key.into(), value.map_or(serde_json::Value::Null, Into::into));
    let patch = serde_json::json!({"metadata": {"annotations": annotations}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Sets spec.enabled with a merge patch.
pub(crate) async fn set_enabled(api: &Api<SwfObject>, name: &str, enabled: bool) -> anyhow::Result<()> {
    let patch = serde_json::json!({"spec": {"enabled": enabled}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}
