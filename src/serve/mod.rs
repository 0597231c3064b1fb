//! The operator's HTTP endpoints: `/healthz` (liveness), `/readyz` (ready once the caches have
//! listed everything) and `/metrics` (Prometheus text format), the latter either with them or
//! on a port of its own over HTTPS for authorized callers only (`metrics_auth`); and how
//! every server of the process accepts connections (`listen`).

pub mod body;
pub mod json_bounds;
pub mod kube_error;
pub mod listen;
pub mod metrics;
pub mod metrics_auth;
pub mod tls;
pub mod watch_backoff;

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::{Router, extract::State, http::StatusCode, routing::get};

use crate::serve::metrics::Metrics;

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

/// Health and `/metrics`, plain (no secure metrics port).
pub fn router(metrics: Arc<Metrics>, health: Health) -> Router {
    router_with(metrics, health, true)
}

fn router_with(metrics: Arc<Metrics>, health: Health, with_metrics: bool) -> Router {
    let router = Router::new().route("/healthz", get(|| async { "ok" })).route(
        "/readyz",
        get(|State(s): State<AppState>| async move {
            if s.health.ready() {
                (StatusCode::OK, "ready")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "caches are still listing")
            }
        }),
    );
    let router = if with_metrics {
        router.route(
            "/metrics",
            get(|State(s): State<AppState>| async move { s.metrics.render() }),
        )
    } else {
        router
    };
    router.with_state(AppState { metrics, health })
}

fn limits() -> listen::Limits {
    listen::Limits {
        max_connections: 64,
        ..listen::Limits::standard(listen::Protocols::Http1)
    }
}

/// Serves health and `/metrics` over plain HTTP on `addr`.
pub async fn serve(addr: std::net::SocketAddr, metrics: Arc<Metrics>, health: Health) -> anyhow::Result<()> {
    serve_plain(addr, metrics, health, true).await
}

/// Serves health (and `/metrics` when `with_metrics`) over plain HTTP on `addr`.
pub async fn serve_plain(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    health: Health,
    with_metrics: bool,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for health and metrics (--metrics-addr)"))?;
    let what = if with_metrics {
        "/healthz, /readyz, /metrics"
    } else {
        "/healthz, /readyz"
    };
    tracing::info!(%addr, "serving {what}");
    listen::serve(listener, None, limits(), router_with(metrics, health, with_metrics)).await;
    Ok(())
}

/// Serves `/metrics` over HTTPS on `addr` to callers `auth` lets through.
pub async fn serve_secure(
    addr: std::net::SocketAddr,
    cert: Arc<crate::serve::tls::Reloading>,
    auth: Arc<metrics_auth::MetricsAuth>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for secure metrics (--metrics-secure-addr)"))?;
    tracing::info!(%addr, "serving /metrics over HTTPS to authorized callers");
    let app = Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .layer(axum::middleware::from_fn_with_state(auth, metrics_auth::require));
    let config = cert.server_config(&[b"http/1.1"]);
    listen::serve(listener, Some(config), limits(), app).await;
    Ok(())
}
