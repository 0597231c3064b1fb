//! The reconciler: the only part of the operator that talks to Kubernetes about schedules.
//! Every decision is made by the pure modules (`validate`, `schedule`, `render`, `runstate`,
//! `status`); this module reads caches, creates and deletes runs, and writes status.
//!
//! - `reconcile`: one pass, in stages; `error_policy`: what a failed pass does next.
//! - `runs`: watch caches of runs indexed by owner; `status_write`: status patches.
//! - `events`, `backoff`, `leader`, `context`, `error`: what the passes share; `lease` and
//!   `members`: the Leases behind `leader` (docs/shards.md).

// `Error` carries a `kube::Error`; one is returned per failed pass, so its size is irrelevant.
#![allow(clippy::result_large_err)]

pub mod backoff;
pub mod context;
pub mod election;
pub mod error;
pub mod events;
pub mod lanes;
pub mod reconcile;
pub mod runs;
#[cfg(test)]
mod sim;
pub mod status_write;
#[cfg(test)]
mod tests;

use std::{
    hash::{Hash, Hasher},
    sync::Arc,
};

pub use context::{Clock, Context, Settings};
pub use error::Error;
use futures::{FutureExt, StreamExt};
use kube::{
    Api, Client,
    api::ListParams,
    runtime::{
        Controller, PredicateConfig, WatchStreamExt, controller::Config as ControllerConfig, reflector, watcher,
    },
};
pub use reconcile::{error_policy, reconcile};
use tokio::task::AbortHandle;
use tracing::info;

use crate::{
    model::stored::SwfObject,
    serve::{Health, metrics::Metrics, watch_backoff::WatchBackoff},
};

/// The field manager of every write the operator makes (status, runs, events, the lease), as
/// `managedFields` shows it.
pub const FIELD_MANAGER: &str = "swf-operator";

pub(crate) fn post_params() -> kube::api::PostParams {
    kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Passes running at once. The load a burst of ticks puts on the API server is bounded by the
/// writes in flight (`lanes::WRITES_IN_FLIGHT`), and a pass waiting for a slot costs little, so
/// this is high: a tick's creates all go before its status writes only while every pass of the
/// tick has started (beyond it, a finished pass lets the next one create). Not unbounded:
/// kube-runtime polls every pass in flight on each wake-up, which costs O(passes²) per tick.
pub const CONCURRENT_PASSES: u16 = 1024;

/// What a pass should be woken for: a new spec (generation), a `run-now` annotation, a
/// deletion, or a recreated object. Status writes (including our own echo) wake nothing.
pub(crate) fn worth_a_pass(obj: &SwfObject) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    obj.metadata.uid.hash(&mut h);
    obj.metadata.generation.hash(&mut h);
    obj.metadata.annotations.hash(&mut h);
    obj.metadata.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// Background tasks that live as long as the controller: aborted when `run` returns or is
/// dropped (an aborted test operator leaves nothing running behind it).
#[derive(Clone, Default)]
pub struct Tasks(Arc<std::sync::Mutex<Vec<AbortHandle>>>);

impl Tasks {
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = tokio::spawn(fut);
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(handle.abort_handle());
        handle
    }
}

struct AbortOnDrop(Tasks);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in self.0.0.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
    }
}

/// The operator's parts outside the controller itself.
pub struct Parts {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub health: Health,
    /// `None`: leader election off (one replica, or tests).
    pub lease: Option<election::leader::LeaseConfig>,
    /// Name of this replica in events and the lease.
    pub identity: String,
}

/// Runs the controller until `shutdown` resolves (SIGTERM/SIGINT in production).
pub async fn run(parts: Parts, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let swfs: Api<SwfObject> = match &parts.settings.namespace {
        Some(ns) => Api::namespaced(parts.client.clone(), ns),
        None => Api::all(parts.client.clone()),
    };
    if let Err(e) = swfs.list_metadata(&ListParams::default().limit(1)).await {
        anyhow::bail!(
            "cannot list ScheduledWorkflows ({e}); is the CRD installed? `swf-operator crd | kubectl apply -f -`"
        );
    }
    let shutdown = shutdown.shared();
    let tasks = Tasks::default();
    let _abort_on_drop = AbortOnDrop(tasks.clone());
    let (wake_tx, wake_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ctx, election) = context(&parts, &tasks, wake_tx, shutdown.clone()).await;
    let (reader, writer) = reflector::store();
    let observer = ctx.clone();
    let lists = ctx.metrics.clone();
    // After the first list, a list means the watch was lost (an API server outage, 410 Gone):
    // every schedule gets a pass at once instead of waiting out its retry backoff.
    let (relisted_tx, relisted_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut listed_once = false;
    let trigger = watcher(swfs, watcher::Config::default().any_semantic())
        .backoff(WatchBackoff::default())
        .inspect(move |e| match e {
            Ok(watcher::Event::Init) => lists.cache_listed("scheduledworkflows"),
            Ok(watcher::Event::InitDone) if std::mem::replace(&mut listed_once, true) => {
                info!("schedules listed again (a lost watch): a pass for every schedule");
                let _ = relisted_tx.send(());
            }
            _ => {}
        })
        .reflect(writer)
        .applied_objects()
        .inspect(move |o| {
            if let Ok(o) = o {
                observer.status.observed(o);
            }
        })
        .predicate_filter(worth_a_pass, PredicateConfig::default())
        // Errors are retried by the watch's own short backoff (`WatchBackoff`); passed on, they
        // would also stall the controller's trigger stream behind kube's default backoff (up
        // to 30 s and more, so the catch-up after an outage would wait for it).
        .filter(|r| futures::future::ready(r.is_ok()));
    // A shard gained (or leadership, with one shard): its schedules get a pass at once.
    let gained = tokio_stream::wrappers::WatchStream::new(ctx.leader.gains())
        .filter(|gains| futures::future::ready(*gains > 0))
        .map(|_| ());
    let everyone = futures::stream::select(
        gained,
        tokio_stream::wrappers::UnboundedReceiverStream::new(relisted_rx),
    );
    // Ready when the ScheduledWorkflow cache has listed once and so has the cache of every run
    // kind started so far.
    let (swfs, caches) = (reader.clone(), ctx.clone());
    parts.health.add(move || {
        let swfs_listed = swfs.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok());
        swfs_listed && caches.runs.all_ready()
    });
    tasks.spawn(keep_gauges(reader.clone(), ctx.clone()));
    info!(namespace = ?ctx.settings.namespace, "controller started");
    Controller::for_stream(trigger, reader)
        .with_config(ControllerConfig::default().concurrency(CONCURRENT_PASSES))
        .trigger_backoff(WatchBackoff::default())
        .reconcile_on(tokio_stream::wrappers::UnboundedReceiverStream::new(wake_rx))
        .reconcile_all_on(everyone)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile error");
            }
        })
        .await;
    if let Some(election) = election {
        // Let the election release its leases, so other replicas take over at once.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), election).await;
    }
    Ok(())
}

/// The shared context: run caches (started for `--watch-kinds`), leader election (started
/// when configured), the event publisher. Returns the election's task, if any.
async fn context(
    parts: &Parts,
    tasks: &Tasks,
    wake: runs::Wake,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (Arc<Context>, Option<tokio::task::JoinHandle<()>>) {
    let (client, metrics) = (&parts.client, &parts.metrics);
    let runs = runs::RunCaches::new(
        client.clone(),
        parts.settings.namespace.clone(),
        wake,
        metrics.clone(),
        tasks.clone(),
    );
    for kind in &parts.settings.watch_kinds {
        if let Err(e) = runs.get(kind).await {
            info!(%kind, error = %e, "run kind not served; it is watched once a schedule uses it");
        }
    }
    let (leader, election) = match &parts.lease {
        Some(config) => {
            let (leader, election) = election::leader::start(client.clone(), config.clone(), metrics.clone());
            (leader, Some(tasks.spawn(election.run(shutdown))))
        }
        None => {
            metrics.set_held(1); // everything, as one shard
            (election::leader::Leader::always(), None)
        }
    };
    let lanes = lanes::Lanes::default();
    let events = events::Events::spawn(
        tasks,
        client.clone(),
        FIELD_MANAGER.into(),
        parts.identity.clone(),
        metrics.clone(),
        lanes.clone(),
    );
    let ctx = Arc::new(Context {
        events,
        client: client.clone(),
        settings: parts.settings.clone(),
        clock: Clock::system(),
        runs,
        status: status_write::StatusWriter::default(),
        backoff: backoff::Backoff::default(),
        leader,
        metrics: metrics.clone(),
        lanes,
    });
    (ctx, election)
}

/// Keeps the gauges that describe the whole cache current: undecodable objects, cache sizes,
/// and forgets deleted schedules.
async fn keep_gauges(reader: reflector::Store<SwfObject>, ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        tick.tick().await;
        let objects = reader.state();
        let uids: std::collections::HashSet<String> = objects.iter().filter_map(|o| o.metadata.uid.clone()).collect();
        ctx.metrics.retain_schedules(|uid| uids.contains(uid));
        ctx.metrics
            .set_undecodable(objects.iter().filter(|o| o.spec.is_err()).count());
        ctx.metrics.set_cache_size("scheduledworkflows", objects.len());
    }
}
