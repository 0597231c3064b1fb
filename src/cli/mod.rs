//! Command line: `run`, `api`, `crd`, `check`, `migrate-check`, `next`.

pub mod check;
pub mod migrate_check;

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use jiff::{Timestamp, tz::TimeZone};

use crate::{
    controller::{self, Settings, election::leader::LeaseConfig},
    model::crd::ScheduledWorkflow,
    model::runkind::{self, RunKind},
    scheduling::cron,
    scheduling::schedule::{Cadence, Schedule},
    scheduling::ticks::Grid,
    serve::metrics::Metrics,
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

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// YAML files (several documents each allowed); non-ScheduledWorkflow documents are skipped.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long, env = "CRON_SCHEDULE_TIMEZONE", default_value = "UTC")]
    default_time_zone: String,
    /// How many fire times to print per schedule.
    #[arg(long, default_value_t = 3)]
    count: usize,
}

#[derive(Args, Debug)]
pub struct MigrateCheckArgs {
    /// Only this namespace (default: all).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    #[arg(long, env = "CRON_SCHEDULE_TIMEZONE", default_value = "UTC")]
    default_time_zone: String,
    #[arg(long, env = "BLOCK_V1_PIPELINES", default_value_t = false, action = clap::ArgAction::Set)]
    block_v1_pipelines: bool,
    #[arg(long, env = "V1_ALLOWED_NAMESPACES", default_value = "")]
    v1_allowed_namespaces: String,
}

#[derive(Args, Debug)]
pub struct NextArgs {
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
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Time zone for schedules without `spec.timeZone` (KFP's CRON_SCHEDULE_TIMEZONE).
    #[arg(long, env = "CRON_SCHEDULE_TIMEZONE", default_value = "UTC")]
    default_time_zone: String,
    /// Log lines as text or as one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Address of /healthz, /readyz and (without --metrics-secure-addr) /metrics, plain HTTP.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Serve /metrics here instead, over HTTPS, only to callers allowed to `get` the
    /// non-resource URL /metrics (a TokenReview and a SubjectAccessReview, as
    /// controller-runtime's secure metrics). deploy/ uses 0.0.0.0:8443.
    #[arg(long)]
    metrics_secure_addr: Option<std::net::SocketAddr>,
    /// The secure metrics port's certificate (PEM, reloaded when it changes); without it a
    /// self-signed one is made at start-up.
    #[arg(long, requires = "metrics_tls_key")]
    metrics_tls_cert: Option<PathBuf>,
    #[arg(long, requires = "metrics_tls_cert")]
    metrics_tls_key: Option<PathBuf>,
    /// Run kinds whose caches start with the process, as apiVersion/Kind (any other kind is
    /// watched from the first time a schedule uses it).
    #[arg(long, value_delimiter = ',', default_value = runkind::DEFAULT_WATCH_KINDS)]
    watch_kinds: Vec<String>,
    #[command(flatten)]
    election: ElectionArgs,
    /// KFP's switch: refuse to run v1 (Argo-only) pipelines (true/false).
    #[arg(long, env = "BLOCK_V1_PIPELINES", default_value_t = false, action = clap::ArgAction::Set)]
    block_v1_pipelines: bool,
    /// With --block-v1-pipelines: comma-separated namespaces still allowed to run v1 pipelines.
    #[arg(long, env = "V1_ALLOWED_NAMESPACES", default_value = "")]
    v1_allowed_namespaces: String,
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    admission: crate::admission::args::AdmissionArgs,
}

/// Leader election: with two or more replicas, only the holder of a Lease creates runs.
#[derive(Args, Debug, Clone)]
pub struct ElectionArgs {
    /// Elect a leader through a coordination.k8s.io/v1 Lease (turn off only for one replica).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    #[arg(long, default_value = "swf-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// How long a lease lasts without renewal before another replica may take it.
    #[arg(long, default_value = "15s", value_parser = parse_seconds)]
    lease_duration: Duration,
    /// The leader stops creating runs when it has not renewed for this long.
    #[arg(long, default_value = "10s", value_parser = parse_seconds)]
    renew_deadline: Duration,
    /// How often the leader renews (and others try to acquire).
    #[arg(long, default_value = "2s", value_parser = parse_seconds)]
    retry_period: Duration,
    /// Split the schedules into this many shards, each owned through its own Lease
    /// `<lease-name>-shard-<i>`, so replicas share the work (docs/shards.md). 1: one leader.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    shards: u32,
}

impl ElectionArgs {
    fn lease(&self, identity: &str) -> anyhow::Result<Option<LeaseConfig>> {
        if !self.leader_elect {
            if self.shards > 1 {
                tracing::info!("--leader-elect=false: this replica writes every schedule; --shards is ignored");
            }
            return Ok(None);
        }
        let config = LeaseConfig {
            name: self.lease_name.clone(),
            namespace: self.lease_namespace.clone(),
            identity: identity.to_string(),
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
            shards: self.shards,
        };
        config.validate().map_err(|e| anyhow::anyhow!("leader election: {e}"))?;
        Ok(Some(config))
    }
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
    /// Namespace of jobs created or listed without a NAMESPACE resource reference (none: such
    /// requests are refused; never the operator's own namespace by default).
    #[arg(long)]
    api_default_namespace: Option<String>,
    /// Serve only this namespace (with `run`, `--namespace` sets it).
    #[arg(long)]
    api_namespace: Option<String>,
    /// DANGEROUS, local development only: requests without a bearer token act as the API itself.
    #[arg(long)]
    api_insecure_anonymous: bool,
    /// TLS with this certificate (PEM; reloaded when it changes); needs --api-tls-key.
    #[arg(long, requires = "api_tls_key", conflicts_with_all = ["api_tls_secret", "api_plain_http"])]
    api_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --api-tls-cert.
    #[arg(long, requires = "api_tls_cert")]
    api_tls_key: Option<PathBuf>,
    /// TLS with a certificate kept in this Secret of the pod's namespace (deploy/ ships it
    /// empty; the first replica fills it).
    #[arg(long, conflicts_with = "api_plain_http")]
    api_tls_secret: Option<String>,
    /// Names the generated certificate is valid for (default: the Service's names).
    #[arg(long, value_delimiter = ',')]
    api_tls_dns_names: Vec<String>,
    /// Plain HTTP and gRPC, without TLS (local development; callers send bearer tokens).
    #[arg(long)]
    api_plain_http: bool,
    /// KFP's DEFAULTPIPELINERUNNERSERVICEACCOUNT: replaces a workflow's empty or
    /// `pipeline-runner` service account at create time.
    #[arg(long, env = "DEFAULTPIPELINERUNNERSERVICEACCOUNT")]
    api_default_service_account: Option<String>,
    /// KFP's create-time `sidecar.istio.io/inject: "false"` on every workflow template.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    api_istio_sidecar_off: bool,
    /// The pod's service account: jobs may not run as it in the pod's namespace.
    #[arg(long, env = "SERVICE_ACCOUNT")]
    api_own_service_account: Option<String>,
    /// More service accounts of the pod's namespace jobs may not run as (the scheduler's).
    #[arg(long, value_delimiter = ',', default_value = "swf-operator")]
    api_refuse_service_accounts: Vec<String>,
    /// The pod's namespace (the Lease, the TLS Secret).
    #[arg(long, env = "POD_NAMESPACE")]
    pod_namespace: Option<String>,
    /// Kubeflow multi-user mode: users from the trusted proxy's header, or from tokens with the
    /// audience pipelines.kubeflow.org.
    #[arg(long)]
    api_multi_user: bool,
    #[arg(long, env = "KUBEFLOW_USERID_HEADER", default_value = "kubeflow-userid")]
    api_userid_header: String,
    /// Every header value must start with this ("" for none); it is removed from the user name.
    #[arg(long, env = "KUBEFLOW_USERID_PREFIX", default_value = "accounts.google.com:")]
    api_userid_prefix: String,
    /// Addresses (CIDRs) the header is believed from: the proxy as this process sees it (Istio's
    /// sidecar: 127.0.0.6/32). None: the header is refused, only tokens work.
    #[arg(long, value_delimiter = ',')]
    api_userid_trusted_proxies: Vec<ipnet::IpNet>,
    /// Accept system: user names (nodes, service accounts, control-plane components) from the
    /// header. Kubeflow's proxies never send them.
    #[arg(long)]
    api_userid_allow_system: bool,
}

impl ApiArgs {
    fn enabled(&self) -> bool {
        self.api_addr.is_some() || self.grpc_addr.is_some()
    }

    fn settings(&self) -> crate::api::service::ApiSettings {
        crate::api::service::ApiSettings {
            default_namespace: self.api_default_namespace.clone(),
            scope: self.api_namespace.clone(),
            own_namespace: self.pod_namespace.clone(),
            refused_service_accounts: self
                .api_refuse_service_accounts
                .iter()
                .chain(&self.api_own_service_account)
                .cloned()
                .collect(),
            create: crate::api::convert::CreateOptions {
                default_service_account: self.api_default_service_account.clone(),
                istio_sidecar_off: self.api_istio_sidecar_off,
            },
            allow_anonymous: self.api_insecure_anonymous,
            multi_user: self.api_multi_user.then(|| crate::api::identity::MultiUser {
                trusted_proxies: self.api_userid_trusted_proxies.clone(),
                allow_system: self.api_userid_allow_system,
                ..crate::api::identity::MultiUser::new(&self.api_userid_header, &self.api_userid_prefix)
            }),
        }
    }

    /// The serving certificate: from files (reloaded), from a shared Secret, or none when
    /// plain HTTP was asked for.
    async fn tls(&self, own: &kube::Client) -> anyhow::Result<Option<Arc<crate::serve::tls::Reloading>>> {
        use crate::serve::tls;
        if let (Some(cert), Some(key)) = (&self.api_tls_cert, &self.api_tls_key) {
            return Ok(Some(tls::Reloading::from_files(
                cert.clone(),
                key.clone(),
                Duration::from_secs(30),
            )?));
        }
        if let Some(secret) = &self.api_tls_secret {
            let ns = self.pod_namespace.clone().unwrap_or_else(|| "default".into());
            let names = if self.api_tls_dns_names.is_empty() {
                let svc = "swf-operator-api";
                vec![
                    svc.to_string(),
                    format!("{svc}.{ns}"),
                    format!("{svc}.{ns}.svc"),
                    "localhost".into(),
                ]
            } else {
                self.api_tls_dns_names.clone()
            };
            let pem = tls::from_secret_or_generate(own.clone(), &ns, secret, &names).await?;
            return Ok(Some(tls::Reloading::new(&pem.cert, &pem.key)?));
        }
        anyhow::ensure!(
            self.api_plain_http,
            "the API carries bearer tokens: give --api-tls-cert/--api-tls-key or --api-tls-secret, or --api-plain-http to serve without TLS"
        );
        tracing::warn!("--api-plain-http: the JobService API is served without TLS");
        Ok(None)
    }

    async fn serve(self, own: kube::Client) -> anyhow::Result<()> {
        let base = kube::Config::infer()
            .await
            .context("no Kubernetes configuration found")?;
        let tls = self.tls(&own).await?;
        let api = Arc::new(crate::api::service::JobApi::new(base, own, self.settings()));
        crate::api::serve(api, self.api_addr, self.grpc_addr, tls).await
    }
}

/// The secure metrics port's certificate: the files given (reloaded), else a self-signed one
/// made now (scrapers verify the token's rights, not this certificate; as controller-runtime).
fn metrics_certificate(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> anyhow::Result<Arc<crate::serve::tls::Reloading>> {
    use crate::serve::tls;
    match (cert, key) {
        (Some(cert), Some(key)) => tls::Reloading::from_files(cert, key, Duration::from_secs(30)),
        _ => {
            let pem = tls::generate(&["localhost".into(), "127.0.0.1".into()])?;
            tls::Reloading::new(&pem.cert, &pem.key)
        }
    }
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let nanos = crate::scheduling::go_duration::parse(s)?;
    if nanos <= 0 {
        return Err("must be positive".into());
    }
    Ok(Duration::from_nanos(nanos as u64))
}

fn parse_kind(s: &str) -> anyhow::Result<RunKind> {
    RunKind::parse_slashed(s).with_context(|| format!("{s:?} is not apiVersion/Kind"))
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Run(args) => run_operator(*args),
            Command::Api(args) => run_api(*args),
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

fn run_api(args: ApiArgs) -> anyhow::Result<()> {
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

impl CheckArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let report = crate::cli::check::check_files(&self.files, &self.default_time_zone, self.count, Timestamp::now());
        print!("{}", report.output);
        if report.errors > 0 {
            anyhow::bail!("{} invalid ScheduledWorkflow(s)", report.errors);
        }
        Ok(())
    }
}

impl MigrateCheckArgs {
    fn run(self) -> anyhow::Result<()> {
        let v1 = crate::scheduling::validate::V1Policy::new(self.block_v1_pipelines, &self.v1_allowed_namespaces);
        let assessments = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async {
                let client = kube::Client::try_default()
                    .await
                    .context("no Kubernetes configuration found")?;
                crate::cli::migrate_check::check_cluster(
                    client,
                    self.namespace.as_deref(),
                    &self.default_time_zone,
                    &v1,
                )
                .await
            })?;
        let (text, attention) = crate::cli::migrate_check::report(&assessments);
        print!("{text}");
        if attention {
            std::process::exit(1);
        }
        Ok(())
    }
}

impl NextArgs {
    /// The schedule the flags describe, with no window (`next` shows its grid).
    fn schedule(&self, tz: TimeZone) -> anyhow::Result<Schedule> {
        match (&self.cron, self.every) {
            (Some(expr), _) => {
                let parsed = cron::parse(expr).map_err(|e| anyhow::anyhow!("invalid cron {expr:?}: {e}"))?;
                if let Some(w) = parsed.warning() {
                    eprintln!("warning: {w}");
                }
                Ok(Schedule::cron(parsed, None, None, tz))
            }
            (None, Some(seconds)) if seconds >= 1 => Ok(Schedule {
                cadence: Cadence::Every { seconds },
                start: None,
                end: None,
                time_zone: tz,
            }),
            _ => anyhow::bail!("--every must be at least 1 second"),
        }
    }

    pub fn run(self) -> anyhow::Result<()> {
        let tz = TimeZone::get(&self.time_zone).with_context(|| format!("unknown time zone {:?}", self.time_zone))?;
        let schedule = self.schedule(tz.clone())?;
        let after = self.after.unwrap_or_else(Timestamp::now);
        // A periodic grid starts at `after`, as a schedule created then would.
        let ticks: Vec<Timestamp> = Grid::new(&schedule, after).from(after).take(self.count).collect();
        for next in &ticks {
            println!(
                "{next}  ({})",
                next.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S %Z")
            );
        }
        if ticks.len() < self.count {
            println!("(no further fire time)");
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn init_tracing() {
    init_tracing_as(LogFormat::Text);
}

/// `RUST_LOG` filters (default `info,kube=warn`); a pass's lines carry its `ns` and `name`.
fn init_tracing_as(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

/// This replica's name: the pod's, else the host's plus the process id.
fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}

fn run_operator(args: RunArgs) -> anyhow::Result<()> {
    init_tracing_as(args.log_format);
    crate::scheduling::validate::zone_by_name(&args.default_time_zone).with_context(|| {
        format!(
            "--default-time-zone {:?} is not an IANA time zone (or Local)",
            args.default_time_zone
        )
    })?;
    let watch_kinds = args
        .watch_kinds
        .iter()
        .map(|s| parse_kind(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let identity = identity();
    let lease = args.election.lease(&identity)?;
    let mut settings = Settings::new(args.namespace.clone(), &args.default_time_zone, watch_kinds);
    settings.v1_policy =
        crate::scheduling::validate::V1Policy::new(args.block_v1_pipelines, &args.v1_allowed_namespaces);
    let rules = crate::admission::review::Rules {
        default_time_zone: args.default_time_zone.clone(),
        v1_policy: settings.v1_policy.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .context("no Kubernetes configuration found")?;
        let metrics = Arc::new(Metrics::default());
        let health = crate::serve::Health::default();
        let admission = args.admission.start(client.clone(), rules, metrics.clone()).await?;
        let admission = async move {
            match admission {
                Some(webhook) => webhook.await,
                None => futures::future::pending().await,
            }
        };
        let secure = args.metrics_secure_addr;
        let server = tokio::spawn(crate::serve::serve_plain(
            args.metrics_addr,
            metrics.clone(),
            health.clone(),
            secure.is_none(),
        ));
        let secure_metrics = match secure {
            Some(addr) => {
                let cert = metrics_certificate(args.metrics_tls_cert.clone(), args.metrics_tls_key.clone())?;
                let auth = crate::serve::metrics_auth::MetricsAuth::new(client.clone());
                tokio::spawn(crate::serve::serve_secure(addr, cert, auth, metrics.clone()))
            }
            None => tokio::spawn(futures::future::pending()),
        };
        let mut api = args.api.clone();
        if api.api_namespace.is_none() {
            api.api_namespace = args.namespace.clone();
        }
        let api_client = client.clone();
        let api_server = async move {
            if api.enabled() {
                api.serve(api_client).await
            } else {
                futures::future::pending().await
            }
        };
        let parts = controller::Parts {
            client,
            settings,
            metrics,
            health,
            lease,
            identity,
        };
        tokio::select! {
            result = controller::run(parts, shutdown_signal()) => result,
            result = server => result?.context("metrics server stopped"),
            result = secure_metrics => result?.context("secure metrics server stopped"),
            result = api_server => result.context("JobService API stopped"),
            result = admission => result.context("admission webhook stopped"),
        }
    })
}
