//! KFP's v1beta1 JobService (HTTP + gRPC) over ScheduledWorkflow resources.
pub mod accounts;
pub mod auth;
pub mod catalog;
pub mod convert;
pub mod error;
pub mod gate;
pub mod grpc;
pub mod http;
pub mod identity;
pub mod index;
pub mod list;
pub mod ordered;
pub mod proto;
pub mod service;
pub mod wire;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;

use crate::serve::{json_bounds::JsonBounds, listen, tls::Reloading};

/// Bounds on what one caller may cost; docs/security.md lists them with their reasons.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A whole request, from its first byte to its answer.
    pub request_timeout: Duration,
    /// Sending a request body, once the caller is authenticated.
    pub body_timeout: Duration,
    /// A CreateJob body: a job with a workflow manifest of at most
    /// `manifest::MAX_MANIFEST_BYTES`, which JSON escaping may double.
    pub max_create_bytes: usize,
    /// Any other call's body (an id, a list query).
    pub max_small_body: usize,
    /// Request bodies being read and decoded at once, in bytes; more wait.
    pub body_budget: usize,
    /// Calls worked on at once (after authentication and their body); more wait.
    pub concurrent_requests: usize,
    /// The structure a JSON body may have (a job has a few dozen values; this allows about
    /// 5,000, e.g. a few thousand parameters).
    pub json: JsonBounds,
    /// The fields a gRPC request may have.
    pub wire: wire::WireBounds,
    /// Connections: TLS handshake, request head, idle time, how many at once.
    pub connections: listen::Limits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(10),
            max_create_bytes: 2 * crate::model::manifest::MAX_MANIFEST_BYTES + (64 << 10),
            max_small_body: 64 << 10,
            body_budget: 8 << 20,
            concurrent_requests: 64,
            json: JsonBounds {
                max_structure: 10_000,
                max_depth: 64,
            },
            wire: wire::WireBounds {
                max_fields: 5_000,
                max_depth: 32,
            },
            connections: listen::Limits::standard(listen::Protocols::Both),
        }
    }
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
    let gate = Arc::new(gate::Gate::new(api.clone(), limits.clone())?);
    let timeout = tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    );
    let http_app = http::router(api.clone(), gate.clone()).layer(timeout);
    let grpc_app = grpc_router(api, gate, &limits)?.layer(timeout);
    let grpc_connections = listen::Limits {
        protocols: listen::Protocols::Http2,
        ..limits.connections.clone()
    };
    let http = serve_on(
        ("HTTP", "--api-addr"),
        http_addr,
        &tls,
        &[b"h2", b"http/1.1"],
        limits.connections.clone(),
        http_app,
    );
    let grpc = serve_on(
        ("gRPC", "--grpc-addr"),
        grpc_addr,
        &tls,
        &[b"h2"],
        grpc_connections,
        grpc_app,
    );
    tokio::try_join!(http, grpc).map(|_| ())
}

/// Serves `app` on `addr` when one is given (else waits forever), over TLS with `alpn` when
/// `tls` is given. `what`: the API's name and the flag that sets `addr`.
async fn serve_on(
    (what, flag): (&str, &str),
    addr: Option<SocketAddr>,
    tls: &Option<Arc<Reloading>>,
    alpn: &[&[u8]],
    connections: listen::Limits,
    app: axum::Router,
) -> anyhow::Result<()> {
    let Some(addr) = addr else {
        return futures::future::pending().await;
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the JobService {what} API ({flag})"))?;
    tracing::info!(%addr, tls = tls.is_some(), "JobService {what} API");
    let config = tls.as_ref().map(|cert| cert.server_config(alpn));
    listen::serve(listener, config, connections, app).await;
    Ok(())
}

/// The JobService over gRPC behind the gate, and server reflection (public).
fn grpc_router(api: Arc<service::JobApi>, gate: Arc<gate::Gate>, limits: &Limits) -> anyhow::Result<axum::Router> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(DESCRIPTORS)
        .build_v1()?
        .max_decoding_message_size(limits.max_small_body);
    // The gate has read and checked the body already; tonic decodes it from memory.
    let jobs = grpc::service(api).max_decoding_message_size(limits.max_create_bytes);
    Ok(tonic::service::Routes::new(jobs)
        .add_service(reflection)
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(gate, gate::grpc)))
}
