//! KFP's v1beta1 JobService (HTTP + gRPC) over ScheduledWorkflow resources.
pub mod convert;
pub mod error;
pub mod grpc;
pub mod http;
pub mod list;
pub mod proto;
pub mod service;

use std::{net::SocketAddr, sync::Arc};

/// Serves HTTP on `http_addr` and gRPC on `grpc_addr` until either fails.
pub async fn serve(
    api: Arc<service::JobApi>,
    http_addr: Option<SocketAddr>,
    grpc_addr: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let http = async {
        if let Some(addr) = http_addr {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(%addr, "JobService HTTP API");
            axum::serve(listener, http::router(api.clone())).await?;
        }
        futures::future::pending::<anyhow::Result<()>>().await
    };
    let grpc = async {
        if let Some(addr) = grpc_addr {
            tracing::info!(%addr, "JobService gRPC API");
            tonic::transport::Server::builder()
                .add_service(grpc::service(api.clone()))
                .serve(addr)
                .await?;
        }
        futures::future::pending::<anyhow::Result<()>>().await
    };
    tokio::try_join!(http, grpc).map(|_| ())
}
