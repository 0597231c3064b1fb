//! `kubectl swf ui`: a local web page of the schedules, served on 127.0.0.1 with the user's
//! own credentials (docs/ui.md). `store` watches; `server` serves; `pages`, `svg`, `forecast`
//! and `preview` render, as pure functions of the cache's snapshot and `now`.

pub mod forecast;
pub mod html;
pub mod model;
pub mod pages;
pub mod preview;
pub mod server;
pub mod store;
pub mod svg;

use std::sync::Arc;

use anyhow::Context as _;
use jiff::tz::TimeZone;
use kube::Client;

/// How `kubectl swf ui` was asked to run.
pub struct Options {
    /// None: every namespace.
    pub namespace: Option<String>,
    pub default_tz: String,
    pub port: u16,
    pub open: bool,
}

/// Serves until the process is stopped (Ctrl-C).
pub async fn run(client: Client, options: Options) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
        .await
        .with_context(|| format!("listen on 127.0.0.1:{}", options.port))?;
    let port = listener.local_addr()?.port();
    let store = store::Store::start(client, options.namespace.clone(), options.default_tz.clone());
    store
        .ready()
        .await
        .context("cannot list ScheduledWorkflows (is the CRD installed, may you list them?)")?;
    let app = Arc::new(server::App {
        store,
        token: server::new_token(),
        hosts: vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")],
        local_zone: TimeZone::system(),
        all_namespaces: options.namespace.is_none(),
    });
    let url = format!("http://127.0.0.1:{port}/");
    let scope = options
        .namespace
        .map_or_else(|| "every namespace".to_string(), |ns| format!("namespace {ns}"));
    println!("kubectl swf ui: {url} ({scope}); Ctrl-C stops it");
    if options.open {
        open(&url);
    }
    axum::serve(listener, server::router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// Opens `url` in the desktop's browser ($BROWSER when set, else xdg-open); says so when it cannot.
fn open(url: &str) {
    let browser = std::env::var("BROWSER").ok().filter(|b| !b.is_empty());
    let opener = browser.as_deref().unwrap_or("xdg-open");
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("could not open a browser ({opener}: {e}); open {url} yourself");
    }
}
