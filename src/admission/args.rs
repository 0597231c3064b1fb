//! `run`'s flags for the admission webhook, and its start-up: certificate, listener, caBundle.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;

use super::{Webhook, authorize::Authorizer, webhook_config};
use crate::{
    scheduling::spec_check::Rules,
    serve::{metrics::Metrics, tls},
};

#[derive(Args, Debug, Clone)]
pub struct AdmissionArgs {
    /// Serve the validating admission webhook (HTTPS) on this address, e.g. 0.0.0.0:9443.
    #[arg(long)]
    admission_addr: Option<SocketAddr>,
    /// Refuse a schedule whose author may not create its runs themselves (a SubjectAccessReview
    /// for `create` on the run kind). Turning it off lets anyone who may write
    /// ScheduledWorkflows run anything the operator may create.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    admission_authorize: bool,
    /// Serve this certificate (PEM, reloaded when it changes; cert-manager's): the caBundle is
    /// then left to cert-manager's CA injector. Needs --admission-tls-key.
    #[arg(long, requires = "admission_tls_key")]
    admission_tls_cert: Option<PathBuf>,
    #[arg(long, requires = "admission_tls_cert")]
    admission_tls_key: Option<PathBuf>,
    /// Otherwise: the certificate in this Secret (deploy/ ships it empty; the first replica
    /// fills it), and its CA kept as the caBundle of --admission-webhook-configuration.
    #[arg(long, default_value = "swf-operator-webhook-tls")]
    admission_tls_secret: String,
    /// Namespace of that Secret (the pod's).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    admission_secret_namespace: String,
    /// Names (and IP addresses) the generated certificate is valid for (default: those of
    /// Service --admission-service, localhost and 127.0.0.1).
    #[arg(long, value_delimiter = ',')]
    admission_tls_dns_names: Vec<String>,
    #[arg(long, default_value = "swf-operator-webhook")]
    admission_service: String,
    /// The ValidatingWebhookConfiguration whose caBundle is kept current ("" for none).
    #[arg(long, default_value = "swf-operator")]
    admission_webhook_configuration: String,
    /// Accept reviews only from clients with a certificate signed by a CA in this PEM file: the
    /// API server, given a client certificate for webhooks (its --admission-control-config-file;
    /// docs/admission.md). Use a CA of its own: every certificate it signed is accepted.
    #[arg(long)]
    admission_client_ca: Option<PathBuf>,
}

impl AdmissionArgs {
    fn dns_names(&self) -> Vec<String> {
        if !self.admission_tls_dns_names.is_empty() {
            return self.admission_tls_dns_names.clone();
        }
        let (svc, ns) = (&self.admission_service, &self.admission_secret_namespace);
        vec![
            svc.clone(),
            format!("{svc}.{ns}"),
            format!("{svc}.{ns}.svc"),
            "localhost".into(),
            "127.0.0.1".into(),
        ]
    }

    /// The serving certificate, and the CA to publish when the operator publishes it.
    async fn certificate(&self, client: &kube::Client) -> anyhow::Result<(Arc<tls::Reloading>, Option<Vec<u8>>)> {
        if let (Some(cert), Some(key)) = (&self.admission_tls_cert, &self.admission_tls_key) {
            let served = tls::Reloading::from_files(cert.clone(), key.clone(), Duration::from_secs(30))?;
            return Ok((served, None));
        }
        let pem = tls::from_secret_or_generate(
            client.clone(),
            &self.admission_secret_namespace,
            &self.admission_tls_secret,
            &self.dns_names(),
        )
        .await
        .with_context(|| {
            format!(
                "the webhook's certificate (Secret {}/{})",
                self.admission_secret_namespace, self.admission_tls_secret
            )
        })?;
        Ok((tls::Reloading::new(&pem.cert, &pem.key)?, Some(pem.ca)))
    }

    /// Binds the webhook's address and returns the server to run, or None when no address
    /// was given. The listener is bound on return, before the process can report ready.
    pub async fn start(
        &self,
        client: kube::Client,
        rules: Rules,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Option<impl Future<Output = anyhow::Result<()>> + use<>>> {
        let Some(addr) = self.admission_addr else {
            return Ok(None);
        };
        let (cert, ca) = self.certificate(&client).await?;
        let client_cas = match &self.admission_client_ca {
            Some(path) => {
                Some(std::fs::read(path).with_context(|| format!("--admission-client-ca {}", path.display()))?)
            }
            None => {
                tracing::warn!(
                    "no --admission-client-ca: anyone who reaches the webhook's port can send it reviews (docs/admission.md)"
                );
                None
            }
        };
        let listener = std::net::TcpListener::bind(addr).with_context(|| format!("--admission-addr {addr}"))?;
        listener.set_nonblocking(true)?;
        if let Some(ca) = ca.filter(|_| !self.admission_webhook_configuration.is_empty()) {
            tokio::spawn(webhook_config::keep_ca_bundle(
                client.clone(),
                self.admission_webhook_configuration.clone(),
                ca,
            ));
        }
        if !self.admission_authorize {
            tracing::warn!("--admission-authorize=false: schedules may create runs their authors could not");
        }
        let webhook = Arc::new(Webhook {
            rules,
            authorizer: self.admission_authorize.then(|| Authorizer::new(client)),
            metrics,
            bounds: Default::default(),
        });
        Ok(Some(super::serve(listener, cert, client_cas, webhook)))
    }
}
