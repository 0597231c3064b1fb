//! Serving certificates for the JobService API (and the admission webhook): loaded from
//! files and reloaded when they change (cert-manager and friends), or generated once and kept
//! in a Secret that every replica shares.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{Api, Client, api::PostParams};
use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

/// A certificate and key (PEM), and the CA that signed it (for clients and a `caBundle`).
#[derive(Clone, Debug)]
pub struct Pem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub ca: Vec<u8>,
}

/// The certificate being served; swapped in place when it is reloaded.
#[derive(Debug)]
pub struct Reloading {
    current: RwLock<Arc<CertifiedKey>>,
}

fn certified(cert: &[u8], key: &[u8]) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert).collect::<Result<_, _>>()?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in the PEM");
    let key = PrivateKeyDer::from_pem_slice(key)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)?;
    Ok(CertifiedKey::new(chain, signer))
}

fn modified(paths: &[&Path]) -> Option<Vec<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

impl Reloading {
    pub fn new(cert: &[u8], key: &[u8]) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Reloading {
            current: RwLock::new(Arc::new(certified(cert, key)?)),
        }))
    }

    /// Loads `cert` and `key`, and reloads them whenever either file changes (checked every
    /// `every`); a reload that fails keeps the certificate being served and logs why.
    pub fn from_files(cert: PathBuf, key: PathBuf, every: Duration) -> anyhow::Result<Arc<Self>> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| anyhow::anyhow!("read {}: {e}", p.display()));
        let me = Reloading::new(&read(&cert)?, &read(&key)?)?;
        let served = me.clone();
        tokio::spawn(async move {
            let mut seen = modified(&[&cert, &key]);
            loop {
                tokio::time::sleep(every).await;
                let now = modified(&[&cert, &key]);
                if now == seen {
                    continue;
                }
                seen = now;
                match (read(&cert), read(&key)) {
                    (Ok(c), Ok(k)) => match served.replace(&c, &k) {
                        Ok(()) => tracing::info!(cert = %cert.display(), "reloaded the serving certificate"),
                        Err(e) => tracing::warn!(error = %e, "cannot reload the serving certificate"),
                    },
                    (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "cannot reload the serving certificate"),
                }
            }
        });
        Ok(me)
    }

    pub fn replace(&self, cert: &[u8], key: &[u8]) -> anyhow::Result<()> {
        let fresh = Arc::new(certified(cert, key)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// A rustls server configuration that always serves the current certificate.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// As `server_config`, accepting only clients with a certificate signed by a CA of
    /// `client_cas` (PEM): a connection without one fails in the TLS handshake, before any
    /// request is read.
    pub fn server_config_for_clients_of(
        self: &Arc<Self>,
        alpn: &[&[u8]],
        client_cas: &[u8],
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(client_cas) {
            roots.add(cert?)?;
        }
        anyhow::ensure!(!roots.is_empty(), "no CA certificate in the PEM");
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build()?;
        let mut config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// A CA and a serving certificate for `dns_names` (rcgen's validity: until the year 4096;
/// delete the Secret to rotate).
pub fn generate(dns_names: &[String]) -> anyhow::Result<Pem> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "swf-operator CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let params = CertificateParams::new(dns_names.to_vec())?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert: cert.pem().into_bytes(),
        key: key.serialize_pem().into_bytes(),
        ca: ca.pem().into_bytes(),
    })
}

const CERT: &str = "tls.crt";
const KEY: &str = "tls.key";
const CA: &str = "ca.crt";
/// The only type of Secret read or written: never a `kubernetes.io/service-account-token`,
/// which Kubernetes would fill with another account's token.
const TLS_TYPE: &str = "kubernetes.io/tls";

/// The certificate a Secret holds, if it holds one (deploy/ ships the Secrets empty).
fn from_secret(s: &Secret) -> Option<Pem> {
    let data = s.data.as_ref()?;
    let get = |k: &str| data.get(k).map(|b| b.0.clone()).filter(|v| !v.is_empty());
    Some(Pem {
        cert: get(CERT)?,
        key: get(KEY)?,
        ca: get(CA)?,
    })
}

fn tls_data(pem: &Pem) -> std::collections::BTreeMap<String, ByteString> {
    [(CERT, &pem.cert), (KEY, &pem.key), (CA, &pem.ca)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.clone())))
        .collect()
}

/// Refuses a Secret of any type but `kubernetes.io/tls`.
fn check_type(s: &Secret, namespace: &str, name: &str) -> anyhow::Result<()> {
    let found = s.type_.as_deref().unwrap_or("Opaque");
    anyhow::ensure!(
        found == TLS_TYPE,
        "Secret {namespace}/{name} is of type {found}, not {TLS_TYPE}: refusing to use or change it"
    );
    Ok(())
}

/// The certificate in Secret `namespace/name`. deploy/ ships that Secret empty, so the
/// accounts need only `get` and `update` on its name (no `create`, which cannot be limited to
/// a name and would let an account create a service-account-token Secret for another
/// account): the first replica to find it empty generates a certificate (for `dns_names`) and
/// writes it with the resourceVersion it read; a replica that loses that race serves the
/// winner's. Where the Secret does not exist and the identity may create it (`make run`),
/// it is created.
pub async fn from_secret_or_generate(
    client: Client,
    namespace: &str,
    name: &str,
    dns_names: &[String],
) -> anyhow::Result<Pem> {
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    let read_winner = || async {
        let secret = secrets.get(name).await?;
        check_type(&secret, namespace, name)?;
        from_secret(&secret).ok_or_else(|| anyhow::anyhow!("Secret {namespace}/{name} holds no certificate"))
    };
    match secrets.get_opt(name).await? {
        Some(secret) => {
            check_type(&secret, namespace, name)?;
            if let Some(pem) = from_secret(&secret) {
                return Ok(pem);
            }
            let pem = generate(dns_names)?;
            let mut filled = secret;
            filled.data = Some(tls_data(&pem));
            match secrets.replace(name, &PostParams::default(), &filled).await {
                Ok(_) => Ok(pem),
                Err(kube::Error::Api(s)) if s.code == 409 => read_winner().await,
                Err(e) => Err(e.into()),
            }
        }
        None => {
            let pem = generate(dns_names)?;
            let secret = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(namespace.to_string()),
                    ..Default::default()
                },
                type_: Some(TLS_TYPE.into()),
                data: Some(tls_data(&pem)),
                ..Default::default()
            };
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => Ok(pem),
                Err(kube::Error::Api(s)) if s.code == 409 => read_winner().await,
                Err(kube::Error::Api(s)) if s.code == 403 => Err(anyhow::anyhow!(
                    "Secret {namespace}/{name} does not exist and this account may not create it: apply deploy/, which ships it"
                )),
                Err(e) => Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_served_and_replaced() {
        let pem = generate(&["swf-operator-api.swf-system.svc".into()]).unwrap();
        let r = Reloading::new(&pem.cert, &pem.key).unwrap();
        let before = r.current.read().unwrap().cert[0].clone();
        let other = generate(&["other".into()]).unwrap();
        r.replace(&other.cert, &other.key).unwrap();
        assert_ne!(r.current.read().unwrap().cert[0], before);
        assert!(r.replace(b"not pem", b"").is_err(), "a bad reload is refused");
        assert_ne!(r.current.read().unwrap().cert[0], before, "and keeps what was served");
    }
}
