//! Command line: `run`, `crd`, `check`, `next`.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use jiff::{Timestamp, tz::TimeZone};

use crate::{
    controller::{self, Settings},
    crd::ScheduledWorkflow,
    cron::{self, CronExpr},
    metrics::Metrics,
    validate::RunKind,
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
    Run(RunArgs),
    /// Serve only the JobService API (no scheduling).
    Api(ApiArgs),
    /// Print the ScheduledWorkflow CRD (YAML).
    Crd,
    /// Validate ScheduledWorkflow manifests offline (a GitOps CI step) and print next fire times.
    Check {
        /// YAML files (several documents each allowed); non-ScheduledWorkflow documents are skipped.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, env = "CRON_SCHEDULE_TIMEZONE", default_value = "UTC")]
        default_time_zone: String,
        /// How many fire times to print per schedule.
        #[arg(long, default_value_t = 3)]
        count: usize,
    },
    /// Print the next fire times of a KFP cron expression or a period.
    Next {
        #[arg(long, conflicts_with = "every", required_unless_present = "every")]
        cron: Option<String>,
        /// Period in seconds.
        #[arg(long)]
        every: Option<i64>,
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// Start after this instant (RFC 3339; default: now).
        #[arg(long)]
        after: Option<Timestamp>,
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Time zone for schedules without `spec.timeZone` (KFP's CRON_SCHEDULE_TIMEZONE).
    #[arg(long, env = "CRON_SCHEDULE_TIMEZONE", default_value = "UTC")]
    default_time_zone: String,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Run kinds to watch for completion, as apiVersion/Kind (others are polled).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "argoproj.io/v1alpha1/Workflow,batch/v1/Job,tekton.dev/v1/PipelineRun"
    )]
    watch_kinds: Vec<String>,
    /// Poll interval for active runs of kinds that are not watched.
    #[arg(long, default_value = "15s", value_parser = parse_seconds)]
    poll_interval: Duration,
    #[command(flatten)]
    api: ApiArgs,
}

/// The KFP v1beta1 JobService API (served when an address is given).
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// HTTP/JSON address of the JobService API (KFP: 8888), e.g. 0.0.0.0:8888.
    #[arg(long)]
    api_addr: Option<std::net::SocketAddr>,
    /// gRPC address of the JobService API (KFP: 8887), e.g. 0.0.0.0:8887.
    #[arg(long)]
    grpc_addr: Option<std::net::SocketAddr>,
    /// Namespace of jobs created or listed without a NAMESPACE resource reference.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    api_default_namespace: String,
    /// DANGEROUS, local development only: requests without a bearer token act as the operator.
    #[arg(long)]
    api_insecure_anonymous: bool,
    /// Serve the API over TLS with this certificate (PEM); needs --api-tls-key.
    #[arg(long, requires = "api_tls_key")]
    api_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --api-tls-cert.
    #[arg(long, requires = "api_tls_cert")]
    api_tls_key: Option<PathBuf>,
}

impl ApiArgs {
    fn enabled(&self) -> bool {
        self.api_addr.is_some() || self.grpc_addr.is_some()
    }

    async fn serve(self, own: kube::Client) -> anyhow::Result<()> {
        let base = kube::Config::infer()
            .await
            .context("no Kubernetes configuration found")?;
        let tls = match (&self.api_tls_cert, &self.api_tls_key) {
            (Some(cert), Some(key)) => Some(crate::api::Tls {
                cert_pem: std::fs::read(cert).with_context(|| format!("read {}", cert.display()))?,
                key_pem: std::fs::read(key).with_context(|| format!("read {}", key.display()))?,
            }),
            _ => None,
        };
        let api = Arc::new(crate::api::service::JobApi::new(
            base,
            own,
            self.api_default_namespace,
            self.api_insecure_anonymous,
        ));
        crate::api::serve(api, self.api_addr, self.grpc_addr, tls).await
    }
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let nanos = crate::go_duration::parse(s)?;
    if nanos <= 0 {
        return Err("must be positive".into());
    }
    Ok(Duration::from_nanos(nanos as u64))
}

fn parse_kind(s: &str) -> anyhow::Result<RunKind> {
    let (api_version, kind) = s
        .rsplit_once('/')
        .with_context(|| format!("{s:?} is not apiVersion/Kind"))?;
    Ok(RunKind::parse(api_version, kind))
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Run(args) => run_operator(args),
            Command::Api(args) => {
                init_tracing();
                anyhow::ensure!(args.enabled(), "give --api-addr and/or --grpc-addr");
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?
                    .block_on(async move {
                        let client = kube::Client::try_default()
                            .await
                            .context("no Kubernetes configuration found")?;
                        args.serve(client).await
                    })
            }
            Command::Crd => {
                print!("{}", ScheduledWorkflow::crd_yaml());
                Ok(())
            }
            Command::Check {
                files,
                default_time_zone,
                count,
            } => {
                let report = crate::check::check_files(&files, &default_time_zone, count, Timestamp::now());
                print!("{}", report.output);
                if report.errors > 0 {
                    anyhow::bail!("{} invalid ScheduledWorkflow(s)", report.errors);
                }
                Ok(())
            }
            Command::Next {
                cron,
                every,
                time_zone,
                after,
                count,
            } => {
                let tz = TimeZone::get(&time_zone).with_context(|| format!("unknown time zone {time_zone:?}"))?;
                let mut t = after.unwrap_or_else(Timestamp::now);
                let step: Box<dyn Fn(Timestamp) -> Option<Timestamp>> = match (cron, every) {
                    (Some(expr), _) => {
                        let parsed = cron::parse(&expr).map_err(|e| anyhow::anyhow!("invalid cron {expr:?}: {e}"))?;
                        if let Some(w) = parsed.warning() {
                            eprintln!("warning: {w}");
                        }
                        match parsed {
                            CronExpr::Calendar(c) => Box::new(move |t| c.next_after(t, &tz)),
                            CronExpr::Every { seconds } => Box::new(move |t: Timestamp| {
                                t.checked_add(jiff::SignedDuration::from_secs(seconds)).ok()
                            }),
                        }
                    }
                    (None, Some(seconds)) if seconds >= 1 => {
                        Box::new(move |t: Timestamp| t.checked_add(jiff::SignedDuration::from_secs(seconds)).ok())
                    }
                    _ => anyhow::bail!("--every must be at least 1 second"),
                };
                for _ in 0..count {
                    match step(t) {
                        Some(next) => {
                            println!(
                                "{next}  ({})",
                                next.to_zoned(TimeZone::get(&time_zone)?)
                                    .strftime("%Y-%m-%d %H:%M:%S %Z")
                            );
                            t = next;
                        }
                        None => {
                            println!("(no further fire time)");
                            break;
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
}

fn run_operator(args: RunArgs) -> anyhow::Result<()> {
    init_tracing();
    TimeZone::get(&args.default_time_zone).with_context(|| {
        format!(
            "--default-time-zone {:?} is not an IANA time zone",
            args.default_time_zone
        )
    })?;
    let watch_kinds = args
        .watch_kinds
        .iter()
        .map(|s| parse_kind(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let settings = Settings {
        namespace: args.namespace,
        default_time_zone: args.default_time_zone,
        watch_kinds,
        poll_interval: args.poll_interval,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .context("no Kubernetes configuration found")?;
        let metrics = Arc::new(Metrics::default());
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let server = tokio::spawn(crate::server::serve(args.metrics_addr, metrics.clone(), ready.clone()));
        let api = args.api.clone();
        let api_client = client.clone();
        let api_server = async move {
            if api.enabled() {
                api.serve(api_client).await
            } else {
                futures::future::pending().await
            }
        };
        tokio::select! {
            result = controller::run(client, settings, metrics, ready) => result,
            result = server => result?.context("metrics server stopped"),
            result = api_server => result.context("JobService API stopped"),
        }
    })
}
