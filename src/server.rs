//! The operator's HTTP endpoint: `/healthz` (liveness), `/readyz` (ready once the caches have
//! listed everything) and `/metrics` (Prometheus text format); and how every server of the
//! process accepts connections (`listen`).

pub mod body;
pub mod json_bounds;
pub mod listen;

use std::sync::{Arc, Mutex};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use futures::FutureExt;
use kube::runtime::reflector::Store;

use crate::{controller::Context, metrics::Metrics, stored::SwfObject};

type Check = Box<dyn Fn() -> bool + Send + Sync>;

/// Readiness: true once every registered check passes (and at least one is registered).
#[derive(Clone, Default)]
pub struct Health {
    checks: Arc<Mutex<Vec<Check>>>,
}

impl Health {
    pub fn add(&self, check: impl Fn() -> bool + Send + Sync + 'static) {
        self.checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(check));
    }

    /// Ready when the ScheduledWorkflow cache has listed once and so has the cache of every
    /// run kind started so far.
    pub fn watch(&self, reader: Store<SwfObject>, ctx: Arc<Context>) {
        self.add(move || {
            let swfs_listed = reader.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok());
            swfs_listed && ctx.runs.all_ready()
        });
    }

    pub fn ready(&self) -> bool {
        let checks = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        !checks.is_empty() && checks.iter().all(|c| c())
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Health,
}

pub fn router(metrics: Arc<Metrics>, health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move {
                if s.health.ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "caches are still listing")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { s.metrics.render() }),
        )
        .with_state(AppState { metrics, health })
}

pub async fn serve(addr: std::net::SocketAddr, metrics: Arc<Metrics>, health: Health) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz, /readyz, /metrics");
    let limits = listen::Limits {
        max_connections: 64,
        ..listen::Limits::standard(listen::Protocols::Http1)
    };
    listen::serve(listener, None, limits, router(metrics, health)).await;
    Ok(())
}
