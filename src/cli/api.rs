//! `swf-operator api`: only the JobService API (its flags are also `run`'s).

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;

use crate::scheduling::spec_check::Rules;

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
    pub(super) api_namespace: Option<String>,
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
    pub(super) fn enabled(&self) -> bool {
        self.api_addr.is_some() || self.grpc_addr.is_some()
    }

    fn settings(&self, rules: Rules) -> crate::api::service::ApiSettings {
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
                rules,
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

    pub(super) async fn serve(self, own: kube::Client, rules: Rules) -> anyhow::Result<()> {
        let base = kube::Config::infer()
            .await
            .context("no Kubernetes configuration found")?;
        let tls = self.tls(&own).await?;
        let api = Arc::new(crate::api::service::JobApi::new(base, own, self.settings(rules)));
        crate::api::serve(api, self.api_addr, self.grpc_addr, tls).await
    }
}

/// `swf-operator api`: the JobService's flags, and what it checks a job's schedule against.
#[derive(Args, Debug)]
pub struct ApiCommandArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    rules: super::RulesArgs,
}

pub(super) fn run_api(ApiCommandArgs { api: args, rules }: ApiCommandArgs) -> anyhow::Result<()> {
    super::init_tracing(super::LogFormat::Text);
    anyhow::ensure!(args.enabled(), "give --api-addr and/or --grpc-addr");
    let rules = rules.rules()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let client = kube::Client::try_default()
                .await
                .context("no Kubernetes configuration found")?;
            args.serve(client, rules).await
        })
}
