//! The reconciler: the only module here that talks to Kubernetes for ScheduledWorkflows.
//! Every decision is made by the pure modules (`validate`, `schedule`, `render`, `runstate`,
//! `status`); this module reads, creates, deletes and writes status.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams},
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        watcher,
    },
};
use serde_json::Value;
use tokio::sync::RwLock;
use tracing::{info, warn};

use crate::{
    crd::{RUN_NOW_ANNOTATION, ScheduledWorkflow, ScheduledWorkflowStatus},
    metrics::Metrics,
    render::{self, LABEL_OWNED, LABEL_SWF_NAME, RunRequest},
    runstate::{self, ObservedRun, Outcome},
    schedule::{self, Cadence, PlanInput},
    status,
    validate::{self, RunKind, Validated},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("run {name} exists but is not owned by this ScheduledWorkflow")]
    NameConflict { name: String },
}

/// Settings of one operator process.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Only this namespace, or all when `None`.
    pub namespace: Option<String>,
    pub default_time_zone: String,
    /// Run kinds watched for completion (others are polled).
    pub watch_kinds: Vec<RunKind>,
    /// How often runs of unwatched kinds are re-read while active.
    pub poll_interval: Duration,
}

/// Resolves run kinds to API resources through discovery, caching what exists.
#[derive(Default)]
pub struct RunKinds {
    resolved: RwLock<HashMap<RunKind, ApiResource>>,
    watched: RwLock<HashSet<RunKind>>,
}

impl RunKinds {
    pub async fn resolve(&self, client: &Client, kind: &RunKind) -> Result<ApiResource, kube::Error> {
        if let Some(ar) = self.resolved.read().await.get(kind) {
            return Ok(ar.clone());
        }
        let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        let (ar, _caps) = kube::discovery::pinned_kind(client, &gvk).await?;
        self.resolved.write().await.insert(kind.clone(), ar.clone());
        Ok(ar)
    }

    async fn is_watched(&self, kind: &RunKind) -> bool {
        self.watched.read().await.contains(kind)
    }
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub settings: Settings,
    pub kinds: RunKinds,
    pub metrics: Arc<Metrics>,
    /// The clock; tests and the pure modules never read the system time themselves.
    pub now: fn() -> Timestamp,
    /// Our last status write per object, so a pass woken before the watch delivers that write
    /// plans from it instead of from the stale cached copy (see `fresh`).
    pub written: WrittenStatus,
}

/// uid → (resourceVersion we wrote over, resourceVersion and status we wrote).
#[derive(Default)]
pub struct WrittenStatus(std::sync::Mutex<HashMap<String, (String, String, ScheduledWorkflowStatus)>>);

impl WrittenStatus {
    /// The object with our latest status when the cache still holds the version we replaced.
    /// Without this, the run-creation event would wake a pass on the old status: it would
    /// adopt the run it just created and fail its status write with a conflict.
    fn fresh(&self, swf: Arc<ScheduledWorkflow>) -> Arc<ScheduledWorkflow> {
        let map = self.0.lock().expect("not poisoned");
        match (swf.uid(), swf.resource_version()) {
            (Some(uid), Some(rv)) => match map.get(&uid) {
                Some((stale, fresh_rv, status)) if *stale == rv => {
                    let mut obj = (*swf).clone();
                    obj.metadata.resource_version = Some(fresh_rv.clone());
                    obj.status = Some(status.clone());
                    Arc::new(obj)
                }
                _ => swf,
            },
            _ => swf,
        }
    }

    fn record(&self, before: &ScheduledWorkflow, after: &ScheduledWorkflow) {
        if let (Some(uid), Some(old), Some(new), Some(status)) = (
            before.uid(),
            before.resource_version(),
            after.resource_version(),
            after.status.clone(),
        ) {
            self.0.lock().expect("not poisoned").insert(uid, (old, new, status));
        }
    }
}

impl Context {
    async fn event(&self, swf: &ScheduledWorkflow, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &swf.object_ref(&())).await {
            warn!(error = %e, "cannot publish event");
        }
    }
}

fn runs_selector(swf: &ScheduledWorkflow) -> String {
    format!("{LABEL_SWF_NAME}={}", render::swf_label_value(&swf.name_any()))
}

fn owned_by(obj: &DynamicObject, uid: &str) -> bool {
    obj.owner_references().iter().any(|o| o.uid == uid)
}

/// Writes `new` through the status subresource, only when it differs from what we read.
/// A PUT with the read resourceVersion: a stale read fails with 409 and the pass is retried.
async fn write_status(
    ctx: &Context,
    api: &Api<ScheduledWorkflow>,
    swf: &ScheduledWorkflow,
    new: ScheduledWorkflowStatus,
) -> Result<(), Error> {
    if swf.status.as_ref() == Some(&new) {
        return Ok(());
    }
    let mut obj = swf.clone();
    obj.status = Some(new);
    obj.metadata.managed_fields = None;
    let written = api
        .replace_status(&swf.name_any(), &PostParams::default(), &obj)
        .await?;
    ctx.written.record(swf, &written);
    Ok(())
}

/// Creates the run, or adopts it when a previous pass already created it.
async fn create_or_adopt(api: &Api<DynamicObject>, obj: Value, uid: &str) -> Result<(DynamicObject, bool), Error> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let dynamic: DynamicObject = serde_json::from_value(obj).expect("rendered runs are objects");
    match api.create(&PostParams::default(), &dynamic).await {
        Ok(created) => Ok((created, true)),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api.get(&name).await?;
            if owned_by(&existing, uid) {
                Ok((existing, false))
            } else {
                Err(Error::NameConflict { name })
            }
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn reconcile(swf: Arc<ScheduledWorkflow>, ctx: Arc<Context>) -> Result<Action, Error> {
    let swf = ctx.written.fresh(swf);
    let now = (ctx.now)();
    let ns = swf.namespace().unwrap_or_default();
    let name = swf.name_any();
    let uid = swf.uid().unwrap_or_default();
    let api: Api<ScheduledWorkflow> = Api::namespaced(ctx.client.clone(), &ns);
    let current = swf.status.clone().unwrap_or_default();
    let generation = swf.meta().generation;
    let new_generation = current.observed_generation != generation;

    let v = match validate::validate(&swf.spec, &ctx.settings.default_time_zone) {
        Ok(v) => v,
        Err(invalid) => {
            let message = invalid.to_string();
            let status = status::invalid(&current, generation, "InvalidSpec", &message, now);
            if Some(&status) != swf.status.as_ref() {
                ctx.event(&swf, EventType::Warning, "InvalidSpec", message.clone())
                    .await;
                warn!(%ns, %name, %message, "invalid spec");
            }
            write_status(&ctx, &api, &swf, status).await?;
            // Nothing will change until the spec does.
            return Ok(Action::await_change());
        }
    };
    if new_generation {
        for warning in &v.warnings {
            ctx.event(&swf, EventType::Warning, "SpecWarning", warning.clone())
                .await;
        }
    }

    let kind = v.source.kind();
    let ar = match ctx.kinds.resolve(&ctx.client, &kind).await {
        Ok(ar) => ar,
        Err(e) => {
            let message = format!("run kind {kind} is not served by this cluster ({e}); install its CRD");
            let status = status::invalid(&current, generation, "UnknownRunKind", &message, now);
            if Some(&status) != swf.status.as_ref() {
                ctx.event(&swf, EventType::Warning, "UnknownRunKind", message).await;
            }
            write_status(&ctx, &api, &swf, status).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    let runs_api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);

    // Runs are counted by owner UID within the namespace (KFP counts by name cluster-wide).
    let listed = runs_api
        .list(&ListParams::default().labels(&runs_selector(&swf)))
        .await?;
    let mut runs: Vec<(DynamicObject, ObservedRun)> = listed
        .items
        .into_iter()
        .filter(|o| owned_by(o, &uid))
        .map(|mut o| {
            // List items carry no apiVersion/kind; the classification needs them.
            o.types = Some(kube::api::TypeMeta {
                api_version: ar.api_version.clone(),
                kind: ar.kind.clone(),
            });
            let observed = runstate::observe(&serde_json::to_value(&o).unwrap_or_default());
            (o, observed)
        })
        .collect();

    // History limits (extension): delete the oldest finished runs beyond them.
    let observed: Vec<ObservedRun> = runs.iter().map(|(_, r)| r.clone()).collect();
    let doomed: HashSet<String> = runstate::beyond_history_limits(
        &observed,
        swf.spec.successful_runs_history_limit,
        swf.spec.failed_runs_history_limit,
    )
    .into_iter()
    .map(|r| r.status.name.clone())
    .collect();
    for victim in &doomed {
        delete_run(&runs_api, victim).await?;
    }
    runs.retain(|(_, r)| !doomed.contains(&r.status.name));

    let active = runs.iter().filter(|(_, r)| r.outcome == Outcome::Active).count();
    let state = status::trigger_state(&current, swf.spec.enabled, now);
    tracing::debug!(%ns, %name, enabled = swf.spec.enabled, condition = ?current.conditions.first().map(|c| &c.type_), rv = ?swf.metadata.resource_version, ?state, "planning");
    let plan = schedule::plan(&PlanInput {
        schedule: &v.schedule,
        enabled: swf.spec.enabled,
        no_catchup: v.no_catchup,
        max_concurrency: v.max_concurrency,
        policy: v.policy,
        created: swf.creation_timestamp().map(|t| t.0).unwrap_or(now),
        state,
        active,
        now,
    });

    if plan.replace > 0 {
        let mut oldest: Vec<&ObservedRun> = runs
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.outcome == Outcome::Active)
            .collect();
        oldest.sort_by(|a, b| a.status.scheduled_at.cmp(&b.status.scheduled_at));
        let victims: Vec<String> = oldest
            .iter()
            .take(plan.replace)
            .map(|r| r.status.name.clone())
            .collect();
        for victim in &victims {
            delete_run(&runs_api, victim).await?;
            ctx.event(
                &swf,
                EventType::Normal,
                "RunReplaced",
                format!("Deleted active run {victim} to make room (concurrencyPolicy: Replace)"),
            )
            .await;
        }
        runs.retain(|(_, r)| !victims.contains(&r.status.name));
    }
    for skipped in &plan.skipped {
        ctx.event(
            &swf,
            EventType::Normal,
            "TickSkipped",
            format!(
                "Skipped the tick of {skipped}: {} runs already active (concurrencyPolicy: Skip)",
                active
            ),
        )
        .await;
    }

    let mut final_state = plan.state.clone();
    let mut requests: Vec<RunRequest> = plan
        .runs
        .iter()
        .map(|r| RunRequest {
            name: render::run_name(&name, r.scheduled),
            scheduled: r.scheduled,
            index: r.index,
            run_uuid: uuid::Uuid::new_v4().to_string(),
            run_now: None,
        })
        .collect();

    // Run now: a new annotation value asks for one immediate run (concurrency still applies).
    let mut last_run_now = current.trigger.last_run_now.clone();
    let run_now = swf
        .annotations()
        .get(RUN_NOW_ANNOTATION)
        .filter(|v| !v.is_empty())
        .cloned();
    if let Some(request) = run_now.filter(|r| Some(r) != last_run_now.as_ref()) {
        let busy = runs.iter().filter(|(_, r)| r.outcome == Outcome::Active).count() + requests.len();
        if busy < v.max_concurrency {
            final_state.last_index += 1;
            requests.push(RunRequest {
                name: render::run_now_name(&name, &request),
                scheduled: now,
                index: final_state.last_index,
                run_uuid: uuid::Uuid::new_v4().to_string(),
                run_now: Some(request.clone()),
            });
            last_run_now = Some(request);
        }
    }

    for req in &requests {
        let obj = render::render(&swf, &v, req, now);
        let (created, fresh) = create_or_adopt(&runs_api, obj, &uid).await?;
        let observed = runstate::observe(&serde_json::to_value(&created).unwrap_or_default());
        if fresh {
            ctx.metrics
                .run_created(&ns, (now - req.scheduled).total(jiff::Unit::Second).unwrap_or(0.0));
            ctx.event(
                &swf,
                EventType::Normal,
                "RunCreated",
                format!("Created {} {} for {}", kind.kind, req.name, req.scheduled),
            )
            .await;
            info!(%ns, swf = %name, run = %req.name, scheduled = %req.scheduled, "created run");
        } else {
            // A previous pass created it and crashed (or its status write was lost): adopt.
            info!(%ns, swf = %name, run = %req.name, "adopted a run an earlier pass created");
        }
        // Keep the index the run really has (it may come from an earlier pass).
        if observed.status.index > final_state.last_index {
            final_state.last_index = observed.status.index;
        }
        runs.retain(|(_, r)| r.status.name != observed.status.name);
        runs.push((created, observed));
    }

    let observed: Vec<ObservedRun> = runs.iter().map(|(_, r)| r.clone()).collect();
    let history = runstate::history(&observed, final_state.last_index, v.max_history);
    let active_now = history.active.len();
    let one_off = matches!(v.schedule.cadence, Cadence::Once);
    let new_status = status::compute(
        &current,
        generation,
        status::Observed {
            enabled: swf.spec.enabled,
            one_off,
            state: final_state,
            last_run_now,
            next: plan.next,
            history,
            schedule: schedule::describe(&swf.spec.trigger, &v.time_zone),
            ended: plan.next.is_none(),
        },
        now,
    );
    write_status(&ctx, &api, &swf, new_status).await?;

    Ok(next_action(&ctx, &v, &plan, active_now, now).await)
}

async fn delete_run(api: &Api<DynamicObject>, name: &str) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Requeue exactly at the next tick; while a tick waits for a slot, run events wake us (or a
/// poll, for kinds that are not watched).
async fn next_action(ctx: &Context, v: &Validated, plan: &schedule::Plan, active: usize, now: Timestamp) -> Action {
    let watched = ctx.kinds.is_watched(&v.source.kind()).await;
    let poll = (!watched && active > 0).then_some(ctx.settings.poll_interval);
    let until_next = match plan.next {
        Some(t) if !plan.waiting => Some(Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO)),
        _ => None,
    };
    match (until_next, poll) {
        (Some(a), Some(b)) => Action::requeue(a.min(b)),
        (Some(a), None) => Action::requeue(a),
        (None, Some(b)) => Action::requeue(b),
        // Waiting for a watched run to finish: its event wakes us; a slow safety net anyway.
        (None, None) if plan.waiting => Action::requeue(Duration::from_secs(300)),
        (None, None) => Action::await_change(),
    }
}

pub fn error_policy(swf: Arc<ScheduledWorkflow>, error: &Error, ctx: Arc<Context>) -> Action {
    if let Error::Kube(kube::Error::Api(s)) = error
        && s.code == 409
    {
        // Someone wrote the object since we read it: retry on the newer version.
        tracing::debug!(ns = ?swf.namespace(), name = %swf.name_any(), "status write conflict; retrying");
        return Action::requeue(Duration::from_millis(200));
    }
    ctx.metrics.reconcile_failed();
    warn!(ns = ?swf.namespace(), name = %swf.name_any(), %error, "reconcile failed; retrying in 5s");
    // Tell the owner too (repeats are aggregated into one EventSeries by the Recorder).
    let reason = match error {
        Error::NameConflict { .. } => "RunNameConflict",
        Error::Kube(_) => "ReconcileFailed",
    };
    let note = format!("{error}; retrying in 5s");
    tokio::spawn(async move { ctx.event(&swf, EventType::Warning, reason, note).await });
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    ready: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let swfs: Api<ScheduledWorkflow> = match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    if let Err(e) = swfs.list(&ListParams::default().limit(1)).await {
        anyhow::bail!(
            "cannot list ScheduledWorkflows ({e}); is the CRD installed? `swf-operator crd | kubectl apply -f -`"
        );
    }
    let reporter = Reporter {
        controller: "swf-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        settings: settings.clone(),
        kinds: RunKinds::default(),
        metrics,
        now: Timestamp::now,
        written: WrittenStatus::default(),
    });

    let mut controller = Controller::new(swfs, watcher::Config::default().any_semantic());
    for kind in &settings.watch_kinds {
        match ctx.kinds.resolve(&client, kind).await {
            Ok(ar) => {
                let api: Api<DynamicObject> = match &settings.namespace {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                    None => Api::all_with(client.clone(), &ar),
                };
                let wc = watcher::Config::default().labels(&format!("{LABEL_OWNED}=true"));
                controller = controller.owns_with(api, ar, wc);
                ctx.kinds.watched.write().await.insert(kind.clone());
                info!(%kind, "watching runs");
            }
            Err(e) => info!(%kind, error = %e, "run kind not served; runs of this kind will be polled"),
        }
    }
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    info!(namespace = ?settings.namespace, "controller started");
    controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile error");
            }
        })
        .await;
    Ok(())
}
