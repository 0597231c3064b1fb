//! Keeps the `caBundle` of the operator's `ValidatingWebhookConfiguration` equal to the CA
//! of the certificate it serves, so no cert-manager is needed. The configuration itself comes
//! from deploy/ (or `make run`); the operator only ever writes `caBundle`, and only when it
//! differs, so every replica can do it.

use std::time::Duration;

use k8s_openapi::{ByteString, api::admissionregistration::v1::ValidatingWebhookConfiguration};
use kube::{Api, Client, api::PostParams};

/// How often the configuration is checked (someone may re-apply it without a caBundle).
pub const CHECK_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Current,
    Updated,
    /// No configuration of that name: the webhook is not registered (yet).
    Missing,
}

/// Sets `ca` as the caBundle of every webhook in configuration `name` where it differs.
pub async fn ensure_ca_bundle(client: &Client, name: &str, ca: &[u8]) -> Result<Outcome, kube::Error> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let Some(mut config) = api.get_opt(name).await? else {
        return Ok(Outcome::Missing);
    };
    let mut changed = false;
    for webhook in config.webhooks.iter_mut().flatten() {
        if webhook.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(ca) {
            webhook.client_config.ca_bundle = Some(ByteString(ca.to_vec()));
            changed = true;
        }
    }
    if !changed {
        return Ok(Outcome::Current);
    }
    // A replace carries the resourceVersion read above: a concurrent change wins (409) and the
    // next round looks again.
    api.replace(name, &PostParams::default(), &config).await?;
    Ok(Outcome::Updated)
}

/// Runs `ensure_ca_bundle` now and every `CHECK_EVERY`, logging what changes.
pub async fn keep_ca_bundle(client: Client, name: String, ca: Vec<u8>) {
    let mut last = None;
    loop {
        let outcome = ensure_ca_bundle(&client, &name, &ca).await;
        match &outcome {
            Ok(Outcome::Updated) => tracing::info!(configuration = %name, "set the webhook's caBundle"),
            Ok(Outcome::Missing) if last.as_ref() != Some(&outcome_kind(&outcome)) => tracing::warn!(
                configuration = %name,
                "no ValidatingWebhookConfiguration of this name: the API server does not call the webhook"
            ),
            Err(e) => tracing::warn!(configuration = %name, error = %e, "cannot update the webhook's caBundle"),
            _ => {}
        }
        last = Some(outcome_kind(&outcome));
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

fn outcome_kind(o: &Result<Outcome, kube::Error>) -> &'static str {
    match o {
        Ok(Outcome::Current) => "current",
        Ok(Outcome::Updated) => "updated",
        Ok(Outcome::Missing) => "missing",
        Err(_) => "error",
    }
}
