//! KFP's v1beta1 JobService (HTTP + gRPC) over ScheduledWorkflow resources.
pub mod convert;
pub mod error;
pub mod grpc;
pub mod http;
pub mod list;
pub mod proto;
pub mod service;

use std::{net::SocketAddr, sync::Arc};

/// A serving certificate and key (PEM).
#[derive(Clone, Debug)]
pub struct Tls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// Serves HTTP on `http_addr` and gRPC on `grpc_addr` (TLS when `tls` is given) until either fails.
pub async fn serve(
    api: Arc<service::JobApi>,
    http_addr: Option<SocketAddr>,
    grpc_addr: Option<SocketAddr>,
    tls: Option<Tls>,
) -> anyhow::Result<()> {
    let http = async {
        if let Some(addr) = http_addr {
            let app = http::router(api.clone());
            tracing::info!(%addr, tls = tls.is_some(), "JobService HTTP API");
            match &tls {
                Some(t) => {
                    let _ = rustls::crypto::ring::default_provider().install_default();
                    let config =
                        axum_server::tls_rustls::RustlsConfig::from_pem(t.cert_pem.clone(), t.key_pem.clone()).await?;
                    axum_server::bind_rustls(addr, config)
                        .serve(app.into_make_service())
                        .await?;
                }
                None => axum::serve(tokio::net::TcpListener::bind(addr).await?, app).await?,
            }
        }
        futures::future::pending::<anyhow::Result<()>>().await
    };
    let grpc = async {
        if let Some(addr) = grpc_addr {
            tracing::info!(%addr, tls = tls.is_some(), "JobService gRPC API");
            let mut server = tonic::transport::Server::builder();
            if let Some(t) = &tls {
                let identity = tonic::transport::Identity::from_pem(&t.cert_pem, &t.key_pem);
                server = server.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
            }
            server.add_service(grpc::service(api.clone())).serve(addr).await?;
        }
        futures::future::pending::<anyhow::Result<()>>().await
    };
    tokio::try_join!(http, grpc).map(|_| ())
}
