//! `swf-operator run`: the operator (reconciler, and with their flags the webhook and the
//! JobService), with leader election and its metrics and health endpoints.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;

use super::{LogFormat, RulesArgs, api::ApiArgs};
use crate::{
    controller::{self, Settings, election::leader::LeaseConfig},
    model::runkind::{self, RunKind},
    serve::metrics::Metrics,
};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    #[command(flatten)]
    rules: RulesArgs,
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

pub(super) fn run_operator(args: RunArgs) -> anyhow::Result<()> {
    super::init_tracing(args.log_format);
    let rules = args.rules.rules()?;
    let watch_kinds = args
        .watch_kinds
        .iter()
        .map(|s| parse_kind(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let identity = identity();
    let lease = args.election.lease(&identity)?;
    let mut settings = Settings::new(args.namespace.clone(), &rules.default_time_zone, watch_kinds);
    settings.rules = rules.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .context("no Kubernetes configuration found")?;
        let metrics = Arc::new(Metrics::default());
        let health = crate::serve::Health::default();
        let admission = args
            .admission
            .start(client.clone(), rules.clone(), metrics.clone())
            .await?;
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
                api.serve(api_client, rules).await
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
