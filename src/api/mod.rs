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

use crate::{server::listen, tls::Reloading};

/// Bounds on what one caller may cost; docs/security.md lists them with their reasons.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A whole request, from its first byte to its answer.
    pub request_timeout: Duration,
    /// Connections: TLS handshake, request head, idle time, how many at once.
    pub connections: listen::Limits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(30),
            connections: listen::Limits::standard(listen::Protocols::Both),
        }
    }
}

/// Compatibility with callers that name the old constants.
pub mod limits {
    /// A request body (a job with its workflow manifest); manifests themselves are bounded by
    /// `manifest::MAX_MANIFEST_BYTES`.
    pub const MAX_BODY_BYTES: usize = 4 << 20;
    /// Requests served at once; more wait (within the request timeout).
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
    serve_with(api, http_addr, grpc_addr, tls, Limits::default()).await
}

/// As `serve`, with other bounds (tests shorten them).
pub async fn serve_with(
    api: Arc<service::JobApi>,
    http_addr: Option<SocketAddr>,
    grpc_addr: Option<SocketAddr>,
    tls: Option<Arc<Reloading>>,
    limits: Limits,
) -> anyhow::Result<()> {
    let limits = &limits;
    let http = async {
        if let Some(addr) = http_addr {
            serve_http(api.clone(), addr, tls.clone(), limits).await?;
        }
        futures::future::pending::<anyhow::Result<()>>().await
    };
    let grpc = async {
        if let Some(addr) = grpc_addr {
            serve_grpc(api.clone(), addr, tls.clone(), limits).await?;
        }
        futures::future::pending::<anyhow::Result<()>>().await
    };
    tokio::try_join!(http, grpc).map(|_| ())
}

async fn serve_http(
    api: Arc<service::JobApi>,
    addr: SocketAddr,
    tls: Option<Arc<Reloading>>,
    limits: &Limits,
) -> anyhow::Result<()> {
    use tower::ServiceBuilder;
    let app = http::router(api).layer(
        ServiceBuilder::new()
            .layer(axum::extract::DefaultBodyLimit::max(limits::MAX_BODY_BYTES))
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                limits.request_timeout,
            ))
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                limits::CONCURRENT_REQUESTS,
            )),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, tls = tls.is_some(), "JobService HTTP API");
    let config = tls.map(|cert| cert.server_config(&[b"h2", b"http/1.1"]));
    listen::serve(listener, config, limits.connections.clone(), app).await;
    Ok(())
}

async fn serve_grpc(
    api: Arc<service::JobApi>,
    addr: SocketAddr,
    tls: Option<Arc<Reloading>>,
    limits: &Limits,
) -> anyhow::Result<()> {
    use tower::ServiceBuilder;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(DESCRIPTORS)
        .build_v1()?;
    let jobs = grpc::service(api).max_decoding_message_size(limits::MAX_BODY_BYTES);
    let app = tonic::service::Routes::new(jobs)
        .add_service(reflection)
        .into_axum_router()
        .layer(
            ServiceBuilder::new()
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    limits.request_timeout,
                ))
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    limits::CONCURRENT_REQUESTS,
                )),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, tls = tls.is_some(), "JobService gRPC API");
    let config = tls.map(|cert| cert.server_config(&[b"h2"]));
    let connections = listen::Limits {
        protocols: listen::Protocols::Http2,
        ..limits.connections.clone()
    };
    listen::serve(listener, config, connections, app).await;
    Ok(())
}
