//! KFP's v1beta1 JobService (HTTP + gRPC) over ScheduledWorkflow resources.
pub mod auth;
pub mod convert;
pub mod error;
pub mod grpc;
pub mod http;
pub mod index;
pub mod list;
pub mod proto;
pub mod service;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures::StreamExt;

use crate::tls::Reloading;

/// Bounds on what one request may cost.
pub mod limits {
    use std::time::Duration;

    /// A whole request, from its first byte to its answer.
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// Reading a request's headers.
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// A request body (a job with its workflow manifest); manifests themselves are bounded by
    /// `manifest::MAX_MANIFEST_BYTES`.
    pub const MAX_BODY_BYTES: usize = 4 << 20;
    /// Requests served at once; more wait (within `REQUEST_TIMEOUT`).
    pub const CONCURRENT_REQUESTS: usize = 64;
}

/// The gRPC descriptors, for server reflection (`grpcurl` works without the .proto files).
const DESCRIPTORS: &[u8] = tonic::include_file_descriptor_set!("api_descriptor");

/// Serves HTTP on `http_addr` and gRPC on `grpc_addr` (TLS when `tls` is given) until either
/// fails.
pub async fn serve(
    api: Arc<service::JobApi>,
    http_addr: Option<SocketAddr>,
    grpc_addr: Option<SocketAddr>,
    tls: Option<Arc<Reloading>>,
) -> anyhow::Result<()> {
    let http = async {
        if let Some(addr) = http_addr {
            serve_http(api.clone(), addr, tls.clone()).await?;
        }
        futures::future::pending::<anyhow::Result<()>>().await
    };
    let grpc = async {
        if let Some(addr) = grpc_addr {
            serve_grpc(api.clone(), addr, tls.clone()).await?;
        }
        futures::future::pending::<anyhow::Result<()>>().await
    };
    tokio::try_join!(http, grpc).map(|_| ())
}

async fn serve_http(api: Arc<service::JobApi>, addr: SocketAddr, tls: Option<Arc<Reloading>>) -> anyhow::Result<()> {
    use tower::ServiceBuilder;
    let app = http::router(api).layer(
        ServiceBuilder::new()
            .layer(axum::extract::DefaultBodyLimit::max(limits::MAX_BODY_BYTES))
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                limits::REQUEST_TIMEOUT,
            ))
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                limits::CONCURRENT_REQUESTS,
            )),
    );
    tracing::info!(%addr, tls = tls.is_some(), "JobService HTTP API");
    match tls {
        Some(cert) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(cert.server_config(&[b"h2", b"http/1.1"]));
            let mut server = axum_server::bind_rustls(addr, config);
            server
                .http_builder()
                .http1()
                .header_read_timeout(limits::HEADER_TIMEOUT);
            server.serve(app.into_make_service()).await?;
        }
        None => {
            let mut server = axum_server::bind(addr);
            server
                .http_builder()
                .http1()
                .header_read_timeout(limits::HEADER_TIMEOUT);
            server.serve(app.into_make_service()).await?;
        }
    }
    Ok(())
}

async fn serve_grpc(api: Arc<service::JobApi>, addr: SocketAddr, tls: Option<Arc<Reloading>>) -> anyhow::Result<()> {
    tracing::info!(%addr, tls = tls.is_some(), "JobService gRPC API");
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(DESCRIPTORS)
        .build_v1()?;
    let jobs = grpc::service(api).max_decoding_message_size(limits::MAX_BODY_BYTES);
    let mut server = tonic::transport::Server::builder()
        .timeout(limits::REQUEST_TIMEOUT)
        .concurrency_limit_per_connection(limits::CONCURRENT_REQUESTS)
        .http2_keepalive_interval(Some(Duration::from_secs(60)));
    let router = server.add_service(jobs).add_service(reflection);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    match tls {
        None => {
            router
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await?
        }
        Some(cert) => {
            // TLS by rustls with the reloading certificate (tonic's own TLS cannot reload).
            let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config(&[b"h2"]));
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).filter_map(move |tcp| {
                let acceptor = acceptor.clone();
                async move {
                    match tcp {
                        Ok(tcp) => match tokio::time::timeout(limits::HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => Some(Ok::<_, std::io::Error>(tls)),
                            _ => None, // a failed handshake ends that connection only
                        },
                        Err(e) => Some(Err(e)),
                    }
                }
            });
            router.serve_with_incoming(incoming).await?;
        }
    }
    Ok(())
}
